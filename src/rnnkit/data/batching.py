"""Batching: length-bucketed batches, padding collate, and parallel streams for TBPTT.

Bucketing puts sequences of similar length in the same batch, so less of each batch is
padding. :func:`padding_ratio` measures the padded fraction of a batching; compare
:class:`BucketBatchSampler` against :func:`random_batches` on the same lengths::

    sampler = BucketBatchSampler(lengths, batch_size=32, seed=0)
    padding_ratio(lengths, list(sampler))  # e.g. 0.02
    padding_ratio(lengths, random_batches(len(lengths), 32, seed=0))  # e.g. 0.45
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler


def random_batches(
    n: int, batch_size: int, seed: int = 0, drop_last: bool = False
) -> list[list[int]]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into batches (the baseline)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in batches if len(b) == batch_size] if drop_last else batches


class BucketBatchSampler(Sampler[list[int]]):
    """Yields batches of indices whose sequences have similar lengths.

    Each epoch: shuffle all indices, take pools of ``batch_size * pool_batches``, sort
    each pool by length, cut it into batches, and shuffle the order of the full batches (the
    one smaller batch last): the order :class:`rnnkit.data.batches.EpochBatches` serves the
    trainer, as a ``torch.utils.data`` sampler.

    Args:
        lengths: (N,) length of each sequence.
        batch_size: B, sequences per batch.
        pool_batches: Batches per sorting pool; larger pools pad less and mix less.
        shuffle: Shuffle as above; with ``False``, batches are cut from indices sorted by
            length (deterministic, for evaluation).
        drop_last: Drop batches smaller than ``batch_size``.
        seed: Base seed; each epoch its own order from ``(seed, epoch)`` (see :meth:`set_epoch`).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        pool_batches: int = 50,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: expected at least 1")
        if pool_batches < 1:
            raise ValueError(f"pool_batches={pool_batches}: expected at least 1")
        self.lengths = [int(n) for n in lengths]
        self.batch_size = batch_size
        self.pool_batches = pool_batches
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use a different (still seeded) shuffle for each epoch."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """This epoch's batches: :func:`rnnkit.data.batches.batch_order`, the trainer's own
        order for ``(seed, epoch)``."""
        from rnnkit.data.batches import batch_order

        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        lengths = torch.tensor(self.lengths, dtype=torch.long)
        order = batch_order(lengths, self.batch_size, self.shuffle, True, gen, self.pool_batches)
        batches = [b.tolist() for b in order]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def padding_ratio(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Fraction of the padded (B, T_max) slots of all batches that are padding."""
    total = padded = 0
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        total += longest * len(batch)
        padded += sum(longest - lengths[i] for i in batch)
    return padded / total if total else 0.0


def compare_padding(lengths: Sequence[int], batch_size: int, seed: int = 0) -> dict[str, float]:
    """Padding ratio of bucketed vs random batching of the same sequences."""
    bucketed = BucketBatchSampler(lengths, batch_size, seed=seed).batches()
    return {
        "bucketed": padding_ratio(lengths, bucketed),
        "random": padding_ratio(lengths, random_batches(len(lengths), batch_size, seed)),
    }


def pad_sequences(
    sequences: Sequence[torch.Tensor | Sequence[int]], pad_value: float = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length sequences, batch first.

    Args:
        sequences: B sequences, each (T_i,) or (T_i, D): token ids or feature vectors.
        pad_value: Value for positions past each sequence's end.

    Returns:
        ``(padded, lengths)``: (B, T_max) or (B, T_max, D), and (B,) int64.
    """
    tensors = [s if isinstance(s, torch.Tensor) else torch.as_tensor(s) for s in sequences]
    if not tensors:
        raise ValueError("sequences is empty: expected at least one sequence")
    lengths = torch.tensor([t.shape[0] for t in tensors], dtype=torch.long)  # (B,)
    padded = torch.nn.utils.rnn.pad_sequence(
        tensors, batch_first=True, padding_value=pad_value
    )  # (B, T_max, ...)
    return padded, lengths


@dataclass
class PaddedBatch:
    """A collated batch."""

    inputs: torch.Tensor  # (B, T) ids or (B, T, D) features
    lengths: torch.Tensor  # (B,) int64
    targets: torch.Tensor | None = None  # (B,) labels, or (B, T) per-step targets


def collate_padded(
    batch: Sequence[tuple[object, object]] | Sequence[object],
    pad_value: float = 0,
    target_pad: int = -100,
) -> PaddedBatch:
    """Collate ``(sequence, target)`` pairs, or bare sequences, into a :class:`PaddedBatch`.

    A target that is a sequence (tags) is padded with ``target_pad`` (ignored by
    ``cross_entropy``); a scalar target (a class) is stacked into (B,).
    """
    if batch and isinstance(batch[0], tuple):
        sequences = [item[0] for item in batch]  # type: ignore[index]
        targets = [item[1] for item in batch]  # type: ignore[index]
    else:
        sequences, targets = list(batch), None
    inputs, lengths = pad_sequences(sequences, pad_value)  # type: ignore[arg-type]
    if targets is None:
        return PaddedBatch(inputs, lengths)
    first = targets[0]
    if (isinstance(first, torch.Tensor) and first.dim() > 0) or isinstance(first, list | tuple):
        stacked, _ = pad_sequences(targets, target_pad)  # type: ignore[arg-type]
    else:
        stacked = torch.as_tensor(targets)  # (B,)
    return PaddedBatch(inputs, lengths, stacked)


def batchify_stream(ids: torch.Tensor | Sequence[int], batch_size: int) -> torch.Tensor:
    """Lay a corpus out as B parallel streams for truncated BPTT.

    The corpus of N ids is cut into B contiguous pieces of ``N // B`` ids (the last
    ``N % B`` dropped); row b continues where row b ends in the previous window, so the
    state carried across windows stays meaningful.

    Example: ids 0..9, B = 2 -> ``[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]``.

    Returns:
        (B, N // B) tensor.
    """
    ids = torch.as_tensor(ids)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: expected at least 1")
    per_stream = ids.shape[0] // batch_size
    if per_stream < 2:
        raise ValueError(
            f"corpus of {ids.shape[0]} ids is too short for {batch_size} streams of at least 2"
        )
    return ids[: per_stream * batch_size].reshape(batch_size, per_stream)  # (B, N // B)


def bptt_windows(streams: torch.Tensor, bptt: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(inputs, targets)`` windows of (B, T<=bptt) over streams (B, L).

    Targets are the inputs shifted by one step, so windows cover L - 1 positions.
    """
    if bptt < 1:
        raise ValueError(f"bptt={bptt}: expected at least 1")
    for start in range(0, streams.shape[1] - 1, bptt):
        end = min(start + bptt, streams.shape[1] - 1)
        yield streams[:, start:end], streams[:, start + 1 : end + 1]  # (B, T), (B, T)
