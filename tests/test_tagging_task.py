"""The `tagging` task end to end: train on a tiny CoNLL file, evaluate, tag text."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import _training_helpers  # noqa: F401  (one torch thread)
import rnnkit
from rnnkit.cli import app
from rnnkit.config import ConfigError
from rnnkit.data.codec import TaggingCodec
from rnnkit.data.vocab import Vocab
from rnnkit.models import SequenceTagger, Tagged
from rnnkit.tasks import get_task, run
from rnnkit.tasks.tagging import TaggingConfig


def prepare(cfg: TaggingConfig, codec=None):
    return get_task("tagging").prepare(cfg, 0, codec)


# Each name has one type; the context words carry no information about it.
NAMES = {"Mary": "PER", "John": "PER", "Paris": "LOC", "Rome": "LOC", "Acme": "ORG"}


def _sentences() -> list[list[tuple[str, str]]]:
    out = []
    for name, kind in NAMES.items():
        out.append([("we", "O"), ("saw", "O"), (name, f"B-{kind}"), ("today", "O")])
        out.append([(name, f"B-{kind}"), ("left", "O")])
    out.append([("Acme", "B-ORG"), ("Inc", "I-ORG"), ("won", "O")])
    return out


def _write_conll(path, sentences) -> str:
    blocks = ["\n".join(f"{t} POS {g}" for t, g in s) for s in sentences]
    path.write_text("-DOCSTART- X O\n\n" + "\n\n".join(blocks) + "\n")
    return str(path)


CONLLU = """# text = Dogs bark .
1\tDogs\tdog\tNOUN\tNNS\t_\t2\tnsubj\t_\t_
2\tbark\tbark\tVERB\tVBP\t_\t0\troot\t_\t_
3\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_

1\tCats\tcat\tNOUN\tNNS\t_\t2\tnsubj\t_\t_
2\tsleep\tsleep\tVERB\tVBP\t_\t0\troot\t_\t_

