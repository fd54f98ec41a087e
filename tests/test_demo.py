"""`rnnkit demo` end to end at a tiny budget, on small prepared files (no fetching).

The tour's defaults fetch `shakespeare` and `movie-reviews` and train for minutes; here the
same code runs on a few kilobytes of play-like text and labelled sentences with tiny models,
through the command line, in a few seconds on one thread.
"""

from __future__ import annotations

import json
import os
import random
import time

import pytest
import torch
from typer.testing import CliRunner

from rnnkit import demo
from rnnkit.cli import app
from rnnkit.demo import SENTENCES, auto_threads, busy_cores, run_demo

torch.set_num_threads(1)

GOOD = ["gorgeous", "witty", "charming", "moving", "brilliant", "funny", "smart", "lovely"]
BAD = ["dull", "tedious", "thin", "worse", "boring", "clumsy", "flat", "lifeless"]
FILLER = ["the", "movie", "film", "plot", "acting", "story", "cast", "is", "and", "a", "with"]


def _play(rng: random.Random, lines: int) -> str:
    names = ["ROMEO:", "JULIET:", "NURSE:", "MERCUTIO:"]
    words = ["love", "night", "fair", "sweet", "death", "thou", "art", "my", "lord", "good"]
    return "".join(
        f"{rng.choice(names)}\n{' '.join(rng.choices(words, k=8))}\n\n" for _ in range(lines)
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_data")
    rng = random.Random(0)
    (root / "train.txt").write_text(_play(rng, 120))
    (root / "valid.txt").write_text(_play(rng, 20))
    rows = ["text\tlabel"]
    for i in range(300):
        label = "pos" if i % 2 else "neg"
        words = rng.choices(GOOD if label == "pos" else BAD, k=2) + rng.choices(FILLER, k=4)
        rng.shuffle(words)
        rows.append(f"{' '.join(words)} {i}\t{label}")
    (root / "reviews.tsv").write_text("\n".join(rows) + "\n")
    return root


def tiny_args(data) -> list[str]:
    lm = [
        f'task.train_files=["{data / "train.txt"}"]',
        f'task.val_files=["{data / "valid.txt"}"]',
        "task.streams=4",
        "task.window=50",
        "task.eval_streams=2",
        "model.embedding_size=8",
        "model.hidden_size=16",
        "trainer.batch_size=4",
        "trainer.tbptt=25",
    ]
    sentiment = [
        f'task.data="{data / "reviews.tsv"}"',
        "model.embedding_dim=8",
        "model.hidden_size=8",
        "trainer.batch_size=16",
    ]
    args = ["demo", "--minutes", "0.1", "--threads", "1", "--length", "60"]
    for item in lm:
        args += ["--lm-set", item]
    for item in sentiment:
        args += ["--sentiment-set", item]
    return args


def test_demo_trains_both_models_reports_and_plots(tmp_path, data):
    out = tmp_path / "demo"
    start = time.monotonic()
    result = CliRunner().invoke(app, [*tiny_args(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - start < 50
    text = result.output
    for step in ("1/5  Data", "2/5  Shakespeare", "3/5  Sentiment", "4/5  Results", "5/5  Plots"):
        assert step in text
    assert "no registry data needed" in text
    assert "nats/char" in text and "bits/char" in text and "validation accuracy" in text
    assert "stopped on its time budget" in text or "all epochs done" in text
    assert 'prime "ROMEO:", temperature 0.8, seed 1' in text
    for sentence in SENTENCES:
        assert sentence in text
    for run in ("shakespeare_char", "sentiment"):
        index = json.loads((out / run / "checkpoints" / "index.json").read_text())
        assert index["best"] and (out / run / "checkpoints" / index["best"]).is_dir()
        assert (out / run / "summary.json").exists() and (out / run / "config.json").exists()
    for png in ("lm_curve.png", "sentiment_curve.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert str(out / png) in text
    report = json.loads((out / "demo.json").read_text())
    assert report["status"] == "done"
    assert report["lm"]["validation"]["val_loss"] > 0
    assert 0 <= report["sentiment"]["validation"]["val_accuracy"] <= 1
    assert report["sample"].startswith("ROMEO:") and len(report["sample"]) == len("ROMEO:") + 60
    assert [p["text"] for p in report["predictions"]] == list(SENTENCES)
    assert all(p["label"] in ("pos", "neg") for p in report["predictions"])
    assert report["sample"] in text  # the passage is printed as it was generated
    # the budget held: training stopped on it or earlier (the second run gets what is left)
    assert report["lm"]["train_seconds"] < 0.1 * 60


def test_demo_replaces_its_own_output_but_not_a_foreign_folder(tmp_path, data):
    out = tmp_path / "demo"
    args = tiny_args(data)
    first = run_demo(out, 0.05, 1, *_split_sets(args), length=5)
    assert first.sample.startswith("ROMEO:")
    second = CliRunner().invoke(app, [*args, "--out", str(out), "--length", "5"])
    assert second.exit_code == 0, second.output  # an earlier tour is replaced
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    bad = CliRunner().invoke(app, [*args, "--out", str(out), "--lm-set", "model.hidden_size=0"])
    assert bad.exit_code == 2 and "error: " in bad.output
    refused = CliRunner().invoke(app, [*args, "--out", str(foreign)])
    assert refused.exit_code == 2
    assert "holds no earlier demo" in refused.output
    assert (foreign / "notes.txt").read_text() == "keep me"


def _split_sets(args: list[str]) -> tuple[list[str], list[str]]:
    lm = [args[i + 1] for i, a in enumerate(args) if a == "--lm-set"]
    sentiment = [args[i + 1] for i, a in enumerate(args) if a == "--sentiment-set"]
    return lm, sentiment


def test_auto_threads_leave_busy_cores_alone():
    assert auto_threads(2, 0.1) == 2  # idle: all cores
    assert auto_threads(2, 0.8) == 1
    assert auto_threads(2, 4.5) == 1  # never fewer than one
    assert auto_threads(8, 3.0) == 5
    assert 1 <= auto_threads(2) <= 2  # this machine, measured now


def test_busy_cores_reads_the_cpu_time_spent_between_two_samples(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    samples = iter(
        [  # user nice system idle iowait irq softirq: 2 cpus, 1.5 of them busy in between
            "cpu  100 0 0 100 0 0 0\ncpu0 50 0 0 50 0 0 0\ncpu1 50 0 0 50 0 0 0\n",
            "cpu  250 0 0 140 10 0 0\ncpu0 125 0 0 70 5 0 0\ncpu1 125 0 0 70 5 0 0\n",
        ]
    )
    monkeypatch.setattr(demo.time, "sleep", lambda s: stat.write_text(next(samples)))
    stat.write_text(next(samples))
    assert busy_cores(0.1, stat) == pytest.approx(2 * 150 / 200)
    assert busy_cores(0.1, tmp_path / "missing") is None
    monkeypatch.undo()
    measured = busy_cores(0.2)  # this machine (Linux): between idle and every core
    assert measured is None or 0.0 <= measured <= os.cpu_count()
