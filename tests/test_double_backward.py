"""Double backward through the sequence kernels (gradient penalties, create_graph=True):
the hand-written first-order backward is replaced by a differentiable recomputation
(rnnkit.kernels.twice), checked with float64 gradgradcheck on the kernels and against
torch's own layer on every layer kind and backend."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import rnnkit as rk
from rnnkit.kernels import elman_sequence, gru_sequence, lstm_sequence
from rnnkit.kernels import twice as twice_module

B, T, H = 3, 4, 3


def _mask():
    lengths = torch.tensor([4, 2, 3])
    return (torch.arange(T).unsqueeze(1) < lengths).unsqueeze(2)  # (T, B, 1), unsorted


def _leaf(*shape, scale=0.5):
    return (torch.randn(*shape, dtype=torch.float64) * scale).requires_grad_()


@pytest.mark.parametrize("masked", [False, True])
def test_kernels_pass_gradgradcheck(masked):
    torch.manual_seed(0)
    mask = _mask() if masked else None
    first = 2 if masked else 0
    xp4, xp3, xp1 = _leaf(T, B, 4 * H), _leaf(T, B, 3 * H), _leaf(T, B, H)
    h0, c0 = _leaf(B, H), _leaf(B, H)
    w4, w3, w1, b3 = _leaf(4 * H, H), _leaf(3 * H, H), _leaf(H, H), _leaf(3 * H)
    cases = [
        (lambda *a: lstm_sequence(*a, mask, first), (xp4, h0, c0, w4)),
        (lambda *a: gru_sequence(*a, mask, first), (xp3, h0, w3, b3)),
        (lambda xp, h, w: elman_sequence(xp, h, w, "tanh", mask, first), (xp1, h0, w1)),
        (lambda xp, h, w: elman_sequence(xp, h, w, "relu", mask, first), (xp1, h0, w1)),
    ]
    for fn, inputs in cases:
        assert gradcheck(fn, inputs)
        assert gradgradcheck(fn, inputs)


def _penalty_grads(layer, x, lengths):
    """d/d(x, params) of ||dL/dx||^2 for L = sum of squared outputs: a gradient penalty."""
    out = layer(x, lengths=lengths)[0]
    (gx,) = torch.autograd.grad(out.pow(2).sum(), x, create_graph=True)
    return torch.autograd.grad(gx.pow(2).sum(), [x, *layer.parameters()])


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("backend", ["auto", "loop"])
@pytest.mark.parametrize("padded", [False, True])
def test_gradient_penalty_equals_torchs_layer(kind, backend, padded):
    torch.manual_seed(1)
    kw = dict(num_layers=2, batch_first=True, bidirectional=True)
    layer = getattr(rk, kind)(4, 5, backend=backend, **kw).double()
    ref = getattr(rk, kind)(4, 5, backend="torch", **kw).double()
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(3, 6, 4, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 3, 5]) if padded else None
    got, want = _penalty_grads(layer, x, lengths), _penalty_grads(ref, x, lengths)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-10)


def test_first_order_backward_stays_hand_written(monkeypatch):
    """Only create_graph=True takes the recomputation."""
    calls = []
    real = twice_module.double_backward

    def spy(*args, **kw):
        calls.append(args[0])
        return real(*args, **kw)

    for module in ("lstm", "gru", "elman"):
        monkeypatch.setattr(f"rnnkit.kernels.{module}.double_backward", spy)
    layer = rk.GRU(4, 5, backend="loop", batch_first=True).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    layer(x)[0].sum().backward()
    assert calls == []
    (gx,) = torch.autograd.grad(layer(x)[0].sum(), x, create_graph=True)
    gx.sum().backward()
    assert calls == ["gru"]
