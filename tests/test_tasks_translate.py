"""The translate and caption tasks: codec, metrics, evaluate --set, rnnkit translate."""

from __future__ import annotations

import json
import random

import pytest
import torch
from typer.testing import CliRunner

import _training_helpers  # noqa: F401  (one torch thread)
import rnnkit
from rnnkit.cli import app
from rnnkit.data.codec import PairCodec, codec_from_json
from rnnkit.data.tokenizers import CharTokenizer, SentencePieceTokenizer, WordTokenizer
from rnnkit.data.vocab import Vocab
from rnnkit.tasks._pairs import PairScoring, edit_distance, score_pairs, text_scores
from rnnkit.tasks.base import TaskData
from rnnkit.tasks.caption import CaptionConfig
from rnnkit.tasks.translate import TranslateConfig

WORDS = ["red", "green", "blue", "cat", "dog", "bird"]


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny reversal 'translation' run, trained once for the module."""
    tmp = tmp_path_factory.mktemp("translate")
    rng = random.Random(0)
    with (tmp / "pairs.tsv").open("w") as f:
        f.write("source\ttarget\n")
        for _ in range(80):
            words = rng.choices(WORDS, k=rng.randint(2, 4))
            f.write(f"{' '.join(words)}\t{' '.join(reversed(words))}\n")
    out = tmp / "run"
    rnnkit.train(
        "translate",
        out,
        overrides=[
            'task.dataset=""',
            f'task.train="{tmp / "pairs.tsv"}"',
            f'task.valid="{tmp / "pairs.tsv"}"',
            "model.hidden_size=16",
            "model.embedding_size=8",
            "trainer.epochs=3",
            "trainer.batch_size=8",
            "trainer.lr=0.02",
            "trainer.log.tensorboard=false",
        ],
    )
    return out


def test_edit_distance_equals_brute_force_definition():
    rng = random.Random(3)

    def brute(a, b):  # the recursive definition
        if not a or not b:
            return len(a) + len(b)
        return min(brute(a[1:], b) + 1, brute(a, b[1:]) + 1, brute(a[1:], b[1:]) + (a[0] != b[0]))

    for _ in range(200):
        a = rng.choices("xyz", k=rng.randint(0, 5))
        b = rng.choices("xyz", k=rng.randint(0, 5))
        assert edit_distance(a, b) == brute(a, b)


def test_text_scores():
    refs = ["HH AH0 L OW1", "W ER1 L D"]
    hyps = ["HH AH0 L OW1", "W ER1 D"]
    tok = [r.split() for r in refs]
    got = text_scores(hyps, refs, [h.split() for h in hyps], tok, ("wer", "per", "exact"))
    assert got == {"wer": 0.5, "per": 1 / 8, "exact": 0.5}
    same = text_scores(refs, refs, tok, tok, ("bleu", "chrf"))
    assert same["bleu"] == pytest.approx(100) and same["chrf"] == pytest.approx(100)


def test_pair_codec_round_trips_shared_and_separate():
    texts = ["the red cat", "a blue dog", "the green bird"] * 30
    sp = SentencePieceTokenizer.train(texts, vocab_size=30, seed=0)
    vocab = Vocab.build([sp.tokenize(t) for t in texts])
    shared = PairCodec(sp, vocab, sp, vocab)
    again = codec_from_json(json.loads(json.dumps(shared.to_json())))
    assert again.shared and again.to_json() == shared.to_json()
    assert again.encode_target("the red cat")[-1] == vocab.eos_id
    assert again.decode_target(again.encode_target("the red cat")) == "the red cat"
    chars = PairCodec(
        WordTokenizer(), Vocab.build([["HH", "AY1"]]), CharTokenizer(), Vocab.build([list("HI")])
    )
    batch = chars.batch(["HI", "H"], ["HH AY1", "HH"])
    assert batch.source.tolist() == [[4, 5], [4, 0]] and batch.target_lengths.tolist() == [3, 2]
    assert not codec_from_json(chars.to_json()).shared


def test_image_codec_pads_in_width_and_refuses_text():
    codec = PairCodec(WordTokenizer(), Vocab.build([["one"]]), source_kind="image", image_scale=0.5)
    images, widths = codec.source_batch([[[2, 2, 2]], [[4]]])
    assert images.shape == (2, 1, 1, 3) and widths.tolist() == [3, 1]
    assert images[1, 0, 0].tolist() == [2.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="image: expected an array of numbers, got text"):
        codec.source_batch(["a photo"])


def test_config_errors_name_the_setting():
    with pytest.raises(ValueError, match="dataset must be one of"):
        TranslateConfig(dataset="europarl")
    with pytest.raises(ValueError, match=r"task\.metrics: unknown metrics"):
        TranslateConfig(metrics=("rouge",))
    with pytest.raises(ValueError, match="needs train and valid files"):
        TranslateConfig(dataset="")


def test_pair_task_configs_give_the_scorer_what_it_reads():
    """Both encoder-decoder tasks' configs satisfy the scorer's protocol; a dataset's
    default metrics apply where task.metrics is empty; anything else is refused by name."""
    g2p, bible = TranslateConfig(dataset="cmudict"), TranslateConfig(dataset="bible-en-es")
    caption = CaptionConfig(metrics=("exact", "per"))
    assert all(isinstance(c, PairScoring) for c in (g2p, bible, caption))
    assert g2p.resolved_metrics == ("wer", "per")
    assert bible.resolved_metrics == ("bleu", "chrf")
    assert TranslateConfig(dataset="cmudict", metrics=("per",)).resolved_metrics == ("per",)
    assert caption.resolved_metrics == ("exact", "per")
    with pytest.raises(TypeError, match=r"data\.config must have beam.*got dict"):
        score_pairs(None, None, TaskData(None, None, None, None, config={"beam": 1}))


def test_evaluate_reports_scores_baseline_and_takes_task_settings(run):
    code, out = _cli("evaluate", str(run))
    assert code == 0, out
    greedy = json.loads(out)
    assert {"bleu", "chrf", "baseline_copy_bleu", "baseline_copy_chrf", "loss", "accuracy"} <= set(
        greedy
    )
    code, out = _cli("evaluate", str(run), "--set", "task.beam=3", "--set", 'task.metrics=["per"]')
    assert code == 0, out
    beam = json.loads(out)
    assert "per" in beam and "bleu" not in beam and beam["loss"] == greedy["loss"]
    code, out = _cli("evaluate", str(run), "--set", "model.hidden_size=4")
    assert code == 2 and "evaluate changes [task] settings only" in out
    # a key that made the data and codec would change nothing: refused, not ignored
    code, out = _cli("evaluate", str(run), "--set", "task.lowercase=true")
    assert code == 2 and "task.lowercase is fixed by the trained run" in out, out
    assert "task.metrics, task.beam, task.length_penalty" in out


def test_evaluate_scores_a_file_of_pairs_with_the_run_settings(run):
    """--data FILE decodes and scores the file's pairs with the run's [task] settings (its
    metrics, beam) and the --set ones: here the run's own training file."""
    pairs = str(run.parent / "pairs.tsv")
    code, out = _cli("evaluate", str(run), "--data", pairs)
    assert code == 0, out
    scores = json.loads(out)
    assert scores["n"] == 80 and {"bleu", "chrf", "loss"} <= set(scores)
    code, out = _cli("evaluate", str(run), "--data", pairs, "--set", 'task.metrics=["exact"]')
    assert code == 0, out
    exact = json.loads(out)
    assert "exact" in exact and "bleu" not in exact and 0 <= exact["exact"] <= 1


