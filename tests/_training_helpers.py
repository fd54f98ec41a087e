"""Small models, data and trainers shared by the training tests."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from rnnkit.data.synthetic import adding_problem
from rnnkit.models import RecurrentModel, RecurrentModelConfig
from rnnkit.training import EpochBatches, LogConfig, Trainer, TrainerConfig

# Small models on a shared 2-core machine: one thread avoids OpenMP spin contention (7x faster).
torch.set_num_threads(1)

SRC = str(Path(__file__).resolve().parents[1] / "src")


def subprocess_env() -> dict[str, str]:
    """Environment for child processes: this checkout's src first, one thread each."""
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def small_model(cell: str = "gru", seed: int = 0, **kw) -> RecurrentModel:
    torch.manual_seed(seed)
    cfg = RecurrentModelConfig(cell=cell, input_size=2, hidden_size=8, **kw)
    return RecurrentModel(cfg)


def small_trainer(run_dir=None, cell="gru", steps=10, n=128, batch=16, **cfg_kw) -> Trainer:
    data = adding_problem(n, steps, seed=0)
    val = adding_problem(32, steps, seed=1)
    cfg_kw.setdefault("log", LogConfig(progress="none", tensorboard=False))
    cfg = TrainerConfig(batch_size=batch, **cfg_kw)
    return Trainer(
        small_model(cell),
        cfg,
        EpochBatches(data, batch, seed=0),
        EpochBatches(val, batch, shuffle=False),
        run_dir=run_dir,
    )


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class LossOnly(torch.nn.Module):
    """A trainable model and nothing more (no carried state, no step, no trace)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def loss(self, batch):
        return self.w * 0, {}

    def get_config(self):
        return {}
