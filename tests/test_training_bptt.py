"""Truncated BPTT: chunks, carried detached state, padding, sequences ending inside a chunk."""

from __future__ import annotations

import torch

from rnnkit.data.batches import EpochBatches, SequenceBatch
from rnnkit.models import RecurrentModel, RecurrentModelConfig
from rnnkit.training.bptt import detach_state, merge_results, run_bptt


def _model(cell: str, seed: int = 0) -> RecurrentModel:
    torch.manual_seed(seed)
    return RecurrentModel(RecurrentModelConfig(cell=cell, input_size=3, hidden_size=5))


def _ragged_batch(seed: int = 1) -> SequenceBatch:
    """Lengths 12, 7, 3, 10 padded to 12; a target at every valid step."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([12, 7, 3, 10])
    x = torch.randn(4, 12, 3, generator=gen)
    mask = torch.arange(12).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    x = x * mask.unsqueeze(-1)
    y = torch.randn(4, 12, generator=gen) * mask
    return SequenceBatch(x, y, mask, lengths)


def _grads(model, batch, k):
    model.zero_grad()
    results = run_bptt(model, batch, k, lambda loss, n: (loss * n).backward())
    return [p.grad.clone() for p in model.parameters()], results


def test_time_chunks_clamp_lengths():
    chunks = list(_ragged_batch().time_chunks(5))
    assert [c.steps for c in chunks] == [5, 5, 2]
    assert [c.lengths.tolist() for c in chunks] == [[5, 5, 3, 5], [5, 2, 0, 5], [2, 0, 0, 0]]
    assert sum(c.n_targets for c in chunks) == 12 + 7 + 3 + 10


def test_tbptt_with_k_at_least_T_equals_full_bptt():
    for cell in ("rnn", "lstm", "gru"):
        model, batch = _model(cell), _ragged_batch()
        full, _ = _grads(model, batch, 0)
        for k in (12, 50):
            trunc, results = _grads(model, batch, k)
            assert len(results) == 1
            for a, b in zip(full, trunc, strict=True):
                torch.testing.assert_close(a, b)


def test_carried_state_equals_single_long_forward():
    for cell in ("rnn", "lstm", "gru"):
        model, batch = _model(cell), _ragged_batch()
        y_full, final = model.run(batch)
        state, outs = None, []
        for chunk in batch.time_chunks(4):
            y, state = model.run(chunk, state)
            outs.append(y)
            state = detach_state(state)
        torch.testing.assert_close(torch.cat(outs, dim=1), y_full)
        for a, b in zip(
            final if isinstance(final, tuple) else (final,),
            state if isinstance(state, tuple) else (state,),
            strict=True,
        ):
            torch.testing.assert_close(a, b)  # each sequence's state at its own last step


def test_chunk_losses_recombine_to_full_loss_and_gradients_are_truncated():
    model, batch = _model("lstm"), _ragged_batch()
    full_loss, _ = model.loss(batch)
    full, _ = _grads(model, batch, 0)
    trunc, results = _grads(model, batch, 4)
    merged = merge_results(results)
    assert merged.n_targets == batch.n_targets
    assert abs(merged.loss - float(full_loss.detach())) < 1e-5
    # truncation drops the gradient paths longer than k steps: W_hh's gradient differs
    w_hh = [n for n, _ in model.named_parameters()].index("rnn.weight_hh_l0")
    assert not torch.allclose(full[w_hh], trunc[w_hh], atol=1e-6)


def test_state_is_detached_between_chunks():
    model, batch = _model("gru"), _ragged_batch()
    seen = []

    def update(loss, n):
        seen.append(loss)
        loss.backward()  # a second chunk reaching back into the first would fail here

    run_bptt(model, batch, 4, update)
    assert len(seen) == 3


def test_epoch_batches_deterministic_order_and_resume_offset():
    data = _ragged_batch()
    data = data.rows(torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]))
    batches = EpochBatches(data, batch_size=2, seed=5)
    first = [b.inputs for b in batches.epoch(1)]
    again = [b.inputs for b in batches.epoch(1)]
    tail = [b.inputs for b in batches.epoch(1, start=2)]
    assert len(first) == 4
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(first[2:], tail, strict=True))
    other = [b.inputs for b in batches.epoch(2)]
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_shards_cover_the_batch_unevenly():
    batch = _ragged_batch()
    parts = [batch.shard(r, 3) for r in range(3)]
    assert [p.size for p in parts] == [2, 1, 1]
    torch.testing.assert_close(torch.cat([p.inputs for p in parts]), batch.inputs)