def test_translate_command_n_best_stdin_and_attention_plots(run, tmp_path):
    model = rnnkit.load(run)
    code, out = _cli("translate", str(run), "red cat", "blue dog bird")
    assert code == 0, out
    assert out.splitlines() == [t.text for t in model.translate(["red cat", "blue dog bird"])]
    result = CliRunner().invoke(
        app, ["translate", str(run), "--beam", "3", "--n-best", "3"], input="red cat\n"
    )
    lines = result.output.splitlines()
    assert result.exit_code == 0 and [ln.split("\t")[0] for ln in lines] == ["1", "2", "3"]
    scores = [float(ln.split("\t")[1]) for ln in lines]
    assert scores == sorted(scores, reverse=True)
    code, out = _cli("translate", str(run), "red cat", "--attention-plot", str(tmp_path / "att"))
    assert code == 0 and (tmp_path / "att" / "0.png").stat().st_size > 1000
    one = model.translate("red cat", attention=True)
    assert one.attention.shape == (len(one.tokens) + 1, 2)
    torch.testing.assert_close(one.attention.sum(1), torch.ones(len(one.tokens) + 1))
    for args, named in (
        (["--beam", "0"], "--beam must be >= 1"),
        (["--beam", "2", "--n-best", "3"], "--n-best must be between 1 and --beam=2"),
    ):
        code, out = _cli("translate", str(run), "red", *args)
        assert code == 2 and named in out


def test_translate_refuses_a_model_that_is_not_an_encoder_decoder(tmp_path):
    rng = random.Random(0)
    (tmp_path / "r.csv").write_text(
        "text,label\n" + "".join(f"{rng.choice(WORDS)} x,{rng.choice('ab')}\n" for _ in range(30))
    )
    rnnkit.train(
        "classify",
        tmp_path / "c",
        overrides=[
            f'task.data="{tmp_path / "r.csv"}"',
            "model.hidden_size=4",
            "model.embedding_dim=4",
            "trainer.epochs=1",
            "trainer.batch_size=8",
            "trainer.log.tensorboard=false",
        ],
    )
    code, out = _cli("translate", str(tmp_path / "c"), "red")
    assert code == 2 and "is a classifier: it has no translate(inputs)" in out


