"""The Elman (vanilla RNN) recurrence over a whole sequence, with hand-written BPTT."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels import ext
from rnnkit.kernels.common import Linear, StepMasks, needs_grad, split_carry, tanh
from rnnkit.kernels.twice import Recompute, double_backward

__all__ = ["elman_sequence"]

_tanh_backward = torch.ops.aten.tanh_backward.grad_input
_threshold_backward = torch.ops.aten.threshold_backward.grad_input


def _elman_forward(xp, h0, w, nonlinearity, masks):
    """Run the steps; returns h_0..h_T (T+1, B, H), all that backward needs."""
    steps, batch, hidden = xp.shape[0], xp.shape[1], h0.shape[1]
    lin = Linear(w, batch)
    hs = xp.new_empty(steps + 1, batch, hidden)  # (T+1, B, H): h_0 .. h_T
    hs[0] = h0
    h, xps = hs.unbind(0), xp.unbind(0)
    for t in range(steps):
        a = lin(h[t], xps[t], masks.rows[t])  # A_t = xp_t + W_hh h_{t-1}
        if nonlinearity == "tanh":
            tanh(a, h[t + 1])  # h_t = tanh(A_t)
        else:
            torch.clamp_min(a, 0.0, out=h[t + 1])  # h_t = relu(A_t)
        if masks.keep[t] is not None:  # padded rows keep their state
            torch.where(masks.keep[t], h[t + 1], h[t], out=h[t + 1])
    return hs


def _elman_infer_prefix(xp, h0, w, nonlinearity, masks, rows):
    """Forward only for a padded batch sorted by decreasing length: step t computes its
    first ``rows[t]`` rows only; the others stay zero, which are their outputs, and each
    row's final state is read at its own last step. Returns outputs (T, B, H) and h_T."""
    steps, batch, hidden = xp.shape[0], xp.shape[1], h0.shape[1]
    lin = Linear(w, batch)
    hs = xp.new_zeros(steps + 1, batch, hidden)  # (T+1, B, H): h_0 .. h_T, 0 when padded
    hs[0] = h0
    h, xps = hs.unbind(0), xp.unbind(0)
    for t, n in enumerate(rows):
        a = lin(h[t][:n], xps[t][:n])  # A_t = xp_t + W_hh h_{t-1}, valid rows
        if nonlinearity == "tanh":
            torch.tanh(a, out=h[t + 1][:n])  # one op: cheaper than 2 sigmoid(2a) - 1 here
        else:
            torch.clamp_min(a, 0.0, out=h[t + 1][:n])
    return hs[1:], masks.last_states(hs)


