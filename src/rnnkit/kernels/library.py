r"""The compiled sequence kernels as ``torch.library`` custom ops, for captured graphs.

``torch.compile`` cannot trace into the eager kernels (:mod:`rnnkit.kernels.lstm` and its
siblings): their autograd Functions read tensor values (which rows of a padded batch are
valid, from the mask) and call the C++ ops with a oneDNN-packed weight. Here each kernel is
one opaque op with a fake (meta) implementation that gives its outputs' shapes from its
inputs' shapes, and a registered autograd formula whose backward is another such op, so a
compiled graph (``fullgraph=True``) calls rnnkit's kernels, forward and backward, and
reads nothing at trace time. Everything that depends on values (the valid rows per step, the
first padded step, packing the weight) happens inside the ops, when they run.

The ops, with T steps, B rows, H units, G gates (4 LSTM, 3 GRU, 1 Elman) and ``mask``
(T, B, 1) bool or None (True where valid; padded rows carry their state, output zero)::

    rnnkit::lstm_infer(xp, h0, c0, w, mask)          -> y, h_T, c_T
    rnnkit::lstm_train(xp, h0, c0, w, mask)          -> y, h_T, c_T, hs, cs, gates, tcs
    rnnkit::lstm_grad(dy, dh_T, dc_T, hs, cs, gates, tcs, w, mask) -> dxp, dh_0, dc_0, dW
    rnnkit::gru_infer(xp, h0, w, b, mask)            -> y, h_T
    rnnkit::gru_train(xp, h0, w, b, mask)            -> y, h_T, hs, gates, an
    rnnkit::gru_grad(dy, dh_T, hs, gates, an, w, with_bias, mask) -> dxp, dh_0, dW, db
    rnnkit::elman_infer(xp, h0, w, relu, mask)       -> y, h_T
    rnnkit::elman_train(xp, h0, w, relu, mask)       -> y, h_T, hs
    rnnkit::elman_grad(dy, dh_T, hs, w, relu, mask)  -> dxp, dh_0, dW

``xp`` (T, B, G*H) is the projected input (``W_ih x + b``, as the eager kernels take it), w
W_hh (G*H, H), b the GRU's b_hh (G*H,) or None. The ``*_train`` ops return what the
backward reads (h_0..h_T and the gate activations; see the C++ source): the layer passes
only y and the final state on. The equations are those of the eager kernels' docstrings;
the results equal them to rounding (tests/test_graph_capture.py).

Double backward (``create_graph=True``) is not offered inside a compiled graph (torch's
AOTAutograd does not support it); eager mode keeps it (:mod:`rnnkit.kernels.twice`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels import ext
from rnnkit.kernels.common import StepMasks
from rnnkit.kernels.gru import input_grads

__all__ = ["elman", "gru", "lstm", "usable"]


def usable(*tensors: Tensor | None) -> bool:
    """Whether the ops can run on these tensors: the compiled kernels are available and the
    tensors are CPU float32 or float64 (read from their metadata only, so fake tensors do)."""
    ref = next(t for t in tensors if t is not None)
    if ref.device.type != "cpu" or ref.dtype not in (torch.float32, torch.float64):
        return False
    same = all(t.device == ref.device and t.dtype == ref.dtype for t in tensors if t is not None)
    return same and _available()


@torch.compiler.assume_constant_result
def _available() -> bool:
    """``ext.available()``, run (and the extension built) when a graph is traced, not traced
    into: a constant of the graph."""
    return ext.available()


def _masking(mask: Tensor | None, steps: int, dtype) -> tuple[Tensor | None, int, list[int]]:
    """``(mask (T, B), first_masked, rows)`` as the C++ ops take them, from mask (T, B, 1):
    the steps before the first padded one skip the mask; a batch sorted by decreasing length
    gives the valid rows of every step."""
    if mask is None:
        return None, 0, []
    all_valid = mask.reshape(steps, -1).all(1)  # (T,)
    first = int(all_valid.int().cumprod(0).sum())  # the leading all-valid steps
    masks = StepMasks(mask, first, steps, dtype)
    return mask.squeeze(2).contiguous(), first, ext.step_rows(masks)


def _prepare(mask: Tensor | None, seq: Tensor, w: Tensor):
    """``(mask (T, B), first_masked, rows, packed weight)`` for a C++ op over ``seq``
    (T, B, ·) with weight ``w`` (W_hh forward, W_hh^T backward)."""
    m, first, rows = _masking(mask, seq.shape[0], seq.dtype)
    return m, first, rows, ext.packed(w, seq.shape[1], rows)


def _zero_padded(mask: Tensor | None, *tensors: Tensor) -> None:
    """Zero the padded positions of (T, B, ·) tensors, which the forward op never writes
    (nor the backward reads), so that the op's outputs are defined everywhere."""
    if mask is not None:
        for t in tensors:
            t.masked_fill_(~mask, 0.0)


def _dw(da: Tensor, hs: Tensor) -> Tensor:
    """dW_hh = sum_t da_t^T h_{t-1}: (G*H, H) from da (T, B, G*H) and h_0..h_T."""
    return da.flatten(0, 1).t() @ hs[:-1].flatten(0, 1)


