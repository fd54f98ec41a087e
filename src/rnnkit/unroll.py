"""Unrolling a cell over time: the explicit loop and torch's fused kernels.

Both functions work time-major: inputs (T, B, I), masks (T, B, 1). The layer
(:mod:`rnnkit.layers`) owns batch_first, depth, direction and argument checks.

The loop projects the inputs of all steps with one matrix product and walks the
resulting tensor with ``unbind``; it never indexes a tensor that requires grad per step
(``x[t]`` would add a full-size zero tensor to the backward pass at every step, making
backward quadratic in T).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import _VF, Tensor
from torch.nn.utils.rnn import PackedSequence

from rnnkit.cells import CellBase, ElmanCell, GatedCell, GRUCell, LSTMCell, State
from rnnkit.kernels import dense, elman_sequence, gru_sequence, lstm_sequence, project
from rnnkit.kernels.common import needs_grad

__all__ = [
    "DirectionTrace",
    "fused_kind",
    "fused_weights",
    "has_kernel",
    "kernel_base",
    "run_fused_packed",
    "run_fused_padded",
    "run_loop",
]


@dataclass
class DirectionTrace:
    """Per-step records of one layer and direction (filled only when asked for).

    ``hidden[t]`` is h_t (B, H) as it feeds step t+1 (still in the autograd graph, so
    ``hidden[t].retain_grad()`` before backward gives dL/dh_t); ``gates[t]`` maps gate
    names to their (B, H) activations.
    """

    hidden: list[Tensor] = field(default_factory=list)
    gates: list[dict[str, Tensor]] = field(default_factory=list)


def _select(mask: Tensor, new: State, old: State) -> State:
    """``new`` where mask (B, 1) is true, else ``old``; for tensor or tuple states."""
    if isinstance(new, tuple):
        return tuple(torch.where(mask, n, o) for n, o in zip(new, old, strict=True))
    return torch.where(mask, new, old)


def run_loop(
    cell: CellBase,
    x: Tensor,
    state: State,
    mask: Tensor | None,
    first_masked: int = 0,
    trace: DirectionTrace | None = None,
    kernels: bool | str = True,
) -> tuple[Tensor, State]:
    """Step ``cell`` along x (T, B, I) from ``state``; returns outputs (T, B, H), final state.

    Where ``mask`` (T, B, 1) is false the output is zero and the state is carried
    unchanged; steps before ``first_masked`` are known to be all valid and skip the mask.
    The built-in cells run as one kernel with hand-written BPTT (:mod:`rnnkit.kernels`)
    unless ``trace`` asks for per-step records (or the LSTM projects, which the kernels
    do not: then the cell is stepped with autograd); ``kernels`` False steps every cell with
    autograd, and "ops" runs a built-in cell through the kernels' custom ops
    (:mod:`rnnkit.kernels.library`), reading no tensor values, for a graph being compiled.
    """
    if kernels == "ops" and trace is None and has_kernel(cell):
        return _run_ops(cell, x, state, mask)
    base = kernel_base(cell) if kernels is True and trace is None else None
    if base is not None:
        return _run_kernel(base, cell, x, state, mask, first_masked)
    # the products of a cell's own nn.Linear layers through oneDNN where rnnkit's own layers'
    # would go (kernels.dense); rnnkit's cells, and rk.Linear, are there already
    macs = x.shape[1] * cell.hidden_size * (cell.input_size + cell.hidden_size)
    with dense.products(cell, x, macs):
        return _step_through(cell, x, state, mask, first_masked, trace)


def _step_through(cell, x, state, mask, first_masked, trace) -> tuple[Tensor, State]:
    gated = isinstance(cell, GatedCell)
    split = splits_its_step(cell)  # the state-free work of all steps at once (every GatedCell)
    steps = cell.project_input(x).unbind(0) if split else x.unbind(0)  # T x (B, G*H)
    masks = mask.unbind(0) if mask is not None else None
    outputs = []
    for t, xt in enumerate(steps):
        if trace is not None and gated:
            h, new, gates = cell.step_with_gates(xt, state)
            trace.gates.append(gates)
        elif split:
            h, new = cell.recurrent_step(xt, state)
        else:
            h, new = cell(xt, state)
        if masks is not None and t >= first_masked:
            state = _select(masks[t], new, state)
            h = h.masked_fill(~masks[t], 0.0)
        else:
            state = new
        if trace is not None:
            trace.hidden.append(cell.output(state))
        outputs.append(h)
    return torch.stack(outputs), state


def splits_its_step(cell: CellBase) -> bool:
    """Whether a cell of one's own splits its step (see :class:`~rnnkit.cells.CellBase`):
    ``project_input`` for the whole sequence, then ``recurrent_step`` per step."""
    return callable(getattr(cell, "project_input", None)) and callable(
        getattr(cell, "recurrent_step", None)
    )


def has_kernel(cell: CellBase) -> bool:
    """Whether a sequence kernel runs ``cell``: a built-in cell, not a projected LSTM."""
    return type(cell) in (ElmanCell, GRUCell, LSTMCell) and cell.output_size == cell.hidden_size


_KERNEL_KINDS = {LSTMCell: "lstm", GRUCell: "gru", ElmanCell: "elman"}


def kernel_kind(cell: CellBase) -> str:
    """The sequence kernel of a cell that :func:`has_kernel`: 'lstm', 'gru' or 'elman'."""
    return _KERNEL_KINDS[type(cell)]


def kernel_base(cell: CellBase) -> type | None:
    """The built-in cell whose sequence kernel runs ``cell`` exactly (its own type for a
    built-in cell), or None. A cell that is the plain recurrence with a per-call W_hh (the
    weight-dropped cells of :mod:`rnnkit.cells_regularized`) says so with ``kernel_base()``
    and gives that W_hh with ``kernel_weight_hh(h_0)``."""
    if has_kernel(cell):
        return type(cell)
    base = getattr(cell, "kernel_base", None)
    return base() if base is not None else None


def _run_kernel(base, cell, x, state, mask, first_masked) -> tuple[Tensor, State]:
    """``cell`` over x (T, B, I) as ``base``'s kernel with hand-written BPTT."""
    xp = project(cell, x, mask)  # (T, B, G*H); draws a regularised cell's masks of the call
    h0 = state[0] if isinstance(state, tuple) else state
    w_hh = cell.weight_hh if base is type(cell) else cell.kernel_weight_hh(h0)
    # for double backward, xp again with autograd from x (which autograd keeps anyway)
    masking = (mask, first_masked, lambda: project(cell, x, mask))
    if base is LSTMCell:
        out, h, c = lstm_sequence(xp, *state, w_hh, *masking)
        return out, (h, c)
    if base is GRUCell:
        return gru_sequence(xp, state, w_hh, cell.bias_hh, *masking)
    return elman_sequence(xp, state, w_hh, cell.nonlinearity, *masking)


