"""The compiled kernels' direct products for small batches (at most 4 rows a step: a loop
over the weight's rows instead of at::mm, `Product::rows_of_w` in csrc/fused.cpp), pinned
against the at::mm path in float64 (forward, backward, padded, both directions)."""

from __future__ import annotations

import pytest
import torch

import rnnkit as rk
from rnnkit.kernels import ext

pytestmark = pytest.mark.skipif(not ext.available(), reason="compiled kernels not built")

CASES = [
    (1, None),
    (3, [7, 2, 5]),
    (4, [7, 7, 6, 1]),
    (6, [7, 2, 5, 1, 3, 7]),  # more than 4 rows: at::mm either way (the setting is unused)
]


def _run(layer, x, lengths, rows: int):
    ops = ext.ops()
    before = ops.set_direct_max_rows(rows)
    try:
        out, state = layer(x, lengths=lengths)
        state = state if isinstance(state, tuple) else (state,)
        loss = out.square().sum() + sum(s.sin().sum() for s in state)
        grads = torch.autograd.grad(loss, [x, *layer.parameters()])
        with torch.no_grad():
            infer, _ = layer(x, lengths=lengths)
        return [out, *state, *grads, infer]
    finally:
        ops.set_direct_max_rows(before)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("batch,lengths", CASES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_direct_products_equal_mm(kind, batch, lengths, bidirectional):
    torch.manual_seed(0)
    layer = getattr(rk, kind)(5, 6, num_layers=2, bidirectional=bidirectional, backend="loop")
    layer = layer.double()
    x = torch.randn(7, batch, 5, dtype=torch.float64, requires_grad=True)
    lengths = None if lengths is None else torch.tensor(lengths)
    direct, mm = _run(layer, x, lengths, 4), _run(layer, x, lengths, 0)
    for a, b in zip(direct, mm, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_direct_products_equal_torch_nn_float32():
    torch.manual_seed(1)
    ref = torch.nn.GRU(64, 128, batch_first=True)
    layer = rk.GRU(64, 128, batch_first=True, backend="loop")
    layer.load_state_dict(ref.state_dict())
    x = torch.randn(1, 50, 64)
    with torch.no_grad():
        torch.testing.assert_close(layer(x)[0], ref(x)[0], rtol=0, atol=1e-5)


def test_direct_rows_setting_is_checked():
    with pytest.raises(RuntimeError, match="rows: expected >= 0, got -1"):
        ext.ops().set_direct_max_rows(-1)
