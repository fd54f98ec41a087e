"""A run killed with SIGKILL mid-epoch and resumed ends with the uninterrupted run's weights."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from _training_helpers import subprocess_env

HERE = Path(__file__).parent
SETTINGS = [
    "task.seq_len=12",
    "task.n_train=96",
    "task.n_val=32",
    "task.n_test=32",
    "model.cell=lstm",
    "model.hidden_size=8",
    "model.num_layers=2",
    "model.dropout=0.3",
    "trainer.epochs=2",
    "trainer.batch_size=16",
    "trainer.lr=0.01",
    "trainer.checkpoint.every_steps=2",
    "trainer.log.tensorboard=false",
    'trainer.log.progress="none"',
    "trainer.optim.name=adamw",
    "trainer.schedule.warmup_steps=3",
]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", *args],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    index = json.loads((run_dir / "checkpoints" / "index.json").read_text())
    return load_file(run_dir / "checkpoints" / index["latest"] / "model.safetensors")


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    # 6 batches per epoch; checkpoints at steps 2, 4, 6 (epoch end), 8; killed at step 9
    child = subprocess.run(
        [sys.executable, str(HERE / "_kill_train.py"), str(killed), "9", *SETTINGS],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    index = json.loads((killed / "checkpoints" / "index.json").read_text())
    assert index["latest"] == "step-00000008"
    state = json.loads((killed / "checkpoints" / "step-00000008" / "trainer.json").read_text())
    assert (state["epoch"], state["batch_in_epoch"]) == (1, 2)  # mid-epoch
    resumed = _cli("resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    sets = [a for s in SETTINGS for a in ("--set", s)]
    uninterrupted = _cli("train", "adding", *sets, "--out", str(clean))
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    a, b = _final_weights(killed), _final_weights(clean)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (killed / "metrics.csv").read_text() == (clean / "metrics.csv").read_text()
