"""Data-parallel training over processes with ``torch.distributed`` (gloo on CPU, NCCL on CUDA).

Launched by ``torchrun --nproc_per_node=N``, every process builds the same model from the same
seed and reads the same global batch; rank r trains on rows ``[r B/N, (r+1) B/N)``. After the
backward pass the gradients are averaged over processes, weighted so that the result is the
gradient of the loss over the whole global batch:

    g = sum_r (n_r / n) g_r        n_r targets on rank r, n = sum_r n_r

(each rank scales its loss by ``N n_r / n`` and the gradients are then averaged). Clipping and
the optimizer step then run identically everywhere, so the replicas stay equal. Only rank 0
writes checkpoints, logs and progress bars.

The backend follows the device: NCCL when training runs on CUDA, each process on its own GPU
``cuda:LOCAL_RANK`` (NCCL reduces GPU tensors only, so the metric sums go through the GPU too),
and gloo on the CPU. Without a device, :func:`init_distributed` keeps gloo (which also reduces
CUDA tensors, through host copies).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from rnnkit.training.device import resolve_device


@dataclass(frozen=True)
class DistContext:
    rank: int = 0  # this process's rank
    world: int = 1  # number of processes
    local_rank: int = 0  # rank on this machine (torchrun's LOCAL_RANK): the GPU it uses
    backend: str = "gloo"  # the process group's backend: "gloo" or "nccl"

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
        device = "cuda" if self.backend == "nccl" else "cpu"  # NCCL: this process's GPU
        t = torch.tensor(values, dtype=torch.float64, device=device)
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


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group torchrun describes in the environment; else one process.

    Args:
        device: the trainer's device name (``TrainerConfig.device``). When it resolves to
            CUDA the backend is NCCL and this process's current GPU is ``cuda:LOCAL_RANK``
            ("auto" and "cuda"; an explicit "cuda:N" is kept); otherwise, and when None, gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world <= 1:
        return DistContext()
    backend = "gloo"
    if device is not None:
        resolved = resolve_device(device, local_rank)
        if resolved.type == "cuda":
            backend = "nccl"
            torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    backend = str(dist.get_backend())
    rank, world = dist.get_rank(), dist.get_world_size()
    return DistContext(rank=rank, world=world, local_rank=local_rank, backend=backend)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