def _zeros(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad.contiguous()


# -- LSTM ----------------------------------------------------------------------------------
@torch.library.custom_op("rnnkit::lstm_infer", mutates_args=())
def _lstm_infer(
    xp: Tensor, h0: Tensor, c0: Tensor, w: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    m, first, rows, packed = _prepare(mask, xp, w)
    y, h, c = ext.ops().lstm_forward(xp, h0, c0, w, packed, m, first, rows, False)
    return y, h, c


@_lstm_infer.register_fake
def _(xp, h0, c0, w, mask):
    steps, batch, hidden = xp.shape[0], xp.shape[1], h0.shape[1]
    return xp.new_empty(steps, batch, hidden), h0.new_empty(h0.shape), c0.new_empty(c0.shape)


@torch.library.custom_op("rnnkit::lstm_train", mutates_args=())
def _lstm_train(
    xp: Tensor, h0: Tensor, c0: Tensor, w: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    m, first, rows, packed = _prepare(mask, xp, w)
    y, h, c, hs, cs, gates, tcs = ext.ops().lstm_forward(
        xp, h0, c0, w, packed, m, first, rows, True
    )
    _zero_padded(mask, gates, tcs)
    return y, h, c, hs, cs, gates, tcs


@_lstm_train.register_fake
def _(xp, h0, c0, w, mask):
    steps, batch, hidden = xp.shape[0], xp.shape[1], h0.shape[1]
    y, tcs = (xp.new_empty(steps, batch, hidden) for _ in range(2))
    hs, cs = (xp.new_empty(steps + 1, batch, hidden) for _ in range(2))
    gates = xp.new_empty(steps, batch, 4 * hidden)
    return y, h0.new_empty(h0.shape), c0.new_empty(c0.shape), hs, cs, gates, tcs


@torch.library.custom_op("rnnkit::lstm_grad", mutates_args=())
def _lstm_grad(
    dy: Tensor,
    dh: Tensor,
    dc: Tensor,
    hs: Tensor,
    cs: Tensor,
    gates: Tensor,
    tcs: Tensor,
    w: Tensor,
    mask: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    m, first, rows, packed = _prepare(mask, dy, w.t())
    da, dh0, dc0 = ext.ops().lstm_backward(dy, dh, dc, cs, gates, tcs, w, packed, m, first, rows)
    return da, dh0, dc0, _dw(da, hs)


@_lstm_grad.register_fake
def _(dy, dh, dc, hs, cs, gates, tcs, w, mask):
    return (
        gates.new_empty(gates.shape),
        dh.new_empty(dh.shape),
        dc.new_empty(dc.shape),
        (w.new_empty(w.shape)),
    )


def _lstm_setup(ctx, inputs, output):
    _, _, _, w, mask = inputs
    ctx.save_for_backward(*output[3:], w, mask)  # hs, cs, gates, tcs, W_hh, mask


def _lstm_backward(ctx, dy, dh, dc, *_):
    hs, cs, gates, tcs, w, mask = ctx.saved_tensors
    like = hs[0]
    dy = torch.zeros_like(tcs) if dy is None else dy.contiguous()
    da, dh0, dc0, dw = _lstm_grad(
        dy, _zeros(dh, like), _zeros(dc, like), hs, cs, gates, tcs, w, mask
    )
    return da, dh0, dc0, dw, None


torch.library.register_autograd("rnnkit::lstm_train", _lstm_backward, setup_context=_lstm_setup)


def lstm(xp, h0, c0, w, mask, train: bool) -> tuple[Tensor, Tensor, Tensor]:
    """The LSTM kernel as a custom op: outputs (T, B, H), h_T, c_T."""
    if not train:
        return _lstm_infer(xp, h0, c0, w, mask)
    return _lstm_train(xp, h0, c0, w, mask)[:3]


# -- GRU -----------------------------------------------------------------------------------
@torch.library.custom_op("rnnkit::gru_infer", mutates_args=())
def _gru_infer(
    xp: Tensor, h0: Tensor, w: Tensor, b: Tensor | None, mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    m, first, rows, packed = _prepare(mask, xp, w)
    y, h = ext.ops().gru_forward(xp, h0, w, b, packed, m, first, rows, False)
    return y, h


@_gru_infer.register_fake
def _(xp, h0, w, b, mask):
    return xp.new_empty(xp.shape[0], xp.shape[1], h0.shape[1]), h0.new_empty(h0.shape)


@torch.library.custom_op("rnnkit::gru_train", mutates_args=())
def _gru_train(
    xp: Tensor, h0: Tensor, w: Tensor, b: Tensor | None, mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    m, first, rows, packed = _prepare(mask, xp, w)
    y, h, hs, gates, an = ext.ops().gru_forward(xp, h0, w, b, packed, m, first, rows, True)
    _zero_padded(mask, gates, an)
    return y, h, hs, gates, an


@_gru_train.register_fake
def _(xp, h0, w, b, mask):
    steps, batch, hidden = xp.shape[0], xp.shape[1], h0.shape[1]
    y, an = (xp.new_empty(steps, batch, hidden) for _ in range(2))
    hs = xp.new_empty(steps + 1, batch, hidden)
    return y, h0.new_empty(h0.shape), hs, xp.new_empty(xp.shape), an


@torch.library.custom_op("rnnkit::gru_grad", mutates_args=())
def _gru_grad(
    dy: Tensor,
    dh: Tensor,
    hs: Tensor,
    gates: Tensor,
    an: Tensor,
    w: Tensor,
    with_bias: bool,
    mask: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    m, first, rows, packed = _prepare(mask, dy, w.t())
    da, dh0, dn, *db = ext.ops().gru_backward(
        dy, dh, hs, gates, an, w, packed, with_bias, m, first, rows
    )
    dw = _dw(da, hs)
    return input_grads(da, dn), dh0, dw, db[0] if db else w.new_zeros(w.shape[0])


@_gru_grad.register_fake
def _(dy, dh, hs, gates, an, w, with_bias, mask):
    return (
        gates.new_empty(gates.shape),
        dh.new_empty(dh.shape),
        w.new_empty(w.shape),
        w.new_empty(w.shape[0]),
    )


def _gru_setup(ctx, inputs, output):
    _, _, w, b, mask = inputs
    ctx.save_for_backward(*output[2:], w, mask)
    ctx.with_bias = b is not None


def _gru_backward(ctx, dy, dh, *_):
    hs, gates, an, w, mask = ctx.saved_tensors
    dy = torch.zeros_like(an) if dy is None else dy.contiguous()
    dxp, dh0, dw, db = _gru_grad(dy, _zeros(dh, hs[0]), hs, gates, an, w, ctx.with_bias, mask)
    return dxp, dh0, dw, db if ctx.with_bias else None, None


torch.library.register_autograd("rnnkit::gru_train", _gru_backward, setup_context=_gru_setup)


def gru(xp, h0, w, b, mask, train: bool) -> tuple[Tensor, Tensor]:
    """The GRU kernel as a custom op: outputs (T, B, H), h_T."""
    if not train:
        return _gru_infer(xp, h0, w, b, mask)
    return _gru_train(xp, h0, w, b, mask)[:2]


# -- Elman ---------------------------------------------------------------------------------
@torch.library.custom_op("rnnkit::elman_infer", mutates_args=())
def _elman_infer(
    xp: Tensor, h0: Tensor, w: Tensor, relu: bool, mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    m, first, rows, packed = _prepare(mask, xp, w)
    y, h = ext.ops().elman_forward(xp, h0, w, packed, relu, m, first, rows, False)
    return y, h


@_elman_infer.register_fake
def _(xp, h0, w, relu, mask):
    return xp.new_empty(xp.shape), h0.new_empty(h0.shape)


@torch.library.custom_op("rnnkit::elman_train", mutates_args=())
def _elman_train(
    xp: Tensor, h0: Tensor, w: Tensor, relu: bool, mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    m, first, rows, packed = _prepare(mask, xp, w)
    y, h, hs = ext.ops().elman_forward(xp, h0, w, packed, relu, m, first, rows, True)
    return y, h, hs


@_elman_train.register_fake
def _(xp, h0, w, relu, mask):
    steps, batch, hidden = xp.shape
    return xp.new_empty(xp.shape), h0.new_empty(h0.shape), xp.new_empty(steps + 1, batch, hidden)


@torch.library.custom_op("rnnkit::elman_grad", mutates_args=())
def _elman_grad(
    dy: Tensor, dh: Tensor, hs: Tensor, w: Tensor, relu: bool, mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    m, first, rows, packed = _prepare(mask, dy, w.t())
    da, dh0, dw = ext.ops().elman_backward(dy, dh, hs, w, packed, relu, m, first, rows)
    return da, dh0, dw


@_elman_grad.register_fake
def _(dy, dh, hs, w, relu, mask):
    return dy.new_empty(dy.shape), dh.new_empty(dh.shape), w.new_empty(w.shape)


def _elman_setup(ctx, inputs, output):
    _, _, w, relu, mask = inputs
    ctx.save_for_backward(output[2], w, mask)
    ctx.relu = relu


def _elman_backward(ctx, dy, dh, _):
    hs, w, mask = ctx.saved_tensors
    dy = torch.zeros_like(hs[1:]) if dy is None else dy.contiguous()
    dxp, dh0, dw = _elman_grad(dy, _zeros(dh, hs[0]), hs, w, ctx.relu, mask)
    return dxp, dh0, dw, None, None


torch.library.register_autograd("rnnkit::elman_train", _elman_backward, setup_context=_elman_setup)


def elman(xp, h0, w, nonlinearity: str, mask, train: bool) -> tuple[Tensor, Tensor]:
    """The Elman kernel as a custom op: outputs (T, B, H), h_T."""
    relu = nonlinearity == "relu"
    if not train:
        return _elman_infer(xp, h0, w, relu, mask)
    return _elman_train(xp, h0, w, relu, mask)[:2]
