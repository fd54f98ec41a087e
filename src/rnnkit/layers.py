"""Recurrent layers: time, direction and depth around a one-step cell.

``rk.RNN``, ``rk.LSTM`` and ``rk.GRU`` take torch.nn's constructor arguments (``proj_size``,
``device`` and ``dtype`` included) and have torch.nn's module surface: the weights are the
layer's parameters under torch.nn's names (``layer.weight_ih_l0``, ...,
``layer.weight_hr_l1_reverse``) in ``named_parameters()`` and ``state_dict()``, with
``all_weights``, ``_flat_weights_names`` and ``flatten_parameters()``; outputs, states and
errors are torch.nn's. So ``rk.LSTM(...).load_state_dict(nn.LSTM(...).state_dict())`` is
the same function, and ``nn.init.orthogonal_(lstm.weight_hh_l0)``, ``prune``,
``weight_norm`` or a parametrisation by torch.nn's name change what every backend computes.
``rk.Recurrent(cell, ...)`` runs any cell, a user's own included.

Shapes (N batch, L time, D = 2 if bidirectional else 1, H hidden, P = proj_size or H):

* input: (N, L, H_in) with ``batch_first=True``, (L, N, H_in) otherwise, or (L, H_in)
  unbatched; or a ``PackedSequence``.
* lengths: optional (N,) integers in 1..L on any device, in any order.
* output: (N, L, D*P) (or (L, N, D*P)); zeros at padded positions.
* state: (num_layers*D, N, P), and for the LSTM a tuple ``(h, c)`` with c
  (num_layers*D, N, H); the final state of each sequence is taken at its own last step,
  and the reverse direction starts there.

``torch.compile`` (``fullgraph=True``), ``torch.export`` and ``torch.jit.trace`` capture
every layer on every backend, with or without lengths (``_graph_capture``); decoding one
step at a time goes through :meth:`Recurrent.step` and, with weights packed once,
:func:`stepping`.

Wrong shapes raise :class:`rnnkit.errors.ShapeError` and wrong dtypes
:class:`rnnkit.errors.DTypeError`, caught by ``except RuntimeError`` and ``except
ValueError`` alike.
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch._subclasses.fake_tensor import is_fake
from torch.nn.utils.prune import BasePruningMethod
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

from rnnkit.cells import CellBase, ElmanCell, GatedCell, GRUCell, LSTMCell, State, StepPack
from rnnkit.errors import (
    DTypeError,
    ShapeError,
    check_dtype,
    check_flag,
    check_probability,
    check_size,
    describe,
)
from rnnkit.kernels.common import function_transform, vmapped
from rnnkit.unroll import (
    DirectionTrace,
    fused_kind,
    fused_weights,
    has_kernel,
    kernel_kind,
    run_fused_packed,
    run_fused_padded,
    run_loop,
)

__all__ = ["GRU", "LSTM", "RNN", "LayerTrace", "Recurrent", "stepping"]

BACKENDS = ("auto", "torch", "loop")
_TORCH_KEY = re.compile(r"^(?P<name>[\w.]+?)_l(?P<layer>\d+)(?P<rev>_reverse)?$")
_CELL_KEY = re.compile(r"^cells\.(?P<k>\d+)\.(?P<name>.+)$")
#: forward pre-hooks that recompute a reparametrised weight (``step`` and ``trace`` run them)
_REPARAMETRISATIONS = (WeightNorm, BasePruningMethod, SpectralNorm)
#: cells that :meth:`Recurrent.step` steps with torch's fused step of their kind (exactly
#: these: a subclass may change the step)
_PACKABLE = (ElmanCell, LSTMCell, GRUCell)
#: the largest batch whose steps read weights copied into the matrix-vector layout
#: (:func:`stepping`): at batch 1 it is 1.2x faster (``python benchmarks/lm_step.py``);
#: above, the products are matrix-matrix and the threshold is not measured per machine
PACKED_MAX_BATCH = 1


@contextlib.contextmanager
def stepping(module):
    """Decode one step at a time with packed weights: inside ``with stepping(model):``,
    :meth:`Recurrent.step` of every layer in ``model`` (any object; layers are found in an
    ``nn.Module``'s submodules) reads weights laid out once for it
    (:meth:`rnnkit.cells.GatedCell.pack_weights`) instead of transposing them at each
    call: at B = 1, where reading the weights is the cost of a step, about 1.2x faster
    (``python benchmarks/lm_step.py``). Results equal the plain step up to rounding.

    The packs live until the outermost ``with`` exits. A weight changed in place through
    autograd-visible operations (an optimiser's step, ``with torch.no_grad(): w.fill_()``)
    or replaced is repacked at the next step; a change made through ``w.data``, which no
    version counter sees, is not seen either: exit the context first. Steps that need
    gradients to the weights take the plain path. rnnkit's decoders
    (:func:`rnnkit.decoding.generate`, :func:`~rnnkit.decoding.beam_search`, the models'
    ``generate`` and ``translate``) enter it themselves.
    """
    layers = (
        [m for m in module.modules() if isinstance(m, Recurrent)]
        if isinstance(module, nn.Module)
        else []
    )
    fresh = [m for m in layers if m.__dict__.get("_packs") is None]
    for m in fresh:
        m.__dict__["_packs"] = {}
    try:
        yield module
    finally:
        for m in fresh:
            m.__dict__.pop("_packs", None)


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

    The layer owns the weights of built-in (:class:`~rnnkit.cells.GatedCell`) cells under
    torch.nn's names, ``{name}_l{layer}`` plus ``_reverse`` for the reverse direction, and
    its cells read them from there; a user's own cell keeps its parameters, which
    ``state_dict`` names the same way (``U.weight_l0``).

    Args:
        cell: the first layer's forward cell; the other layers and directions get fresh
            copies from ``cell.clone(input_size=...)``.
        num_layers: stacked layers; layer k+1 reads layer k's (D*P) outputs.
        bidirectional: also run every layer from each sequence's last step to its first.
        batch_first: inputs and outputs are (N, L, ...) instead of (L, N, ...).
        dropout: dropout on the outputs of every layer but the last, in [0, 1].
        backend: ``"loop"`` steps the cell explicitly (any cell; :meth:`trace` uses it);
            ``"torch"`` uses torch's fused kernels (built-in cells only); ``"auto"`` picks
            the faster of the two where both apply (see ``_use_fused``), else ``"loop"``.
            On ``"loop"`` a cell with a whole-sequence method ``scan(x (T, B, I), h_0
            (B, H), mask (T, B, 1) or None) -> (outputs (T, B, H), h_T)`` runs through it
            (:mod:`rnnkit.cells_min`); :meth:`step` and :meth:`trace` step it.
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
        check_size("num_layers", num_layers)
        check_flag("bidirectional", bidirectional)
        check_flag("batch_first", batch_first)
        check_probability("dropout", dropout)
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"dropout={dropout} acts between stacked layers only, and num_layers=1",
                stacklevel=2,
            )
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        self.input_size = cell.input_size
        self.hidden_size = cell.hidden_size
        self.proj_size = getattr(cell, "proj_size", 0)
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.num_directions = 2 if bidirectional else 1
        cells = []
        for layer in range(num_layers):
            size = self.input_size if layer == 0 else cell.output_size * self.num_directions
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
        self._take_weights()
        self.flatten_parameters()  # built on a GPU (device="cuda"): one buffer for cuDNN
        self.register_state_dict_post_hook(_to_torch_keys)
        self.register_load_state_dict_pre_hook(_from_torch_keys)
        self.register_load_state_dict_post_hook(_missing_as_torch_keys)

    # -- torch.nn's module surface -----------------------------------------------------
    def _take_weights(self) -> None:
        """Own the built-in cells' weights under torch.nn's names, in torch.nn's order."""
        self._all_weights: list[list[str]] = [
            cell.lend_weights(self, _torch_suffix(self, k)) if isinstance(cell, GatedCell) else []
            for k, cell in enumerate(self.cells)
        ]
        self._flat_weights_names = [name for names in self._all_weights for name in names]

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """The torch.nn-named weights per layer and direction, as torch.nn's ``all_weights``
        (what the layer holds under each name: a parameter, or a reparametrised tensor)."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    @property
    def _flat_weights(self) -> list[Tensor | None]:
        """``all_weights`` flattened, None where a name is unset, as torch.nn's."""
        return [getattr(self, name, None) for name in self._flat_weights_names]

    def flatten_parameters(self) -> None:
        """On a GPU, lay the weights out as views of one buffer in cuDNN's order, as torch.nn
        does, so that cuDNN reads them where they are instead of copying them into one buffer
        at every call (torch then warns "RNN module weights are not part of single contiguous
        chunk of memory"). Called after construction and after every move (``.cuda()``,
        ``.to(...)``); a no-op on the CPU, for cells torch's kernels do not run, and where a
        weight is reparametrised, pruned, shared with another tensor, or of another device or
        dtype than the rest."""
        own = [self._parameters.get(name) for name in self._flat_weights_names]
        if self._fused is None or not own or any(p is None or not p.is_cuda for p in own):
            return  # no kernel of torch's, a weight deleted, reparametrised or pruned, or a CPU
        weights = fused_weights(list(self.cells))
        first = weights[0]
        if (
            {id(w) for w in weights} != {id(p) for p in own}
            or any(w.device != first.device or w.dtype != first.dtype for w in weights)
            or len({w.data_ptr() for w in weights}) != len(weights)  # tied: leave as is
            or not all(torch.backends.cudnn.is_acceptable(w.data) for w in weights)
            or not torch._use_cudnn_rnn_flatten_weight()
        ):
            return
        import torch.backends.cudnn.rnn as cudnn_rnn

        stride = (4 if self.cells[0].bias else 2) + (1 if self.proj_size else 0)
        mode = cudnn_rnn.get_cudnn_mode(self._fused.upper())
        with torch.cuda.device_of(first), torch.no_grad():  # re-seats each storage, in place
            torch._cudnn_rnn_flatten_weight(
                weights,
                stride,
                self.input_size,
                mode,
                self.hidden_size,
                self.proj_size,
                self.num_layers,
                self.batch_first,
                self.bidirectional,
            )

    def _apply(self, fn, recurse: bool = True):
        result = super()._apply(fn, recurse)
        self.flatten_parameters()  # a move gives every weight its own storage again
        return result

    def reset_parameters(self) -> None:
        """Fresh weights: uniform(-1/sqrt(H), 1/sqrt(H)) for the layer's own, as torch.nn,
        and each cell's own ``reset_parameters`` for what the cells hold."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters(recurse=False):
            nn.init.uniform_(p, -bound, bound)
        for cell in self.cells:
            if callable(getattr(cell, "reset_parameters", None)):
                cell.reset_parameters()

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        if "_all_weights" not in self.__dict__:  # pickled when the cells held the weights
            self.__dict__.setdefault("proj_size", 0)
            self._take_weights()
            self.register_load_state_dict_post_hook(_missing_as_torch_keys)
        if "_fused" in self.__dict__:  # a deep copy or unpickled layer: one buffer again on CUDA
            self.flatten_parameters()

    def _replicate_for_data_parallel(self):
        replica = super()._replicate_for_data_parallel()
        replica.__dict__["_unbound"] = True  # its cells' replicas read this layer's weights
        return replica

    def _bind_cells(self) -> None:
        """Point the cells of a DataParallel replica at the replica's weights: replicate()
        copies a layer and its cells apart, and the copied cells still read the original's."""
        if getattr(self, "_unbound", False):  # (not __dict__.pop: torch 2.11 cannot trace it)
            del self.__dict__["_unbound"]
            for cell in self.cells:
                if isinstance(cell, GatedCell):
                    cell.borrow_from(self)

    def _refresh_weights(self, x) -> None:
        """Run the forward pre-hooks of weight_norm, prune and spectral_norm, which
        recompute their weight: ``forward`` gets them from ``__call__``, and :meth:`step`
        and :meth:`trace`, called directly, from here."""
        for hook in self._forward_pre_hooks.values():
            if isinstance(hook, _REPARAMETRISATIONS):
                hook(self, (x,))

    def _weight_dtype(self) -> torch.dtype | None:
        """The dtype inputs must have: the first weight's (None for a cell without one)."""
        if self._flat_weights_names:
            return getattr(self, self._flat_weights_names[0]).dtype
        weight = next(self.cells[0].parameters(), None)
        return weight.dtype if weight is not None and weight.is_floating_point() else None

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
        self._bind_cells()
        if isinstance(x, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths: a PackedSequence carries its own lengths; pass None")
            return self._forward_packed(x, state)
        x, hx, lengths, unbatched = self._prepare(x, state, lengths)
        steps = x.shape[0]
        if _graph_capture(x, self.backend):  # torch.compile, torch.export, jit.trace
            ops = self._captured_ops(x)
            if self._captured_fused(x, lengths, ops):
                out, hx = self._fused_padded(x, hx, None)
            else:
                out, hx = self._loop(x, hx, lengths, traces=None, kernels="ops" if ops else False)
            return self._finish(out, hx, unbatched)
        if _function_transform(self.backend):  # torch.func's vmap, grad, jacrev; forward AD
            out, hx = self._loop(x, hx, lengths, traces=None, kernels=False)
            return self._finish(out, hx, unbatched)
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
        self._bind_cells()
        self._refresh_weights(x)
        x, hx, lengths, unbatched = self._prepare(x, state, lengths)
        traces = [DirectionTrace() for _ in self.cells]
        out, hx = self._loop(x, hx, lengths, traces)
        out, hx = self._finish(out, hx, unbatched)
        return LayerTrace(out, hx, [t.hidden for t in traces], [t.gates for t in traces])

    def step(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One time step of a unidirectional stack, for decoding a token at a time.

        ``x`` (B, I) and ``state`` as :meth:`forward` takes it ((L, B, P), or a tuple with
        c (L, B, H) for the LSTM; None for zeros) -> (h_t (B, P) of the top layer, the new
        state). Each layer's cell is stepped directly, the built-in cells by torch's fused
        step of their kind (:meth:`rnnkit.cells.ElmanCell.packed_step`), so nothing is
        repacked per call as a fused sequence kernel does for a one-step sequence; inside
        :func:`stepping` the weights are packed once. The result equals ``forward`` on the
        one-step sequence up to rounding (dropout between layers too).
        """
        if self.bidirectional:
            raise ValueError("step: a bidirectional layer reads the whole sequence; use forward")
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[-1] != self.input_size:
            raise ShapeError(
                f"x: expected (batch, input_size={self.input_size}), got {describe(x)}"
            )
        self._bind_cells()
        self._refresh_weights(x)
        check_dtype("x", x, self._weight_dtype(), "the weights'")
        hx = self._check_state(state, x.shape[0], x, unbatched=False)
        packs = self._step_packs(x.shape[0])
        parts: list[list[Tensor]] = [[] for _ in hx]
        layers = [p.unbind(0) for p in hx]  # per state tensor, its L (B, n) slices
        drop = self.dropout > 0 and self.training
        out = x
        for k, cell in enumerate(self.cells):
            if k > 0 and drop:
                out = nn.functional.dropout(out, self.dropout, True)
            s = tuple(p[k] for p in layers) if len(layers) > 1 else layers[0][k]
            if packs is not None:  # a built-in cell: torch's fused step of its kind
                out, s = cell.packed_step(out, s, packs[k])
            elif isinstance(cell, GatedCell):  # checked above: the step without the cell's checks
                out, s = cell.recurrent_step(cell.project_input(out), s)
            else:
                out, s = cell(out, s)
            for i, p in enumerate(s if isinstance(s, tuple) else (s,)):
                parts[i].append(p)
        new = tuple(torch.stack(p) for p in parts)  # each (L, B, P) (c: (L, B, H))
        return out, new if len(new) > 1 else new[0]

    def _step_packs(self, batch: int) -> list[StepPack] | None:
        """The weights each cell's :meth:`~rnnkit.cells.ElmanCell.packed_step` reads, or
        None for a layer of other cells (they step as their ``forward`` does).

        Outside :func:`stepping`, the parameters as they are now (whatever weight norm,
        pruning or a parametrisation made of them). Inside it, where no gradient to the
        weights is wanted and they are plain parameters, packs kept from call to call and
        rebuilt when a weight has changed in place (an optimiser's step) or been replaced;
        at batches up to :data:`PACKED_MAX_BATCH` they read copies laid out for
        matrix-vector products (:meth:`rnnkit.cells.GatedCell.pack_weights`)."""
        cells = self.cells._modules.values()
        if any(type(cell) not in _PACKABLE for cell in cells):
            return None
        cache = self.__dict__.get("_packs")
        if cache is None or self.proj_size or "parametrizations" in self._modules:
            return [cell.pack_weights() for cell in cells]
        params = self._parameters  # the weights themselves: nothing recomputes them here
        weights = [params.get(name) for name in self._flat_weights_names]
        if any(w is None for w in weights) or (  # pruned or normed: a plain tensor, not here
            torch.is_grad_enabled() and any(w.requires_grad for w in weights)
        ):
            return [cell.pack_weights() for cell in cells]
        # the cache holds the weights, so no other tensor can take their ids while it does
        key = (batch <= PACKED_MAX_BATCH, *((id(w), w._version, w.data_ptr()) for w in weights))
        if cache.get("key") != key:
            with torch.no_grad():
                cache.update(
                    key=key, weights=weights, packs=[cell.pack_weights(key[0]) for cell in cells]
                )
        return cache["packs"]

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
        proj = f"proj_size={self.proj_size}, " if self.proj_size else ""
        return (
            f"{proj}num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
            f"batch_first={self.batch_first}, dropout={self.dropout}, backend={self.backend!r}"
        )

    # -- checks ------------------------------------------------------------------------
    def _prepare(self, x, state, lengths):
        """Check arguments; return time-major x (T, B, I), state tuple, lengths or None."""
        if not isinstance(x, Tensor) or x.dim() not in (2, 3):
            layout = "(batch, time, features)" if self.batch_first else "(time, batch, features)"
            raise ShapeError(
                f"input: expected a 3-D tensor {layout} or a 2-D unbatched (time, features) "
                f"tensor, got {describe(x)}"
            )
        if x.shape[-1] != self.input_size:
            raise ShapeError(
                f"input: expected last dimension input_size={self.input_size}, "
                f"got {x.shape[-1]} (shape {tuple(x.shape)})"
            )
        check_dtype("input", x, self._weight_dtype(), "the weights'")
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        steps, batch = x.shape[0], x.shape[1]
        if steps == 0:
            raise ShapeError("input: expected at least one time step, got 0")
        if lengths is not None:
            lengths = self._check_lengths(lengths, batch, steps)
        hx = self._check_state(state, batch, x, unbatched)
        return x, hx, lengths, unbatched

    @staticmethod
    def _check_lengths(lengths, batch: int, steps: int) -> Tensor | None:
        if not isinstance(lengths, Tensor):
            lengths = torch.as_tensor(lengths)
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise DTypeError(
                f"lengths: expected an integer tensor of shape ({batch},), got "
                f"{lengths.dtype} of shape {tuple(lengths.shape)}"
            )
        if lengths.shape != (batch,):
            raise ShapeError(
                f"lengths: expected an integer tensor of shape ({batch},), got "
                f"{lengths.dtype} of shape {tuple(lengths.shape)}"
            )
        if _graph_capture(lengths) or vmapped(lengths):
            return lengths.to(torch.int64)  # values unknown: a graph captured, or under vmap
        if batch == 0:
            return None  # no sequence: nothing to mask
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < 1 or hi > steps:
            raise ShapeError(f"lengths: expected values in 1..{steps}, got min {lo}, max {hi}")
        return None if lo == steps else lengths.to("cpu", torch.int64)

    def _check_state(self, state, batch, x, unbatched) -> tuple[Tensor, ...]:
        """The initial state as a tuple of (L*D, B, n) tensors (zeros for None), after
        checking that it has that shape (without B if unbatched) and x's dtype."""
        layers = self.num_layers * self.num_directions
        sizes = self.cells[0].state_sizes  # (H,), (H, H) for the LSTM, (P, H) projected
        if state is None:
            return tuple(x.new_zeros(layers, batch, n) for n in sizes)
        parts = state if isinstance(state, tuple | list) else (state,)
        want = [(layers, n) if unbatched else (layers, batch, n) for n in sizes]
        got = [tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__ for p in parts]
        if got != want:
            what = f"a tuple of {len(want)} tensors" if len(want) > 1 else "a tensor"
            shape = want[0] if len(set(want)) == 1 else want
            raise ShapeError(f"state: expected {what} of shape {shape}, got {got}")
        for p in parts:
            check_dtype("state", p, x.dtype, "the input's")
        return tuple(p.unsqueeze(1) for p in parts) if unbatched else tuple(parts)

    # -- the two paths -----------------------------------------------------------------
    def _use_fused(self, lengths: Tensor | None = None, x: Tensor | None = None) -> bool:
        """Whether torch's kernel runs this call; ``"auto"`` picks by the layer benchmark
        (docs/RESULTS.md: per-row medians of three runs on an AMD EPYC, and of runs at one and
        two threads on an Intel Xeon with AVX-512) on CPU, float32 and float64:

        - GRU and Elman: the compiled loop kernels whenever they are available (on CPU,
          torch.nn runs these cells with ATen's per-step loop, which they beat, padded or
          not, on both CPUs);
        - LSTM without padding: torch's kernel (oneDNN's LSTM, which the loop kernels do not
          beat at B >= 32, nor at B = 4 in training on the EPYC: 0.46x), except in training
          at B = 1 with more than one thread, where oneDNN's threads cost more than the step
          (EPYC, two threads: 12.5 ms against 8.3 ms for the loop kernels' own per-step
          products, which form each product without a library call; Xeon: 1.06-1.07x
          torch.nn). At one thread torch's kernel (EPYC: 7.5 ms against 8.9). A batch of
          one padded row is run as the shorter unpadded sequence it is;
        - an LSTM on a padded batch (torch runs its slower packed path; the compiled loop
          kernels touch only the valid positions, and in training keep only theirs): the
          loop in training and, with the compiled kernels, in inference at B >= 8.

        - a projected LSTM (``proj_size > 0``): torch's kernel always (the loop kernels
          have no projection; ``backend="loop"`` steps the cell with autograd).

        Every path is differentiable twice (gradient penalties, ``create_graph=True``): the
        loop kernels then recompute the recurrence with autograd
        (:mod:`rnnkit.kernels.twice`)."""
        if self.backend == "loop" or self._fused is None:
            return False
        if self.backend == "torch" or x is None or x.device.type != "cpu" or self.proj_size:
            return True
        from rnnkit.kernels import ext

        compiled = x.dtype in (torch.float32, torch.float64) and ext.available()
        if compiled and self._fused != "lstm":
            return False
        padded = lengths is not None and bool((lengths < x.shape[0]).any())  # x: (T, B, I)
        training = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())
        )
        if not padded or x.shape[1] == 1:  # one padded row is a shorter unpadded one
            tiny = training and compiled and x.shape[1] == 1 and torch.get_num_threads() > 1
            return not tiny
        return not (training or (x.shape[1] >= 8 and compiled))

    def _fused_padded(self, x, hx, lengths):
        args = (self.num_layers, self.dropout, self.training, self.bidirectional)
        if lengths is None:
            return run_fused_padded(self._fused, list(self.cells), x, hx, *args)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, hx = run_fused_packed(self._fused, list(self.cells), packed, hx, *args)
        out, _ = pad_packed_sequence(out, total_length=x.shape[0])
        return out, hx

    def _captured_ops(self, x: Tensor) -> bool:
        """Whether a graph being compiled runs the built-in cells through the compiled
        kernels' custom ops (:mod:`rnnkit.kernels.library`): under ``torch.compile`` (not
        ``torch.export`` or ``jit.trace``, whose graphs must hold only ATen operations for
        the ONNX exporter and other runtimes), with the kernels available for these tensors
        and every cell one they run."""
        if self.backend == "torch" or torch.jit.is_tracing() or torch.compiler.is_exporting():
            return False
        if not torch.compiler.is_compiling():
            return False
        from rnnkit.kernels import library

        cells = self.cells._modules.values()
        return all(has_kernel(c) for c in cells) and library.usable(x, *self.parameters())

    def _captured_fused(self, x: Tensor, lengths: Tensor | None, ops: bool) -> bool:
        """Whether a captured graph runs torch's fused kernel (no lengths): for any built-in
        layer when the custom ops cannot run; with them, for the LSTM in inference, where
        eager ``"auto"`` runs it too (:meth:`_use_fused`). In training AOTAutograd
        decomposes torch's LSTM into per-step operations (0.76x torch.nn eager at
        (32, 50, 128, 256), against 0.83x for the ops: ``python benchmarks/compiled_layers.py``),
        so the ops run it."""
        if self.backend == "loop" or self._fused is None or lengths is not None:
            return False
        if not ops or self.backend == "torch":
            return True
        training = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())
        )
        return self._fused == "lstm" and not training

    def _loop(self, x, hx, lengths, traces, kernels: bool | str = True, ordered: bool = False):
        """The cells' loop; ``kernels`` False steps the built-in cells with autograd too, and
        "ops" runs them through the kernels' custom ops (a graph being compiled): both decide
        nothing on the values of ``lengths``. ``ordered``: the rows are sorted longest first."""
        if kernels is True and lengths is not None and traces is None and self._runs_packed(x):
            return self._loop_packed(x, hx, lengths)
        if (
            kernels
            and lengths is not None
            and traces is None
            and not ordered
            and (kernels == "ops" or bool((lengths.diff() > 0).any()))
        ):
            # longest first: every step's valid rows then come first, and the kernels of
            # the built-in cells skip the padded rows in their products
            order = torch.argsort(lengths, descending=True, stable=True)
            lengths, back = lengths[order], torch.argsort(order).to(x.device)
            order = order.to(x.device)
            x, hx = x.index_select(1, order), tuple(h.index_select(1, order) for h in hx)
            out, hx = self._loop(x, hx, lengths, traces, kernels, ordered=True)
            return out.index_select(1, back), tuple(h.index_select(1, back) for h in hx)
        steps = x.shape[0]
        mask = rev = None
        first_masked = steps
        if lengths is not None:
            lengths = lengths.to(x.device)
            time = torch.arange(steps, device=x.device).unsqueeze(1)  # (T, 1)
            mask = (time < lengths).unsqueeze(2)  # (T, B, 1)
            first_masked = int(lengths.min()) if kernels is True else 0
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
                if trace is None and callable(getattr(cell, "scan", None)):
                    o, s = cell.scan(inp, s0, mask)  # a whole-sequence cell (rnnkit.cells_min)
                else:
                    o, s = run_loop(cell, inp, s0, mask, first_masked, trace, kernels)
                if d == 1:
                    o = _reverse(o, rev)
                outs.append(o)
                final.append(s if isinstance(s, tuple) else (s,))
            out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
        hx = tuple(torch.stack(part) for part in zip(*final, strict=True))
        return out, hx

    def _runs_packed(self, x: Tensor) -> bool:
        """Whether a padded batch runs in the packed layout (:mod:`rnnkit.kernels.packed`),
        in inference and in training: through the compiled kernels, every cell a built-in
        one they run."""
        from rnnkit.kernels import ext

        return all(has_kernel(cell) for cell in self.cells) and (
            ext.use(x, *self.parameters()) is not None
        )

    def _loop_packed(self, x, hx, lengths):
        """A padded batch in the packed layout: each layer and direction projects, steps
        and writes only the valid positions (and in training keeps only theirs for
        backward); the top layer's are scattered into the padded output (zeros elsewhere)."""
        from rnnkit.kernels import packed

        p = packed.plan(lengths, x.device)
        data, hx = self._run_packed(packed.gather(x, p), hx, p)
        return packed.scatter(data, p, x.shape[0], self.batch_first), hx

    def _run_packed(self, data, hx, p):
        """The layers over packed rows ``data`` (N, I) laid out by plan ``p``, from ``hx``
        (batch order): returns the top layer's packed outputs and the final states."""
        from rnnkit.kernels import packed

        hx = tuple(h.index_select(1, p.order) for h in hx)  # sorted rows
        layer_states = [h.unbind(0) for h in hx]
        final = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                data = nn.functional.dropout(data, self.dropout, self.training)
            outs = []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                s0 = tuple(part[k] for part in layer_states)
                cell, state = self.cells[k], s0 if len(s0) > 1 else s0[0]
                o, s = packed.run_cell(cell, kernel_kind(cell), data, state, p, d == 1)
                outs.append(o)
                final.append(s if isinstance(s, tuple) else (s,))
            data = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
        hx = tuple(torch.stack(part).index_select(1, p.back) for part in zip(*final, strict=True))
        return data, hx

    def _packed_by_autograd(self, packed, hx, valid, lengths):
        """A PackedSequence under torch.func or forward-mode AD, where torch's
        pad_packed_sequence has no rule (torch.nn's layer fails there): padded by the mask of
        packed positions (time-major, as the packed data), the cells stepped with autograd
        over the rows in packed order, and packed back by the same mask."""
        valid = valid.to(packed.data.device)
        x = packed.data.new_zeros(*valid.shape, packed.data.shape[1])
        x = x.masked_scatter(valid.unsqueeze(2), packed.data)  # (T, B, I)
        if packed.sorted_indices is not None:  # the state is in batch order
            hx = tuple(h.index_select(1, packed.sorted_indices) for h in hx)
        out, hx = self._loop(x, hx, lengths, traces=None, kernels=False)
        if packed.unsorted_indices is not None:
            hx = tuple(h.index_select(1, packed.unsorted_indices) for h in hx)
        data = out[valid]  # (N, H'): row-major over (t, b), the packed order
        return PackedSequence(
            data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
        ), hx

    def _forward_packed(self, packed: PackedSequence, state):
        batch = int(packed.batch_sizes[0])
        ref = packed.data.new_empty(1, batch, self.input_size)
        if packed.data.dim() != 2 or packed.data.shape[-1] != self.input_size:
            raise ShapeError(
                f"input: expected packed data of shape (*, {self.input_size}), "
                f"got {tuple(packed.data.shape)}"
            )
        check_dtype("input", packed.data, self._weight_dtype(), "the weights'")
        hx = self._check_state(state, batch, ref, unbatched=False)
        # what auto decides for the padded batch the sequence stands for: its (T, B, I)
        # shape (a view of one row, nothing copied) and its lengths
        sizes = packed.batch_sizes
        probe = packed.data[:1].unsqueeze(0).expand(len(sizes), batch, self.input_size)
        valid = sizes.unsqueeze(1) > torch.arange(batch)  # (T, B): the packed positions
        lengths = valid.sum(0)  # of the rows in packed (longest-first) order
        if _function_transform(self.backend):
            out, hx = self._packed_by_autograd(packed, hx, valid, lengths)
        elif self._use_fused(lengths, probe):
            args = (self.num_layers, self.dropout, self.training, self.bidirectional)
            out, hx = run_fused_packed(self._fused, list(self.cells), packed, hx, *args)
        elif self._runs_packed(packed.data):  # the data is in the kernels' layout
            from rnnkit.kernels.packed import from_packed

            p = from_packed(packed.batch_sizes, packed.sorted_indices)
            data, hx = self._run_packed(packed.data, hx, p)
            out = PackedSequence(
                data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
            )
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


def _function_transform(backend: str) -> bool:
    """Whether a ``torch.func`` transform (``vmap``, ``grad``, ``jacrev``, ...) or forward-mode
    AD is running: the compiled kernels and oneDNN's products are autograd Functions without
    the rules these need, so the cells are stepped with autograd, whose every operation has
    them (per-sample gradients of a whole layer, Jacobian-vector products of an LSTM, which
    torch.nn's own layers cannot give on the CPU). ``backend="torch"`` keeps torch's kernel,
    and torch.nn's limits."""
    # (asked after graph capture: torch.compile traces with torch.func)
    return backend != "torch" and function_transform()


def _graph_capture(x: Tensor | None, backend: str = "auto") -> bool:
    """Whether a graph is being captured (``torch.compile``, ``torch.export``,
    ``torch.jit.trace``): the layer then reads no tensor's values, so that
    ``fullgraph=True`` holds. Under ``torch.compile`` the built-in cells run through the
    compiled kernels' custom ops (:meth:`Recurrent._captured_ops`); export and tracing get
    only operations every runtime knows, torch's fused kernel (no lengths) or the cells
    stepped with autograd (masked by lengths, unrolled over the T steps). ``jit.trace`` of
    ``backend="torch"`` is left to torch.nn's own route (packed sequences, which the ONNX
    exporter turns into ``sequence_lens``)."""
    if torch.jit.is_tracing():
        return backend != "torch"
    return torch.compiler.is_compiling() or (x is not None and is_fake(x))


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
# The layer's own parameters carry torch.nn's names already. What the cells still hold (a
# user's own cell's weights, a GatedCell subclass's extras) is named the same way in a
# state_dict: ``cells.3.U.weight`` <-> ``U.weight_l1_reverse``. Loading also takes the
# keys of state_dicts saved when the cells held every weight (``cells.0.weight_ih``).
def _torch_suffix(module: Recurrent, k: int) -> str:
    layer, direction = divmod(k, module.num_directions)
    return f"_l{layer}" + ("_reverse" if direction else "")


def _to_torch_keys(module, state_dict, prefix, local_metadata) -> None:
    """``cells.3.U.weight`` -> ``U.weight_l1_reverse``, in the cells' order."""
    for k in range(len(module.cells)):
        head = f"{prefix}cells.{k}."
        for key in [key for key in state_dict if key.startswith(head)]:
            name = key[len(head) :]
            state_dict[f"{prefix}{name}{_torch_suffix(module, k)}"] = state_dict.pop(key)


def _from_torch_keys(module, state_dict, prefix, *args) -> None:
    """The inverse of :func:`_to_torch_keys` for what the cells hold, and the layer's
    torch.nn names for the old keys of the weights it now owns (``cells.0.weight_ih`` ->
    ``weight_ih_l0``)."""
    module.__dict__["_loading_prefix"] = prefix  # for _missing_as_torch_keys
    owned = set(module._flat_weights_names)
    held = [set(cell.state_dict(keep_vars=True)) for cell in module.cells]
    for key in [key for key in state_dict if key.startswith(prefix)]:
        local = key[len(prefix) :]
        old, new = _CELL_KEY.match(local), _TORCH_KEY.match(local)
        if old and f"{old['name']}{_torch_suffix(module, int(old['k']))}" in owned:
            k, name = int(old["k"]), old["name"]
            state_dict[f"{prefix}{name}{_torch_suffix(module, k)}"] = state_dict.pop(key)
        elif new and local not in owned:
            k = int(new["layer"]) * module.num_directions + (1 if new["rev"] else 0)
            if k < len(held) and new["name"] in held[k]:
                state_dict[f"{prefix}cells.{k}.{new['name']}"] = state_dict.pop(key)


def _missing_as_torch_keys(module, incompatible) -> None:
    """``load_state_dict``'s missing keys as the state_dict names them (torch.nn's form)."""
    prefix = module.__dict__.pop("_loading_prefix", None)
    if prefix is None:
        return
    keys = incompatible.missing_keys
    for i, key in enumerate(keys):
        match = _CELL_KEY.match(key[len(prefix) :]) if key.startswith(prefix) else None
        if match:
            suffix = _torch_suffix(module, int(match["k"]))
            keys[i] = f"{prefix}{match['name']}{suffix}"


# -- the three classic layers --------------------------------------------------------------
class RNN(Recurrent):
    r"""Elman RNN layer, ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` (or ReLU).

    Arguments as ``torch.nn.RNN`` (``device`` and ``dtype`` included) plus ``backend``;
    see :class:`Recurrent`. Weights ``weight_ih_l{k}`` (H, I or D*H), ``weight_hh_l{k}``
    (H, H), ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (H,), ``_reverse`` for the reverse
    direction.
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
        device=None,
        dtype=None,
        backend: str = "auto",
    ):
        check_flag("bias", bias)
        cell = ElmanCell(input_size, hidden_size, bias, nonlinearity, device, dtype)
        super().__init__(cell, num_layers, bidirectional, batch_first, dropout, backend)
        self.nonlinearity, self.bias = nonlinearity, bias
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


class LSTM(Recurrent):
    r"""LSTM layer (gates i, f, g, o; see :class:`rnnkit.cells.LSTMCell`).

    Arguments as ``torch.nn.LSTM`` (``proj_size``, ``device`` and ``dtype`` included) plus
    ``backend``; the state is the pair ``(h, c)``, h (num_layers*D, N, P) and c
    (num_layers*D, N, H), where P = ``proj_size`` or H. With ``proj_size`` P > 0 each step
    ends with ``h_t = W_hr (o_t * tanh(c_t))``, outputs are (..., D*P), and torch's kernel
    runs every backend but ``"loop"`` (see ``_use_fused``). Weights ``weight_ih_l{k}``
    (4H, I or D*P), ``weight_hh_l{k}`` (4H, P), ``bias_ih_l{k}`` and ``bias_hh_l{k}``
    (4H,), ``weight_hr_l{k}`` (P, H) with a projection, ``_reverse`` for the reverse
    direction.
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
        proj_size: int = 0,
        device=None,
        dtype=None,
        backend: str = "auto",
    ):
        check_flag("bias", bias)
        cell = LSTMCell(input_size, hidden_size, bias, device, dtype, proj_size=proj_size)
        super().__init__(cell, num_layers, bidirectional, batch_first, dropout, backend)
        self.bias = bias
        self.mode = "LSTM"


class GRU(Recurrent):
    r"""GRU layer (gates r, z, n as torch.nn; see :class:`rnnkit.cells.GRUCell`).

    Arguments as ``torch.nn.GRU`` (``device`` and ``dtype`` included) plus ``backend``.
    Weights ``weight_ih_l{k}`` (3H, I or D*H), ``weight_hh_l{k}`` (3H, H), ``bias_ih_l{k}``
    and ``bias_hh_l{k}`` (3H,), ``_reverse`` for the reverse direction.
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
        device=None,
        dtype=None,
        backend: str = "auto",
    ):
        check_flag("bias", bias)
        cell = GRUCell(input_size, hidden_size, bias, device, dtype)
        super().__init__(cell, num_layers, bidirectional, batch_first, dropout, backend)
        self.bias = bias
        self.mode = "GRU"
