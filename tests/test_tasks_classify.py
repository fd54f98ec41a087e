"""The classify task (alias sentiment) end to end on files the test writes: train, predict,
evaluate, the Python API, errors."""

from __future__ import annotations

import csv
import json
import random

import pytest
import torch
from typer.testing import CliRunner

import _training_helpers  # noqa: F401  (one torch thread)
import rnnkit
from rnnkit.cli import app
from rnnkit.config import ConfigError
from rnnkit.models import Prediction, SequenceClassifier
from rnnkit.tasks import get_task, run
from rnnkit.tasks.classify import ClassifyConfig, read_labelled

FILLER = ["the", "a", "movie", "film", "plot", "actors", "story", "scenes", "it", "was", "very"]


def reviews(n: int, seed: int) -> list[tuple[str, str]]:
    """Filler words with one cue word: 'great'/'superb' -> pos, 'awful'/'boring' -> neg."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        words = rng.choices(FILLER, k=rng.randint(3, 9))
        cue = rng.choice(["great", "superb"] if label == "pos" else ["awful", "boring"])
        words.insert(rng.randint(0, len(words)), cue)
        out.append((" ".join(words).capitalize() + ".", label))
    return out


def write_csv(path, rows, header=("review", "sentiment")) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _sets(*items: str) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def train_run(tmp_path, runner: CliRunner):
    data = tmp_path / "reviews.csv"
    write_csv(data, reviews(800, 0))
    out = tmp_path / "run"
    args = _sets(
        f'task.data="{data}"',
        'task.text_column="review"',
        'task.label_column="sentiment"',
        "model.embedding_dim=8",
        'model.pooling="max"',
        "model.hidden_size=12",
        'model.cell="gru"',
        "trainer.epochs=8",
        "trainer.batch_size=16",
        "trainer.lr=0.02",
        'trainer.monitor="val_accuracy"',
        'trainer.mode="max"',
        'trainer.log.progress="none"',
        "trainer.log.tensorboard=false",
    )
    r = runner.invoke(app, ["train", "sentiment", *args, "--out", str(out)])  # classify's alias
    assert r.exit_code == 0, r.output
    return out


def test_train_predict_evaluate_through_the_cli(tmp_path):
    runner = CliRunner()
    run = train_run(tmp_path, runner)
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "classify"  # the alias resolves to the task's own name
    assert config["model"] == {
        "embedding_dim": 8,
        "pooling": "max",
        "hidden_size": 12,
        "cell": "gru",
    }
    codec = json.loads(next((run / "checkpoints").glob("*/codec.json")).read_text())
    assert codec["kind"] == "text" and codec["labels"] == ["neg", "pos"]
    assert codec["tokenizer"]["type"] == "word"

    texts = ["The plot was superb.", "Boring actors."]
    r = runner.invoke(app, ["predict", str(run), *texts])
    assert r.exit_code == 0, r.output
    lines = [line.split("\t") for line in r.output.strip().splitlines()]
    assert [x[0] for x in lines] == ["pos", "neg"]
    assert all(0.5 < float(x[1]) <= 1.0 for x in lines)
    assert [x[2] for x in lines] == texts

    # the same model from Python: a Prediction per text, whose str() is the CLI's line
    model = rnnkit.load(run)
    assert isinstance(model, SequenceClassifier) and not model.training
    assert model.config.pooling == "max" and model.config.embedding_dim == 8
    predictions = model.predict(texts)
    assert all(isinstance(p, Prediction) for p in predictions)
    assert [p.label for p in predictions] == ["pos", "neg"]
    assert "\n".join(map(str, predictions)) == r.output.strip()
    assert model.predict(texts[0]) == predictions[0]  # one text in, one Prediction out
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1, got 0"):
        model.predict(texts, batch_size=0)
    with pytest.raises(TypeError, match=r"texts\[1\]: expected a string, got int 2"):
        model.predict(["fine", 2])
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        rnnkit.load(run, device="gpu")

    r = runner.invoke(app, ["predict", str(run)], input="a great film\nan awful movie\n")
    assert [x.split("\t")[0] for x in r.output.strip().splitlines()] == ["pos", "neg"]
    lines_file = tmp_path / "lines.txt"
    lines_file.write_text("superb story\n\nboring scenes\n")
    r = runner.invoke(app, ["predict", str(run), "--file", str(lines_file)])
    assert [x.split("\t")[0] for x in r.output.strip().splitlines()] == ["pos", "neg"]

    held_out = tmp_path / "held_out.jsonl"
    rows = reviews(60, 9)
    held_out.write_text("".join(json.dumps({"review": t, "sentiment": y}) + "\n" for t, y in rows))
    r = runner.invoke(app, ["evaluate", str(run), "--data", str(held_out)])
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.output)
    assert metrics["n"] == 60
    assert metrics["accuracy"] >= 0.9

    r = runner.invoke(app, ["evaluate", str(run)])  # the run's own test split
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["accuracy"] >= 0.9

    bad = tmp_path / "bad.csv"
    write_csv(bad, [("a great film", "maybe")])
    r = runner.invoke(app, ["evaluate", str(run), "--data", str(bad)])
    assert r.exit_code == 2
    assert "maybe" in r.output
    write_csv(bad, [("a great film", "pos")], header=("text", "label"))
    r = runner.invoke(app, ["evaluate", str(run), "--data", str(bad)])
    assert r.exit_code == 2
    assert "review" in r.output
    r = runner.invoke(app, ["predict", str(run)], input="\n")
    assert r.exit_code == 2
    assert "no text" in r.output

    # a classifier has no next-token step: `rnnkit generate` says so in one line
    r = runner.invoke(app, ["generate", str(run), "--prime", "a great"])
    assert r.exit_code == 2
    assert r.output == (
        f"error: {run} is a classifier: it has no next-token step to generate with\n"
    )


def test_predict_refuses_a_run_that_has_no_predict(tmp_path):
    runner = CliRunner()
    out = tmp_path / "adding"
    args = _sets(
        "task.seq_len=4",
        "task.n_train=16",
        "task.n_val=16",
        "task.n_test=16",
        "model.hidden_size=4",
        "trainer.epochs=1",
        "trainer.batch_size=16",
        'trainer.log.progress="none"',
    )
    assert runner.invoke(app, ["train", "adding", *args, "--out", str(out)]).exit_code == 0
    r = runner.invoke(app, ["predict", str(out), "hello"])
    assert r.exit_code == 2
    assert (
        r.output == f"error: {out} is a per-step model: it has no predict(inputs) for raw input\n"
    )
    r = runner.invoke(app, ["predict", str(tmp_path / "nowhere"), "hello"])
    assert r.exit_code == 2
    assert "is not a run directory: it does not exist" in r.output
    held_out = tmp_path / "held_out.csv"
    write_csv(held_out, reviews(4, 1))
    r = runner.invoke(app, ["evaluate", str(out), "--data", str(held_out)])
    assert r.exit_code == 2
    assert f"--data: {out} is a 'adding' run, which reads no files" in r.output


def test_task_splits_a_file_and_keeps_labels_sorted(tmp_path):
    data = tmp_path / "r.tsv"
    data.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in reviews(200, 1)))
    task = get_task("sentiment").prepare(ClassifyConfig(data=str(data), max_len=3), 0, None)
    assert task.train.size + task.val.size + task.test.size == 200
    assert task.test.size > 0 and task.val.size > 0
    assert int(task.train.lengths.max()) <= 3
    assert task.codec.labels == ("neg", "pos") and task.codec.max_len == 3
    assert task.fixed == {
        "vocab_size": len(task.codec.vocab),
        "num_classes": 2,
        "padding_idx": task.codec.vocab.pad_id,
        "positions": int(task.train.lengths.max()),  # the longest training sequence
    }
    assert 0 < task.baseline["accuracy"] < 1  # the training split's majority label on test
    # given a codec (a checkpoint's), prepare encodes with it and builds none
    again = get_task("classify").prepare(ClassifyConfig(data=str(data), max_len=3), 0, task.codec)
    assert again.codec is task.codec and again.test.inputs.equal(task.test.inputs)


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"data": "missing.csv"}, FileNotFoundError, "missing.csv"),
        ({"data": "no-such-dataset"}, ValueError, "neither a file nor a dataset"),
        ({"min_freq": 0}, ValueError, "min_freq"),
        ({"data": ""}, ValueError, "data"),
    ],
)
def test_bad_task_config(kw, error, match):
    with pytest.raises(error, match=match):
        get_task("sentiment").prepare(ClassifyConfig(**kw), 0, None)


def test_one_label_only_is_refused(tmp_path):
    data = tmp_path / "one.csv"
    write_csv(data, [(t, "pos") for t, _ in reviews(30, 2)], header=("text", "label"))
    with pytest.raises(ValueError, match="expected >= 2 labels"):
        get_task("sentiment").prepare(ClassifyConfig(data=str(data)), 0, None)
    texts, labels = read_labelled(data, "text", "label")
    assert len(texts) == len(labels) == 30


def test_shipped_config_loads():
    from pathlib import Path

    cfg = run.load_run_config("sentiment", Path(__file__).parents[1] / "configs" / "sentiment.toml")
    assert cfg.task == "classify"
    assert cfg.task_config.data == "rotten-tomatoes"
    assert cfg.model["pooling"] == "max" and cfg.model["bidirectional"] is True
    assert cfg.trainer.monitor == "val_accuracy"


def test_vectors_name_a_file_or_a_vectors_dataset(tmp_path, monkeypatch):
    from rnnkit.data import registry
    from rnnkit.data.representations import vectors_file

    own = tmp_path / "v.txt"
    own.write_text("great 1 2\n", encoding="utf-8")
    assert vectors_file(str(own)) == own
    with pytest.raises(FileNotFoundError, match="no such file, nor a vectors dataset"):
        vectors_file(str(tmp_path / "absent.txt"))
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "cache"))
    fetched = []
    monkeypatch.setattr(registry, "fetch", fetched.append)  # as if already in the cache
    (tmp_path / "cache" / "glove-100d").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"holds no vectors\.txt"):
        vectors_file("glove-100d")
    (tmp_path / "cache" / "glove-100d" / "vectors.txt").write_text("1 2\ngreat 1 2\n")
    assert vectors_file("glove-100d") == tmp_path / "cache" / "glove-100d" / "vectors.txt"
    assert fetched == ["glove-100d", "glove-100d"]


def test_split_clitics_reaches_the_vocabulary_and_the_saved_tokenizer(tmp_path):
    data = tmp_path / "r.tsv"
    rows = [(f"{t} It isn't.", y) for t, y in reviews(100, 3)]
    data.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    task = get_task("sentiment").prepare(
        ClassifyConfig(data=str(data), split_clitics=True), 0, None
    )
    assert "n't" in task.codec.vocab.tokens and "isn't" not in task.codec.vocab.tokens
    assert task.codec.to_json()["tokenizer"]["split_clitics"] is True


def test_nb_columns_start_at_the_training_split_log_count_ratios(tmp_path):
    from rnnkit.data import nb_log_count_ratios

    data = tmp_path / "r.tsv"
    data.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in reviews(300, 4)))
    vectors = tmp_path / "v.txt"
    vectors.write_text("great 1 2 3 4\nawful -1 -2 -3 -4\n", encoding="utf-8")
    task = [f'task.data="{data}"', "task.nb_columns=2", f'task.vectors="{vectors}"']
    # the NB columns are the first 2 of model.embedding_dim; the vectors fill the other 4
    cfg = run.load_run_config("sentiment", overrides=[*task, "model.embedding_dim=6"])
    data_ = get_task("sentiment").prepare(cfg.task_config, 0, None)
    model = run.build_model(cfg, data_)
    weight = model.embedding.weight.detach()
    vocab = data_.codec.vocab
    assert weight.shape == (len(vocab), 6)
    train = data_.train
    ratios = nb_log_count_ratios(train.inputs, train.targets[train.mask], len(vocab))
    for column in (0, 1):
        torch.testing.assert_close(weight[1:, column], ratios[1:])  # row 0 is <pad>: zero
    assert weight[vocab.pad_id].abs().sum() == 0
    assert weight[vocab["great"], 2:].tolist() == [1, 2, 3, 4]  # vectors after the NB columns
    assert weight[vocab["great"], 0] > 0 > weight[vocab["awful"], 0]  # pos is label 1
    with pytest.raises(
        ConfigError, match=r"task\.vectors and task\.nb_columns need model\.embedding_dim > 0"
    ):
        run.load_run_config("classify", overrides=[*task, "model.embedding_dim=0"])
    with pytest.raises(
        ConfigError, match=r"task\.nb_columns=2 must be below model\.embedding_dim=2"
    ):
        run.load_run_config("classify", overrides=[*task, "model.embedding_dim=2"])


def test_wide_nb_scales_each_training_ngram_by_its_log_count_ratio(tmp_path):
    from rnnkit.data import nb_log_count_ratios

    data = tmp_path / "r.tsv"
    data.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in reviews(300, 5)))
    task = [f'task.data="{data}"', "task.wide_nb=true"]
    cfg = run.load_run_config("sentiment", overrides=[*task, "model.wide_ngrams=2"])
    data_ = get_task("sentiment").prepare(cfg.task_config, 0, None)
    model = run.build_model(cfg, data_)
    train = data_.train
    grams = model.wide_grams(train.inputs, train.lengths)
    rows = len(data_.codec.vocab) + 262_144  # wide_buckets 0: the default's hash rows
    want = nb_log_count_ratios(grams, train.targets[train.mask], rows)
    torch.testing.assert_close(model.wide_scale, want)
    vocab = data_.codec.vocab
    assert model.wide_scale[vocab["great"]] > 0 > model.wide_scale[vocab["awful"]]
    assert model.wide.weight.abs().sum() == 0  # u starts at zero: r only scales it
    with pytest.raises(ConfigError, match=r"task\.wide_nb scales .* set model\.wide_ngrams > 0"):
        run.load_run_config("classify", overrides=task)
    # task.wide_nb_start: u starts as the Naive Bayes classifier, (-1/2, 1/2) per n-gram
    start = [*task, "task.wide_nb_start=true", "model.wide_ngrams=2"]
    model = run.build_model(run.load_run_config("sentiment", overrides=start), data_)
    assert model.wide.weight[vocab["great"]].tolist() == [-0.5, 0.5]
    with pytest.raises(ConfigError, match=r"task\.wide_nb_start .* set task\.wide_nb = true"):
        run.load_run_config("classify", overrides=[start[0], *start[2:]])


MOVED_TO_MODEL = {  # [task] keys of the sentiment task that are now [model] keys
    "embedding_dim": "8",
    "freeze_embedding": "true",
    "bidirectional": "true",
    "pooling": '"max"',
    "head": '"sigmoid"',
}


@pytest.mark.parametrize("key", sorted(MOVED_TO_MODEL))
def test_model_keys_are_unknown_in_the_task_table(key, tmp_path):
    value = MOVED_TO_MODEL[key]
    with pytest.raises(ConfigError, match=rf"^task\.{key}: unknown key \(known: "):
        run.load_run_config("classify", overrides=[f"task.{key}={value}"])
    cfg = run.load_run_config("classify", overrides=[f"model.{key}={value}"])  # where it is now
    assert key in cfg.model
    if key == "pooling":  # the CLI says the same, before reading any data
        r = CliRunner().invoke(
            app, ["train", "sentiment", "--set", 'task.pooling="max"', "--out", str(tmp_path)]
        )
        assert r.exit_code == 2
        assert r.output.startswith("error: task.pooling: unknown key (known: data, ")


@pytest.mark.parametrize("key", ["vocab_size", "num_classes", "padding_idx"])
def test_model_keys_the_data_fixes_are_refused(key):
    with pytest.raises(ConfigError, match=rf"model\.{key}: set by the task from its data"):
        run.load_run_config("classify", overrides=[f"model.{key}=3"])


def test_train_from_records_in_python(tmp_path):
    """rnnkit.train("classify", records=...) writes the pairs, trains, returns the best model."""
    overrides = [
        "model.embedding_dim=8",
        "model.hidden_size=8",
        'model.cell="gru"',
        "trainer.epochs=3",
        "trainer.batch_size=16",
        "trainer.lr=0.02",
        'trainer.log.progress="none"',
        "trainer.log.tensorboard=false",
    ]
    model = rnnkit.train("classify", tmp_path / "run", overrides=overrides, records=reviews(400, 5))
    assert (tmp_path / "run" / "data.jsonl").read_text().count("\n") == 400
    assert isinstance(model, SequenceClassifier) and model.codec.labels == ("neg", "pos")
    assert [p.label for p in model.predict(["a superb story", "awful, boring plot"])] == [
        "pos",
        "neg",
    ]
    assert rnnkit.load(tmp_path / "run").predict("superb") == model.predict("superb")
    with pytest.raises(ValueError, match=r"records\[1\]: expected a \(text, label\) pair"):
        rnnkit.train("classify", tmp_path / "bad", records=[("a", "pos"), "b"])
    with pytest.raises(ValueError, match="task 'adding' reads its data from files"):
        rnnkit.train("adding", tmp_path / "adding", records=[("a", "pos")])
    with pytest.raises(TypeError, match=r"overrides: expected a list .* overrides=\['seed=1'\]"):
        rnnkit.train("classify", tmp_path / "str", overrides="seed=1", records=[("a", "pos")])
    twice = [("good film", "pos"), ("bad film", "neg")] * 20  # copies stay together
    with pytest.raises(ValueError, match="split is empty: the 2 distinct texts"):
        rnnkit.train("classify", tmp_path / "few", overrides=overrides, records=twice)
