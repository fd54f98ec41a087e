"""The batch family and the one sampler that serves batches to the trainer.

Three batch types, all frozen dataclasses of tensors, batch first:

:class:`SequenceBatch`, aligned (one target per input step: language models, taggers, the
synthetic tasks, and many-to-one classifiers, whose single target sits at the last step)::

    inputs   (B, T, D) float features, (B, T) int64 token ids, or (B, T, 1 + W) ids with chars
    targets  (B, T) or (B, T, K): a target at every step, read only where ``mask`` is True
    mask     (B, T) bool: the steps whose target counts in the loss
    lengths  (B,) int64: the true length of each sequence, 1 <= lengths[b] <= T

:class:`PairBatch`, unaligned (encoder-decoder, CTC, captioning): a source and a target of
their own lengths::

    source          (B, S) token ids, (B, S, D) feature frames, or (B, C, H, W) images
    source_lengths  (B,) int64: valid steps (or image columns) of each source
    target          (B, U) int64 target ids, padded; no <bos>, the <eos> included when used
    target_lengths  (B,) int64: the tokens of each target that count in the loss

:class:`TwinBatch`, two sequences of one kind and one target per row (siamese models:
sentence similarity)::

    a, a_lengths    (B, S) int64 token ids and (B,) int64 valid steps of the first sequence
    b, b_lengths    (B, U) int64 token ids and (B,) int64 valid steps of the second
    labels          (B,) float: the pair's target (1: similar, 0: not)

All give the trainer what it needs: ``size``, ``n_targets`` (the loss's weight),
``rows(index)``, ``shard(rank, world)`` (data parallelism), ``sort_lengths`` (bucketing) and
``to(device)``; :class:`SequenceBatch` also cuts itself in time for truncated BPTT
(:meth:`SequenceBatch.time_chunks`: steps ``[s, s + k)`` with ``lengths`` clamped to
``[0, k]``; a sequence that ended before the chunk has length 0 there and its carried state
must pass through untouched).

:class:`EpochBatches` serves a dataset in a deterministic order per ``(seed, epoch)``, so a
resumed run skips to the exact batch it stopped at; with ``bucket=True`` each batch holds
sequences of similar lengths (pools of ``pool`` batches sorted by length), so less of it is
padding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = [
    "Batch",
    "EpochBatches",
    "PairBatch",
    "SequenceBatch",
    "TwinBatch",
    "batch_order",
    "trimmed",
]


@runtime_checkable
class Batch(Protocol):
    """What the trainer and the sampler need from a batch."""

    @property
    def size(self) -> int: ...

    @property
    def n_targets(self) -> int: ...

    @property
    def sort_lengths(self) -> Tensor: ...

    def rows(self, index: Tensor | slice) -> Any: ...

    def shard(self, rank: int, world: int) -> Any: ...


class _Rows:
    """Row selection, sharding and device moves shared by the batch types (all fields are
    tensors whose first dimension is the batch)."""

    def rows(self, index: Tensor | slice) -> Any:
        """The sequences at ``index`` (a slice or an int64 index tensor)."""
        return type(self)(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))

    def shard(self, rank: int, world: int) -> Any:
        """Rank ``rank``'s contiguous share of the rows split over ``world`` processes.

        Shares differ by at most one row (``torch.tensor_split``); the trainer weights each
        process's gradient by its number of targets, so uneven shares stay exact.
        """
        if self.size < world:
            raise ValueError(f"batch of {self.size} rows cannot feed {world} processes")
        if world == 1:
            return self
        return self.rows(torch.tensor_split(torch.arange(self.size), world)[rank])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Any:
        """The same batch on ``device`` (every field moved)."""
        return type(self)(
            *(
                getattr(self, f.name).to(device, non_blocking=non_blocking)
                for f in dataclasses.fields(self)
            )
        )

    def pin_memory(self) -> Any:
        """The same batch in page-locked memory (for asynchronous copies to a GPU)."""
        return type(self)(*(getattr(self, f.name).pin_memory() for f in dataclasses.fields(self)))

    @property
    def size(self) -> int:
        """Number of sequences B."""
        return int(getattr(self, dataclasses.fields(self)[0].name).shape[0])


@dataclass(frozen=True)
class SequenceBatch(_Rows):
    inputs: Tensor  # (B, T, D) float or (B, T) int64 or (B, T, 1 + W) int64
    targets: Tensor  # (B, T) or (B, T, K)
    mask: Tensor  # (B, T) bool, steps whose target counts
    lengths: Tensor  # (B,) int64, true length of each sequence

    def __post_init__(self) -> None:
        if self.mask.dim() != 2:
            raise ValueError(f"mask must be (B, T), got shape {tuple(self.mask.shape)}")
        b, t = self.mask.shape
        if self.inputs.shape[:2] != (b, t) or self.targets.shape[:2] != (b, t):
            raise ValueError(
                f"inputs {tuple(self.inputs.shape)} and targets {tuple(self.targets.shape)} "
                f"must start with mask's (B, T) = {(b, t)}"
            )
        if self.lengths.shape != (b,):
            raise ValueError(f"lengths must have shape ({b},), got {tuple(self.lengths.shape)}")

    @property
    def steps(self) -> int:
        """Padded length T."""
        return int(self.mask.shape[1])

    @property
    def n_targets(self) -> int:
        """Number of steps whose target counts in the loss."""
        return int(self.mask.sum())

    @property
    def sort_lengths(self) -> Tensor:
        """(B,) the lengths bucketing sorts by."""
        return self.lengths

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


@dataclass(frozen=True)
class PairBatch(_Rows):
    source: Tensor  # (B, S) int64 ids, (B, S, D) frames or (B, C, H, W) images
    source_lengths: Tensor  # (B,) int64
    target: Tensor  # (B, U) int64, padded
    target_lengths: Tensor  # (B,) int64

    def __post_init__(self) -> None:
        b = self.source.shape[0] if self.source.dim() else -1
        for name in ("source_lengths", "target_lengths"):
            if tuple(getattr(self, name).shape) != (b,):
                raise ValueError(
                    f"{name} must have shape ({b},) (the source's batch), "
                    f"got {tuple(getattr(self, name).shape)}"
                )
        if self.target.dim() < 2 or self.target.shape[0] != b:
            raise ValueError(f"target must be (B, U) with B = {b}, got {tuple(self.target.shape)}")

    @property
    def n_targets(self) -> int:
        """Number of target tokens that count in the loss."""
        return int(self.target_lengths.sum())

    @property
    def sort_lengths(self) -> Tensor:
        """(B,) bucketing key: source length, ties by target length."""
        return self.source_lengths * (int(self.target.shape[1]) + 1) + self.target_lengths

    def time_chunks(self, k: int) -> Iterator[PairBatch]:
        raise ValueError(
            f"trainer.tbptt={k}: truncated BPTT cuts aligned sequences in time; a source/target "
            "pair (encoder-decoder, CTC, captioning) trains with full BPTT (tbptt = 0)"
        )


@dataclass(frozen=True)
class TwinBatch(_Rows):
    a: Tensor  # (B, S) int64, padded
    a_lengths: Tensor  # (B,) int64
    b: Tensor  # (B, U) int64, padded
    b_lengths: Tensor  # (B,) int64
    labels: Tensor  # (B,) float

    def __post_init__(self) -> None:
        b = self.a.shape[0] if self.a.dim() == 2 else -1
        if self.b.dim() != 2 or self.b.shape[0] != b:
            raise ValueError(
                f"a and b must be (B, S) and (B, U) with one B, got {tuple(self.a.shape)} and "
                f"{tuple(self.b.shape)}"
            )
        for name in ("a_lengths", "b_lengths", "labels"):
            if tuple(getattr(self, name).shape) != (b,):
                raise ValueError(
                    f"{name} must have shape ({b},), got {tuple(getattr(self, name).shape)}"
                )

    @property
    def n_targets(self) -> int:
        """One target per pair."""
        return self.size

    @property
    def sort_lengths(self) -> Tensor:
        """(B,) bucketing key: the longer of the two sequences."""
        return torch.maximum(self.a_lengths, self.b_lengths)

    def time_chunks(self, k: int) -> Iterator[TwinBatch]:
        raise ValueError(
            f"trainer.tbptt={k}: truncated BPTT cuts aligned sequences in time; a pair of "
            "sequences with one target trains with full BPTT (tbptt = 0)"
        )


def batch_order(
    lengths: Tensor,
    batch_size: int,
    shuffle: bool,
    bucket: bool,
    generator: torch.Generator | None,
    pool: int = 50,
) -> list[Tensor]:
    """The batches of one epoch as index tensors.

    Without bucketing: a permutation (or ``0..N-1`` when not shuffling) cut into batches. With
    bucketing: the permutation is cut into pools of ``pool * batch_size`` indices (a multiple of
    the batch size, so every batch but the last is full), each pool is sorted by length (stably)
    and cut into batches, and the order of the batches is shuffled; without shuffling the
    indices are sorted by length once.
    """
    n = int(lengths.shape[0])
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if not bucket:
        return list(order.split(batch_size))
    size = pool * batch_size if shuffle else max(n, 1)
    out: list[Tensor] = []
    for chunk in order.split(size):
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        out += list(chunk.split(batch_size))
    if shuffle and len(out) > 1:
        full = [b for b in out if b.numel() == batch_size]
        rest = [b for b in out if b.numel() != batch_size]  # at most one, kept last
        out = [full[i] for i in torch.randperm(len(full), generator=generator)] + rest
    return out


class EpochBatches:
    """Batches of ``batch_size`` rows of a dataset, in a deterministic order per epoch.

    Args:
        data: all the sequences, one batch (:class:`SequenceBatch` or :class:`PairBatch`).
        batch_size: rows per batch; the last, smaller batch is dropped when ``drop_last``.
        shuffle: permute rows each epoch (seeded by ``seed`` and the epoch); otherwise serve
            them in order.
        seed: base seed of the per-epoch permutation.
        drop_last: drop a final batch smaller than ``batch_size``.
        bucket: put sequences of similar length together (see :func:`batch_order`).
        pool: batches per sorting pool when bucketing; larger pools pad less and mix less.

    Example::

        batches = EpochBatches(data, batch_size=32, seed=0, bucket=True)
        for batch in batches.epoch(3):   # the same batches every time epoch 3 is asked for
            ...
    """

    def __init__(
        self,
        data: Any,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
        bucket: bool = False,
        pool: int = 50,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if pool < 1:
            raise ValueError(f"pool must be >= 1, got {pool}")
        if drop_last and data.size < batch_size:
            raise ValueError(
                f"batch_size {batch_size} exceeds the {data.size} sequences, so no full batch "
                f"is left to train on; set trainer.batch_size to {data.size} or less"
            )
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.bucket = bucket
        self.pool = pool

    @property
    def steps(self) -> int:
        """Padded length T of aligned sequences (0 for source/target pairs)."""
        return int(getattr(self.data, "steps", 0))

    def __len__(self) -> int:
        n, b = self.data.size, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def chunks(self, k: int, epoch: int = 0) -> int:
        """Truncated-BPTT chunks of ``k`` steps in the batches of ``epoch`` (each batch runs
        up to its longest sequence); pairs, which are not cut in time, count one per batch."""
        if not isinstance(self.data, SequenceBatch):
            return len(self)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = batch_order(
            self.data.lengths, self.batch_size, self.shuffle, self.bucket, gen, self.pool
        )
        return sum(-(-int(self.data.lengths[i].max()) // k) for i in order[: len(self)])

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Any]:
        """The batches of ``epoch`` from batch index ``start`` on."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = batch_order(
            self.data.sort_lengths, self.batch_size, self.shuffle, self.bucket, gen, self.pool
        )
        for index in order[start : len(self)]:
            yield trimmed(self.data.rows(index))


def trimmed(batch: Any) -> Any:
    """An aligned batch cut to its longest sequence (a bucket pads only to its own), unless a
    target is marked past it; the loss is unchanged."""
    if not isinstance(batch, SequenceBatch) or batch.size == 0:
        return batch
    t = int(batch.lengths.max())
    if t >= batch.steps or bool(batch.mask[:, t:].any()):  # a target past the lengths: keep
        return batch
    return SequenceBatch(
        batch.inputs[:, :t], batch.targets[:, :t], batch.mask[:, :t], batch.lengths
    )
