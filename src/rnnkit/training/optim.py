"""Optimizers and learning-rate schedules.

The schedule gives the learning rate of optimizer step s (counted from 0) in epoch e as

    lr(s, e) = lr_0 * w(s) * d(s, e) * p

    w(s)    = min(1, (s + 1) / warmup_steps)                    linear warm-up (1 when off)
    d(s, e) = 1                                                  "constant" and "plateau"
            = gamma ** floor(e / step_size)                      "step"
            = m + (1 - m) * (1 + cos(pi * f)) / 2                "cosine", m = min_lr / lr_0,
                                                                 f = max(s / S, t / B)
    p       = factor ** (number of plateau decays so far)        "plateau" (1 otherwise)

where a plateau decay happens after ``patience`` evaluations without improvement of the
monitored metric, never below ``min_lr``. For "cosine", S is the run's total number of steps and
t / B the fraction of the time budget (``max_minutes``) spent, 0 without one: the decay ends
with whichever limit comes first. The schedule's whole state is a few numbers, saved as
JSON in the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from rnnkit.training.config import OptimConfig, ScheduleConfig


def build_optimizer(
    params: Iterable[torch.nn.Parameter], cfg: OptimConfig, lr: float
) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.name`` over ``params`` at learning rate ``lr``."""
    params = list(params)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(
            params,
            lr=lr,
            alpha=cfg.alpha,
            eps=cfg.eps,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
        )
    if cfg.name == "adam":
        return torch.optim.Adam(
            params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    if cfg.name == "adamw":
        return torch.optim.AdamW(
            params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    raise ValueError(f"optim.name must be sgd, rmsprop, adam or adamw, got {cfg.name!r}")


class LRSchedule:
    """Learning rate per optimizer step, with warm-up and a decay rule (see module docstring).

    Args:
        cfg: the schedule configuration.
        base_lr: the peak learning rate lr_0.
        total_steps: S, the number of optimizer steps in the run (used by "cosine").
        mode: "min" or "max", the direction in which the plateau metric improves.
    """

    def __init__(self, cfg: ScheduleConfig, base_lr: float, total_steps: int, mode: str) -> None:
        self.cfg = cfg
        self.base_lr = base_lr
        self.total_steps = max(1, total_steps)
        self.mode = mode
        self.plateau_scale = 1.0  # p
        self.best: float | None = None  # best monitored value seen
        self.bad_evals = 0  # evaluations since the last improvement

    def lr_at(self, step: int, epoch: int, time_frac: float = 0.0) -> float:
        """The learning rate of ``step`` in ``epoch``; ``time_frac``: budget fraction spent."""
        cfg = self.cfg
        warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        if cfg.name == "step":
            decay = cfg.gamma ** (epoch // cfg.step_size)
        elif cfg.name == "cosine":
            m = min(cfg.min_lr / self.base_lr, 1.0)
            frac = min(max(step / self.total_steps, time_frac), 1.0)
            decay = m + (1 - m) * 0.5 * (1 + math.cos(math.pi * frac))
        else:
            decay = 1.0
        return self.base_lr * warm * decay * self.plateau_scale

    def apply(
        self, optimizer: torch.optim.Optimizer, step: int, epoch: int, time_frac: float = 0.0
    ) -> float:
        """Set every parameter group's lr for this step; return it."""
        lr = self.lr_at(step, epoch, time_frac)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def observe(self, value: float) -> None:
        """Feed the monitored metric after an evaluation ("plateau" decays on stalls)."""
        if self.cfg.name != "plateau":
            return
        sign = 1.0 if self.mode == "min" else -1.0
        better = self.best is None or sign * (self.best - value) > 0
        if better:
            self.best, self.bad_evals = value, 0
            return
        self.bad_evals += 1
        if self.bad_evals > self.cfg.patience:
            floor = self.cfg.min_lr / self.base_lr
            self.plateau_scale = max(self.plateau_scale * self.cfg.factor, floor)
            self.bad_evals = 0

    def state_dict(self) -> dict[str, Any]:
        return {"plateau_scale": self.plateau_scale, "best": self.best, "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.best = None if state["best"] is None else float(state["best"])
        self.bad_evals = int(state["bad_evals"])