"""


def test_build_vocabularies_and_rows(tmp_path):
    f = _write_conll(tmp_path / "train.txt", _sentences())
    data = prepare(TaggingConfig(train=f, val=f, test=f, max_word_len=4))
    codec = data.codec
    assert codec.tags[0] == "O" and set(codec.tags) == {
        "O",
        "B-PER",
        "B-LOC",
        "B-ORG",
        "I-ORG",
    }
    words, chars = codec.words.tokens, codec.chars.tokens
    assert codec.scheme == "BIO" and "Mary" in words and "M" in chars
    assert data.train.inputs.shape == (11, 4, 5)  # 11 sentences, T = 4, 1 + W = 5
    assert data.train.lengths.tolist()[:2] == [4, 2]
    row = data.train.inputs[1]  # "Mary left"
    assert words[row[0, 0]] == "Mary"
    assert [chars[i] for i in row[0, 1:]] == ["M", "a", "r", "y"]
    assert row[2:].eq(0).all()  # padding steps
    assert data.fixed["scheme"] == "BIO" and data.fixed["num_tags"] == 5
    assert data.fixed["tags"] == codec.tags and data.fixed["char_vocab_size"] == len(chars)
    assert prepare(TaggingConfig(train=f, val=f, test=f, chars=False)).fixed["char_vocab_size"] == 0


def test_unknown_words_and_tags_at_encode():
    words = Vocab(["<pad>", "<unk>", "<bos>", "<eos>", "a"])
    codec = TaggingCodec(words, ("O", "B-X"), None, max_word_len=3, scheme="BIO")
    batch = codec.batch([["a", "zzz"]], [["O", "B-NEW"]])
    assert batch.inputs.tolist() == [[4, 1]]  # words only: (B, T); unknown word -> <unk>
    assert batch.mask.tolist() == [[True, False]]  # an unseen tag is not scored


def test_conllu_column_choice(tmp_path):
    f = tmp_path / "ud.conllu"
    f.write_text(CONLLU)
    data = prepare(
        TaggingConfig(
            train=str(f), val=str(f), test=str(f), format="conllu", column="upos", spans=False
        )
    )
    assert data.codec.tags == ("NOUN", "PUNCT", "VERB") and data.codec.scheme == ""
    deprel = prepare(
        TaggingConfig(train=str(f), val=str(f), test=str(f), format="conllu", column="deprel")
    )
    assert "nsubj" in deprel.codec.tags and deprel.codec.scheme == ""  # not span tags


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="column: expected one of"):
        TaggingConfig(train="a", test="b", format="conllu", column="-1")
    with pytest.raises(ValueError, match="column: expected a column index"):
        TaggingConfig(train="a", test="b", column="upos")


def test_bad_file_names_file_and_line(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("we POS O\nsaw O\n")
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "train",
            "tagging",
            "--set",
            f'task.train="{f}"',
            "--set",
            f'task.test="{f}"',
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert r.exit_code == 2
    assert f"{f}:2" in r.output and "expected 3 columns" in r.output


def test_registry_dataset_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    root = tmp_path / "japanese-ner"
    root.mkdir()
    for split, n in (("train", 11), ("valid", 3), ("test", 5)):
        _write_conll(root / f"{split}.conll", _sentences()[:n])
    data = prepare(TaggingConfig(dataset="japanese-ner"))
    assert (data.train.size, data.val.size, data.test.size) == (11, 3, 5)
    with pytest.raises(ValueError, match="either `dataset` or both"):
        TaggingConfig(dataset="japanese-ner", train="x", test="y")
    with pytest.raises(ValueError, match="either `dataset` or both"):
        TaggingConfig(train="x")


def test_tokenize():
    codec = TaggingCodec(Vocab.build([]), ("O",))
    assert codec.tokenize("Hi, Bob's dog.") == ["Hi", ",", "Bob", "'", "s", "dog", "."]
    # white space first, as the CoNLL training files: a training word stays whole; a
    # byte-order mark is dropped; combining marks stay with their letters
    trained = TaggingCodec(Vocab.build([["U.S.", "don't", "1,000"]]), ("O",))
    text = "\ufeffU.S. officials don't pay 1,000 e-mail लिखा Bob."
    assert trained.tokenize(text) == [
        "U.S.", "officials", "don't", "pay", "1,000", "e", "-", "mail", "लिखा", "Bob", ".",
    ]  # fmt: skip


def test_tags_unseen_in_training_are_scored_and_refused_in_a_file(tmp_path):
    """A test entity of a type training never had counts as missed (its gold tag is kept),
    and a file given to evaluate with such a tag is refused naming it."""
    from rnnkit.tasks.tagging import read_file, score

    train = _write_conll(tmp_path / "train.txt", _sentences())
    test = _write_conll(
        tmp_path / "test.txt", [[("Zed", "B-MISC"), ("ran", "O")], [("Mary", "B-PER")]]
    )
    data = prepare(TaggingConfig(train=train, val=train, test=test))
    assert "B-MISC" not in data.codec.tags

    class Oracle:  # predicts every seen gold tag right (score reads tag_rows only)
        def tag_rows(self, batch):
            tags = data.codec.tags
            return [
                [tags[int(k)] if m else "O" for k, m in zip(row[:n], keep[:n], strict=True)]
                for row, keep, n in zip(
                    batch.targets.tolist(), batch.mask.tolist(), batch.lengths.tolist(), strict=True
                )
            ]

    scores = score(Oracle(), data.test, data)
    assert scores["recall_overall"] == pytest.approx(0.5)  # the MISC entity is missed
    assert scores["precision_overall"] == 1.0
    with pytest.raises(ValueError, match=r"test\.txt: sentence 1 holds the tag 'B-MISC'"):
        read_file(TaggingConfig(train=train, test=test), test, data.codec)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match=r"empty\.txt: no sentences \(task\.val\)"):
        prepare(TaggingConfig(train=train, val=str(tmp_path / "empty.txt"), test=test))


def test_without_a_validation_file_a_seeded_tenth_of_train_validates(tmp_path):
    """No choice is made on the test file: without ``val`` a seeded 10% of the training
    sentences (at least one) is held out for validation, the same for the same seed."""
    from rnnkit.tasks.tagging import held_out

    sentences = [([f"w{i}"], ["O"]) for i in range(25)]
    train, val = held_out(sentences, seed=0)
    assert len(val) == 2 and len(train) == 23  # round(2.5) = 2
    assert sorted(train + val) == sorted(sentences)
    assert held_out(sentences, seed=0) == (train, val)
    assert held_out(sentences, seed=1)[1] != val
    assert len(held_out(sentences[:3], seed=0)[1]) == 1  # at least one
    with pytest.raises(ValueError, match=r"task\.val: a training file of one sentence"):
        held_out(sentences[:1], seed=0)
    f = _write_conll(tmp_path / "t.txt", _sentences())
    data = prepare(TaggingConfig(train=f, test=f))
    n = len(_sentences())  # 11: one held out
    assert data.train.lengths.shape[0] == n - 1 and data.val.lengths.shape[0] == 1
    assert data.test.lengths.shape[0] == n


@pytest.mark.parametrize("decoder", ["crf", "softmax"])
def test_train_evaluate_tag_through_the_cli(tmp_path, decoder):
    train = _write_conll(tmp_path / "train.txt", _sentences())
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'[task]\ntrain = "{train}"\nval = "{train}"\ntest = "{train}"\nmax_word_len = 6\n'
        f'[model]\ndecoder = "{decoder}"\nword_dim = 12\nhidden_size = 12\ndropout = 0.0\n'
        '[trainer]\nepochs = 25\nbatch_size = 4\nlr = 0.02\n[trainer.log]\nprogress = "none"\n'
    )
    runner = CliRunner()
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "tagging", "--config", str(cfg), "--out", str(out)])
    assert r.exit_code == 0, r.output

    r = runner.invoke(app, ["evaluate", str(out)])
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.output)
    assert metrics["token_accuracy"] == 1.0
    assert metrics["f1_overall"] == 1.0
    assert {"f1_PER", "f1_LOC", "f1_ORG"} <= set(metrics)
    r = runner.invoke(app, ["evaluate", str(out), "--data", train])  # a file in the run's format
    assert r.exit_code == 0, r.output
    on_file = json.loads(r.output)
    assert on_file["n"] == 11 and on_file["accuracy"] == 1.0
    assert on_file["loss"] == pytest.approx(metrics["loss"], rel=1e-5)  # the same sentences

    r = runner.invoke(app, ["tag", str(out), "we saw Acme Inc today"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[2].split() == ["Acme", "B-ORG"] and lines[3].split() == ["Inc", "I-ORG"]
    assert lines[-1].split("\t") == ["ORG", "2-4", "Acme Inc"]

    # the same model from Python: a Tagged per text, whose str() is the CLI's lines
    model = rnnkit.load(out)
    assert isinstance(model, SequenceTagger) and model.config.decoder == decoder
    tagged = model.predict("we saw Acme Inc today")
    assert isinstance(tagged, Tagged)
    assert tagged.tags == ["O", "O", "B-ORG", "I-ORG", "O"]
    assert tagged.spans == [("ORG", 2, 4)]
    assert str(tagged) == r.output.rstrip("\n")

    r = runner.invoke(app, ["tag", str(tmp_path / "missing"), "text"])
    assert r.exit_code == 2 and "is not a run directory: it does not exist" in r.output

    # `rnnkit predict` on a tagging run: the same lines, a blank line between texts
    r = runner.invoke(app, ["predict", str(out)], input="we saw Acme Inc today\nwe saw Acme Inc\n")
    assert r.exit_code == 0, r.output
    first = "\n".join(lines) + "\n"
    assert r.output.startswith(first + "\n")
    second = r.output[len(first) + 1 :].splitlines()
    assert [x.split() for x in second[:4]] == [
        ["we", "O"],
        ["saw", "O"],
        ["Acme", "B-ORG"],
        ["Inc", "I-ORG"],
    ]
    assert second[-1].split("\t") == ["ORG", "2-4", "Acme Inc"]
    both = model.predict(["we saw Acme Inc today", "we saw Acme Inc"])
    assert r.output == "\n\n".join(map(str, both)) + "\n"


def test_task_is_registered_with_its_model_and_hooks():
    spec = get_task("tagging")
    assert spec.model_cls is SequenceTagger and spec.model_config_cls.__name__ == "TaggerConfig"
    assert spec.score is not None and spec.read_file is not None and spec.check is not None
    assert spec.config_cls is TaggingConfig
    assert set(spec.fixed) == {
        "vocab_size",
        "num_tags",
        "char_vocab_size",
        "bigram_vocab_size",
        "tags",
        "scheme",
    }


def test_bidirectional_option_reaches_the_model(tmp_path):
    f = _write_conll(tmp_path / "train.txt", _sentences())
    for bidirectional in (True, False):
        cfg = run.load_run_config(
            "tagging",
            overrides=[
                f'task.train="{f}"',
                f'task.val="{f}"',
                f'task.test="{f}"',
                "task.chars=false",
                "model.hidden_size=5",
                f"model.bidirectional={str(bidirectional).lower()}",
            ],
        )
        model = run.build_model(cfg, prepare(cfg.task_config))
        assert model.config.bidirectional is bidirectional
        assert model.out.in_features == (10 if bidirectional else 5)
        assert model.config.tags[0] == "O" and model.config.scheme == "BIO"  # from the data


@pytest.mark.parametrize(
    ("key", "value"), [("decoder", '"softmax"'), ("bidirectional", "false"), ("word_dim", "8")]
)
def test_model_keys_are_unknown_in_the_task_table(key, value):
    files = ['task.train="a.txt"', 'task.test="a.txt"']
    with pytest.raises(ConfigError, match=rf"^task\.{key}: unknown key \(known: "):
        run.load_run_config("tagging", overrides=[*files, f"task.{key}={value}"])
    assert key in run.load_run_config("tagging", overrides=[*files, f"model.{key}={value}"]).model


def test_model_keys_that_cannot_apply_are_refused():
    files = ['task.train="a.txt"', 'task.test="a.txt"']
    with pytest.raises(ConfigError, match=r"model\.char_dim: unused without character input"):
        run.load_run_config("tagging", overrides=[*files, "task.chars=false", "model.char_dim=4"])
    with pytest.raises(ConfigError, match=r"model\.num_tags: set by the task from its data"):
        run.load_run_config("tagging", overrides=[*files, "model.num_tags=4"])


def test_best_checkpoint_by_validation_span_f1(tmp_path):
    """score_val adds the span scores of the validation split to every epoch's metrics; with
    monitor val_f1_overall (max) the best checkpoint is the epoch of the highest val F1."""
    f = _write_conll(tmp_path / "train.txt", _sentences())
    overrides = [
        f'task.train="{f}"',
        f'task.val="{f}"',
        f'task.test="{f}"',
        "task.chars=false",
        "model.word_dim=8",
        "model.hidden_size=8",
        "model.dropout=0.3",
        "trainer.epochs=12",
        "trainer.batch_size=4",
        "trainer.lr=0.05",
        'trainer.monitor="val_f1_overall"',
        'trainer.mode="max"',
        'trainer.log.progress="none"',
        "trainer.log.tensorboard=false",
    ]
    cfg = run.load_run_config("tagging", overrides=overrides)
    summary = run.train(cfg, tmp_path / "run", score_val=True)
    history = summary["history"]
    assert len(history) == 12
    assert all({"val_f1_overall", "val_f1_PER", "val_token_accuracy"} <= set(h) for h in history)
    f1s = [h["val_f1_overall"] for h in history]
    assert f1s[0] < f1s[-1]  # it learns
    best = max(range(12), key=lambda e: (f1s[e], -e))  # the first epoch of the highest F1
    index = json.loads((tmp_path / "run" / "checkpoints" / "index.json").read_text())
    assert index["best_value"] == pytest.approx(f1s[best])
    assert index["best"] == f"step-{2 * (best + 1):08d}"  # 2 steps an epoch (11 rows, 4 a batch)
    # the best checkpoint's test scores (test file = validation file here) equal that epoch's
    scores = run.evaluate(tmp_path / "run")
    assert scores["f1_overall"] == pytest.approx(f1s[best])
    assert scores["token_accuracy"] == pytest.approx(history[best]["val_token_accuracy"])
    with pytest.raises(ValueError, match="task 'adding' has no scores beyond its loss"):
        run.train(run.load_run_config("adding"), tmp_path / "adding", score_val=True)


def test_pretrained_vectors_lowercase_and_extra_words(tmp_path):
    """task.vectors fills the word embedding; task.lower maps words to lowercase ids (the
    characters keep their case); task.vectors_vocab gives the file's first N words ids."""
    import torch

    train = _write_conll(tmp_path / "train.txt", _sentences())
    vectors = tmp_path / "v.txt"
    vectors.write_text(
        "3 3\nmary 1 2 3\nberlin 4 5 6\nzebra 7 8 9\n", encoding="utf-8"
    )  # word2vec header, then the most frequent first
    cfg = TaggingConfig(
        train=train, val=train, test=train, vectors=str(vectors), vectors_vocab=2, lower=True
    )
    data = prepare(cfg)
    words = data.codec.words
    assert "mary" in words.tokens and "Mary" not in words.tokens
    assert "berlin" in words.tokens and "zebra" not in words.tokens  # the first 2 only
    row = data.train.inputs[1]  # "Mary left": the word id lowercased, the characters not
    assert words.tokens[row[0, 0]] == "mary"
    assert data.codec.chars.tokens[row[0, 1]] == "M"
    model_cfg = {"word_dim": 3, "hidden_size": 4}
    model = run.build_model(run.RunConfig(task="tagging", task_config=cfg, model=model_cfg), data)
    emb = model.words.weight
    assert emb[words["mary"]].tolist() == [1.0, 2.0, 3.0]
    assert emb[words["berlin"]].tolist() == [4.0, 5.0, 6.0]
    assert torch.equal(emb[0], torch.zeros(3))  # padding
    restored = TaggingCodec.from_json(json.loads(json.dumps(data.codec.to_json())))
    assert restored.lower and restored.batch([["MARY"]]).inputs[0, 0, 0] == words["mary"]
    with pytest.raises(ConfigError, match=r"model.word_dim=5 differs .* \(3\)"):
        run.build_model(run.RunConfig(task="tagging", task_config=cfg, model={"word_dim": 5}), data)
    with pytest.raises(ValueError, match="vectors_vocab: words of a vectors file need"):
        TaggingConfig(train=train, test=train, vectors_vocab=3)


def test_settings_without_the_features_they_size_are_refused():
    with pytest.raises(ValueError, match="max_word_len=3 sizes the character features"):
        TaggingConfig(train="a", test="b", tokens="chars", max_word_len=3)
    with pytest.raises(ValueError, match="bigram_min_freq=5 applies to pair features"):
        TaggingConfig(train="a", test="b", bigram_min_freq=5)
    TaggingConfig(train="a", test="b", bigrams=True, bigram_min_freq=5)  # read: fine
