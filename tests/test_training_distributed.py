"""Two processes (torchrun, gloo) train like one process on the combined batch."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from safetensors.torch import load_file

from _training_helpers import subprocess_env

SETTINGS = [
    "task.seq_len=10",
    "task.n_train=124",
    "task.n_val=41",
    "task.n_test=32",
    "model.cell=gru",
    "model.hidden_size=8",
    "trainer.epochs=2",
    "trainer.batch_size=31",
    "trainer.lr=0.01",
    "trainer.clip_norm=0.5",
    'trainer.log.progress="none"',
]


def _weights(run_dir):
    index = json.loads((run_dir / "checkpoints" / "index.json").read_text())
    return load_file(run_dir / "checkpoints" / index["latest"] / "model.safetensors")


def test_two_process_gloo_equals_single_process(tmp_path):
    sets = [a for s in SETTINGS for a in ("--set", s)]
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", "train", "adding", *sets, "--out", str(one)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert single.returncode == 0, single.stderr
    multi = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "rnnkit.cli",
            "train",
            "adding",
            *sets,
            "--out",
            str(two),
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert multi.returncode == 0, multi.stderr[-3000:]
    a, b = _weights(one), _weights(two)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    s1 = json.loads((one / "summary.json").read_text())
    s2 = json.loads((two / "summary.json").read_text())
    assert (s1["world_size"], s2["world_size"]) == (1, 2)
    # 4 batches of 31 rows per epoch, split 16 + 15: uneven shares, weighted exactly
    assert (s1["rank0_sequences"], s2["rank0_sequences"]) == (2 * 4 * 31, 2 * 4 * 16)
    assert s1["step"] == s2["step"] == 8
    rows_one = (one / "metrics.csv").read_text().splitlines()
    rows_two = (two / "metrics.csv").read_text().splitlines()
    assert len(rows_one) == len(rows_two) == 3  # rank 0 alone wrote the log
    assert len(list((two / "tensorboard").glob("events.out.tfevents.*"))) == 1


def _torchrun(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return subprocess.run(
        [*command, "-m", "rnnkit.cli", *args],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_two_processes_resume_mid_epoch_with_the_epochs_metrics_and_a_one_row_batch(tmp_path):
    """A run stopped mid-epoch and resumed under torchrun ends with the uninterrupted run's
    weights and per-epoch metrics (the epoch's sums are saved over both processes), and a
    validation batch of one row (fewer rows than processes) is evaluated, not refused."""
    settings = [s for s in SETTINGS if not s.startswith("task.n_val")] + ["task.n_val=32"]
    sets = [a for s in settings for a in ("--set", s)]  # validation batches of 31 and 1 rows
    full, part = tmp_path / "full", tmp_path / "part"
    done = _torchrun("train", "adding", *sets, "--out", str(full))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("done:") == 1  # the first process reports
    stopped = _torchrun(
        "train", "adding", *sets, "--set", "trainer.max_steps=5", "--out", str(part)
    )
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    config = json.loads((part / "config.json").read_text())
    config["trainer"]["max_steps"] = 0
    (part / "config.json").write_text(json.dumps(config))
    resumed = _torchrun("resume", str(part))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _weights(full), _weights(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    s1 = json.loads((full / "summary.json").read_text())
    s2 = json.loads((part / "summary.json").read_text())
    for h1, h2 in zip(s1["history"], s2["history"], strict=True):
        assert h1["train_loss"] == h2["train_loss"] and h1["val_loss"] == h2["val_loss"]


def test_a_batch_smaller_than_the_processes_is_refused_before_anything_is_written(tmp_path):
    sets = [a for s in SETTINGS for a in ("--set", s)]
    r = _torchrun(
        "train", "adding", *sets, "--set", "trainer.batch_size=1", "--out", str(tmp_path / "r")
    )
    assert r.returncode != 0
    assert "trainer.batch_size=1 is smaller than the 2 processes" in r.stdout + r.stderr
    assert not (tmp_path / "r" / "config.json").exists()
