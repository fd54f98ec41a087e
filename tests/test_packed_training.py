"""Padded training in the packed layout (`rnnkit.kernels.packed`): the kernels keep only the
valid positions for backward and walk only them. Pinned against the masked kernels (the
path before; float64 to 1e-10: outputs, final states and every gradient), against each
sequence run alone, against torch.nn through pack_padded_sequence (float32 to 1e-5), with
two threads, for double backward and for a PackedSequence input; and it keeps less."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit as rk
from _packed_helpers import KINDS, LENGTHS, H, I, count_calls
from _packed_helpers import flat as _flat
from _packed_helpers import masked as _masked
from rnnkit.kernels import ext, packed

pytestmark = pytest.mark.skipif(not ext.available(), reason="compiled kernels not built")


def _inputs(kind, layers, bidirectional, batch_first, steps=11, batch=None, dtype=torch.float64):
    lengths = LENGTHS if batch is None else torch.randint(1, steps + 1, (batch,))
    batch = len(lengths)
    shape = (batch, steps, I) if batch_first else (steps, batch, I)
    x = torch.randn(shape, dtype=dtype, requires_grad=True)
    hidden = layers * (2 if bidirectional else 1)
    parts = [
        torch.randn(hidden, batch, H, dtype=dtype, requires_grad=True)
        for _ in range(2 if kind == "lstm" else 1)
    ]
    return x, parts, lengths


def _grads(layer, x, parts, lengths, masked: bool, weights):
    """Outputs, final states and the gradients of a weighted sum of both for x, the initial
    state and every parameter."""
    state = tuple(parts) if len(parts) > 1 else parts[0]
    run = _masked if masked else (lambda m, *a, **k: m(*a, **k))
    out, final = run(layer, x, state, lengths=lengths)
    finals = zip(_flat(final), weights[1:], strict=True)
    loss = (out * weights[0]).sum() + sum((f * w).sum() for f, w in finals)
    inputs = [x, *parts, *layer.parameters()]
    return [out, *_flat(final), *torch.autograd.grad(loss, inputs)]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, False), (1, True), (2, True)])
@pytest.mark.parametrize("batch_first", [False, True])
def test_packed_training_equals_masked_kernels_float64(
    kind, layers, bidirectional, batch_first, monkeypatch
):
    torch.manual_seed(0)
    layer = KINDS[kind](num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    layer = layer.double().train()
    x, parts, lengths = _inputs(kind, layers, bidirectional, batch_first)
    out_shape = (*x.shape[:2], H * (2 if bidirectional else 1))
    weights = [torch.randn(out_shape, dtype=torch.float64)] + [torch.randn_like(p) for p in parts]
    calls = count_calls(monkeypatch, packed, "_train_cell")
    got = _grads(layer, x, parts, lengths, False, weights)
    assert calls[0] == layers * (2 if bidirectional else 1)  # every cell ran packed, trained
    want = _grads(layer, x, parts, lengths, True, weights)
    assert calls[0] == layers * (2 if bidirectional else 1)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["lstm", "gru", "tanh"])
def test_packed_training_equals_each_sequence_alone(kind):
    torch.manual_seed(1)
    layer = KINDS[kind](num_layers=2, bidirectional=True).double()
    x, _, lengths = _inputs(kind, 2, True, False)
    out, _ = layer(x, lengths=lengths)
    out.pow(2).sum().backward()
    batch_grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    alone = []
    for b, n in enumerate(lengths.tolist()):
        xb = x.detach()[:n, b : b + 1]
        ob, _ = layer(xb)
        alone.append(ob)
        ob.pow(2).sum().backward()
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[:n, b : b + 1], alone[b], rtol=0, atol=1e-10)
        assert out[n:, b].abs().max() == 0 if n < x.shape[0] else True
    for p, g in zip(layer.parameters(), batch_grads, strict=True):
        torch.testing.assert_close(g, p.grad, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["lstm", "gru", "tanh"])
def test_packed_training_float32_equals_torch_nn_packed(kind):
    torch.manual_seed(2)
    ours = KINDS[kind](num_layers=2, bidirectional=True)
    ref = {"lstm": nn.LSTM, "gru": nn.GRU, "tanh": nn.RNN}[kind](I, H, 2, bidirectional=True)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(11, len(LENGTHS), I)
    out, _ = ours(x, lengths=LENGTHS)
    ref_out, _ = ref(pack_padded_sequence(x, LENGTHS, enforce_sorted=False))
    ref_out, _ = nn.utils.rnn.pad_packed_sequence(ref_out, total_length=11)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-5)
    out.pow(2).sum().backward()
    ref_out.pow(2).sum().backward()
    for (name, p), q in zip(ours.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("kind", ["lstm", "gru", "relu"])
def test_packed_training_two_threads_split_rows(kind, monkeypatch):
    """40 rows: two blocks of rows, one a thread (the kernels' row split), in both passes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(3)
        layer = KINDS[kind](bidirectional=True).double()
        x, parts, lengths = _inputs(kind, 1, True, False, steps=9, batch=40)
        weights = [torch.randn(9, 40, 2 * H, dtype=torch.float64)] + [
            torch.randn_like(p) for p in parts
        ]
        calls = count_calls(monkeypatch, packed, "_train_cell")
        got = _grads(layer, x, parts, lengths, False, weights)
        assert calls[0] == 2
        want = _grads(layer, x, parts, lengths, True, weights)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", list(KINDS))
def test_packed_training_double_backward_equals_masked(kind):
    """A gradient penalty (create_graph=True) through the packed kernels: the second-order
    gradients equal the masked kernels' (both recompute the recurrence with autograd)."""
    torch.manual_seed(4)
    layer = KINDS[kind](bidirectional=True).double()
    x, parts, lengths = _inputs(kind, 1, True, False)
    state = tuple(parts) if len(parts) > 1 else parts[0]

    def penalty(masked: bool):
        run = _masked if masked else (lambda m, *a, **k: m(*a, **k))
        out, _ = run(layer, x, state, lengths=lengths)
        params = list(layer.parameters())
        grads = torch.autograd.grad(out.tanh().sum(), [x, *params], create_graph=True)
        return torch.autograd.grad(sum(g.pow(2).sum() for g in grads), [x, *parts, *params])

    for a, b in zip(penalty(False), penalty(True), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_packed_training_gradcheck_small():
    torch.manual_seed(5)
    layer = rk.GRU(2, 3, backend="loop", bidirectional=True).double()
    x = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([2, 4, 1])

    def f(x, *params):
        with torch.nn.utils.stateless._reparametrize_module(
            layer, dict(zip(dict(layer.named_parameters()), params, strict=True))
        ):
            return layer(x, lengths=lengths)[0]

    params = tuple(p.detach().clone().requires_grad_() for p in layer.parameters())
    assert torch.autograd.gradcheck(f, (x, *params))
    assert torch.autograd.gradgradcheck(f, (x, *params))


def test_packed_sequence_input_trains_packed(monkeypatch):
    torch.manual_seed(6)
    layer = rk.LSTM(I, H, backend="loop", num_layers=2).double()
    x = torch.randn(11, len(LENGTHS), I, dtype=torch.float64)
    seq = pack_padded_sequence(x, LENGTHS, enforce_sorted=False)
    seq.data.requires_grad_(True)
    calls = count_calls(monkeypatch, packed, "_train_cell")
    out, (h, c) = layer(seq)
    assert calls[0] == 2
    (out.data.pow(2).sum() + h.sum() + c.sum()).backward()
    got = [seq.data.grad.clone(), *(p.grad.clone() for p in layer.parameters())]
    layer.zero_grad()
    seq.data.grad = None
    ref = layer.__class__(I, H, backend="loop", num_layers=2).double()
    ref.load_state_dict(layer.state_dict())
    ref._runs_packed = lambda x: False
    out2, (h2, c2) = ref(seq)
    torch.testing.assert_close(out.data, out2.data, rtol=0, atol=1e-10)
    (out2.data.pow(2).sum() + h2.sum() + c2.sum()).backward()
    want = [seq.data.grad, *(p.grad for p in ref.parameters())]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_dropout_between_layers_draws_on_packed_rows(monkeypatch):
    torch.manual_seed(7)
    layer = rk.GRU(I, H, num_layers=2, dropout=0.5, backend="loop").train()
    x = torch.randn(11, len(LENGTHS), I)
    calls = count_calls(monkeypatch, packed, "_train_cell")
    out, _ = layer(x, lengths=LENGTHS)
    assert calls[0] == 2
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
    time = torch.arange(11).unsqueeze(1)
    assert out[time >= LENGTHS].abs().max() == 0  # padding stays zero


def _saved_bytes(layer, x, lengths, masked: bool) -> int:
    """Bytes of the tensors autograd keeps for backward (each storage once)."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _masked(layer, x, lengths=lengths) if masked else layer(x, lengths=lengths)
    return sum(seen.values())


@pytest.mark.parametrize("kind", ["lstm", "gru", "tanh"])
def test_packed_training_keeps_only_the_valid_positions(kind):
    """Half the positions are padding: the packed kernels keep about half of what the masked
    ones keep (the input, which autograd keeps either way, is not counted twice)."""
    torch.manual_seed(8)
    cls = {"lstm": rk.LSTM, "gru": rk.GRU, "tanh": rk.RNN}[kind]
    layer = cls(I, 64, backend="loop")  # states larger than the inputs, as in practice
    steps, batch = 40, 16
    lengths = torch.tensor([steps if b % 2 == 0 else steps // 8 for b in range(batch)])
    x = torch.randn(steps, batch, I, requires_grad=True)
    kept, before = _saved_bytes(layer, x, lengths, False), _saved_bytes(layer, x, lengths, True)
    assert kept < 0.75 * before, (kept, before)
