r"""The GRU recurrence over a whole sequence, with hand-written BPTT.

Forward, per step (gates stacked r, z, n as torch.nn; ``xp_t = W_ih x_t + b_ih``, and
``b_hh`` stays inside the step because ``b_hn`` is scaled by r):

.. math::
    a_t = W_{hh} h_{t-1} + b_{hh}, \quad
    r, z = \sigma(xp^{r,z}_t + a^{r,z}_t), \quad
    n = \tanh(xp^n_t + r\, a^n_t), \quad
    h_t = n + z (h_{t-1} - n)

Backward, per step from ``dh_t``:

.. math::
    dz = dh_t (h_{t-1} - n), \quad dn = dh_t (1 - z), \quad
    dA^n = dn (1 - n^2), \quad dr = dA^n a^n_t,
    da_t = [dr\, r(1-r),\ dz\, z(1-z),\ dA^n r], \quad
    dxp_t = [da^r_t, da^z_t, dA^n], \quad
    dh_{t-1} = dh_t z + da_t W_{hh}

and ``dW_hh = sum_t da_t^T h_{t-1}``, ``db_hh = sum_t da_t``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels import ext
from rnnkit.kernels.common import Linear, StepMasks, needs_grad, split_carry, tanh
from rnnkit.kernels.twice import Recompute, double_backward

__all__ = ["gru_sequence", "input_grads"]

_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input
_tanh_backward = torch.ops.aten.tanh_backward.grad_input


def _gru_forward(xp, h0, w, b, masks, keep: bool):
    """Run the steps; returns h_0..h_T (T+1, B, H) and, if ``keep``, what backward needs:
    gates (T, B, 3H) as [r, z, n], h_{t-1} - n_t (T, B, H) and a^n_t (T, B, H)."""
    steps, batch, hidden = xp.shape[0], xp.shape[1], h0.shape[1]
    lin = Linear(w, batch, b)
    hs = xp.new_empty(steps + 1, batch, hidden)  # (T+1, B, H): h_0 .. h_T
    gates = xp.new_empty(steps if keep else 1, batch, 3 * hidden)  # (T, B, 3H): r, z, n
    diff = xp.new_empty(steps, batch, hidden) if keep else None  # (T, B, H): h_{t-1} - n
    hn = xp.new_empty(steps, batch, hidden) if keep else None  # (T, B, H): W_hn h + b_hn
    hs[0] = h0
    h, rz, r, z, n = _views(hs, gates, hidden, steps)
    x_rz, x_n = (v.unbind(0) for v in xp.split([2 * hidden, hidden], 2))
    sizes = [2 * hidden, hidden]
    for t in range(steps):
        a_rz, a_n = lin(h[t], None, masks.rows[t]).split(sizes, 1)  # a_t = W_hh h_{t-1} + b_hh
        torch.add(x_rz[t], a_rz, out=rz[t]).sigmoid_()  # r, z = sigma(xp + a)
        tanh(torch.addcmul(x_n[t], r[t], a_n, out=n[t]), n[t])  # n = tanh(xp^n + r a^n)
        if keep:  # h_t = n + z (h_{t-1} - n), keeping a^n and h_{t-1} - n for backward
            hn[t] = a_n
            torch.addcmul(n[t], z[t], torch.sub(h[t], n[t], out=diff[t]), out=h[t + 1])
        else:
            torch.lerp(n[t], h[t], z[t], out=h[t + 1])  # h_t = n + z (h_{t-1} - n)
        if masks.keep[t] is not None:  # padded rows keep their state
            torch.where(masks.keep[t], h[t + 1], h[t], out=h[t + 1])
    return hs, gates, diff, hn


def _views(hs: Tensor, gates: Tensor, hidden: int, steps: int) -> list[tuple[Tensor, ...]]:
    """Per-step views: h, [r z], r, z, n (one row of gates used at every step if one)."""
    blocks, turns = [(0, 2), (0, 1), (1, 2), (2, 3)], steps // gates.shape[0]
    views = [gates[..., k * hidden : l * hidden].unbind(0) * turns for k, l in blocks]
    return [hs.unbind(0), *views]


def _gru_infer_prefix(xp, h0, w, b, masks, rows):
    """Forward only for a padded batch sorted by decreasing length (as
    ``_elman_infer_prefix``). Returns outputs (T, B, H) and h_T (B, H)."""
    steps, batch, hidden = xp.shape[0], xp.shape[1], h0.shape[1]
    lin = Linear(w, batch, b)
    hs = xp.new_zeros(steps + 1, batch, hidden)  # (T+1, B, H): h_0 .. h_T, 0 when padded
    hs[0] = h0
    h = hs.unbind(0)
    x_rz, x_n = (v.unbind(0) for v in xp.split([2 * hidden, hidden], 2))
    sizes = [2 * hidden, hidden]
    for t, n in enumerate(rows):
        h_prev = h[t][:n]
        a_rz, a_n = lin(h_prev).split(sizes, 1)  # a_t = W_hh h_{t-1} + b_hh
        rz = a_rz.add_(x_rz[t][:n]).sigmoid_()  # r, z = sigma(xp + a)
        r, z = rz.split(hidden, 1)
        cand = a_n.mul_(r).add_(x_n[t][:n])  # xp^n + r a^n
        tanh(cand, cand)  # n_t
        torch.lerp(cand, h_prev, z, out=h[t + 1][:n])  # h_t = n + z (h_{t-1} - n)
    return hs[1:], masks.last_states(hs)


class _GRUSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, w, b, mask, first_masked, source=None):
        ctx.twice = (source or xp, (h0,), w, b, mask)
        masks = StepMasks(mask, first_masked, xp.shape[0], xp.dtype)
        ctx.ext = ext.args(masks, mask, xp, h0, w, b)
        ctx.with_bias = b is not None
        if ctx.ext is not None:
            ops, m, rows = ctx.ext
            packed = ext.packed(w, xp.shape[1], rows)
            y, h_last, hs, gates, an = ops.gru_forward(
                xp, h0, w, b, packed, m, first_masked, rows, True
            )
            ctx.save_for_backward(hs, gates, an, w)
            ctx.first_masked = first_masked
            return y, h_last
        hs, gates, diff, hn = _gru_forward(xp.contiguous(), h0, w, b, masks, keep=True)
        ctx.save_for_backward(hs, gates, diff, hn, w)
        ctx.masks = masks
        return masks.outputs(hs[1:]), hs[-1].clone()

    @staticmethod
    def backward(ctx, grad_out, grad_h):
        if torch.is_grad_enabled():  # create_graph=True: the gradients must be differentiable
            xp, state, w, b, mask = ctx.twice
            grads = double_backward("gru", (grad_out, grad_h), xp, state, w, b, mask)
            return (*grads, *([None] if b is None else []), None, None, None)
        return _GRUSequence._first_order_impl(ctx, grad_out, grad_h)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def _first_order_impl(ctx, grad_out, grad_h):
        if ctx.ext is not None:
            ops, m, rows = ctx.ext
            hs, gates, an, w = ctx.saved_tensors
            packed, first = ext.packed(w.t(), hs.shape[1], rows), ctx.first_masked
            da, dh, dn, *db = ops.gru_backward(
                grad_out, grad_h, hs, gates, an, w, packed, ctx.with_bias, m, first, rows
            )
            dw = da.flatten(0, 1).t() @ hs[:-1].flatten(0, 1)  # dW_hh = sum_t da_t^T h_{t-1}
            return input_grads(da, dn), dh, dw, db[0] if db else None, None, None, None
        hs, gates, diff, hn, w = ctx.saved_tensors
        steps, batch, hidden = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        lin = Linear(w.t(), batch)  # da @ W_hh
        gout, pairs = ctx.masks.output_grads(grad_out), ctx.masks.split()
        active = ctx.masks.rows  # valid rows per step, or None
        da = torch.empty_like(gates)  # (T, B, 3H): d(W_hh h_{t-1} + b_hh)
        dxn = torch.empty_like(hn)  # (T, B, H): d of xp^n, the n pre-activation
        _, rz, r, z, n = _views(hs, gates, hidden, steps)
        _, da_rz, da_r, da_z, da_n = _views(hs, da, hidden, steps)
        das, dxns, diffs, hns = da.unbind(0), dxn.unbind(0), diff.unbind(0), hn.unbind(0)
        direct = torch.empty_like(grad_h)  # (B, H): dh_t z, straight to h_{t-1}
        dh = grad_h + gout[-1]  # dL/dh_T: from the final state and the last output
        for t in reversed(range(steps)):
            carry = split_carry(dh, pairs[t])  # m_t dh into the step, the rest carried
            torch.mul(dh, diffs[t], out=da_z[t])  # dz = dh (h_{t-1} - n)
            torch.mul(dh, z[t], out=direct)  # dh z, through h_t = n + z (h_{t-1} - n)
            torch.sub(dh, direct, out=dxns[t])  # dn = dh (1 - z)
            _tanh_backward(dxns[t], n[t], grad_input=dxns[t])  # dA^n = dn (1 - n^2)
            torch.mul(dxns[t], r[t], out=da_n[t])  # da^n = dA^n r
            torch.mul(dxns[t], hns[t], out=da_r[t])  # dr = dA^n a^n
            _sigmoid_backward(da_rz[t], rz[t], grad_input=da_rz[t])  # da^{r,z} = d s (1 - s)
            if t:
                direct.add_(gout[t - 1])  # plus the gradient of output y_{t-1}
            if carry is not None:
                direct.add_(carry)  # plus what the masked step carried past
            dh = lin(das[t], direct, active[t])  # dh_{t-1} = da_t W_hh + dh z (+ dy_{t-1})
        dw = da.flatten(0, 1).t() @ hs[:-1].flatten(0, 1)  # dW_hh = sum_t da_t^T h_{t-1}
        db = da.sum((0, 1)) if ctx.with_bias else None  # db_hh = sum_t da_t
        dxp = torch.cat([da[..., : 2 * hidden], dxn], 2)  # dxp_t = [da^r, da^z, dA^n]
        return dxp, dh, dw, db, None, None, None


def input_grads(da: Tensor, dn: Tensor) -> Tensor:
    """``dxp_t = [da^r, da^z, dA^n]`` from the compiled backward's ``da`` (whose n block,
    ``dA^n r``, dW_hh and db_hh have read already) and ``dn`` = dA^n: written over da's n
    block in place, so that backward holds one (T, B, 3H) buffer instead of two."""
    da[..., 2 * dn.shape[-1] :] = dn
    return da


def gru_sequence(
    xp: Tensor,
    h0: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None = None,
    mask: Tensor | None = None,
    first_masked: int = 0,
    source: Recompute | None = None,
) -> tuple[Tensor, Tensor]:
    """The GRU recurrence over a sequence: returns outputs (T, B, H) and h_T (B, H).

    Args:
        xp: (T, B, 3H), ``W_ih x + b_ih`` for every step. h0: (B, H).
        weight_hh: (3H, H). bias_hh: (3H,) or None. mask: None or (T, B, 1) bool.
        first_masked: steps before it are all valid. source: recomputes ``xp`` with
            autograd, for double backward (:mod:`rnnkit.kernels.twice`).
    """
    if needs_grad(xp, h0, weight_hh, bias_hh):
        return _GRUSequence.apply(xp, h0, weight_hh, bias_hh, mask, first_masked, source)
    with torch.no_grad():
        masks = StepMasks(mask, first_masked, xp.shape[0], xp.dtype)
        args = ext.args(masks, mask, xp, h0, weight_hh, bias_hh)
        if args is not None:
            ops, m, rows = args
            packed = ext.packed(weight_hh, xp.shape[1], rows)
            return tuple(
                ops.gru_forward(xp, h0, weight_hh, bias_hh, packed, m, first_masked, rows, False)
            )
        rows = masks.prefix_rows(xp.shape[1])
        if rows is not None:
            return _gru_infer_prefix(xp.contiguous(), h0, weight_hh, bias_hh, masks, rows)
        hs = _gru_forward(xp.contiguous(), h0, weight_hh, bias_hh, masks, keep=False)[0]
        h_last = hs[-1].clone()
        return masks.outputs(hs[1:], inplace=True), h_last
