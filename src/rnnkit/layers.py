"""Recurrent layers: time, direction and depth around a one-step cell.

``rk.RNN``, ``rk.LSTM`` and ``rk.GRU`` take torch.nn's constructor arguments and give
torch.nn's ``state_dict`` keys (``weight_ih_l0``, ..., ``bias_hh_l1_reverse``), outputs and
states, so ``rk.LSTM(...).load_state_dict(nn.LSTM(...).state_dict())`` is the same
function. ``rk.Recurrent(cell, ...)`` runs any cell, a user's own included.

Shapes (N batch, L time, D = 2 if bidirectional else 1, H hidden):

* input: (N, L, H_in) with ``batch_first=True``, (L, N, H_in) otherwise, or (L, H_in)
  unbatched; or a ``PackedSequence``.
* lengths: optional (N,) integers in 1..L on any device, in any order.
* output: (N, L, D*H) (or (L, N, D*H)); zeros at padded positions.
* state: (num_layers*D, N, H), a tuple ``(h, c)`` of them for the LSTM; the final state of
  each sequence is taken at its own last step, and the reverse direction starts there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.cells import CellBase, ElmanCell, GRUCell, LSTMCell, State
from rnnkit.unroll import (
    DirectionTrace,
    fused_kind,
    run_fused_packed,
    run_fused_padded,
    run_loop,
)

__all__ = ["GRU", "LSTM", "RNN", "LayerTrace", "Recurrent"]

BACKENDS = ("auto", "torch", "loop")
_TORCH_KEY = re.compile(r"^(?P<name>[\w.]+?)_l(?P<layer>\d+)(?P<rev>_reverse)?$")


@dataclass
class LayerTrace:
    """What :meth:`Recurrent.trace` returns: the forward results and per-step records.

    ``hidden[k][t]`` and ``gates[k][t]`` belong to layer ``k // D``, direction ``k % D``,
    at processing step t: input step t for the forward direction, and the t-th step back
    from each sequence's own last step for the reverse one.
    """

    output: Tensor
    state: State
    hidden: list[list[Tensor]]
    gates: list[list[dict[str, Tensor]]]


class Recurrent(nn.Module):
    """Unrolls ``cell`` over time, ``num_layers`` deep, optionally in both directions.

    Args:
        cell: the first layer's forward cell; the other layers and directions get fresh
            copies from ``cell.clone(input_size=...)``.
        num_layers: stacked layers; layer k+1 reads layer k's (D*H) outputs.
        bidirectional: also run every layer from each sequence's last step to its first.
        batch_first: inputs and outputs are (N, L, ...) instead of (L, N, ...).
        dropout: dropout on the outputs of every layer but the last, in [0, 1).
        backend: ``"loop"`` steps the cell explicitly (any cell; :meth:`trace` uses it);
            ``"torch"`` uses torch's fused kernels (built-in cells only); ``"auto"`` picks
            the faster of the two where both apply (see ``_use_fused``), else ``"loop"``.
    """

    def __init__(
        self,
        cell: CellBase,
        num_layers: int = 1,
        bidirectional: bool = False,
        batch_first: bool = False,
        dropout: float = 0.0,
        backend: str = "auto",
    ):
        super().__init__()
        if not isinstance(cell, CellBase):
            raise ValueError(f"cell: expected an rnnkit CellBase, got {type(cell).__name__}")
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
            raise ValueError(f"num_layers: expected a positive integer, got {num_layers!r}")
        if not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a number in [0, 1), got {dropout!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        self.input_size = cell.input_size
        self.hidden_size = cell.hidden_size
        self.num_layers = num_layers
        self.bidirectional = bool(bidirectional)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.num_directions = 2 if bidirectional else 1
        cells = []
        for layer in range(num_layers):
            size = self.input_size if layer == 0 else self.hidden_size * self.num_directions
            for direction in range(self.num_directions):
                first = layer == 0 and direction == 0
                cells.append(cell if first else cell.clone(input_size=size))
        self.cells = nn.ModuleList(cells)
        self._fused = fused_kind(cells)
        if backend == "torch" and self._fused is None:
            raise ValueError(
                f"backend: expected 'loop' or 'auto' for a {type(cell).__name__}, got 'torch' "
                f"(torch's kernels run ElmanCell, LSTMCell and GRUCell only)"
            )
        self.backend = backend
        self.register_state_dict_post_hook(_to_torch_keys)
        self.register_load_state_dict_pre_hook(_from_torch_keys)

    # -- public API --------------------------------------------------------------------
    def forward(
        self, x: Tensor | PackedSequence, state: State | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor | PackedSequence, State]:
        """Run the layer: returns (output, final state), shaped as torch.nn's.

        Under CPU autocast (``trainer.precision = "bf16"``) the layer runs in float32, the
        precision of its compiled kernels; on a GPU autocast reaches torch's fused kernels."""
        if isinstance(x, Tensor) and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return self.forward(_float32(x), _float32(state), lengths)
        if isinstance(x, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths: a PackedSequence carries its own lengths; pass None")
            return self._forward_packed(x, state)
        x, hx, lengths, unbatched = self._prepare(x, state, lengths)
        steps = x.shape[0]
        if lengths is not None and int(lengths.max()) == int(lengths.min()):
            # one length L < T for all (B = 1, say): the first L steps without padding
            x, lengths = x[: int(lengths[0])], None
        if self._use_fused(lengths, x):
            out, hx = self._fused_padded(x, hx, lengths)
        else:
            out, hx = self._loop(x, hx, lengths, traces=None)
        if out.shape[0] < steps:  # zeros at the padded steps
            out = nn.functional.pad(out, (0, 0, 0, 0, 0, steps - out.shape[0]))
        return self._finish(out, hx, unbatched)

    def trace(
        self, x: Tensor, state: State | None = None, lengths: Tensor | None = None
    ) -> LayerTrace:
        """Forward on the loop path, keeping every step's hidden state and gates."""
        x, hx, lengths, unbatched = self._prepare(x, state, lengths)
        traces = [DirectionTrace() for _ in self.cells]
        out, hx = self._loop(x, hx, lengths, traces)
        out, hx = self._finish(out, hx, unbatched)
        return LayerTrace(out, hx, [t.hidden for t in traces], [t.gates for t in traces])

    def step(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One time step of a unidirectional stack, for decoding a token at a time.

        ``x`` (B, I) and ``state`` as :meth:`forward` takes it ((L, B, H), or a tuple of them
        for the LSTM; None for zeros) -> (h_t (B, H) of the top layer, the new state). Each
        layer's cell is stepped directly (one input and one recurrent product per layer), so
        nothing is repacked per call as a fused kernel does for a one-step sequence; the
        result equals ``forward`` on the one-step sequence (dropout between layers too).
        """
        if self.bidirectional:
            raise ValueError("step: a bidirectional layer reads the whole sequence; use forward")
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[-1] != self.input_size:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x: expected (batch, input_size={self.input_size}), got {shape}")
        hx = self._check_state(state, x.shape[0], x, unbatched=False)
        parts: list[list[Tensor]] = [[] for _ in hx]
        out = x
        for k, cell in enumerate(self.cells):
            if k > 0 and self.dropout > 0:
                out = nn.functional.dropout(out, self.dropout, self.training)
            s = tuple(p[k] for p in hx)
            out, s = cell(out, s if len(s) > 1 else s[0])
            for i, p in enumerate(s if isinstance(s, tuple) else (s,)):
                parts[i].append(p)
        new = tuple(torch.stack(p) for p in parts)  # each (L, B, H)
        return out, new if len(new) > 1 else new[0]

    def get_config(self) -> dict:
        """Constructor arguments of this layer (the cell as its own config)."""
        return {
            "cell": {"type": type(self.cells[0]).__name__, **self.cells[0].get_config()},
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "backend": self.backend,
        }

    def extra_repr(self) -> str:
        return (
            f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
            f"batch_first={self.batch_first}, dropout={self.dropout}, backend={self.backend!r}"
        )

    # -- checks ------------------------------------------------------------------------
    def _prepare(self, x, state, lengths):
        """Check arguments; return time-major x (T, B, I), state tuple, lengths or None."""
        if not isinstance(x, Tensor) or x.dim() not in (2, 3):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            layout = "(batch, time, features)" if self.batch_first else "(time, batch, features)"
            raise ValueError(
                f"input: expected a 3-D tensor {layout} or a 2-D unbatched (time, features) "
                f"tensor, got {shape}"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"input: expected last dimension input_size={self.input_size}, "
                f"got {x.shape[-1]} (shape {tuple(x.shape)})"
            )
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        steps, batch = x.shape[0], x.shape[1]
        if steps == 0:
            raise ValueError("input: expected at least one time step, got 0")
        if lengths is not None:
            lengths = self._check_lengths(lengths, batch, steps)
        hx = self._check_state(state, batch, x, unbatched)
        return x, hx, lengths, unbatched

    @staticmethod
    def _check_lengths(lengths, batch: int, steps: int) -> Tensor | None:
        if not isinstance(lengths, Tensor):
            lengths = torch.as_tensor(lengths)
        if lengths.shape != (batch,) or lengths.is_floating_point() or lengths.is_complex():
            raise ValueError(
                f"lengths: expected an integer tensor of shape ({batch},), got "
                f"{lengths.dtype} of shape {tuple(lengths.shape)}"
            )
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < 1 or hi > steps:
            raise ValueError(f"lengths: expected values in 1..{steps}, got min {lo}, max {hi}")
        return None if lo == steps else lengths.to("cpu", torch.int64)

    def _check_state(self, state, batch, x, unbatched) -> tuple[Tensor, ...]:
        n = self.cells[0].state_size
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if state is None:
            zeros = x.new_zeros(shape)
            return tuple(zeros.clone() for _ in range(n)) if n > 1 else (zeros,)
        parts = state if isinstance(state, tuple | list) else (state,)
        want = shape[:1] + shape[2:] if unbatched else shape
        got = [tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__ for p in parts]
        if len(parts) != n or any(g != want for g in got):
            what = f"a tuple of {n} tensors" if n > 1 else "a tensor"
            raise ValueError(f"state: expected {what} of shape {want}, got {got}")
        return tuple(p.unsqueeze(1) for p in parts) if unbatched else tuple(parts)

    # -- the two paths -----------------------------------------------------------------
    def _use_fused(self, lengths: Tensor | None = None, x: Tensor | None = None) -> bool:
        """Whether torch's kernel runs this call; ``"auto"`` picks by the layer benchmark
        (docs/RESULTS.md: per-row medians of three runs) on CPU, float32 and float64:

        - GRU and Elman: the compiled loop kernels whenever they are available (on CPU,
          torch.nn runs these cells with ATen's per-step loop, which they beat 1.12-11.9x,
          median 1.57x, padded or not);
        - LSTM without padding: torch's kernel (oneDNN's LSTM, which the loop kernels do not
          beat: 0.79-0.97x at B >= 32);
        - an LSTM on a padded batch (torch runs its slower packed path; the loop kernels
          skip the padded rows of a length-sorted batch and project only the valid
          positions): the loop in training (1.56-2.82x torch.nn at B >= 32) and, with the
          compiled kernels, in inference at B >= 8 (1.43-1.52x at B >= 32).

        The loop kernels' backward is not differentiable twice: use ``backend="torch"``
        for double backward (gradient penalties)."""
        if self.backend == "loop" or self._fused is None:
            return False
        if self.backend == "torch" or x is None or x.device.type != "cpu":
            return True
        from rnnkit.kernels import ext

        compiled = x.dtype in (torch.float32, torch.float64) and ext.available()
        if compiled and self._fused != "lstm":
            return False
        padded = lengths is not None and bool((lengths < x.shape[0]).any())  # x: (T, B, I)
        if not padded:
            return True
        training = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())
        )
        return not (training or (x.shape[1] >= 8 and compiled))

    def _fused_padded(self, x, hx, lengths):
        args = (self.num_layers, self.dropout, self.training, self.bidirectional)
        if lengths is None:
            return run_fused_padded(self._fused, list(self.cells), x, hx, *args)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, hx = run_fused_packed(self._fused, list(self.cells), packed, hx, *args)
        out, _ = pad_packed_sequence(out, total_length=x.shape[0])
        return out, hx

    def _loop(self, x, hx, lengths, traces):
        if lengths is not None and traces is None and bool((lengths.diff() > 0).any()):
            # longest first: every step's valid rows then come first, and the kernels of
            # the built-in cells skip the padded rows in their products
            order = torch.argsort(lengths, descending=True, stable=True)
            lengths, back = lengths[order], torch.argsort(order).to(x.device)
            order = order.to(x.device)
            x, hx = x.index_select(1, order), tuple(h.index_select(1, order) for h in hx)
            out, hx = self._loop(x, hx, lengths, traces)
            return out.index_select(1, back), tuple(h.index_select(1, back) for h in hx)
        steps = x.shape[0]
        mask = rev = None
        first_masked = steps
        if lengths is not None:
            lengths = lengths.to(x.device)
            time = torch.arange(steps, device=x.device).unsqueeze(1)  # (T, 1)
            mask = (time < lengths).unsqueeze(2)  # (T, B, 1)
            first_masked = int(lengths.min())
            # the reverse direction reads each sequence from its own last step: the index
            # maps t -> len-1-t on valid steps and leaves padding in place (an involution)
            rev = torch.where(time < lengths, lengths - 1 - time, time)  # (T, B)
        layer_states = [h.unbind(0) for h in hx]  # per part: L*D x (B, H)
        final = []
        out = x
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                out = nn.functional.dropout(out, self.dropout, self.training)
            outs = []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                cell = self.cells[k]
                s0 = tuple(p[k] for p in layer_states)
                s0 = s0 if len(s0) > 1 else s0[0]
                trace = traces[k] if traces is not None else None
                inp = out if d == 0 else _reverse(out, rev)
                o, s = run_loop(cell, inp, s0, mask, first_masked, trace)
                if d == 1:
                    o = _reverse(o, rev)
                outs.append(o)
                final.append(s if isinstance(s, tuple) else (s,))
            out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
        hx = tuple(torch.stack(part) for part in zip(*final, strict=True))
        return out, hx

    def _forward_packed(self, packed: PackedSequence, state):
        batch = int(packed.batch_sizes[0])
        ref = packed.data.new_empty(1, batch, self.input_size)
        if packed.data.dim() != 2 or packed.data.shape[-1] != self.input_size:
            raise ValueError(
                f"input: expected packed data of shape (*, {self.input_size}), "
                f"got {tuple(packed.data.shape)}"
            )
        hx = self._check_state(state, batch, ref, unbatched=False)
        if self._use_fused():
            args = (self.num_layers, self.dropout, self.training, self.bidirectional)
            out, hx = run_fused_packed(self._fused, list(self.cells), packed, hx, *args)
        else:
            x, lengths = pad_packed_sequence(packed)  # (T, B, I), lengths in batch order
            full = int(lengths.min()) == x.shape[0]
            out, hx = self._loop(x, hx, None if full else lengths, traces=None)
            order = packed.sorted_indices
            if order is not None:
                out, lengths = out.index_select(1, order), lengths[order.cpu()]
            data = pack_padded_sequence(out, lengths).data
            out = PackedSequence(data, packed.batch_sizes, order, packed.unsorted_indices)
        return out, (hx if len(hx) > 1 else hx[0])

    def _finish(self, out, hx, unbatched):
        if unbatched:
            out, hx = out.squeeze(1), tuple(h.squeeze(1) for h in hx)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, (hx if len(hx) > 1 else hx[0])


def _float32(x):
    """Floating tensors (or tuples of them) in float32; anything else as it is."""
    if isinstance(x, tuple):
        return tuple(_float32(t) for t in x)
    if isinstance(x, Tensor) and x.is_floating_point() and x.dtype != torch.float64:
        return x.float()
    return x


def _reverse(x: Tensor, rev: Tensor | None) -> Tensor:
    """Reverse each sequence of x (T, B, F) within its own length."""
    if rev is None:
        return x.flip(0)
    return x.gather(0, rev.unsqueeze(2).expand_as(x))


# -- state_dict keys as torch.nn's -------------------------------------------------------------
def _torch_suffix(module: Recurrent, k: int) -> str:
    layer, direction = divmod(k, module.num_directions)
    return f"_l{layer}" + ("_reverse" if direction else "")


def _to_torch_keys(module, state_dict, prefix, local_metadata) -> None:
    """``cells.3.weight_ih`` -> ``weight_ih_l1_reverse``, in torch.nn's order."""
    for k in range(len(module.cells)):
        head = f"{prefix}cells.{k}."
        for key in [key for key in state_dict if key.startswith(head)]:
            name = key[len(head) :]
            state_dict[f"{prefix}{name}{_torch_suffix(module, k)}"] = state_dict.pop(key)


def _from_torch_keys(module, state_dict, prefix, *args) -> None:
    """The inverse of :func:`_to_torch_keys`, for keys of that form under ``prefix``."""
    for key in [key for key in state_dict if key.startswith(prefix)]:
        match = _TORCH_KEY.match(key[len(prefix) :])
        if match:
            k = int(match["layer"]) * module.num_directions + (1 if match["rev"] else 0)
            state_dict[f"{prefix}cells.{k}.{match['name']}"] = state_dict.pop(key)


# -- the three classic layers --------------------------------------------------------------
class RNN(Recurrent):
    r"""Elman RNN layer, ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` (or ReLU).

    Arguments as ``torch.nn.RNN`` plus ``backend``; see :class:`Recurrent`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        backend: str = "auto",
    ):
        cell = ElmanCell(input_size, hidden_size, bias, nonlinearity)
        super().__init__(cell, num_layers, bidirectional, batch_first, dropout, backend)
        self.nonlinearity, self.bias = nonlinearity, bias


class LSTM(Recurrent):
    r"""LSTM layer (gates i, f, g, o; see :class:`rnnkit.cells.LSTMCell`).

    Arguments as ``torch.nn.LSTM`` (without ``proj_size``) plus ``backend``; the state is
    the pair ``(h, c)``, each (num_layers*D, N, H).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        backend: str = "auto",
    ):
        cell = LSTMCell(input_size, hidden_size, bias)
        super().__init__(cell, num_layers, bidirectional, batch_first, dropout, backend)
        self.bias = bias


class GRU(Recurrent):
    r"""GRU layer (gates r, z, n as torch.nn; see :class:`rnnkit.cells.GRUCell`).

    Arguments as ``torch.nn.GRU`` plus ``backend``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        backend: str = "auto",
    ):
        cell = GRUCell(input_size, hidden_size, bias)
        super().__init__(cell, num_layers, bidirectional, batch_first, dropout, backend)
        self.bias = bias
