r"""Inference on a padded batch touching only its valid positions (the packed layout).

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

This is the path of a layer's padded inference with the compiled kernels
(:meth:`rnnkit.layers.Recurrent._loop`); its parity with the masked kernels is pinned in
``tests/test_packed_inference.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.cells import ElmanCell, GRUCell, LSTMCell, State
from rnnkit.kernels import ext
from rnnkit.kernels.common import Linear

__all__ = ["PackedPlan", "from_packed", "gather", "plan", "run_cell", "scatter"]


@dataclass
class PackedPlan:
    """Where the valid positions of a padded batch go.

    ``order`` (B,): sorted row j is batch row ``order[j]`` (decreasing length, stable);
    ``back`` (B,): its inverse. ``rows``: n_t, the valid rows of each step t < max length.
    ``steps`` (N,), ``sorted_rows`` (N,): step and sorted row of each packed position.
    ``forward``, ``reverse`` (T', B) int64: the packed position that step t of sorted row j
    reads and writes, left to right and from each row's own end (valid where j < n_t).
    """

    order: Tensor
    back: Tensor
    rows: list[int]
    steps: Tensor
    sorted_rows: Tensor
    forward: Tensor
    reverse: Tensor

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
    to = device if device is not None else torch.device("cpu")
    return PackedPlan(
        order=order.to(to),
        back=torch.argsort(order).to(to),
        rows=counts.tolist(),
        steps=steps.to(to),
        sorted_rows=sorted_rows.to(to),
        forward=forward,
        reverse=reverse,
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


def run_cell(cell, data: Tensor, state: State, p: PackedPlan, reverse: bool):
    """A built-in cell (Elman, LSTM, GRU; no projection) over packed rows ``data`` (N, I)
    from ``state`` (sorted rows): returns its outputs (N, H) and final state (each row's
    state at its last valid step, sorted rows). Inference only, compiled kernels only."""
    ops = ext.ops()
    index = p.reverse if reverse else p.forward
    xp = Linear(cell.weight_ih, data.shape[0], cell.input_bias())(data)  # (N, G*H)
    w = cell.weight_hh
    packed = ext.packed(w, p.order.shape[0], p.rows)
    if type(cell) is LSTMCell:
        y, h, c = ops.lstm_forward(xp, *state, w, packed, None, 0, p.rows, False, index)
        return y, (h, c)
    if type(cell) is GRUCell:
        y, h = ops.gru_forward(xp, state, w, cell.bias_hh, packed, None, 0, p.rows, False, index)
        return y, h
    assert type(cell) is ElmanCell
    relu = cell.nonlinearity == "relu"
    y, h = ops.elman_forward(xp, state, w, packed, relu, None, 0, p.rows, False, index)
    return y, h
