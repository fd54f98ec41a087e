"""Batches of padded sequences with per-step targets, split in time for truncated BPTT.

A :class:`SequenceBatch` holds B sequences padded to T steps, batch first::

    inputs   (B, T, D) float features, or (B, T) int64 token ids
    targets  (B, T) or (B, T, K): a target at every step, read only where ``mask`` is True
    mask     (B, T) bool: the steps whose target counts in the loss
    lengths  (B,) int64: the true length of each sequence, 1 <= lengths[b] <= T

Many-to-one tasks put their single target at step ``lengths[b] - 1`` and mark only that step,
so the same batch splits in time for truncated BPTT: :meth:`SequenceBatch.time_chunks` cuts
steps ``[s, s + k)`` and gives each chunk its own ``lengths`` clamped to ``[0, k]``; a sequence
that ended before the chunk has length 0 there and its carried state must pass through untouched.

:class:`EpochBatches` serves a dataset in a deterministic order per epoch (a permutation seeded
by ``seed`` and the epoch number), so a resumed run can skip to the exact batch it stopped at.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SequenceBatch:
    inputs: torch.Tensor  # (B, T, D) float or (B, T) int64
    targets: torch.Tensor  # (B, T) or (B, T, K)
    mask: torch.Tensor  # (B, T) bool, steps whose target counts
    lengths: torch.Tensor  # (B,) int64, true length of each sequence

    def __post_init__(self) -> None:
        b, t = self.mask.shape
        if self.inputs.shape[:2] != (b, t) or self.targets.shape[:2] != (b, t):
            raise ValueError(
                f"inputs {tuple(self.inputs.shape)} and targets {tuple(self.targets.shape)} "
                f"must start with mask's (B, T) = {(b, t)}"
            )
        if self.lengths.shape != (b,):
            raise ValueError(f"lengths must have shape ({b},), got {tuple(self.lengths.shape)}")

    @property
    def size(self) -> int:
        """Number of sequences B."""
        return int(self.mask.shape[0])

    @property
    def steps(self) -> int:
        """Padded length T."""
        return int(self.mask.shape[1])

    @property
    def n_targets(self) -> int:
        """Number of steps whose target counts in the loss."""
        return int(self.mask.sum())

    def rows(self, index: torch.Tensor | slice) -> SequenceBatch:
        """The sequences at ``index`` (a slice or an int64 index tensor)."""
        return SequenceBatch(
            self.inputs[index], self.targets[index], self.mask[index], self.lengths[index]
        )

    def shard(self, rank: int, world: int) -> SequenceBatch:
        """Rank ``rank``'s contiguous share of the rows split over ``world`` processes.

        Shares differ by at most one row (``torch.tensor_split``); the trainer weights each
        process's gradient by its number of targets, so uneven shares stay exact.
        """
        if self.size < world:
            raise ValueError(f"batch of {self.size} rows cannot feed {world} processes")
        if world == 1:
            return self
        index = torch.tensor_split(torch.arange(self.size), world)[rank]
        return self.rows(index)

    def time_chunks(self, k: int) -> Iterator[SequenceBatch]:
        """Chunks of ``k`` steps (the last may be shorter) up to the longest sequence."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        t_max = int(self.lengths.max())
        for s in range(0, t_max, k):
            e = min(s + k, t_max)
            lengths = (self.lengths - s).clamp(0, e - s)  # (B,) 0 for sequences already ended
            yield SequenceBatch(
                self.inputs[:, s:e], self.targets[:, s:e], self.mask[:, s:e], lengths
            )

    def to(self, device: torch.device | str) -> SequenceBatch:
        return SequenceBatch(
            self.inputs.to(device),
            self.targets.to(device),
            self.mask.to(device),
            self.lengths.to(device),
        )


class EpochBatches:
    """Batches of ``batch_size`` rows of a dataset, shuffled by ``(seed, epoch)``.

    Args:
        data: all the sequences, one :class:`SequenceBatch` of N rows.
        batch_size: rows per batch; the last, smaller batch is dropped when ``drop_last``.
        shuffle: permute rows each epoch; otherwise serve them in order.
        seed: base seed of the per-epoch permutation.
        drop_last: drop a final batch smaller than ``batch_size``.
    """

    def __init__(
        self,
        data: SequenceBatch,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if drop_last and data.size < batch_size:
            raise ValueError(f"batch_size {batch_size} exceeds the {data.size} sequences")
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last

    @property
    def steps(self) -> int:
        """Padded length T of the sequences."""
        return self.data.steps

    def __len__(self) -> int:
        n, b = self.data.size, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[SequenceBatch]:
        """The batches of ``epoch`` from batch index ``start`` on."""
        n = self.data.size
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.arange(n)
        for i in range(start, len(self)):
            yield self.data.rows(order[i * self.batch_size : (i + 1) * self.batch_size])
