"""LSTM projections (``proj_size``) equal ``torch.nn.LSTM(proj_size=...)``: outputs, both
final states and every gradient, over depth x direction x layout x lengths x bias x
backend, in float64; packed input, unbatched input, ``step`` and ``trace`` too."""

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit as rk

I, H, P, B, T = 3, 5, 2, 4, 6


def _pair(backend, **kw):
    ours = rk.LSTM(I, H, proj_size=P, backend=backend, dtype=torch.float64, **kw)
    ref = nn.LSTM(I, H, proj_size=P, dtype=torch.float64, **kw)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


CASES = [
    (layers, bidirectional, lengths, bias, backend)
    for layers, bidirectional, lengths, bias, backend in itertools.product(
        (1, 3), (False, True), (False, True), (True, False), ("auto", "loop", "torch")
    )
]


@pytest.mark.parametrize(("layers", "bidirectional", "with_lengths", "bias", "backend"), CASES)
def test_projection_equals_torch_nn(layers, bidirectional, with_lengths, bias, backend):
    torch.manual_seed(0)
    batch_first = layers == 3  # both layouts, without doubling the grid
    kw = dict(num_layers=layers, bidirectional=bidirectional, bias=bias, batch_first=batch_first)
    ours, ref = _pair(backend, **kw)
    d = 2 if bidirectional else 1
    x = torch.randn(*((B, T) if batch_first else (T, B)), I, dtype=torch.float64)
    x.requires_grad_()
    h0 = torch.randn(layers * d, B, P, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(layers * d, B, H, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([T, 1, 4, 3]) if with_lengths else None

    out, (h, c) = ours(x, (h0, c0), lengths=lengths)
    if lengths is None:
        want, (h_want, c_want) = ref(x, (h0, c0))
    else:
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
        want, (h_want, c_want) = ref(packed, (h0, c0))
        want, _ = pad_packed_sequence(want, batch_first=batch_first, total_length=T)
    assert out.shape[-1] == d * P and h.shape == (layers * d, B, P) and c.shape == c0.shape
    for got, expected in ((out, want), (h, h_want), (c, c_want)):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)

    weights = [torch.randn_like(t) for t in (out, h, c)]

    def grads(layer, results):
        loss = sum((r * w).sum() for r, w in zip(results, weights, strict=True))
        names, params = zip(*layer.named_parameters(), strict=True)
        return names, torch.autograd.grad(loss, [x, h0, c0, *params])

    names, got = grads(ours, (out, h, c))
    ref_names, expected = grads(ref, (want, h_want, c_want))
    assert names == ref_names and "weight_hr_l0" in names
    for name, g, e in zip(("x", "h0", "c0", *names), got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-11, msg=name)


@pytest.mark.parametrize("backend", ["auto", "loop", "torch"])
def test_projection_packed_and_unbatched(backend):
    torch.manual_seed(1)
    ours, ref = _pair(backend, num_layers=2, bidirectional=True)
    x = torch.randn(T, B, I, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor([2, T, 5, 1]), enforce_sorted=False)
    (out, (h, c)), (want, (h_want, c_want)) = ours(packed), ref(packed)
    torch.testing.assert_close(out.data, want.data, rtol=0, atol=1e-12)
    torch.testing.assert_close((h, c), (h_want, c_want), rtol=0, atol=1e-12)
    single = (torch.randn(4, P, dtype=torch.float64), torch.randn(4, H, dtype=torch.float64))
    got, want = ours(x[:, 0], single), ref(x[:, 0], single)
    assert got[0].shape == (T, 2 * P) and got[1][0].shape == (4, P)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_projection_step_and_trace_equal_forward():
    torch.manual_seed(2)
    layer = rk.LSTM(I, H, num_layers=2, proj_size=P, batch_first=True).double()
    x = torch.randn(B, T, I, dtype=torch.float64)
    out, (h, c) = layer(x)
    state, outs = None, []
    for t in range(T):
        y, state = layer.step(x[:, t], state)
        outs.append(y)
    torch.testing.assert_close(torch.stack(outs, 1), out, rtol=0, atol=1e-12)
    torch.testing.assert_close(state, (h, c), rtol=0, atol=1e-12)
    trace = layer.trace(x)
    torch.testing.assert_close(trace.output, out, rtol=0, atol=1e-12)
    assert trace.hidden[1][-1].shape == (B, P) and list(trace.gates[0][0]) == list("ifgo")


def test_projected_cell_and_auto_backend():
    cell = rk.LSTMCell(I, H, proj_size=P)
    assert [n for n, _ in cell.named_parameters()][-1] == "weight_hr"
    assert cell.weight_hh.shape == (4 * H, P) and cell.weight_hr.shape == (P, H)
    h, (h1, c1) = cell(torch.randn(B, I))
    assert h.shape == h1.shape == (B, P) and c1.shape == (B, H)
    assert rk.LSTMCell(**cell.get_config()).proj_size == P
    layer = rk.LSTM(I, H, proj_size=P)
    x, lengths = torch.randn(T, B, I), torch.tensor([T, 2, 3, 1])
    assert layer._use_fused(lengths, x)  # training on a padded batch: torch's kernel
    assert "proj_size=2" in repr(layer) and layer.proj_size == P


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"proj_size": H}, ValueError, r"^proj_size: expected an integer smaller than"),
        ({"proj_size": -1}, ValueError, r"^proj_size: expected an integer >= 0, got -1"),
        ({"proj_size": 1.5}, TypeError, r"^proj_size: expected an integer, got 1.5"),
    ],
)
def test_bad_projection_sizes(kwargs, error, match):
    with pytest.raises(error, match=match):
        rk.LSTM(I, H, **kwargs)
