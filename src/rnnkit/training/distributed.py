"""Data-parallel training over processes with ``torch.distributed`` (gloo on CPU).

Launched by ``torchrun --nproc_per_node=N``, every process builds the same model from the same
seed and reads the same global batch; rank r trains on rows ``[r B/N, (r+1) B/N)``. After the
backward pass the gradients are averaged over processes, weighted so that the result is the
gradient of the loss over the whole global batch:

    g = sum_r (n_r / n) g_r        n_r targets on rank r, n = sum_r n_r

(each rank scales its loss by ``N n_r / n`` and the gradients are then averaged). Clipping and
the optimizer step then run identically everywhere, so the replicas stay equal. Only rank 0
writes checkpoints, logs and progress bars.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0  # this process's rank
    world: int = 1  # number of processes

    @property
    def is_writer(self) -> bool:
        """Whether this process writes files (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over processes (float64)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Replace every gradient by its mean over processes (missing ones count as zero)."""
        if not self.active:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(self.world)

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every process."""
        if not self.active:
            return
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def init_distributed() -> DistContext:
    """Join the process group torchrun describes in the environment (gloo); else one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    return DistContext(rank=dist.get_rank(), world=dist.get_world_size())


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
