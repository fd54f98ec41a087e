"""Every task through the CLI and again from Python: train, resume, evaluate, predict or
generate, diagnose; one parametrised test, on data the test writes (or generates)."""

from __future__ import annotations

import csv
import json
import random
import shutil

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import _training_helpers  # noqa: F401  (one torch thread)
import rnnkit
from rnnkit.cli import app
from rnnkit.tasks import get_task

WORDS = ["the", "a", "film", "plot", "it", "was", "very", "story"]


def _classify(tmp_path) -> list[str]:
    rng = random.Random(0)
    with (tmp_path / "reviews.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for _ in range(60):
            label = rng.choice(["pos", "neg"])
            words = [*rng.choices(WORDS, k=4), "great" if label == "pos" else "awful"]
            w.writerow([" ".join(words), label])
    return [f'task.data="{tmp_path / "reviews.csv"}"', "model.embedding_dim=8", "model.dropout=0.2"]


def _lm(tmp_path) -> list[str]:
    rng = random.Random(0)
    for name, n in (("train.txt", 1500), ("valid.txt", 300)):
        text = " ".join(rng.choice(WORDS) for _ in range(n // 5)) + "\n"
        (tmp_path / name).write_text(text)
    return [
        f'task.train_files=["{tmp_path / "train.txt"}"]',
        f'task.val_files=["{tmp_path / "valid.txt"}"]',
        "task.streams=4",
        "task.eval_streams=2",
        "task.window=24",
        "model.embedding_size=8",
        "model.num_layers=1",
        "trainer.tbptt=8",
    ]


def _tagging(tmp_path) -> list[str]:
    names = {"Mary": "PER", "John": "PER", "Paris": "LOC", "Rome": "LOC"}
    rng = random.Random(0)
    blocks = []
    for _ in range(24):
        name = rng.choice(list(names))
        rows = [("we", "O"), ("saw", "O"), (name, f"B-{names[name]}"), ("today", "O")]
        blocks.append("\n".join(f"{w} X {t}" for w, t in rows))
    (tmp_path / "ner.txt").write_text("\n\n".join(blocks) + "\n")
    f = tmp_path / "ner.txt"
    return [f'task.train="{f}"', f'task.test="{f}"', "task.max_word_len=4", "model.word_dim=8"]


def _translate(tmp_path) -> list[str]:
    rng = random.Random(0)
    with (tmp_path / "pairs.tsv").open("w") as f:
        f.write("source\ttarget\n")
        for _ in range(40):
            words = rng.choices(WORDS, k=rng.randint(2, 4))
            f.write(f"{' '.join(words)}\t{' '.join(reversed(words))}\n")
    f = tmp_path / "pairs.tsv"
    return [
        'task.dataset=""',
        f'task.train="{f}"',
        f'task.valid="{f}"',
        "model.embedding_size=8",
        'model.attention="bahdanau"',
    ]


def _caption(tmp_path) -> list[str]:
    rng = random.Random(0)
    lines = []
    for _ in range(24):
        digits = rng.choices(range(3), k=rng.randint(1, 3))
        pixels = [[(d + 1) * 5 * (r == d) for d in digits for _ in range(2)] for r in range(4)]
        lines.append(json.dumps({"pixels": pixels, "caption": " ".join(WORDS[d] for d in digits)}))
    (tmp_path / "strips.jsonl").write_text("\n".join(lines) + "\n")
    f = tmp_path / "strips.jsonl"
    return ['task.dataset=""', f'task.train="{f}"', f'task.valid="{f}"', "model.conv_channels=4"]


def _series(tmp_path) -> list[str]:
    import numpy as np

    from rnnkit.data.readers import write_ts

    rng = np.random.default_rng(0)
    labels = [str(k % 2) for k in range(40)]
    series = [
        np.sin(np.arange(rng.integers(5, 9)) * (1 + int(y)))[:, None] * [1.0, 2.0]
        + 0.1 * rng.standard_normal((1, 2))
        for y in labels
    ]
    write_ts(tmp_path / "series.ts", series, labels, problem_name="Toy", class_labels=["0", "1"])
    return [f'task.data="{tmp_path / "series.ts"}"', 'model.pooling="mean"']


def _similarity(tmp_path) -> list[str]:
    rng = random.Random(0)
    with (tmp_path / "pairs.tsv").open("w") as f:
        f.write("text_a\ttext_b\tlabel\n")
        for _ in range(40):
            words, other = rng.sample(WORDS, 3), rng.sample(WORDS, 3)
            f.write(f"{' '.join(words)}\t{' '.join(reversed(words))}\t1\n")
            f.write(f"{' '.join(words)}\t{' '.join(other)}\t0\n")
    return [f'task.data="{tmp_path / "pairs.tsv"}"', "model.embedding_dim=8"]


def _recommend(tmp_path) -> list[str]:
    rng = random.Random(0)
    with (tmp_path / "items.tsv").open("w") as f:
        f.write("item\ttitle\tyear\n")
        f.writelines(f"{i}\t{w} movie\t{1990 + i}\n" for i, w in enumerate(WORDS, 1))
    with (tmp_path / "log.tsv").open("w") as f:
        f.write("user\titem\ttimestamp\n")
        for u in range(24):  # each user walks the catalogue in order from a random start
            start = rng.randrange(len(WORDS))
            for t in range(rng.randint(4, 7)):
                f.write(f"u{u}\t{(start + t) % len(WORDS) + 1}\t{100 * u + t}\n")
    log, items = tmp_path / "log.tsv", tmp_path / "items.tsv"
    return ['task.dataset=""', f'task.interactions="{log}"', f'task.items="{items}"']


TASKS = {
    "adding": lambda p: ["task.seq_len=6", "task.n_train=48", "task.n_val=16", "task.n_test=16"],
    "copy": lambda p: [
        "task.delay=3",
        "task.n_symbols=3",
        "task.copy_len=2",
        "task.n_train=48",
        "task.n_val=16",
        "task.n_test=16",
    ],
    "classify": _classify,
    "lm": _lm,
    "tagging": _tagging,
    "translate": _translate,
    "caption": _caption,
    "classify-series": _series,
    "similarity": _similarity,
    "recommend": _recommend,
}
PREDICTS = {
    "classify": "a very great film",
    "tagging": "we saw Mary today",
    "translate": "the film was",
    "similarity": "the film was ||| was the film",
    "recommend": "1,2,3",
}
FIXED_KEY = {
    "translate": "model.target_vocab_size=3",
    "caption": "model.image_height=3",
    "recommend": "model.num_items=3",
}


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def _final_weights(run):
    index = json.loads((run / "checkpoints" / "index.json").read_text())
    return load_file(run / "checkpoints" / index["latest"] / "model.safetensors")


@pytest.mark.parametrize("task", sorted(TASKS))
def test_task_through_cli_and_python(task, tmp_path):
    run = tmp_path / "run"
    settings = [
        *TASKS[task](tmp_path),
        "model.hidden_size=8",
        "trainer.epochs=2",
        "trainer.batch_size=4" if task == "lm" else "trainer.batch_size=8",
        "trainer.checkpoint.every_steps=1",
        "trainer.checkpoint.keep_last=100",
        "trainer.log.tensorboard=false",
    ]
    code, out = _cli("train", task, *_sets(settings), "--out", str(run))
    assert code == 0, out
    assert "done: 2 epochs" in out

    # resume: rewind the run to its first checkpoint, as a kill after step 1 would leave it
    final = _final_weights(run)
    ckpts = run / "checkpoints"
    index = json.loads((ckpts / "index.json").read_text())
    first, later = index["kept"][0], index["kept"][1:]
    for name in later:
        shutil.rmtree(ckpts / name)
    index.update(kept=[first], latest=first, best=first, best_value=None)
    (ckpts / "index.json").write_text(json.dumps(index))
    code, out = _cli("resume", str(run))
    assert code == 0, out
    again = _final_weights(run)
    assert again.keys() == final.keys()
    for k in final:
        torch.testing.assert_close(again[k], final[k], rtol=0, atol=0, msg=k)

    code, out = _cli("evaluate", str(run))
    assert code == 0, out
    metrics = json.loads(out)
    assert metrics["loss"] == metrics["loss"] and metrics["loss"] >= 0  # finite, not NaN

    model = rnnkit.load(run)
    assert model.codec is not None and not model.training
    if task == "translate":
        code, out = _cli("translate", str(run), PREDICTS[task], "--beam", "2", "--n-best", "2")
        assert code == 0, out
        best = model.translate([PREDICTS[task]], beam=2, n_best=2)[0]
        assert out.splitlines()[0] == f"1\t{best.score:.4f}\t{best.text}"
    if task == "caption":
        code, out = _cli("predict", str(run), "x")  # an image is no line of text
        assert code == 2 and "Traceback" not in out, out
    elif task == "classify-series":  # cases of a .ts file, not lines of text
        code, out = _cli("predict", str(run), "--file", str(tmp_path / "series.ts"))
        assert code == 0, out
        from rnnkit.data.readers import read_ts

        cases = read_ts(tmp_path / "series.ts").series
        assert out.splitlines() == [str(p) for p in model.predict(cases)]
    elif task in PREDICTS:
        code, out = _cli("predict", str(run), PREDICTS[task])
        assert code == 0, out
        assert out.strip() == str(model.predict(PREDICTS[task])).strip()
    else:
        code, out = _cli("predict", str(run), "some text")
        assert code == 2 and f"{run} is a" in out and "no predict(inputs)" in out
    if task == "lm":
        code, out = _cli("generate", str(run), "--prime", "the", "--length", "5", "--seed", "1")
        assert code == 0, out
        assert out.rstrip("\n") == "the" + model.generate("the", 5, seed=1)
    elif task in ("translate", "caption"):
        code, out = _cli("generate", str(run), "--prime", "x")
        assert code == 2 and "continues no text by itself" in out
    else:
        code, out = _cli("generate", str(run), "--prime", "x")
        assert code == 2 and "no next-token step to generate with" in out

    code, out = _cli("diagnose", str(run))
    assert code == 0, out
    plots = ("grad_norms.png", "gates.png", "hidden.png", "curves.png")
    if task in ("classify", "classify-series", "similarity"):
        plots = (*plots, "confusion.png")
    if task in ("translate", "caption"):
        plots = ("attention_0.png", "attention_2.png", "curves.png")
    for name in plots:
        assert (run / "diagnostics" / name).stat().st_size > 1000


@pytest.mark.parametrize("task", sorted(TASKS))
def test_unknown_and_fixed_keys_are_refused(task, tmp_path):
    base = _sets(TASKS[task](tmp_path))
    for item, named in (
        ("model.bogus=1", "model.bogus: unknown key"),
        ("task.bogus=1", "task.bogus: unknown key"),
        (
            FIXED_KEY.get(task, "model.vocab_size=3"),
            FIXED_KEY.get(task, "model.vocab_size=3").split("=")[0] + ": set by the task",
        ),
    ):
        code, out = _cli("train", task, *base, "--set", item, "--out", str(tmp_path / "r"))
        assert code == 2 and named in out, (item, out)
        assert "Traceback" not in out


@pytest.mark.parametrize("task", ["translate", "caption", "pianoroll", "melody", "recognize"])
def test_files_beside_a_dataset_are_refused_not_ignored(task):
    """A task with a default dataset and file settings: files given while a dataset is set
    would be ignored (the dataset has its own splits), so the config refuses them."""
    config_cls = get_task(task).config_cls
    dataset = config_cls().dataset
    assert dataset  # the default: files need dataset = ""
    with pytest.raises(ValueError, match=r"task\.train, task\.test name files .*own splits"):
        config_cls(train="a.jsonl", test="b.jsonl")
    with pytest.raises(ValueError, match=r"task\.valid name files"):
        config_cls(valid="b.jsonl")
    with pytest.raises(ValueError, match="dataset='' needs train and valid"):
        config_cls(dataset="", train="a.jsonl")
    assert config_cls(dataset="", train="a.jsonl", valid="b.jsonl").dataset == ""


def test_lm_split_files_without_training_files_are_refused(tmp_path):
    config_cls = get_task("lm").config_cls
    with pytest.raises(ValueError, match="val_files and test_files go with train_files"):
        config_cls(test_files=("t.txt",))
    code, out = _cli(
        "train", "lm", "--set", 'task.val_files=["v.txt"]', "--out", str(tmp_path / "r")
    )
    assert code == 2 and "val_files and test_files go with train_files" in out, out
    assert "Traceback" not in out


def test_python_example_trains_a_classifier_in_ten_lines(tmp_path):
    """The README's Python example, verbatim in spirit: texts and labels in, a run out."""
    rng = random.Random(1)
    labels = [rng.choice(["pos", "neg"]) for _ in range(80)]
    texts = [
        " ".join(rng.choices(WORDS, k=3)) + (" great" if y == "pos" else " awful") for y in labels
    ]
    model = rnnkit.train(
        "classify",
        tmp_path / "mine",
        records=zip(texts, labels, strict=True),
        overrides=[
            "trainer.epochs=6",
            "model.hidden_size=8",
            "model.embedding_dim=8",
            "trainer.lr=0.02",
            "trainer.log.tensorboard=false",
        ],
    )
    assert [p.label for p in model.predict(["it was great", "it was awful"])] == ["pos", "neg"]
    code, out = _cli("evaluate", str(tmp_path / "mine"))
    assert code == 0 and json.loads(out)["accuracy"] > 0.8


def test_run_of_a_python_trainer_is_read_by_the_commands(tmp_path):
    """Your own model, codec and batches through `Trainer`: `rnnkit predict` and
    `rnnkit.load` read the run directory it writes."""
    from rnnkit.data import Vocab, WordTokenizer
    from rnnkit.data.codec import TextCodec
    from rnnkit.models import ClassifierConfig, SequenceClassifier
    from rnnkit.tasks.classify import encode_labelled
    from rnnkit.training import LogConfig, Trainer, TrainerConfig

    rng = random.Random(2)
    labels = [rng.choice(["pos", "neg"]) for _ in range(64)]
    texts = [f"it was {'great' if y == 'pos' else 'awful'}" for y in labels]
    tok = WordTokenizer()
    codec = TextCodec(tok, Vocab.build(tok.tokenize(t) for t in texts), ("neg", "pos"))
    batch = encode_labelled(codec, texts, labels, "texts")
    model = SequenceClassifier(ClassifierConfig(vocab_size=len(codec.vocab), hidden_size=8))
    log = LogConfig(progress="none", tensorboard=False)
    config = TrainerConfig(epochs=5, batch_size=8, lr=0.03, log=log)
    Trainer(model, config, batch, batch, run_dir=tmp_path / "own", codec=codec).fit()
    code, out = _cli("predict", str(tmp_path / "own"), "it was great")
    assert code == 0 and out.startswith("pos\t"), out
    assert rnnkit.load(tmp_path / "own").predict("it was awful").label == "neg"
    code, out = _cli("evaluate", str(tmp_path / "own"))
    assert code == 2 and "trained from Python without a task" in out


@pytest.mark.parametrize("task", sorted(TASKS))
def test_task_from_python(task, tmp_path):
    """The same from Python: rnnkit.train, then evaluate, resume, diagnose and rnnkit.load."""
    from rnnkit.tasks import run as runs

    out = tmp_path / "py"
    settings = [
        *TASKS[task](tmp_path),
        "model.hidden_size=8",
        "trainer.epochs=1",
        "trainer.batch_size=4" if task == "lm" else "trainer.batch_size=8",
        "trainer.log.tensorboard=false",
    ]
    model = rnnkit.train(task, out, overrides=settings)
    assert model.codec is not None
    metrics = runs.evaluate(out)
    assert metrics["loss"] == metrics["loss"]
    assert runs.resume(out)["stop_reason"] == "epochs"  # a finished run stays finished
    assert all(p.exists() for p in runs.diagnose(out))
    loaded = rnnkit.load(out)
    if task in PREDICTS:
        assert str(loaded.predict(PREDICTS[task])) == str(model.predict(PREDICTS[task]))
    if task == "lm":
        assert loaded.generate("the", 4, seed=3) == model.generate("the", 4, seed=3)
