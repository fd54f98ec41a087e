"""Gradient clipping by global norm and by value, with statistics on how often it fires.

By norm: with g the concatenation of all parameter gradients and c the threshold,

    ||g|| = sqrt(sum_p sum_i g_{p,i}^2)
    g <- g * min(1, c / ||g||)          # direction kept, length at most c

By value: each entry is clamped, g_{p,i} <- max(-v, min(v, g_{p,i})). Norm clipping runs first.
:class:`ClipStats` records the pre-clipping norm of every step and whether either rule changed
the gradient, so an epoch can report the mean gradient norm and the clip-fire rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch


@dataclass
class ClipStats:
    steps: int = 0  # optimizer steps seen
    fired: int = 0  # steps where clipping changed the gradient
    norm_sum: float = 0.0  # sum of pre-clipping global norms (finite ones)
    norm_max: float = 0.0  # largest pre-clipping global norm

    def record(self, norm: float, fired: bool) -> None:
        self.steps += 1
        self.fired += int(fired)
        if math.isfinite(norm):
            self.norm_sum += norm
            self.norm_max = max(self.norm_max, norm)

    @property
    def mean_norm(self) -> float:
        return self.norm_sum / self.steps if self.steps else 0.0

    @property
    def fire_rate(self) -> float:
        return self.fired / self.steps if self.steps else 0.0

    def state_dict(self) -> dict[str, float]:
        return {
            "steps": self.steps,
            "fired": self.fired,
            "norm_sum": self.norm_sum,
            "norm_max": self.norm_max,
        }

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.steps = int(state["steps"])
        self.fired = int(state["fired"])
        self.norm_sum = float(state["norm_sum"])
        self.norm_max = float(state["norm_max"])


def global_grad_norm(params: Iterable[torch.nn.Parameter]) -> float:
    """The L2 norm of all gradients taken together (parameters without gradient skipped)."""
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))


def clip_gradients(
    params: Iterable[torch.nn.Parameter], max_norm: float = 0.0, max_value: float = 0.0
) -> tuple[float, bool]:
    """Clip gradients in place; return (pre-clipping global norm, whether anything changed).

    Args:
        params: the parameters whose ``.grad`` is clipped.
        max_norm: threshold c on the global L2 norm; 0 disables norm clipping.
        max_value: threshold v on each entry's magnitude; 0 disables value clipping.
    """
    if max_norm < 0 or max_value < 0:
        raise ValueError(f"max_norm and max_value must be >= 0, got {max_norm}, {max_value}")
    params = [p for p in params if p.grad is not None]
    norm = global_grad_norm(params)
    fired = False
    if max_norm > 0 and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for p in params:
            p.grad.detach().mul_(scale)
        fired = True
    if max_value > 0:
        for p in params:
            g = p.grad.detach()
            if bool((g.abs() > max_value).any()):
                fired = True
                g.clamp_(-max_value, max_value)
    return norm, fired
