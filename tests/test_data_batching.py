"""Bucketed batching, padding collate, and stream layout for truncated BPTT."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.batching import (
    BucketBatchSampler,
    batchify_stream,
    bptt_windows,
    collate_padded,
    compare_padding,
    pad_sequences,
    padding_ratio,
    random_batches,
)


@settings(max_examples=50, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 50), min_size=1, max_size=200),
    batch_size=st.integers(1, 17),
    shuffle=st.booleans(),
    drop_last=st.booleans(),
)
def test_sampler_yields_each_index_once(
    lengths: list[int], batch_size: int, shuffle: bool, drop_last: bool
) -> None:
    sampler = BucketBatchSampler(
        lengths, batch_size, pool_batches=3, shuffle=shuffle, drop_last=drop_last
    )
    batches = list(sampler)
    seen = [i for b in batches for i in b]
    assert len(seen) == len(set(seen)) and len(batches) == len(sampler)
    assert all(len(b) <= batch_size for b in batches)
    if not drop_last:
        assert sorted(seen) == list(range(len(lengths)))
    else:
        assert all(len(b) == batch_size for b in batches)


def test_bucketing_pads_far_less_than_random_batching() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(5, 200) for _ in range(5000)]
    ratios = compare_padding(lengths, batch_size=32, seed=0)
    assert ratios["random"] > 0.3  # random batches of lengths 5..200 are half padding
    assert ratios["bucketed"] < 0.05
    assert ratios["bucketed"] < ratios["random"] / 10


def test_padding_ratio_by_hand() -> None:
    # slots 2*3 + 2*2, padding 2 + 0
    assert padding_ratio([1, 3, 2, 2], [[0, 1], [2, 3]]) == pytest.approx(2 / 10)
    assert padding_ratio([4], random_batches(1, 8)) == 0.0


def test_epochs_reshuffle_but_repeat_with_seed() -> None:
    lengths = list(range(1, 101))
    a, b = BucketBatchSampler(lengths, 10, seed=1), BucketBatchSampler(lengths, 10, seed=1)
    first = a.batches()
    assert first == b.batches()
    a.set_epoch(1)
    assert a.batches() != first


def test_collate_padded_ids_and_classes() -> None:
    batch = collate_padded([([5, 6, 7], 1), ([8], 0)])
    assert batch.inputs.tolist() == [[5, 6, 7], [8, 0, 0]]  # (B, T)
    assert batch.lengths.tolist() == [3, 1] and batch.lengths.dtype == torch.long
    assert batch.targets.tolist() == [1, 0]


def test_collate_padded_features_and_tags() -> None:
    seqs = [torch.ones(2, 3), torch.ones(4, 3)]  # (T_i, D)
    tags = [torch.tensor([1, 2]), torch.tensor([3, 4, 5, 6])]
    batch = collate_padded(list(zip(seqs, tags, strict=True)))
    assert batch.inputs.shape == (2, 4, 3) and batch.inputs[0, 2:].sum() == 0
    assert batch.targets.tolist() == [[1, 2, -100, -100], [3, 4, 5, 6]]
    padded, lengths = pad_sequences([[1], [2, 3]], pad_value=-1)
    assert padded.tolist() == [[1, -1], [2, 3]] and lengths.tolist() == [1, 2]


def test_stream_batchifier_and_windows() -> None:
    streams = batchify_stream(torch.arange(11), batch_size=2)
    assert streams.tolist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]  # (B, N // B)
    windows = list(bptt_windows(streams, bptt=3))
    assert [x.tolist() for x, _ in windows] == [[[0, 1, 2], [5, 6, 7]], [[3], [8]]]
    assert [y.tolist() for _, y in windows] == [[[1, 2, 3], [6, 7, 8]], [[4], [9]]]
    # Each row continues across windows: concatenating the windows gives back the stream.
    joined = torch.cat([x for x, _ in windows], dim=1)
    assert torch.equal(joined, streams[:, :-1])
    with pytest.raises(ValueError, match="too short"):
        batchify_stream(torch.arange(3), batch_size=2)
