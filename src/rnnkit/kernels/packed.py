r"""A padded batch touching only its valid positions (the packed layout), in inference and
in training.

A padded batch (T, B, I) with lengths holds N = sum(lengths) valid positions. Sorted by
decreasing length, step t's valid rows are its first n_t, and the valid positions in
time-major order are what :class:`torch.nn.utils.rnn.PackedSequence` calls ``data``: row
``offset_t + j`` is step t of sorted row j, with ``offset_t = n_0 + ... + n_{t-1}``. Here
each layer and direction runs in that layout: the input projection is one product over the
N valid rows (gathered once from the padded input, strided or not: no sorted or
time-major copy of the batch), the compiled kernel steps the sorted rows reading and
writing packed rows through an index (``csrc/fused.cpp``, ``Layout``), the directions are
concatenated on N rows, and only the top layer's outputs are scattered into the
zero-padded result. Nothing of size T x B is filled and thrown away, and no output is
sorted back. The reverse direction reads row j from its own last step: its step s
is position ``offset_{L_j - 1 - s} + j``, valid for the same rows as the forward step s.

In training (:func:`run_cell` when a gradient is needed) the kernels keep what backward
reads packed the same way: the states (h_0 of the B rows, then h_t of step t's rows at
``B + offset_t + j``), the gates and the cell states of the N valid positions, never a
(T, B) grid, and the backward kernels walk the same rows. Training reads the positions in
step order (the reverse direction's input is permuted into it and its outputs back: the
permutation ``flip`` is its own inverse), and ``dW_hh = sum dA^T h_{t-1}`` is one product
over the N positions with ``h_{t-1}`` gathered through ``prev``.

This is the path of a layer's padded batches with the compiled kernels
(:meth:`rnnkit.layers.Recurrent._loop`); its parity with the masked kernels is pinned in
``tests/test_packed_inference.py`` and ``tests/test_packed_training.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.kernels import ext
from rnnkit.kernels.common import Linear, needs_grad
from rnnkit.kernels.dense import linear
from rnnkit.kernels.gru import input_grads
from rnnkit.kernels.twice import double_backward

__all__ = ["PackedPlan", "from_packed", "gather", "plan", "run_cell", "scatter"]


@dataclass
class PackedPlan:
    """Where the valid positions of a padded batch go.

    ``order`` (B,): sorted row j is batch row ``order[j]`` (decreasing length, stable);
    ``back`` (B,): its inverse. ``rows``: n_t, the valid rows of each step t < max length.
    ``steps`` (N,), ``sorted_rows`` (N,): step and sorted row of each packed position.
    ``forward``, ``reverse`` (T', B) int64: the packed position that step t of sorted row j
    reads and writes, left to right and from each row's own end (valid where j < n_t).
    ``flip`` (N,): the position that reverse step t of row j reads, at position
    ``offset_t + j`` (a permutation that is its own inverse). ``prev`` (N,): the row of
    the training kernels' kept states (h_0 rows first) that holds h_{t-1} for each position.
    """

    order: Tensor
    back: Tensor
    rows: list[int]
    steps: Tensor
    sorted_rows: Tensor
    forward: Tensor
    reverse: Tensor
    flip: Tensor
    prev: Tensor

    @property
    def size(self) -> int:
        """N, the number of valid positions."""
        return int(self.steps.shape[0])


def plan(
    lengths: Tensor, device: torch.device | None = None, order: Tensor | None = None
) -> PackedPlan:
    """The packed layout of a batch with these lengths ((B,) integers >= 1); ``order``
    (B,) sorts them by decreasing length (default: a stable sort; a PackedSequence's
    ``sorted_indices``, whose ties may be in another order)."""
    lengths = lengths.to("cpu", torch.int64)
    if order is None:
        order = torch.argsort(lengths, descending=True, stable=True)
    order = order.to("cpu", torch.int64)
    sorted_len = lengths[order]
    batch, longest = lengths.shape[0], int(sorted_len[0])
    time = torch.arange(longest).unsqueeze(1)  # (T', 1)
    valid = time < sorted_len  # (T', B): sorted row j valid at step t
    counts = valid.sum(1)  # n_t
    offsets = torch.cumsum(counts, 0) - counts  # first packed position of step t
    cols = torch.arange(batch)
    forward = offsets.unsqueeze(1) + cols  # (T', B)
    last = (sorted_len - 1 - time).clamp_min(0)  # the step that reverse step s reads
    reverse = offsets[last] + cols
    steps, sorted_rows = valid.nonzero(as_tuple=True)  # packed order: time-major
    # h_{t-1} of step t's row j: h_0 (row j) at t = 0, else row B + offset_{t-1} + j
    before = offsets[(steps - 1).clamp_min(0)] + batch + sorted_rows
    prev = torch.where(steps > 0, before, sorted_rows)
    to = device if device is not None else torch.device("cpu")
    return PackedPlan(
        order=order.to(to),
        back=torch.argsort(order).to(to),
        rows=counts.tolist(),
        steps=steps.to(to),
        sorted_rows=sorted_rows.to(to),
        forward=forward,
        reverse=reverse,
        flip=reverse[steps, sorted_rows].to(to),
        prev=prev.to(to),
    )


def from_packed(batch_sizes: Tensor, sorted_indices: Tensor | None) -> PackedPlan:
    """The plan of a :class:`PackedSequence`, whose ``data`` is already in its layout."""
    batch = int(batch_sizes[0])
    sorted_len = (batch_sizes.unsqueeze(1) > torch.arange(batch)).sum(0)  # (B,), sorted rows
    order = torch.arange(batch) if sorted_indices is None else sorted_indices.cpu()
    lengths = torch.empty_like(sorted_len)
    lengths[order] = sorted_len
    device = None if sorted_indices is None else sorted_indices.device
    return plan(lengths, device, order)


def gather(x: Tensor, p: PackedPlan) -> Tensor:
    """The valid positions of x (T, B, I) (any strides) as packed rows (N, I)."""
    return x[p.steps, p.order[p.sorted_rows]]


def scatter(data: Tensor, p: PackedPlan, steps: int, batch_first: bool) -> Tensor:
    """Packed rows (N, K) as the zero-padded (T, B, K) time-major tensor, in the batch's
    own order; with ``batch_first`` a transposed view of a contiguous (B, T, K)."""
    batch = p.order.shape[0]
    rows = p.order[p.sorted_rows]
    if batch_first:
        out = data.new_zeros(batch, steps, data.shape[1])
        out[rows, p.steps] = data
        return out.transpose(0, 1)
    out = data.new_zeros(steps, batch, data.shape[1])
    out[p.steps, rows] = data
    return out


def run_cell(
    cell,
    kind: str,
    data: Tensor,
    state: Tensor | tuple[Tensor, Tensor],
    p: PackedPlan,
    reverse: bool,
):
    """A built-in cell of ``kind`` ('lstm', 'gru' or 'elman', as
    :func:`rnnkit.unroll.kernel_kind` names it; no projection) over packed rows ``data`` (N, I)
    from ``state`` (sorted rows): returns its outputs (N, H) and final state (each row's
    state at its last valid step, sorted rows). Compiled kernels only; with autograd when
    the data, the state or the cell's weights need gradients."""
    parts = state if isinstance(state, tuple) else (state,)
    weights = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    if needs_grad(data, *parts, *weights):
        return _train_cell(cell, kind, data, parts, p, reverse)
    ops = ext.ops()
    index = p.reverse if reverse else p.forward
    xp = Linear(cell.weight_ih, data.shape[0], cell.input_bias())(data)  # (N, G*H)
    w = cell.weight_hh
    packed = ext.packed(w, p.order.shape[0], p.rows)
    if kind == "lstm":
        y, h, c = ops.lstm_forward(xp, *state, w, packed, None, 0, p.rows, False, index)
        return y, (h, c)
    if kind == "gru":
        y, h = ops.gru_forward(xp, state, w, cell.bias_hh, packed, None, 0, p.rows, False, index)
        return y, h
    if kind != "elman":
        raise ValueError(f"kind must be 'lstm', 'gru' or 'elman', got {kind!r}")
    relu = cell.nonlinearity == "relu"
    y, h = ops.elman_forward(xp, state, w, packed, relu, None, 0, p.rows, False, index)
    return y, h


def _train_cell(
    cell, kind: str, data: Tensor, state: tuple[Tensor, ...], p: PackedPlan, reverse: bool
):
    """:func:`run_cell` with autograd: the projection as torch ops, the recurrence as
    :class:`_PackedRecurrence` in step order (the reverse direction permuted into it)."""
    if reverse:
        data = data.index_select(0, p.flip)

    def project() -> Tensor:  # (N, G*H); again only for double backward (data is kept anyway)
        return linear(data, cell.weight_ih, cell.input_bias())

    bias = cell.bias_hh if kind == "gru" else None
    extra = getattr(cell, "nonlinearity", None)
    y, *final = _PackedRecurrence.apply(
        kind, extra, (p, project), project(), cell.weight_hh, bias, *state
    )
    if reverse:
        y = y.index_select(0, p.flip)
    return y, tuple(final) if len(final) > 1 else final[0]


class _PackedRecurrence(torch.autograd.Function):
    """One cell's recurrence over packed rows in step order: outputs (N, H), final states.
    ``plan``: the layout and a function recomputing ``xp`` with autograd (for double
    backward: the projection is not kept, which would cost an (N, G*H) tensor a step)."""

    @staticmethod
    def forward(ctx, kind, extra, plan, xp, w, bias, *state):
        p, project = plan
        ops = ext.ops()
        batch = p.order.shape[0]
        packed = ext.packed(w, batch, p.rows)
        args = (None, 0, p.rows, True, p.forward)  # no mask, sorted rows, training, layout
        if kind == "lstm":
            y, h, c, hs, cs, gates, tcs = ops.lstm_forward(xp, *state, w, packed, *args)
            ctx.save_for_backward(hs, cs, gates, tcs, w)
            final = (h, c)
        elif kind == "gru":
            y, h, hs, gates, an = ops.gru_forward(xp, *state, w, bias, packed, *args)
            ctx.save_for_backward(hs, gates, an, w)
            final = (h,)
        else:
            y, h, hs = ops.elman_forward(xp, *state, w, packed, extra == "relu", *args)
            ctx.save_for_backward(hs, w)
            final = (h,)
        ctx.kind, ctx.extra, ctx.p = kind, extra, p
        ctx.twice = (project, state, w, bias)
        return (y, *final)

    @staticmethod
    def backward(ctx, grad_y, *grad_final):
        if torch.is_grad_enabled():  # create_graph=True: the gradients must be differentiable
            return (None, None, None, *_PackedRecurrence._twice(ctx, grad_y, grad_final))
        return (None, None, None, *_PackedRecurrence._first_order(ctx, grad_y, grad_final))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def _first_order(ctx, grad_y, grad_final):
        ops, p, kind = ext.ops(), ctx.p, ctx.kind
        w = ctx.saved_tensors[-1]
        packed_t = ext.packed(w.t(), p.order.shape[0], p.rows)
        masking = (None, 0, p.rows)
        db = None
        if kind == "lstm":
            hs, cs, gates, tcs, _ = ctx.saved_tensors
            da, dh, dc = ops.lstm_backward(
                grad_y, *grad_final, cs, gates, tcs, w, packed_t, *masking
            )
            dxp, dstate = da, (dh, dc)
        elif kind == "gru":
            hs, gates, an, _ = ctx.saved_tensors
            with_bias = ctx.twice[3] is not None  # b_hh
            da, dh, dn, *rest = ops.gru_backward(
                grad_y, *grad_final, hs, gates, an, w, packed_t, with_bias, *masking
            )
            db, dstate = (rest[0] if rest else None), (dh,)
        else:
            hs, _ = ctx.saved_tensors
            relu = ctx.extra == "relu"
            da, dh = ops.elman_backward(grad_y, *grad_final, hs, w, packed_t, relu, *masking)
            dxp, dstate = da, (dh,)
        dw = da.t() @ hs.index_select(0, p.prev)  # dW_hh = sum dA^T h_{t-1}, N positions
        if kind == "gru":
            dxp = input_grads(da, dn)  # after dW_hh has read da
        return (dxp, dw, db, *dstate)

    @staticmethod
    def _twice(ctx, grad_y, grad_final):
        """The gradients with a graph: the recurrence recomputed with autograd on the
        zero-padded (T, B) grid of the same positions (:mod:`rnnkit.kernels.twice`)."""
        p = ctx.p
        project, state, w, bias = ctx.twice
        steps, batch = len(p.rows), p.order.shape[0]
        mask = torch.zeros(steps, batch, 1, dtype=torch.bool, device=w.device)
        mask[p.steps, p.sorted_rows] = True

        def grid(packed_rows: Tensor) -> Tensor:
            out = packed_rows.new_zeros(steps, batch, packed_rows.shape[1])
            return out.index_put((p.steps, p.sorted_rows), packed_rows)

        with torch.enable_grad():
            xp_grid = grid(project())
        grads = (grid(grad_y), *grad_final)
        dxp_grid, *rest = double_backward(ctx.kind, grads, xp_grid, state, w, bias, mask, ctx.extra)
        dxp = None if dxp_grid is None else dxp_grid[p.steps, p.sorted_rows]
        n = len(state)
        dstate, dw = rest[:n], rest[n]
        db = rest[n + 1] if bias is not None else None
        return (dxp, dw, db, *dstate)