def test_recompose_builds_strips_from_the_given_glyphs_only():
    from rnnkit.tasks.caption import recompose

    one = [[1, 1], [1, 1]]  # 2x2 glyphs
    two = [[2, 2], [2, 2]]
    images = [[a + b for a, b in zip(one, two, strict=True)]]  # "one two", 4 columns
    new, captions = recompose(images, ["one two"], 50, seed=0)
    assert (new, captions) == recompose(images, ["one two"], 50, seed=0)  # seeded
    for image, caption in zip(new, captions, strict=True):
        words = caption.split()
        assert 3 <= len(words) <= 6 and len(image) == 2 and len(image[0]) == 2 * len(words)
        for j, word in enumerate(words):
            assert image[0][2 * j] == {"one": 1, "two": 2}[word]
    with pytest.raises(ValueError, match="not one equal-width glyph per word"):
        recompose([[[1, 2, 3]]], ["one two"], 1, seed=0)


def test_compose_valid_recomposes_validation_strips_from_validation_glyphs(tmp_path):
    from rnnkit.tasks.caption import CaptionConfig, prepare

    def strip(words, level):  # each glyph 2 columns of one grey level per split
        return {"pixels": [[level] * 2 * len(words)] * 2, "caption": " ".join(words)}

    for name, level in (("train", 1), ("valid", 2), ("test", 3)):
        rows = [strip(["one", "two"], level), strip(["two", "one", "one"], level)]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    files = {k: str(tmp_path / f"{k}.jsonl") for k in ("train", "valid", "test")}
    cfg = CaptionConfig(dataset="", scale=1.0, compose_valid=40, **files)
    data = prepare(cfg, 0, None)
    assert data.val.size == 40 and len(data.references["val"]) == 40
    levels = set(data.val.source.unique().tolist())
    assert levels <= {0.0, 2.0}  # validation glyphs (and width padding) only
    assert data.test.size == 2 and data.train.size == 2  # the other splits are untouched
    with pytest.raises(ValueError, match="compose_valid must be >= 0"):
        CaptionConfig(compose_valid=-1)


def test_a_bad_captioned_image_is_refused_naming_file_and_line(tmp_path):
    from rnnkit.data.errors import DataFormatError
    from rnnkit.tasks.caption import read_captions

    f = tmp_path / "strips.jsonl"
    good = json.dumps({"pixels": [[0, 1], [2, 3]], "caption": "one"})
    f.write_text(good + "\n" + json.dumps({"pixels": [[0, 1], [2]], "caption": "two"}) + "\n")
    with pytest.raises(DataFormatError, match=r"strips\.jsonl:2: field .pixels."):
        read_captions(f)
    f.write_text(good + "\n" + json.dumps({"pixels": [[0]], "caption": ""}) + "\n")
    with pytest.raises(DataFormatError, match=r"strips\.jsonl:2: field .caption."):
        read_captions(f)
    f.write_text(good + "\n" + '{"pixels": [[1e39]], "caption": "x"}' + "\n")
    with pytest.raises(DataFormatError, match=r"strips\.jsonl:2: .* within float32's range"):
        read_captions(f)


def test_dataset_and_files_together_name_each_file_key_once():
    from rnnkit.config import ConfigError, from_dict
    from rnnkit.tasks.caption import CaptionConfig

    with pytest.raises(ConfigError, match=r"^task\.train, task\.test name files for dataset"):
        from_dict(CaptionConfig, {"train": "a.jsonl", "test": "b.jsonl"}, "task")


def test_translate_answers_in_input_order_whatever_the_batching(run):
    model = rnnkit.load(run)
    texts = ["red cat dog bird", "blue", "green dog", "red", "cat bird dog red"]
    together = [t.text for t in model.translate(texts, batch_size=2)]
    assert together == [model.translate(t).text for t in texts]


def test_settings_no_side_would_read_are_refused():
    with pytest.raises(ValueError, match="lowercase=true: the sentencepiece tokenizer"):
        TranslateConfig(dataset="", train="a", valid="b", tokenizer="sentencepiece", lowercase=True)
    with pytest.raises(ValueError, match="subword_vocab=50 sizes sentencepiece pieces"):
        TranslateConfig(dataset="", train="a", valid="b", subword_vocab=50)
    TranslateConfig(dataset="", train="a", valid="b", tokenizer="sentencepiece", subword_vocab=50)


def test_lower_cased_captions_are_scored_against_lower_cased_references(tmp_path):
    from rnnkit.tasks.caption import CaptionConfig
    from rnnkit.tasks.caption import prepare as caption_prepare

    rows = [{"pixels": [[k, 1], [2, 3]], "caption": "The Cat" if k else "A Dog"} for k in (0, 1)]
    for name in ("tr.jsonl", "va.jsonl"):
        (tmp_path / name).write_text("\n".join(json.dumps(r) for r in rows * 3) + "\n")
    files = {"train": str(tmp_path / "tr.jsonl"), "valid": str(tmp_path / "va.jsonl")}
    data = caption_prepare(CaptionConfig(dataset="", **files), 0)
    assert set(data.references["test"]) == {"the cat", "a dog"}
    assert data.baseline["frequent_caption_exact"] == pytest.approx(0.5)
    cased = caption_prepare(CaptionConfig(dataset="", lowercase=False, **files), 0)
    assert set(cased.references["test"]) == {"The Cat", "A Dog"}
