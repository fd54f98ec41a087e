"""The sentiment task end to end on files the test writes: train, predict, evaluate, errors."""

from __future__ import annotations

import csv
import json
import random

import pytest
import torch
from typer.testing import CliRunner

import _training_helpers  # noqa: F401  (one torch thread)
from rnnkit.cli import app
from rnnkit.tasks import get_task
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
        "task.embedding_dim=8",
        'task.pooling="max"',
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
    r = runner.invoke(app, ["train", "sentiment", *args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_train_predict_evaluate_through_the_cli(tmp_path):
    runner = CliRunner()
    run = train_run(tmp_path, runner)
    vocab = json.loads(next((run / "checkpoints").glob("*/vocab.json")).read_text())
    assert vocab["labels"] == ["neg", "pos"]
    assert vocab["tokenizer"]["type"] == "word"

    r = runner.invoke(app, ["predict", str(run), "The plot was superb.", "Boring actors."])
    assert r.exit_code == 0, r.output
    lines = [line.split("\t") for line in r.output.strip().splitlines()]
    assert [x[0] for x in lines] == ["pos", "neg"]
    assert all(0.5 < float(x[1]) <= 1.0 for x in lines)

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
    assert r.exit_code == 1
    assert "maybe" in r.output
    write_csv(bad, [("a great film", "pos")], header=("text", "label"))
    r = runner.invoke(app, ["evaluate", str(run), "--data", str(bad)])
    assert r.exit_code == 1
    assert "review" in r.output
    r = runner.invoke(app, ["predict", str(run)], input="\n")
    assert r.exit_code == 1
    assert "no text" in r.output


def test_predict_refuses_a_run_that_is_not_a_classifier(tmp_path):
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
    assert r.exit_code == 1
    assert "is a 'adding' run; predict takes sentiment or tagging runs" in r.output
    r = runner.invoke(app, ["predict", str(tmp_path / "nowhere"), "hello"])
    assert r.exit_code == 1
    held_out = tmp_path / "held_out.csv"
    write_csv(held_out, reviews(4, 1))
    r = runner.invoke(app, ["evaluate", str(out), "--data", str(held_out)])
    assert r.exit_code == 1
    assert "is a 'adding' run; files are read for sentiment runs" in r.output


def test_task_splits_a_file_and_keeps_labels_sorted(tmp_path):
    data = tmp_path / "r.tsv"
    data.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in reviews(200, 1)))
    task = get_task("sentiment").build(ClassifyConfig(data=str(data), max_len=3), seed=0)
    assert task.train.size + task.val.size + task.test.size == 200
    assert task.test.size > 0 and task.val.size > 0
    assert int(task.train.lengths.max()) <= 3
    assert task.vocab["labels"] == ["neg", "pos"]
    assert task.model_shape["num_classes"] == 2


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
        get_task("sentiment").build(ClassifyConfig(**kw), seed=0)


def test_one_label_only_is_refused(tmp_path):
    data = tmp_path / "one.csv"
    write_csv(data, [(t, "pos") for t, _ in reviews(30, 2)], header=("text", "label"))
    with pytest.raises(ValueError, match="expected >= 2 labels"):
        get_task("sentiment").build(ClassifyConfig(data=str(data)), seed=0)
    texts, labels = read_labelled(data, "text", "label")
    assert len(texts) == len(labels) == 30


def test_shipped_config_loads():
    from pathlib import Path

    from rnnkit.tasks.run import load_run_config

    cfg = load_run_config("sentiment", Path(__file__).parents[1] / "configs" / "sentiment.toml")
    assert cfg.task_config.data == "rotten-tomatoes"
    assert cfg.trainer.monitor == "val_accuracy"


def test_vectors_name_a_file_or_a_vectors_dataset(tmp_path, monkeypatch):
    from rnnkit.data import registry
    from rnnkit.tasks.classify import vectors_file

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
    task = get_task("sentiment").build(ClassifyConfig(data=str(data), split_clitics=True), 0)
    assert "n't" in task.vocab["tokens"] and "isn't" not in task.vocab["tokens"]
    assert task.vocab["tokenizer"]["split_clitics"] is True


def test_nb_columns_start_at_the_training_split_log_count_ratios(tmp_path):
    from rnnkit.data import Vocab, nb_log_count_ratios
    from rnnkit.tasks import run

    data = tmp_path / "r.tsv"
    data.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in reviews(300, 4)))
    vectors = tmp_path / "v.txt"
    vectors.write_text("great 1 2 3 4\nawful -1 -2 -3 -4\n", encoding="utf-8")
    cfg = ClassifyConfig(data=str(data), embedding_dim=4, nb_columns=2, vectors=str(vectors))
    task = get_task("sentiment")
    data_ = task.build(cfg, seed=0)
    model = task.build_model(run.ModelSection(hidden_size=5), data_, 0)
    weight = model.embedding.weight.detach()
    assert weight.shape == (len(data_.vocab["tokens"]), 6)
    vocab = Vocab(data_.vocab["tokens"])
    train = data_.train
    ratios = nb_log_count_ratios(train.inputs, train.targets[train.mask], len(vocab))
    for column in (0, 1):
        torch.testing.assert_close(weight[1:, column], ratios[1:])  # row 0 is <pad>: zero
    assert weight[vocab.pad_id].abs().sum() == 0
    assert weight[vocab["great"], 2:].tolist() == [1, 2, 3, 4]  # vectors after the NB columns
    assert weight[vocab["great"], 0] > 0 > weight[vocab["awful"], 0]  # pos is label 1
    with pytest.raises(ValueError, match="nb_columns needs embedded inputs"):
        ClassifyConfig(data=str(data), embedding_dim=0, nb_columns=2)