class _ElmanSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, w, nonlinearity, mask, first_masked, source=None):
        ctx.twice = (source or xp, (h0,), w, None, mask)
        ctx.extra = nonlinearity
        masks = StepMasks(mask, first_masked, xp.shape[0], xp.dtype)
        ctx.ext = ext.args(masks, mask, xp, h0, w)
        if ctx.ext is not None:
            ops, m, rows = ctx.ext
            relu = nonlinearity == "relu"
            packed = ext.packed(w, xp.shape[1], rows)
            y, h_last, hs = ops.elman_forward(xp, h0, w, packed, relu, m, first_masked, rows, True)
            ctx.save_for_backward(hs, w)
            ctx.nonlinearity, ctx.first_masked = nonlinearity, first_masked
            return y, h_last
        hs = _elman_forward(xp.contiguous(), h0, w, nonlinearity, masks)
        ctx.save_for_backward(hs, w)
        ctx.masks, ctx.nonlinearity = masks, nonlinearity
        return masks.outputs(hs[1:]), hs[-1].clone()

    @staticmethod
    def backward(ctx, grad_out, grad_h):
        if torch.is_grad_enabled():  # create_graph=True: the gradients must be differentiable
            xp, state, w, b, mask = ctx.twice
            grads = double_backward("elman", (grad_out, grad_h), xp, state, w, b, mask, ctx.extra)
            return (*grads, None, None, None, None)
        return _ElmanSequence._first_order_impl(ctx, grad_out, grad_h)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def _first_order_impl(ctx, grad_out, grad_h):
        hs, w = ctx.saved_tensors
        if ctx.ext is not None:
            ops, m, rows = ctx.ext
            relu, packed = ctx.nonlinearity == "relu", ext.packed(w.t(), hs.shape[1], rows)
            args = (ctx.first_masked, rows)
            da, dh, dw = ops.elman_backward(grad_out, grad_h, hs, w, packed, relu, m, *args)
            return da, dh, dw, None, None, None, None
        steps = hs.shape[0] - 1
        lin = Linear(w.t(), hs.shape[1])  # dA @ W_hh
        gout, pairs = ctx.masks.output_grads(grad_out), ctx.masks.split()
        active = ctx.masks.rows  # valid rows per step, or None
        da = torch.empty(steps, *gout[0].shape, dtype=hs.dtype, device=hs.device)  # (T, B, H)
        h, das = hs.unbind(0), da.unbind(0)
        dh = grad_h + gout[-1]  # dL/dh_T: from the final state and the last output
        for t in reversed(range(steps)):
            carry = split_carry(dh, pairs[t])  # m_t dh into the step, (1 - m_t) dh carried
            if ctx.nonlinearity == "tanh":
                _tanh_backward(dh, h[t + 1], grad_input=das[t])  # dA_t = dh_t (1 - h_t^2)
            else:
                _threshold_backward(dh, h[t + 1], 0, grad_input=das[t])  # dA_t = dh_t [h_t > 0]
            dh = lin(das[t], gout[t - 1] if t else None, active[t])  # dA_t W_hh + dy_{t-1}
            if carry is not None:
                dh.add_(carry)  # plus the gradient carried past the masked step
        dw = da.flatten(0, 1).t() @ hs[:-1].flatten(0, 1)  # dW_hh = sum_t dA_t^T h_{t-1}
        return da, dh, dw, None, None, None, None


def elman_sequence(
    xp: Tensor,
    h0: Tensor,
    weight_hh: Tensor,
    nonlinearity: str = "tanh",
    mask: Tensor | None = None,
    first_masked: int = 0,
    source: Recompute | None = None,
) -> tuple[Tensor, Tensor]:
    r"""The Elman recurrence over a sequence: returns outputs (T, B, H) and h_T (B, H).

    .. math::
        h_t = \phi(xp_t + W_{hh} h_{t-1}), \qquad xp_t = W_{ih} x_t + b_{ih} + b_{hh}

    Args:
        xp: (T, B, H) projected inputs with both biases. h0: (B, H). weight_hh: (H, H).
        nonlinearity: ``"tanh"`` or ``"relu"``. mask: None or (T, B, 1) bool.
        first_masked: steps before it are all valid. source: recomputes ``xp`` with
            autograd, for double backward (:mod:`rnnkit.kernels.twice`).
    """
    if needs_grad(xp, h0, weight_hh):
        return _ElmanSequence.apply(xp, h0, weight_hh, nonlinearity, mask, first_masked, source)
    with torch.no_grad():
        masks = StepMasks(mask, first_masked, xp.shape[0], xp.dtype)
        args = ext.args(masks, mask, xp, h0, weight_hh)
        if args is not None:
            ops, m, rows = args
            packed, relu = ext.packed(weight_hh, xp.shape[1], rows), nonlinearity == "relu"
            y, h_last = ops.elman_forward(
                xp, h0, weight_hh, packed, relu, m, first_masked, rows, False
            )
            return y, h_last
        rows = masks.prefix_rows(xp.shape[1])
        if rows is not None:
            return _elman_infer_prefix(xp.contiguous(), h0, weight_hh, nonlinearity, masks, rows)
        hs = _elman_forward(xp.contiguous(), h0, weight_hh, nonlinearity, masks)
        h_last = hs[-1].clone()
        return masks.outputs(hs[1:], inplace=True), h_last
