r"""The LSTM recurrence over a whole sequence, with hand-written BPTT.

Forward, per step (gates stacked i, f, g, o as torch.nn; ``xp_t`` holds both biases):

.. math::
    A_t = xp_t + W_{hh} h_{t-1}, \quad
    i, f, o = \sigma(A^{i,f,o}_t), \quad g = \tanh(A^g_t), \quad
    c_t = f c_{t-1} + i g, \quad h_t = o \tanh(c_t)

Backward, per step from ``dh_t`` and ``dc_t``:

.. math::
    do = dh_t \tanh c_t, \quad dc_t \mathrel{+}= dh_t\, o\, (1 - \tanh^2 c_t), \quad
    [di, df, dg] = dc_t\, [g, c_{t-1}, i], \quad dc_{t-1} = dc_t f,
    dA_t = [di\, i(1-i),\ df\, f(1-f),\ dg\, (1-g^2),\ do\, o(1-o)], \quad
    dh_{t-1} = dA_t W_{hh}

The forward pass keeps, per step, ``[g, c_{t-1}, i, f, o, tanh c_t]`` side by side in one
(B, 6H) row, so that ``[di, df, dg]`` is one product with the first three blocks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels import ext
from rnnkit.kernels.common import Linear, StepMasks, needs_grad, split_carry, tanh
from rnnkit.kernels.twice import Recompute, double_backward

__all__ = ["lstm_sequence"]

_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input
_tanh_backward = torch.ops.aten.tanh_backward.grad_input


def _lstm_forward(xp, h0, c0, w, masks):
    """Run the steps; returns h_0..h_T (T+1, B, H), c_T (B, H) and the rows (T+1, B, 6H)
    that backward needs."""
    steps, batch, hidden = xp.shape[0], xp.shape[1], h0.shape[1]
    lin = Linear(w, batch)
    hs = xp.new_empty(steps + 1, batch, hidden)  # (T+1, B, H): h_0 .. h_T
    rows = xp.new_empty(steps + 1, batch, 6 * hidden)  # [g c_{t-1} i f o tanh c_t]
    hs[0], rows[0, :, hidden : 2 * hidden] = h0, c0
    g, c, i_f, i, f, o, tc = _blocks(rows, hidden)
    h, xps, sizes = hs.unbind(0), xp.unbind(0), [2 * hidden, hidden, hidden]
    for t in range(steps):
        a = lin(h[t], xps[t], masks.rows[t])  # A_t = xp_t + W_hh h_{t-1}
        a_if, a_g, a_o = a.split(sizes, 1)
        torch.sigmoid(a_if, out=i_f[t])  # input and forget gates
        tanh(a_g, g[t])  # candidate cell
        torch.sigmoid(a_o, out=o[t])  # output gate
        torch.mul(f[t], c[t], out=c[t + 1]).addcmul_(i[t], g[t])  # c_t = f c_{t-1} + i g
        torch.mul(o[t], tanh(c[t + 1], tc[t]), out=h[t + 1])  # h_t = o tanh(c_t)
        if masks.keep[t] is not None:  # padded rows keep their state
            torch.where(masks.keep[t], c[t + 1], c[t], out=c[t + 1])
            torch.where(masks.keep[t], h[t + 1], h[t], out=h[t + 1])
    return hs, c[steps].clone(), rows


def _blocks(rows: Tensor, hidden: int) -> list[tuple[Tensor, ...]]:
    """Per-step views of the rows: g, c (c_{t-1} at step t), [i f], i, f, o, tanh c."""
    blocks = [(0, 1), (1, 2), (2, 4), (2, 3), (3, 4), (4, 5), (5, 6)]
    return [rows[..., k * hidden : l * hidden].unbind(0) for k, l in blocks]


def _lstm_infer(xp, h0, c0, w, masks):
    r"""Forward only, in fewer operations: with ``tanh(x) = 2 sigmoid(2x) - 1`` and the
    doubled cell state ``e = 2c`` carried, a step is

    .. math::
        s = \sigma([A^i, A^f, 2A^g, A^o]), \quad
        e_t = f e_{t-1} + 4 i s^g - 2 i, \quad h_t = o (2 \sigma(e_t) - 1)

    Returns h_0..h_T (T+1, B, H) and c_T (B, H)."""
    steps, batch, hidden = xp.shape[0], xp.shape[1], h0.shape[1]
    lin = Linear(w, batch)
    hs = xp.new_empty(steps + 1, batch, hidden)  # (T+1, B, H): h_0 .. h_T
    hs[0] = h0
    e = (c0 + c0, torch.empty_like(c0))  # e_{t-1} and e_t in turn: (B, H) each
    h, xps = hs.unbind(0), xp.unbind(0)
    for t in range(steps):
        e_old, e_new = e[t % 2], e[(t + 1) % 2]
        a = lin(h[t], xps[t], masks.rows[t])  # A_t = xp_t + W_hh h_{t-1}
        i, f, s, o = a.split(hidden, 1)
        s.add_(s)  # 2 A^g
        a.sigmoid_()  # i, f, o and s^g = sigmoid(2 A^g), so g = 2 s^g - 1
        torch.mul(f, e_old, out=e_new).addcmul_(i, s, value=4.0).add_(i, alpha=-2.0)  # 2c_t
        torch.sigmoid(e_new, out=h[t + 1]).mul_(o)  # o sigmoid(2 c_t)
        h[t + 1].add_(h[t + 1]).sub_(o)  # h_t = o (2 sigmoid(2 c_t) - 1) = o tanh(c_t)
        if masks.keep[t] is not None:  # padded rows keep their state
            torch.where(masks.keep[t], e_new, e_old, out=e_new)
            torch.where(masks.keep[t], h[t + 1], h[t], out=h[t + 1])
    return hs, e[steps % 2] * 0.5


def _lstm_infer_prefix(xp, h0, c0, w, masks, rows):
    """``_lstm_infer`` for a padded batch sorted by decreasing length: step t updates its
    first ``rows[t]`` rows only, so a finished row's cell state stays its final one, its
    outputs stay zero, and its h_T is read at its own last step. Returns outputs (T, B, H),
    h_T and c_T (B, H)."""
    steps, batch, hidden = xp.shape[0], xp.shape[1], h0.shape[1]
    lin = Linear(w, batch)
    hs = xp.new_zeros(steps + 1, batch, hidden)  # (T+1, B, H): h_0 .. h_T, 0 when padded
    hs[0] = h0
    e = c0 + c0  # 2c, updated in place on the valid rows
    h, xps = hs.unbind(0), xp.unbind(0)
    for t, n in enumerate(rows):
        a = lin(h[t][:n], xps[t][:n])  # A_t = xp_t + W_hh h_{t-1}, valid rows
        i, f, s, o = a.split(hidden, 1)
        s.add_(s)  # 2 A^g
        a.sigmoid_()  # i, f, o and s^g = sigmoid(2 A^g)
        e_n, h_n = e[:n], h[t + 1][:n]
        e_n.mul_(f).addcmul_(i, s, value=4.0).add_(i, alpha=-2.0)  # 2c_t = f 2c_{t-1} + 2 i g
        torch.sigmoid(e_n, out=h_n).mul_(o)
        h_n.add_(h_n).sub_(o)  # h_t = o (2 sigmoid(2 c_t) - 1) = o tanh(c_t)
    return hs[1:], masks.last_states(hs), e * 0.5


class _LSTMSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, c0, w, mask, first_masked, source=None):
        ctx.twice = (source or xp, (h0, c0), w, None, mask)
        masks = StepMasks(mask, first_masked, xp.shape[0], xp.dtype)
        ctx.ext = ext.args(masks, mask, xp, h0, c0, w)
        if ctx.ext is not None:
            ops, m, rows = ctx.ext
            packed = ext.packed(w, xp.shape[1], rows)
            y, h_last, c_last, hs, cs, gates, tcs = ops.lstm_forward(
                xp, h0, c0, w, packed, m, first_masked, rows, True
            )
            ctx.save_for_backward(hs, cs, gates, tcs, w)
            ctx.first_masked = first_masked
            return y, h_last, c_last
        hs, c_last, rows = _lstm_forward(xp.contiguous(), h0, c0, w, masks)
        ctx.save_for_backward(hs, rows, w)
        ctx.masks = masks
        return masks.outputs(hs[1:]), hs[-1].clone(), c_last

    @staticmethod
    def backward(ctx, grad_out, grad_h, grad_c):
        if torch.is_grad_enabled():  # create_graph=True: the gradients must be differentiable
            xp, state, w, b, mask = ctx.twice
            grads = double_backward("lstm", (grad_out, grad_h, grad_c), xp, state, w, b, mask)
            return (*grads, None, None, None)
        return _LSTMSequence._first_order_impl(ctx, grad_out, grad_h, grad_c)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def _first_order_impl(ctx, grad_out, grad_h, grad_c):
        if ctx.ext is not None:
            ops, m, rows = ctx.ext
            hs, cs, gates, tcs, w = ctx.saved_tensors
            packed = ext.packed(w.t(), hs.shape[1], rows)
            da, dh, dc = ops.lstm_backward(
                grad_out, grad_h, grad_c, cs, gates, tcs, w, packed, m, ctx.first_masked, rows
            )
            dw = da.flatten(0, 1).t() @ hs[:-1].flatten(0, 1)  # dW_hh = sum_t dA_t^T h_{t-1}
            return da, dh, dc, dw, None, None, None
        hs, rows, w = ctx.saved_tensors
        steps, batch, hidden = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        lin = Linear(w.t(), batch)  # dA @ W_hh
        gout, pairs = ctx.masks.output_grads(grad_out), ctx.masks.split()
        active = ctx.masks.rows  # valid rows per step, or None
        da = hs.new_empty(steps, batch, 4 * hidden)  # (T, B, 4H): dA_t, gates i f g o
        g, _, i_f, _, f, o, tc = _blocks(rows, hidden)
        gci = rows[..., : 3 * hidden].unflatten(2, (3, hidden)).unbind(0)  # [g, c_{t-1}, i]
        da_ifg = da[..., : 3 * hidden].unflatten(2, (3, hidden)).unbind(0)
        da_if, da_g, da_o = (da[..., k:l].unbind(0) for k, l in _spans(hidden))
        das = da.unbind(0)
        dh = grad_h + gout[-1]  # dL/dh_T: from the final state and the last output
        dc = grad_c.clone()  # dL/dc_T
        for t in reversed(range(steps)):
            carry_h = split_carry(dh, pairs[t])  # m_t dh into the step, the rest carried
            carry_c = split_carry(dc, pairs[t])  # likewise for dc
            torch.mul(dh, tc[t], out=da_o[t])  # do = dh tanh(c_t)
            dh.mul_(o[t])  # dL/dtanh(c_t) = dh o
            _tanh_backward(dh, tc[t], grad_input=dh)  # through tanh: dh o (1 - tanh^2 c_t)
            dc.add_(dh)  # dc_t, from c_{t+1} and from h_t
            torch.mul(gci[t], dc.unsqueeze(1), out=da_ifg[t])  # [di, df, dg] = dc [g, c_{t-1}, i]
            dc.mul_(f[t])  # dc_{t-1} = dc_t f
            _sigmoid_backward(da_if[t], i_f[t], grad_input=da_if[t])  # dA^i = di i (1 - i), f too
            _tanh_backward(da_g[t], g[t], grad_input=da_g[t])  # dA^g = dg (1 - g^2)
            _sigmoid_backward(da_o[t], o[t], grad_input=da_o[t])  # dA^o = do o (1 - o)
            dh = lin(das[t], gout[t - 1] if t else None, active[t])  # dA_t W_hh + dy_{t-1}
            if carry_h is not None:  # plus what the masked step carried past
                dh.add_(carry_h)  # dh_{t-1} += (1 - m_t) dh_t
                dc.add_(carry_c)  # dc_{t-1} += (1 - m_t) dc_t
        dw = da.flatten(0, 1).t() @ hs[:-1].flatten(0, 1)  # dW_hh = sum_t dA_t^T h_{t-1}
        return da, dh, dc, dw, None, None, None


def _spans(hidden: int) -> list[tuple[int, int]]:
    """Column ranges of the [i f], g and o blocks in a (.., 4H) row."""
    return [(0, 2 * hidden), (2 * hidden, 3 * hidden), (3 * hidden, 4 * hidden)]


def lstm_sequence(
    xp: Tensor,
    h0: Tensor,
    c0: Tensor,
    weight_hh: Tensor,
    mask: Tensor | None = None,
    first_masked: int = 0,
    source: Recompute | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The LSTM recurrence over a sequence: returns outputs (T, B, H), h_T and c_T (B, H).

    Args:
        xp: (T, B, 4H), ``W_ih x + b_ih + b_hh`` for every step. h0, c0: (B, H).
        weight_hh: (4H, H). mask: None or (T, B, 1) bool. first_masked: steps before it
            are all valid. source: recomputes ``xp`` with autograd, for double backward
            (:mod:`rnnkit.kernels.twice`); without it ``xp`` is kept for that.
    """
    if needs_grad(xp, h0, c0, weight_hh):
        return _LSTMSequence.apply(xp, h0, c0, weight_hh, mask, first_masked, source)
    with torch.no_grad():
        masks = StepMasks(mask, first_masked, xp.shape[0], xp.dtype)
        args = ext.args(masks, mask, xp, h0, c0, weight_hh)
        if args is not None:
            ops, m, rows = args
            packed = ext.packed(weight_hh, xp.shape[1], rows)
            y, h_last, c_last = ops.lstm_forward(
                xp, h0, c0, weight_hh, packed, m, first_masked, rows, False
            )
            return y, h_last, c_last
        rows = masks.prefix_rows(xp.shape[1])
        if rows is not None:
            return _lstm_infer_prefix(xp.contiguous(), h0, c0, weight_hh, masks, rows)
        hs, c_last = _lstm_infer(xp.contiguous(), h0, c0, weight_hh, masks)
        h_last = hs[-1].clone()
        return masks.outputs(hs[1:], inplace=True), h_last, c_last
