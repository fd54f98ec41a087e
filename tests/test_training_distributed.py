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
