"""One time step of a recurrent network: ``h_t, state_t = cell(x_t, state_{t-1})``.

Every cell keeps torch.nn's parameter names and gate order (``weight_ih`` of shape
(G*H, I), ``weight_hh`` (G*H, H), ``bias_ih`` and ``bias_hh`` (G*H,)), so weights move
both ways with ``load_state_dict``. The seeds write the step with one matrix over the
concatenation ``W [h_{t-1}, x_t]``; that matrix is ``[weight_hh | weight_ih]``, and
:meth:`GatedCell.concatenated_weight` returns it.

A cell does one step only; :class:`rnnkit.layers.Recurrent` owns time, masks, direction
and depth. A cell splits its step in two so that a layer can project the inputs of all
time steps in one matrix product before it loops:

* ``project_input(x)``: (..., I) -> (..., G*H), the input part ``W_ih x + b_ih``;
* ``recurrent_step(xp_t, state)``: the rest of the step, from the projected input.

``forward(x_t, state)`` is the two chained (:class:`GatedCell`), with torch.nn's checks:
input and state of one batch (no broadcasting), the weights' dtype, and an unbatched (I,)
input giving unbatched results. A user's own cell subclasses :class:`CellBase` and
implements ``forward`` and ``get_config``; a layer calls its ``forward`` at every step.

Inside a layer the built-in cells hold no weights of their own: the layer owns them under
torch.nn's names (``weight_ih_l0``, ...) and each cell reads its own from there
(:meth:`GatedCell.lend_weights`), so that hooks and parametrisations on the layer reach
every path that reads a weight.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.errors import ShapeError, check_dtype, check_flag, check_size, describe
from rnnkit.kernels.dense import linear

State = Tensor | tuple[Tensor, ...]


@dataclass(frozen=True)
class StepPack:
    """The weights one step of a built-in cell reads (:meth:`GatedCell.pack_weights`),
    shaped as torch.nn's (``w_ih`` (G*H, I), ``w_hh`` (G*H, P), biases (G*H,) or None,
    ``w_hr`` (P, H) or None) and laid out in memory either as the parameters themselves or
    as transposes of contiguous (in, out) copies (``packed``)."""

    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor | None
    b_hh: Tensor | None
    w_hr: Tensor | None = None
    packed: bool = False


__all__ = ["CellBase", "ElmanCell", "GRUCell", "GatedCell", "LSTMCell", "State", "StepPack"]


class CellBase(nn.Module, abc.ABC):
    """What every cell has: sizes, an initial state, a config to rebuild it.

    A user's own cell subclasses this and implements ``forward(x_t, state) -> (h_t,
    state_t)`` (and ``state_size`` if its state is a tuple); ``get_config`` must return
    its constructor arguments so that stacked layers can build copies with another input
    size.

    For speed a cell can also split its step in two methods, which the layers' loop then
    calls instead of ``forward``: ``project_input(x)`` for the work that does not read the
    state, on all T steps at once (x (T, B, I) -> (T, B, ...), one large product instead of
    T small ones, as W_ih x_t + b and a LayerNorm over it), and ``recurrent_step(xp_t,
    state) -> (h_t, state_t)`` for the rest; ``forward(x_t, state)`` must equal
    ``recurrent_step(project_input(x_t), state)``. The layers' loop runs the large float32
    CPU products of the cell's ``nn.Linear`` layers through oneDNN where that is faster than
    ATen's BLAS call, as rnnkit's own layers do (:func:`rnnkit.kernels.dense.products`);
    ``rnnkit.Linear``, a drop-in ``nn.Linear``, does so anywhere.

    Args:
        input_size: I, features of ``x_t``.
        hidden_size: H, features of ``h_t``.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        check_size("input_size", input_size)
        check_size("hidden_size", hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size

    @property
    def state_size(self) -> int:
        """How many (B, ...) tensors the state holds: 1, or 2 for the LSTM's (h, c)."""
        return 1

    @property
    def output_size(self) -> int:
        """Features of h_t: H, or the projected LSTM's P."""
        return self.hidden_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Features of each tensor of the state: h_t's first, H for the others."""
        return (self.output_size,) + (self.hidden_size,) * (self.state_size - 1)

    def init_state(self, batch_size: int, device=None, dtype=None) -> State:
        """Zeros: a (B, H) tensor, or a tuple of ``state_size`` of them ((B, P), (B, H)
        for a projected LSTM)."""
        parts = tuple(
            torch.zeros(batch_size, n, device=device, dtype=dtype) for n in self.state_sizes
        )
        return parts if self.state_size > 1 else parts[0]

    @staticmethod
    def output(state: State) -> Tensor:
        """The hidden vector h_t of a state (its first tensor for a tuple state)."""
        return state[0] if isinstance(state, tuple) else state

    @abc.abstractmethod
    def forward(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """One step: x (B, I), state -> (h_t (B, H), state_t)."""

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments; ``type(cell)(**cell.get_config())`` is a fresh copy."""
        return {"input_size": self.input_size, "hidden_size": self.hidden_size}

    def clone(self, input_size: int | None = None) -> CellBase:
        """A new cell of the same kind with fresh weights, optionally another input size,
        on this cell's device and in its floating-point dtype."""
        config = self.get_config()
        if input_size is not None:
            config["input_size"] = input_size
        new = type(self)(**config)
        like = self._reference_weight()
        if like is None:
            return new
        return new.to(like.device, like.dtype if like.is_floating_point() else None)

    def _reference_weight(self) -> Tensor | None:
        """A weight whose device and dtype are the cell's (None for a cell without one)."""
        return next(self.parameters(), None)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())


class GatedCell(CellBase):
    """A cell whose pre-activations are ``W_ih x_t + b_ih + W_hh h_{t-1} + b_hh``.

    Holds torch.nn's four parameters for G stacked gates and splits the step into
    ``project_input`` (done for all time steps at once by a layer) and
    ``step_with_gates`` (the recurrence, written by each subclass).

    Args:
        input_size: I. hidden_size: H. bias: whether ``bias_ih`` / ``bias_hh`` exist.
        num_gates: G, how many H-sized blocks the weight matrices stack.
        device, dtype: where and in what dtype the weights are made (torch.nn's factory
            arguments).
    """

    #: gate names in the order they are stacked in ``weight_ih`` / ``weight_hh``.
    gate_names: tuple[str, ...] = ()
    #: whether ``project_input`` adds ``b_hh`` too (true unless b_hh sits inside a gate,
    #: as in the GRU's ``r * (W_hn h + b_hn)``).
    fold_hidden_bias: bool = True
    #: the weights a layer owns under torch.nn's names, in torch.nn's order (those present).
    torch_weights: tuple[str, ...] = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        num_gates: int = 1,
        device=None,
        dtype=None,
    ):
        super().__init__(input_size, hidden_size)
        check_flag("bias", bias)
        self.bias = bias
        factory = {"device": device, "dtype": dtype}
        g = num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(g, self.output_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(g, **factory))
            self.bias_hh = nn.Parameter(torch.empty(g, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every parameter, as torch.nn."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    # -- weights owned by a layer ------------------------------------------------------
    def lend_weights(self, owner: nn.Module, suffix: str) -> list[str]:
        """Move this cell's :attr:`torch_weights` to ``owner`` as its parameters
        ``name + suffix`` (``weight_hh`` -> ``weight_hh_l1_reverse``); returns those names.

        From then on the cell reads ``owner``'s attribute whenever it reads a weight, so
        whatever ``owner`` holds under that name is what the cell computes with: a pruned
        or weight-normalised tensor set by a forward pre-hook, a parametrisation, a tied
        parameter. ``cell.weight_hh = p`` sets ``owner``'s."""
        if "_lender" in self.__dict__:
            raise ValueError("cell: its weights already belong to a layer; pass cell.clone()")
        names = [n for n in self.torch_weights if self._parameters.get(n) is not None]
        for name in names:
            owner.register_parameter(name + suffix, self._parameters.pop(name))
        self.__dict__["_lender"] = (owner, suffix, frozenset(names))
        return [name + suffix for name in names]

    def borrow_from(self, owner: nn.Module) -> None:
        """Read the lent weights from ``owner`` from now on: a copy of the layer that
        lent them (``DataParallel`` replicates a layer and its cells separately)."""
        lender = self.__dict__.get("_lender")
        if lender is not None and lender[0] is not owner:
            self.__dict__["_lender"] = (owner, *lender[1:])

    def __getattr__(self, name: str):
        lender = self.__dict__.get("_lender")
        if lender is not None and name in lender[2]:
            return getattr(lender[0], name + lender[1])
        return super().__getattr__(name)

    def __setattr__(self, name: str, value) -> None:
        lender = self.__dict__.get("_lender")
        if lender is not None and name in lender[2]:
            setattr(lender[0], name + lender[1], value)
        else:
            super().__setattr__(name, value)

    def _reference_weight(self) -> Tensor | None:
        return self.weight_ih

    # -- the step ----------------------------------------------------------------------
    def project_input(self, x: Tensor) -> Tensor:
        """The input part of the pre-activations for inputs of any leading shape,
        (..., I) -> (..., G*H): ``W_ih x + b_ih``, plus ``b_hh`` where the cell folds it in
        (:attr:`fold_hidden_bias`) so that each step adds one bias fewer."""
        return linear(x, self.weight_ih, self.input_bias())

    def input_bias(self) -> Tensor | None:
        """The bias :meth:`project_input` adds: (G*H,) or None without biases."""
        bias = self.bias_ih
        if self.fold_hidden_bias and bias is not None:
            bias = bias + self.bias_hh
        return bias

    @abc.abstractmethod
    def step_with_gates(
        self, xp: Tensor, state: State, keep_gates: bool = True
    ) -> tuple[Tensor, State, dict[str, Tensor]]:
        """One step from the projected input xp (B, G*H): (h_t, state_t, gates by name)."""

    def recurrent_step(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        """One step from the projected input ``xp`` (B, G*H); returns (h_t, state_t)."""
        h, state, _ = self.step_with_gates(xp, state, keep_gates=False)
        return h, state

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One step: x (B, I), state as :meth:`init_state` (None: zeros) -> (h_t (B, H),
        state_t). An unbatched x (I,) with a state of unbatched tensors gives unbatched
        results, as torch.nn's cells. Input and state must agree in batch (nothing
        broadcasts) and sizes (:class:`~rnnkit.errors.ShapeError`) and have the weights'
        dtype (:class:`~rnnkit.errors.DTypeError`)."""
        unbatched = self._check_step(x, state)
        if unbatched:
            x, state = x.unsqueeze(0), _map_state(state, lambda s: s.unsqueeze(0))
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        h, state = self.recurrent_step(self.project_input(x), state)
        if unbatched:
            h, state = h.squeeze(0), _map_state(state, lambda s: s.squeeze(0))
        return h, state

    def _check_step(self, x, state) -> bool:
        """The checks of :meth:`forward`; True for an unbatched x."""
        size = self.input_size
        if not isinstance(x, Tensor) or x.dim() not in (1, 2) or x.shape[-1] != size:
            raise ShapeError(
                f"x: expected (batch, input_size={size}) or unbatched (input_size={size},), "
                f"got {describe(x)}"
            )
        check_dtype("x", x, self.weight_ih.dtype, "the weights'")
        if state is not None:
            parts = state if isinstance(state, tuple | list) else (state,)
            want = [(*x.shape[:-1], n) for n in self.state_sizes]  # (B, n) or (n,)
            got = [tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__ for p in parts]
            if got != want:
                what = f"a tuple of {len(want)} tensors" if len(want) > 1 else "a tensor"
                raise ShapeError(
                    f"state: expected {what} of shape {want if len(want) > 1 else want[0]} "
                    f"(batch and size of x and of the cell), got {got}"
                )
            for p in parts:
                check_dtype("state", p, x.dtype, "the input's")
        return x.dim() == 1

    # -- one step from a pack of weights (decoding a token at a time) ------------------
    def pack_weights(self, packed: bool = False) -> StepPack:
        """The weights :meth:`packed_step` reads: the parameters themselves, or with
        ``packed`` each matrix copied once into a contiguous (in, out) layout (and viewed
        back as (out, in)), the layout whose matrix-vector products read memory in order;
        at small batches a step is bound by reading its weights."""

        def lay(w: Tensor | None) -> Tensor | None:
            return w.detach().t().contiguous().t() if packed and w is not None else w

        w_hr = getattr(self, "weight_hr", None)
        return StepPack(
            lay(self.weight_ih),
            lay(self.weight_hh),
            self.bias_ih,
            self.bias_hh,
            lay(w_hr),
            packed,
        )

    def gates(self, x: Tensor, state: State) -> dict[str, Tensor]:
        """The gate activations of one step, by name, each (B, H): for diagnostics."""
        return self.step_with_gates(self.project_input(x), state)[2]

    def _preactivation(self, xp: Tensor, h: Tensor) -> Tensor:
        """``xp + W_hh h`` in one fused product (xp already holds both biases): (B, G*H)."""
        return torch.addmm(xp, h, self.weight_hh.t())

    def concatenated_weight(self) -> Tensor:
        """The seeds' ``W`` acting on ``[h_{t-1}, x_t]``: (G*H, H + I)."""
        return torch.cat([self.weight_hh, self.weight_ih], dim=1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bias": self.bias}


class ElmanCell(GatedCell):
    r"""The vanilla (Elman) RNN step.

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),
        \quad \phi \in \{\tanh, \mathrm{ReLU}\}

    Equivalently ``h_t = phi(W [h_{t-1}, x_t] + b)`` with ``W = [W_hh | W_ih]`` and
    ``b = b_ih + b_hh``. Parameters as ``torch.nn.RNNCell``: ``weight_ih`` (H, I),
    ``weight_hh`` (H, H), ``bias_ih`` (H,), ``bias_hh`` (H,).
    """

    gate_names = ("h",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)

    def step_with_gates(self, xp, state, keep_gates=True):
        pre = self._preactivation(xp, state)  # (B, H): W_ih x_t + W_hh h_{t-1} + b_ih + b_hh
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return h, h, ({"h": h} if keep_gates else {})

    def packed_step(self, x: Tensor, state: State, pack: StepPack) -> tuple[Tensor, State]:
        """:meth:`forward` of a checked (B, I) input and (B, ...) state with the weights of
        ``pack`` (:meth:`~GatedCell.pack_weights`): torch's own fused step of this cell
        kind (``torch.rnn_tanh_cell``, ``torch.lstm_cell``, ``torch.gru_cell``: what
        ``torch.nn.RNNCell`` and its kin call), one call with the products inside; equal to
        :meth:`forward` up to rounding."""
        step = torch.rnn_tanh_cell if self.nonlinearity == "tanh" else torch.rnn_relu_cell
        h = step(x, state, pack.w_ih, pack.w_hh, pack.b_ih, pack.b_hh)
        return h, h

    def get_config(self):
        return {**super().get_config(), "nonlinearity": self.nonlinearity}


class LSTMCell(GatedCell):
    r"""The long short-term memory step, gates stacked i, f, g, o as torch.nn.

    .. math::
        i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi})   \quad\text{input gate}
        f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf})   \quad\text{forget gate}
        g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg})    \quad\text{modulation}
        o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho})   \quad\text{output gate}
        c_t = f_t \odot c_{t-1} + i_t \odot g_t
        h_t = o_t \odot \tanh(c_t)
        \quad\text{or, with } P = \text{proj\_size} > 0:\quad
        h_t = W_{hr} (o_t \odot \tanh(c_t))

    The state is the pair ``(h, c)``: h (B, P) with a projection, else (B, H), and c
    (B, H). Parameters as ``torch.nn.LSTMCell``: ``weight_ih`` (4H, I), ``weight_hh``
    (4H, P or H), ``bias_ih`` and ``bias_hh`` (4H,); with a projection also ``weight_hr``
    (P, H), as ``torch.nn.LSTM(proj_size=P)`` (torch.nn's LSTMCell has no projection).
    """

    gate_names = ("i", "f", "g", "o")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        proj_size: int = 0,
    ):
        check_size("hidden_size", hidden_size)
        check_size("proj_size", proj_size, minimum=0)
        if proj_size >= hidden_size:
            raise ValueError(
                f"proj_size: expected an integer smaller than hidden_size={hidden_size} "
                f"(0: no projection), got {proj_size}"
            )
        self.proj_size = proj_size
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)
        if proj_size:  # drawn as torch.nn draws every weight
            bound = 1.0 / math.sqrt(hidden_size)
            weight = torch.empty(proj_size, hidden_size, device=device, dtype=dtype)
            self.weight_hr = nn.Parameter(nn.init.uniform_(weight, -bound, bound))
        else:
            self.register_parameter("weight_hr", None)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("proj_size", 0)  # pickled before projections existed

    @property
    def state_size(self) -> int:
        return 2

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def step_with_gates(self, xp, state, keep_gates=True):
        h, c = state
        a = self._preactivation(xp, h)  # (B, 4H) pre-activations of all four gates
        # one sigmoid over all four blocks (the g block is unused) costs less than three
        i, f, _, o = torch.sigmoid(a).chunk(4, dim=1)  # input, forget, output gates
        g = torch.tanh(a.chunk(4, dim=1)[2])  # modulation (candidate cell)
        c = torch.addcmul(f * c, i, g)  # c_t = f * c_{t-1} + i * g
        h = o * torch.tanh(c)  # h_t = o * tanh(c_t)
        if self.proj_size:
            h = torch.mm(h, self.weight_hr.t())  # h_t = W_hr (o * tanh(c_t)): (B, P)
        return h, (h, c), ({"i": i, "f": f, "g": g, "o": o} if keep_gates else {})

    def packed_step(self, x, state, pack):
        """:meth:`ElmanCell.packed_step` with ``torch.lstm_cell``; torch's step has no
        projection, so a projected cell steps as :meth:`forward` does."""
        if pack.w_hr is not None:  # never packed: a projected layer's packs hold its parameters
            xp = linear(x, pack.w_ih, self.input_bias())
            h, state, _ = self.step_with_gates(xp, state, keep_gates=False)
            return h, state
        h, c = torch.lstm_cell(x, state, pack.w_ih, pack.w_hh, pack.b_ih, pack.b_hh)
        return h, (h, c)

    def get_config(self):
        config = super().get_config()
        return {**config, "proj_size": self.proj_size} if self.proj_size else config


class GRUCell(GatedCell):
    r"""The gated recurrent unit step, gates stacked r, z, n as torch.nn.

    .. math::
        r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr})    \quad\text{reset gate}
        z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz})    \quad\text{update gate}
        n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))
        h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    Parameters as ``torch.nn.GRUCell``: ``weight_ih`` (3H, I), ``weight_hh`` (3H, H),
    ``bias_ih`` and ``bias_hh`` (3H,).
    """

    gate_names = ("r", "z", "n")
    fold_hidden_bias = False

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None
    ):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def step_with_gates(self, xp, state, keep_gates=True):
        h, H = state, self.hidden_size
        x_rz, x_n = xp.split([2 * H, H], dim=1)  # W_ih x_t + b_ih: (B, 2H), (B, H)
        hh = linear(h, self.weight_hh, self.bias_hh)  # W_hh h + b_hh: (B, 3H)
        h_rz, h_n = hh.split([2 * H, H], dim=1)
        r, z = torch.sigmoid(x_rz + h_rz).chunk(2, dim=1)  # reset and update gates
        n = torch.tanh(torch.addcmul(x_n, r, h_n))  # candidate: tanh(x_n + r * h_n)
        h = torch.lerp(n, h, z)  # h_t = (1 - z) * n + z * h_{t-1} = n + z * (h_{t-1} - n)
        return h, h, ({"r": r, "z": z, "n": n} if keep_gates else {})

    def packed_step(self, x, state, pack):
        """:meth:`ElmanCell.packed_step` with ``torch.gru_cell``."""
        h = torch.gru_cell(x, state, pack.w_ih, pack.w_hh, pack.b_ih, pack.b_hh)
        return h, h


def _map_state(state: State | None, fn) -> State | None:
    """``fn`` applied to each tensor of a state (None stays None)."""
    if state is None or isinstance(state, Tensor):
        return None if state is None else fn(state)
    return tuple(fn(s) for s in state)
