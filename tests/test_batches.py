"""The batch family (SequenceBatch, PairBatch) and EpochBatches: validation, rows, shards,
deterministic per-epoch orders, bucketing by length and trimming."""

from __future__ import annotations

import pytest
import torch

from rnnkit.data.batches import EpochBatches, PairBatch, SequenceBatch, batch_order, trimmed
from rnnkit.data.batching import padding_ratio


def numbered(lengths: list[int] | torch.Tensor) -> SequenceBatch:
    """Sequences whose every input step holds the row's index (to see which rows a batch
    holds), padded to the longest, a target at every step within the length."""
    lengths = torch.as_tensor(lengths, dtype=torch.int64)
    n, t = len(lengths), int(lengths.max())
    inputs = torch.arange(n).unsqueeze(1).expand(n, t).clone()  # (N, T)
    mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # (N, T)
    return SequenceBatch(inputs, inputs * mask, mask, lengths)


def skewed(n: int = 600, seed: int = 0) -> torch.Tensor:
    """Lengths 1..200, most short, a long tail (as sentences and reviews are)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.empty(n).exponential_(generator=gen) * 20).long().clamp(0, 199) + 1


def rows_of(batches) -> list[list[int]]:
    return [b.inputs[:, 0].tolist() for b in batches]


def pairs(n: int = 5) -> PairBatch:
    source = torch.arange(n * 6).reshape(n, 6)  # (B, S)
    target = torch.arange(n * 4).reshape(n, 4) + 100  # (B, U)
    return PairBatch(
        source, torch.tensor([6, 2, 4, 2, 5][:n]), target, torch.tensor([1, 4, 2, 3, 0][:n])
    )


# ---- PairBatch ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"source_lengths": torch.ones(3, dtype=torch.long)},
            "source_lengths must have shape (4,)",
        ),
        ({"target_lengths": torch.ones(4, 1, dtype=torch.long)}, "target_lengths must have shape"),
        ({"target": torch.ones(4, dtype=torch.long)}, "target must be (B, U) with B = 4, got (4,)"),
        ({"target": torch.ones(3, 2, dtype=torch.long)}, "with B = 4, got (3, 2)"),
    ],
)
def test_pair_batch_validation_names_the_field(fields, message):
    ok = {
        "source": torch.zeros(4, 7, dtype=torch.long),
        "source_lengths": torch.full((4,), 7),
        "target": torch.zeros(4, 3, dtype=torch.long),
        "target_lengths": torch.full((4,), 3),
    }
    PairBatch(**ok)
    with pytest.raises(ValueError) as e:
        PairBatch(**{**ok, **fields})
    assert message in str(e.value)


def test_pair_batch_rows_shard_to_and_targets():
    b = pairs()
    assert b.size == 5 and b.n_targets == 1 + 4 + 2 + 3 + 0
    picked = b.rows(torch.tensor([4, 0]))
    assert isinstance(picked, PairBatch)
    assert picked.source.tolist() == [b.source[4].tolist(), b.source[0].tolist()]
    assert picked.target[:, 0].tolist() == [116, 100]
    assert picked.source_lengths.tolist() == [5, 6] and picked.target_lengths.tolist() == [0, 1]
    assert b.rows(slice(1, 3)).target_lengths.tolist() == [4, 2]
    assert b.shard(0, 1) is b
    shards = [b.shard(rank, 2) for rank in range(2)]
    assert [s.size for s in shards] == [3, 2]  # uneven shares differ by one row at most
    for name in ("source", "source_lengths", "target", "target_lengths"):
        joined = torch.cat([getattr(s, name) for s in shards])
        assert torch.equal(joined, getattr(b, name))
    assert sum(s.n_targets for s in shards) == b.n_targets
    with pytest.raises(ValueError, match="batch of 5 rows cannot feed 6 processes"):
        b.shard(0, 6)
    moved = b.to("cpu")
    assert isinstance(moved, PairBatch) and torch.equal(moved.target, b.target)
    # bucketing sorts by the source's length, ties broken by the target's
    assert torch.argsort(b.sort_lengths, stable=True).tolist() == [3, 1, 2, 4, 0]


def test_pair_batch_refuses_truncated_bptt_naming_the_setting():
    with pytest.raises(ValueError) as e:
        pairs().time_chunks(5)
    assert "trainer.tbptt=5" in str(e.value) and "full BPTT (tbptt = 0)" in str(e.value)


def test_pair_batches_are_served_whole_and_bucketed():
    b = pairs()
    served = list(EpochBatches(b, 2, seed=3, drop_last=False, bucket=True).epoch(0))
    assert all(isinstance(x, PairBatch) and x.source.shape[1] == 6 for x in served)
    got = sorted(int(r) for x in served for r in x.source[:, 0] // 6)
    assert got == [0, 1, 2, 3, 4]
    # one pool: each full batch holds neighbours in (source, target) length order
    full = [x.sort_lengths.tolist() for x in served if x.size == 2]
    assert all(a <= c for a, c in full)


# ---- SequenceBatch ------------------------------------------------------------------------


def test_sequence_batch_validation_and_time_chunks():
    x, m = torch.zeros(2, 5, 3), torch.ones(2, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"mask must be \(B, T\)"):
        SequenceBatch(x, torch.zeros(2, 5), torch.ones(2, 5, 1, dtype=torch.bool), torch.ones(2))
    with pytest.raises(ValueError, match=r"must start with mask's \(B, T\) = \(2, 5\)"):
        SequenceBatch(x, torch.zeros(2, 4), m, torch.full((2,), 5))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        SequenceBatch(x, torch.zeros(2, 5), m, torch.full((3,), 5))
    b = numbered([5, 2])
    chunks = list(b.time_chunks(2))
    assert [c.lengths.tolist() for c in chunks] == [[2, 2], [2, 0], [1, 0]]
    assert sum(c.n_targets for c in chunks) == b.n_targets == 7
    with pytest.raises(ValueError, match="k must be >= 1"):
        list(b.time_chunks(0))


# ---- EpochBatches -------------------------------------------------------------------------


@pytest.mark.parametrize("bucket", [False, True])
def test_same_batches_for_the_same_seed_and_epoch_others_differ(bucket):
    data = numbered(skewed(200))
    a = EpochBatches(data, 8, seed=4, bucket=bucket, pool=3)
    b = EpochBatches(data, 8, seed=4, bucket=bucket, pool=3)
    first = rows_of(a.epoch(2))
    assert first == rows_of(b.epoch(2)) == rows_of(a.epoch(2))
    assert rows_of(a.epoch(3)) != first
    assert rows_of(EpochBatches(data, 8, seed=5, bucket=bucket, pool=3).epoch(2)) != first
    assert rows_of(a.epoch(2, start=7)) == first[7:]  # a resumed epoch goes on where it was
    for x, y in zip(a.epoch(2), b.epoch(2), strict=True):
        for name in ("inputs", "targets", "mask", "lengths"):
            assert torch.equal(getattr(x, name), getattr(y, name))


@pytest.mark.parametrize("n", [200, 203])
def test_bucketed_epochs_cover_every_row_once(n):
    data = numbered(skewed(n))
    batches = EpochBatches(data, 8, seed=1, drop_last=False, bucket=True, pool=4)
    for epoch in range(3):
        rows = [r for b in rows_of(batches.epoch(epoch)) for r in b]
        assert sorted(rows) == list(range(n))
    assert len(batches) == -(-n // 8)


def test_bucketed_len_is_the_same_every_epoch_with_drop_last():
    data = numbered(skewed(203))
    batches = EpochBatches(data, 8, seed=1, bucket=True, pool=4)
    assert len(batches) == 203 // 8
    for epoch in range(4):
        served = rows_of(batches.epoch(epoch))
        assert len(served) == len(batches)
        assert all(len(b) == 8 for b in served)
        flat = [r for b in served for r in b]
        assert len(set(flat)) == len(flat)


def _padding(batches) -> float:
    slots = sum(b.size * b.steps for b in batches)
    return sum(b.size * b.steps - int(b.lengths.sum()) for b in batches) / slots


def test_bucketing_pads_less_on_skewed_lengths():
    lengths = skewed(1000)
    data = numbered(lengths)
    plain = _padding(list(EpochBatches(data, 16, seed=0, drop_last=False).epoch(0)))
    bucketed = _padding(list(EpochBatches(data, 16, seed=0, drop_last=False, bucket=True).epoch(0)))
    assert plain > 0.4  # random batches of a long-tailed length mix are mostly padding
    assert bucketed < plain / 4
    # the same figures from the index lists, as rnnkit.data.batching measures them
    for bucket, served in ((False, plain), (True, bucketed)):
        gen = torch.Generator().manual_seed(0)
        order = batch_order(lengths, 16, True, bucket, gen)
        assert padding_ratio(lengths.tolist(), [b.tolist() for b in order]) == pytest.approx(served)


@pytest.mark.parametrize("bucket", [False, True])
def test_served_batches_are_trimmed_to_their_longest_sequence(bucket):
    data = numbered(skewed(300))
    for b in EpochBatches(data, 10, seed=2, bucket=bucket, pool=2).epoch(0):
        assert b.steps == int(b.lengths.max())
        rows = b.inputs[:, 0]
        assert torch.equal(b.mask, data.mask[rows, : b.steps])
        assert torch.equal(b.targets, data.targets[rows, : b.steps])
        assert not data.mask[rows, b.steps :].any()  # nothing that counts was cut


def test_trimmed_keeps_a_batch_that_marks_targets_past_its_lengths():
    b = numbered([2, 3, 6]).rows(slice(0, 2))  # T = 6, lengths 2 and 3
    cut = trimmed(b)
    assert cut.steps == 3 and cut.n_targets == b.n_targets
    mask = b.mask.clone()
    mask[0, 5] = True  # a target past every length (a label at a fixed step, say)
    kept = SequenceBatch(b.inputs, b.targets, mask, b.lengths)
    assert trimmed(kept) is kept


@pytest.mark.parametrize(("seed", "epoch"), [(0, 0), (0, 3), (7, 1)])
def test_unbucketed_order_is_the_old_permutation(seed, epoch):
    n, size = 103, 10
    data = numbered(skewed(n))
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    old = [b.tolist() for b in torch.randperm(n, generator=gen).split(size)]
    got = rows_of(EpochBatches(data, size, seed=seed, bucket=False).epoch(epoch))
    assert got == old[: n // size]  # the short last batch dropped
    whole = EpochBatches(data, size, seed=seed, drop_last=False, bucket=False).epoch(epoch)
    assert rows_of(whole) == old
    in_order = EpochBatches(data, size, shuffle=False, drop_last=False).epoch(epoch)
    assert rows_of(in_order) == [b.tolist() for b in torch.arange(n).split(size)]


def test_epoch_batches_refuse_bad_sizes():
    data = numbered([3, 2, 1])
    with pytest.raises(ValueError, match="batch_size 4 exceeds the 3 sequences"):
        EpochBatches(data, 4)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        EpochBatches(data, 0)
    with pytest.raises(ValueError, match="pool must be >= 1"):
        EpochBatches(data, 1, pool=0)
    assert len(EpochBatches(data, 4, drop_last=False)) == 1
