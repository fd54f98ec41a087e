"""Padded inference in the packed layout (`rnnkit.kernels.packed`): only the valid positions
are projected, stepped and written. Pinned against the masked kernels (float64 to 1e-10),
each sequence run alone (padded equal to unpadded), and torch.nn through
pack_padded_sequence (float32 to 1e-5); the layout itself against brute force."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit as rk
from _packed_helpers import KINDS, LENGTHS, H, I, count_calls
from _packed_helpers import flat as _flat
from _packed_helpers import masked as _masked
from rnnkit.kernels import ext, packed

pytestmark = pytest.mark.skipif(not ext.available(), reason="compiled kernels not built")


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, False), (1, True), (2, True)])
@pytest.mark.parametrize("batch_first", [False, True])
def test_packed_equals_masked_kernels_float64(
    kind, layers, bidirectional, batch_first, monkeypatch
):
    torch.manual_seed(0)
    layer = KINDS[kind](num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    layer = layer.double().eval()
    steps = 11  # longer than every length: the output's last steps are all padding
    shape = (len(LENGTHS), steps, I) if batch_first else (steps, len(LENGTHS), I)
    x = torch.randn(shape, dtype=torch.float64)
    hidden = layers * (2 if bidirectional else 1)
    state = tuple(
        torch.randn(hidden, len(LENGTHS), H, dtype=torch.float64)
        for _ in range(2 if kind == "lstm" else 1)
    )
    state = state if kind == "lstm" else state[0]
    calls = count_calls(monkeypatch, packed, "run_cell")
    with torch.no_grad():
        out, final = layer(x, state, lengths=LENGTHS)
        ref_out, ref_final = _masked(layer, x, state, lengths=LENGTHS)
    assert calls[0] == hidden  # every layer and direction ran packed
    assert out.shape == ref_out.shape and out.is_contiguous()
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-10)
    for a, b in zip(_flat(final), _flat(ref_final), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    time_axis = 1 if batch_first else 0
    assert out.narrow(time_axis, 9, steps - 9).abs().max() == 0  # padding is zero


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_batch_equals_each_sequence_alone(kind, bidirectional):
    torch.manual_seed(1)
    layer = KINDS[kind](num_layers=2, bidirectional=bidirectional, batch_first=True)
    layer = layer.double().eval()
    x = torch.randn(len(LENGTHS), 9, I, dtype=torch.float64)
    with torch.no_grad():
        out, final = layer(x, lengths=LENGTHS)
        for b, n in enumerate(LENGTHS.tolist()):
            alone, alone_final = layer(x[b : b + 1, :n])
            torch.testing.assert_close(out[b, :n], alone[0], rtol=0, atol=1e-10)
            assert not out[b, n:].any()
            for a, s in zip(_flat(final), _flat(alone_final), strict=True):
                torch.testing.assert_close(a[:, b], s[:, 0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["lstm", "gru", "tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_packed_equals_torch_nn_float32(kind, bias, monkeypatch):
    torch.manual_seed(2)
    kwargs = {"num_layers": 2, "bidirectional": True, "batch_first": True, "bias": bias}
    layer = KINDS[kind](**kwargs).eval()
    if kind in ("tanh", "relu"):
        ref = nn.RNN(I, H, nonlinearity=kind, **kwargs)
    else:
        ref = getattr(nn, kind.upper())(I, H, **kwargs)
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(len(LENGTHS), 9, I)
    calls = count_calls(monkeypatch, packed, "run_cell")
    with torch.no_grad():
        out, final = layer(x, lengths=LENGTHS)
        packed_in = pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False)
        ref_out, ref_final = ref(packed_in)
        ref_out, _ = pad_packed_sequence(ref_out, batch_first=True, total_length=9)
    assert calls[0] == 4
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-5)
    for a, b in zip(_flat(final), _flat(ref_final), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_training_and_dropout_run_packed_too(monkeypatch):
    """Every padded batch of built-in cells runs packed: training (tests/test_packed_training.py
    pins its gradients), train mode with dropout to draw (on the packed rows), inference."""
    calls = count_calls(monkeypatch, packed, "run_cell")
    x = torch.randn(9, len(LENGTHS), I)
    layer = rk.GRU(I, H, num_layers=2, dropout=0.5)
    layer(x, lengths=LENGTHS)[0].sum().backward()
    assert calls[0] == 2
    with torch.no_grad():
        layer(x, lengths=LENGTHS)
        assert calls[0] == 4
        layer.eval()
        layer(x, lengths=LENGTHS)
    assert calls[0] == 6
    layer(x.requires_grad_(), lengths=LENGTHS)  # eval, but x needs gradients
    assert calls[0] == 8
    layer.half()  # no compiled kernel for float16: the masked loop
    layer(x.detach().half(), lengths=LENGTHS)
    assert calls[0] == 8


def test_other_cells_keep_the_masked_loop(monkeypatch):
    calls = count_calls(monkeypatch, packed, "run_cell")
    layer = rk.LSTM(I, H, proj_size=3).eval()  # no kernel for projections
    with torch.no_grad():
        layer(torch.randn(9, len(LENGTHS), I), lengths=LENGTHS)
    assert calls[0] == 0


@pytest.mark.parametrize("lengths", [[4, 1, 4, 2], [1], [5, 5, 3], [2, 7, 7, 1, 3, 6]])
def test_plan_against_brute_force(lengths):
    lengths = torch.tensor(lengths)
    p = packed.plan(lengths)
    order = p.order.tolist()
    assert [lengths[b].item() for b in order] == sorted(lengths.tolist(), reverse=True)
    assert torch.equal(p.order[p.back], torch.arange(len(lengths)))
    # packed positions: time-major over the sorted rows, valid positions only
    positions = [
        (t, j) for t in range(max(lengths)) for j in range(len(lengths)) if t < lengths[order[j]]
    ]
    assert list(zip(p.steps.tolist(), p.sorted_rows.tolist(), strict=True)) == positions
    where = {pos: k for k, pos in enumerate(positions)}
    for t, n in enumerate(p.rows):
        assert n == sum(1 for j in range(len(lengths)) if t < lengths[order[j]])
        for j in range(n):  # a step's valid rows are its first ones
            length = lengths[order[j]].item()
            assert p.forward[t, j] == where[(t, j)]
            assert p.reverse[t, j] == where[(length - 1 - t, j)]
            # training: reverse step t of row j reads flip[where[(t, j)]]; h_{t-1} is kept at
            # row prev[...] of the states (h_0 of the B rows first, then the N positions)
            assert p.flip[where[(t, j)]] == where[(length - 1 - t, j)]
            assert p.prev[where[(t, j)]] == (j if t == 0 else len(lengths) + where[(t - 1, j)])
    assert sorted(p.flip.tolist()) == list(range(p.size))
    assert torch.equal(p.flip[p.flip], torch.arange(p.size))  # its own inverse


def test_training_takes_the_packed_positions_in_step_order_only():
    ops = ext.ops()
    p = packed.plan(torch.tensor([2, 1, 3]))
    w, h0 = torch.randn(3 * H, H), torch.zeros(3, H)

    def train(xp, index):
        return ops.gru_forward(xp, h0, w, None, None, None, 0, p.rows, True, index)

    assert train(torch.randn(6, 3 * H), p.forward)[0].shape == (6, H)
    with pytest.raises(RuntimeError, match="training takes the packed positions in step order"):
        train(torch.randn(6, 3 * H), p.reverse)  # the reverse direction is permuted first
    with pytest.raises(RuntimeError, match="xp must have sum"):
        train(torch.randn(5, 3 * H), p.forward)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_packed_sequence_input_runs_in_its_own_layout(kind, enforce_sorted, monkeypatch):
    torch.manual_seed(3)
    layer = KINDS[kind](num_layers=2, bidirectional=True).double().eval()
    lengths = LENGTHS.sort(descending=True).values if enforce_sorted else LENGTHS
    x = torch.randn(9, len(lengths), I, dtype=torch.float64)
    seq = pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
    calls = count_calls(monkeypatch, packed, "run_cell")
    with torch.no_grad():
        out, final = layer(seq)
        ref_out, ref_final = _masked(layer, x, lengths=lengths)
    assert calls[0] == 4 and torch.equal(out.batch_sizes, seq.batch_sizes)
    padded, out_lengths = pad_packed_sequence(out, total_length=9)
    assert torch.equal(out_lengths, lengths)
    torch.testing.assert_close(padded, ref_out, rtol=0, atol=1e-10)
    for a, b in zip(_flat(final), _flat(ref_final), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_from_packed_keeps_the_sequence_order_of_ties():
    lengths = torch.tensor([2, 3, 2, 3, 1])
    seq = pack_padded_sequence(torch.randn(3, 5, 1), lengths, enforce_sorted=False)
    p = packed.from_packed(seq.batch_sizes, seq.sorted_indices)
    assert torch.equal(p.order, seq.sorted_indices)
    assert p.rows == seq.batch_sizes.tolist()


@pytest.mark.parametrize("kind", ["gru", "tanh"])
def test_auto_runs_a_packed_sequence_through_the_kernels(kind, monkeypatch):
    """GRU and Elman layers take the compiled kernels under ``auto``, PackedSequence or not."""
    torch.manual_seed(4)
    layer = KINDS[kind]().eval()
    layer.backend = "auto"
    reference = KINDS[kind]()
    reference.backend = "torch"
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(9, len(LENGTHS), I)
    seq = pack_padded_sequence(x, LENGTHS, enforce_sorted=False)
    calls = count_calls(monkeypatch, packed, "run_cell")
    with torch.no_grad():
        out, final = layer(seq)
        ref_out, ref_final = reference(seq)
    assert calls[0] == 1
    torch.testing.assert_close(out.data, ref_out.data, rtol=0, atol=1e-5)
    torch.testing.assert_close(final, ref_final, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", list(KINDS))
def test_packed_rows_split_between_threads(kind, monkeypatch):
    """40 rows on two threads: the kernels cut the sorted batch into one block per thread,
    each reading and writing its packed rows through the index."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(5)
        layer = KINDS[kind](num_layers=2, bidirectional=True).double().eval()
        lengths = torch.randint(1, 13, (40,))
        x = torch.randn(12, 40, I, dtype=torch.float64)
        calls = count_calls(monkeypatch, packed, "run_cell")
        with torch.no_grad():
            out, final = layer(x, lengths=lengths)
            ref_out, ref_final = _masked(layer, x, lengths=lengths)
        assert calls[0] == 4
        rows = packed.plan(lengths).rows
        assert len(ext.ops().row_blocks(40, rows, len(rows))) == 3  # two blocks
        torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-10)
        for a, b in zip(_flat(final), _flat(ref_final), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    finally:
        torch.set_num_threads(threads)
