"""Characters as tokens: a tiny Chinese segmenter and NER tagger trained through the CLI,
evaluated with word F1 and OOV recall, and asked to tag unspaced text."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

import _training_helpers  # noqa: F401  (one torch thread)
import rnnkit
from rnnkit.cli import app
from rnnkit.config import ConfigError
from rnnkit.data.codec import TaggingCodec, codec_from_json, token_bigrams
from rnnkit.data.vocab import Vocab
from rnnkit.models import SequenceTagger
from rnnkit.tagging.schemes import words_to_bmes
from rnnkit.tasks import get_task, run
from rnnkit.tasks.tagging import TaggingConfig

WORDS = ["我", "爱", "北京", "天安门", "他", "来", "了", "上海", "人民", "广场"]


def _write(path, sentences) -> str:
    blocks = ["\n".join(f"{c}\t{t}" for c, t in s) for s in sentences]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return str(path)


def _segmented(n: int, seed: int) -> list[list[tuple[str, str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randint(2, 5))
        out.append(list(zip("".join(words), words_to_bmes(words), strict=True)))
    return out


def _runner(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_segmenter_on_unspaced_text_through_the_cli(tmp_path):
    train = _write(tmp_path / "train.conll", _segmented(80, 0))
    # the test split holds a word made of known characters that training never saw: 京人
    test = _write(tmp_path / "test.conll", [list(zip("我爱京人", "SSBE", strict=True))])
    cfg = tmp_path / "seg.toml"
    cfg.write_text(
        f'[task]\ntrain = "{train}"\nval = "{train}"\ntest = "{test}"\n'
        'tokens = "chars"\nbigrams = true\nbigram_min_freq = 1\n'
        "[model]\nword_dim = 12\nbigram_dim = 8\nhidden_size = 16\ndropout = 0.0\n"
        "[trainer]\nepochs = 12\nbatch_size = 8\nlr = 0.03\n"
        '[trainer.log]\nprogress = "none"\ntensorboard = false\n'
    )
    out = tmp_path / "run"
    _runner("train", "tagging", "--config", str(cfg), "--out", str(out))

    metrics = json.loads(_runner("evaluate", str(out), "--split", "val"))
    assert metrics["word_f1"] == 1.0 and metrics["oov_rate"] == 0.0
    assert {"word_precision", "word_recall", "oov_recall", "iv_recall"} <= set(metrics)
    on_test = json.loads(_runner("evaluate", str(out)))
    assert on_test["oov_rate"] == pytest.approx(1 / 3)  # 京人 is not a training word
    assert on_test["iv_recall"] == 1.0
    # baselines on the test split: maximum matching finds no 京人, nor does one word per char
    assert on_test["baseline_fmm_word_f1"] == pytest.approx(2 * 2 / (4 + 3))
    assert on_test["baseline_fmm_oov_recall"] == 0.0 and on_test["baseline_fmm_iv_recall"] == 1.0
    assert on_test["baseline_singles_word_precision"] == 0.5

    # unspaced input, spaces dropped: words separated by spaces
    assert _runner("predict", str(out), "我爱北京天安门").strip() == "我 爱 北京 天安门"
    lines = _runner("predict", str(out), "他来了", "上海 人民广场").splitlines()
    assert lines == ["他 来 了", "上海 人民 广场"]

    model = rnnkit.load(out)
    assert isinstance(model, SequenceTagger) and model.config.scheme == "BMES"
    assert model.config.bigram_vocab_size == len(model.codec.bigrams) > 4
    tagged = model.predict("我爱北京")
    assert tagged.words == ["我", "爱", "北京"] and tagged.tags == ["S", "S", "B", "E"]
    assert tagged.tokens == ["我", "爱", "北", "京"] and str(tagged) == "我 爱 北京"
    assert model.codec.lexicon == tuple(sorted(WORDS))


def test_character_ner_prints_the_entities(tmp_path):
    rng = random.Random(1)
    names = {"江泽民": "PER", "北京": "LOC", "新华社": "ORG"}
    sentences = []
    for _ in range(40):
        name = rng.choice(list(names))
        kind = names[name]
        tags = [f"B-{kind}", *[f"I-{kind}"] * (len(name) - 1)]
        rows = [*zip(name, tags, strict=True), ("说", "O"), ("好", "O")]
        sentences.append([("我", "O"), ("看", "O"), *rows] if rng.random() < 0.5 else rows)
    f = _write(tmp_path / "ner.conll", sentences)
    sets = [f'task.train="{f}"', f'task.test="{f}"', 'task.tokens="chars"', "model.word_dim=12"]
    sets += ["model.hidden_size=16", "model.dropout=0.0", "trainer.epochs=15", "trainer.lr=0.03"]
    sets += ["trainer.batch_size=8", 'trainer.log.progress="none"', "trainer.log.tensorboard=false"]
    out = tmp_path / "ner"
    _runner("train", "tagging", *[x for s in sets for x in ("--set", s)], "--out", str(out))
    metrics = json.loads(_runner("evaluate", str(out)))
    assert metrics["f1_overall"] == 1.0
    assert metrics["baseline_majority_token_accuracy"] > 0.9  # each character's usual tag
    assert "baseline_majority_f1_overall" in metrics
    lines = _runner("predict", str(out), "我看江泽民说好").splitlines()
    assert lines == ["我看[江泽民]PER说好", "", "PER\t2-5\t江泽民"]


def test_settings_that_cannot_apply_are_refused(tmp_path):
    files = ['task.train="a.conll"', 'task.test="a.conll"', 'task.tokens="chars"']
    with pytest.raises(ConfigError, match=r"^task\.chars: character features of one-char"):
        run.load_run_config("tagging", overrides=[*files, "task.chars=true"])
    with pytest.raises(ConfigError, match=r"^model\.char_dim: unused .*task\.tokens = 'chars'"):
        run.load_run_config("tagging", overrides=[*files, "model.char_dim=8"])
    with pytest.raises(ConfigError, match=r"^model\.bigram_dim: unused .*task\.bigrams = false"):
        run.load_run_config("tagging", overrides=[*files, "model.bigram_dim=8"])
    cfg = run.load_run_config(
        "tagging", overrides=[*files, "task.bigrams=true", "model.bigram_dim=8"]
    )
    assert cfg.model["bigram_dim"] == 8 and not cfg.task_config.char_features
    with pytest.raises(ConfigError, match=r"^model\.bigram_vocab_size: set by the task"):
        run.load_run_config("tagging", overrides=[*files, "model.bigram_vocab_size=8"])
    f = _write(tmp_path / "words.conll", [[("北京", "B-LOC"), ("好", "O")]])
    with pytest.raises(ValueError, match=r"words\.conll, line 1: token '北京' is not one char"):
        get_task("tagging").prepare(TaggingConfig(train=f, test=f, tokens="chars"), 0, None)


def test_codec_layout_and_old_codecs_still_load():
    words = Vocab(["<pad>", "<unk>", "<bos>", "<eos>", "我", "爱"])
    pairs = Vocab.build([token_bigrams(["我", "爱"])])
    codec = TaggingCodec(words, ("B", "E", "M", "S"), bigrams=pairs, joiner="", lexicon=("我",))
    batch = codec.batch([["我", "爱", "他"]], [["S", "S", "S"]])
    assert batch.inputs.shape == (1, 3, 3)  # word, left pair, right pair
    ids = batch.inputs[0].tolist()
    assert [words.tokens[i] for i, _, _ in ids] == ["我", "爱", "<unk>"]
    assert [pairs.tokens[i] for _, i, _ in ids] == ["<s> 我", "我 爱", "<unk>"]
    assert [pairs.tokens[i] for _, _, i in ids] == ["我 爱", "<unk>", "<unk>"]
    assert codec_from_json(codec.to_json()).to_json() == codec.to_json()
    old = codec.to_json()
    for key in ("bigrams", "joiner", "lexicon"):  # a codec saved before these fields
        del old[key]
    loaded = codec_from_json(old)
    assert loaded.bigrams is None and loaded.joiner == " " and loaded.lexicon == ()
    assert loaded.batch([["我"]]).inputs.shape == (1, 1)


def test_how_predictions_print():
    from rnnkit.models.tagger import Tagged, _tagged

    assert str(_tagged(list("我爱北京"), ["S", "S", "B", "E"], "BMES", "")) == "我 爱 北京"
    ner = _tagged(list("江泽民说"), ["B-PER", "I-PER", "I-PER", "O"], "BIO", "")
    assert str(ner) == "[江泽民]PER说\n\nPER\t0-3\t江泽民"
    assert str(_tagged(list("我说"), ["O", "O"], "BIO", "")) == "我说"  # no entity found
    pos = _tagged(list("我说"), ["r", "v"], "", "")  # tags of no spans: a line per token
    assert str(pos) == "我  r\n说  v"
    words = Tagged(["John", "left"], ["B-PER", "O"], [("PER", 0, 1)])  # word tokens as before
    assert str(words) == "John  B-PER\nleft  O\n\nPER\t0-1\tJohn"