def _run_ops(cell, x, state, mask) -> tuple[Tensor, State]:
    """A built-in cell over x (T, B, I) through the custom ops: the projection with
    autograd, the recurrence as one op (its backward registered)."""
    from rnnkit.kernels import library

    xp = cell.project_input(x)  # (T, B, G*H)
    train = needs_grad(xp, *(state if isinstance(state, tuple) else (state,)), cell.weight_hh)
    if type(cell) is LSTMCell:
        out, h, c = library.lstm(xp, *state, cell.weight_hh, mask, train)
        return out, (h, c)
    if type(cell) is GRUCell:
        return library.gru(xp, state, cell.weight_hh, cell.bias_hh, mask, train)
    return library.elman(xp, state, cell.weight_hh, cell.nonlinearity, mask, train)


# -- torch's fused kernels -----------------------------------------------------------------
_FUSED = {LSTMCell: "lstm", GRUCell: "gru"}


def fused_kind(cells: list[CellBase]) -> str | None:
    """Which of torch's kernels runs these cells exactly ('lstm', 'gru', 'rnn_tanh',
    'rnn_relu'), or None when one of them is a cell torch does not have."""
    kinds = set()
    for cell in cells:
        if type(cell) is ElmanCell:
            kinds.add(f"rnn_{cell.nonlinearity}")
        elif type(cell) in _FUSED:
            kinds.add(_FUSED[type(cell)])
        else:
            return None
    biases = {cell.bias for cell in cells}
    return kinds.pop() if len(kinds) == 1 and len(biases) == 1 else None


def fused_weights(cells: list[CellBase]) -> list[Tensor]:
    """The weights in torch.nn's flat order: per layer and direction w_ih, w_hh, then b_ih,
    b_hh with biases, then w_hr with a projection (torch's kernel sees a projection from
    h_0 and c_0 of different sizes)."""
    weights = []
    for cell in cells:
        weights += [cell.weight_ih, cell.weight_hh]
        if cell.bias:
            weights += [cell.bias_ih, cell.bias_hh]
        if getattr(cell, "proj_size", 0):
            weights.append(cell.weight_hr)
    return weights


def _call_fused(kind, cells, args_in, hx, num_layers, dropout, training, bidirectional, extra):
    fn = getattr(_VF, kind)
    hx_arg = hx if kind == "lstm" else hx[0]
    result = fn(
        *args_in,
        hx_arg,
        fused_weights(cells),
        cells[0].bias,
        num_layers,
        dropout,
        training,
        bidirectional,
        *extra,
    )
    return result[0], tuple(result[1:])


def run_fused_padded(kind, cells, x, hx, num_layers, dropout, training, bidirectional):
    """torch's kernel over x (T, B, I) with hx a tuple of (L*D, B, H) tensors."""
    return _call_fused(
        kind, cells, (x,), hx, num_layers, dropout, training, bidirectional, (False,)
    )


def run_fused_packed(
    kind, cells, packed: PackedSequence, hx, num_layers, dropout, training, bidirectional
):
    """torch's kernel over a PackedSequence; hx and the returned state in batch order."""
    if packed.sorted_indices is not None:
        hx = tuple(h.index_select(1, packed.sorted_indices) for h in hx)
    data, state = _call_fused(
        kind,
        cells,
        (packed.data, packed.batch_sizes),
        hx,
        num_layers,
        dropout,
        training,
        bidirectional,
        (),
    )
    if packed.unsorted_indices is not None:
        state = tuple(h.index_select(1, packed.unsorted_indices) for h in state)
    out = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
    return out, state
