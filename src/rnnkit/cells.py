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

``forward(x_t, state)`` is the two chained (:class:`GatedCell`). A user's own cell
subclasses :class:`CellBase` and implements ``forward`` and ``get_config``; a layer calls
its ``forward`` at every step.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import torch
from torch import Tensor, nn

State = Tensor | tuple[Tensor, ...]

__all__ = ["CellBase", "ElmanCell", "GRUCell", "GatedCell", "LSTMCell", "State"]


class CellBase(nn.Module, abc.ABC):
    """What every cell has: sizes, an initial state, a config to rebuild it.

    A user's own cell subclasses this and implements ``forward(x_t, state) -> (h_t,
    state_t)`` (and ``state_size`` if its state is a tuple); ``get_config`` must return
    its constructor arguments so that stacked layers can build copies with another input
    size.

    Args:
        input_size: I, features of ``x_t``.
        hidden_size: H, features of ``h_t``.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        _check_positive("input_size", input_size)
        _check_positive("hidden_size", hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size

    @property
    def state_size(self) -> int:
        """How many (B, H) tensors the state holds: 1, or 2 for the LSTM's (h, c)."""
        return 1

    def init_state(self, batch_size: int, device=None, dtype=None) -> State:
        """Zeros: a (B, H) tensor, or a tuple of ``state_size`` of them."""
        z = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return z if self.state_size == 1 else tuple(z.clone() for _ in range(self.state_size))

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
        """A new cell of the same kind with fresh weights, optionally another input size."""
        config = self.get_config()
        if input_size is not None:
            config["input_size"] = input_size
        return type(self)(**config)

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
    """

    #: gate names in the order they are stacked in ``weight_ih`` / ``weight_hh``.
    gate_names: tuple[str, ...] = ()
    #: whether ``project_input`` adds ``b_hh`` too (true unless b_hh sits inside a gate,
    #: as in the GRU's ``r * (W_hn h + b_hn)``).
    fold_hidden_bias: bool = True

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, num_gates: int = 1):
        super().__init__(input_size, hidden_size)
        self.bias = bias
        g = num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(g))
            self.bias_hh = nn.Parameter(torch.empty(g))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every parameter, as torch.nn."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def project_input(self, x: Tensor) -> Tensor:
        """The input part of the pre-activations for inputs of any leading shape,
        (..., I) -> (..., G*H): ``W_ih x + b_ih``, plus ``b_hh`` where the cell folds it in
        (:attr:`fold_hidden_bias`) so that each step adds one bias fewer."""
        return nn.functional.linear(x, self.weight_ih, self.input_bias())

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
        """One step: x (B, I), state as :meth:`init_state` -> (h_t (B, H), state_t)."""
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        return self.recurrent_step(self.project_input(x), state)

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
        self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, num_gates=1)

    def step_with_gates(self, xp, state, keep_gates=True):
        pre = self._preactivation(xp, state)  # (B, H): W_ih x_t + W_hh h_{t-1} + b_ih + b_hh
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return h, h, ({"h": h} if keep_gates else {})

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

    The state is the pair ``(h, c)``, each (B, H). Parameters as ``torch.nn.LSTMCell``:
    ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih`` and ``bias_hh`` (4H,).
    """

    gate_names = ("i", "f", "g", "o")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(input_size, hidden_size, bias, num_gates=4)

    @property
    def state_size(self) -> int:
        return 2

    def step_with_gates(self, xp, state, keep_gates=True):
        h, c = state
        a = self._preactivation(xp, h)  # (B, 4H) pre-activations of all four gates
        # one sigmoid over all four blocks (the g block is unused) costs less than three
        i, f, _, o = torch.sigmoid(a).chunk(4, dim=1)  # input, forget, output gates
        g = torch.tanh(a.chunk(4, dim=1)[2])  # modulation (candidate cell)
        c = torch.addcmul(f * c, i, g)  # c_t = f * c_{t-1} + i * g
        h = o * torch.tanh(c)  # h_t = o * tanh(c_t)
        return h, (h, c), ({"i": i, "f": f, "g": g, "o": o} if keep_gates else {})


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

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(input_size, hidden_size, bias, num_gates=3)

    def step_with_gates(self, xp, state, keep_gates=True):
        h, H = state, self.hidden_size
        x_rz, x_n = xp.split([2 * H, H], dim=1)  # W_ih x_t + b_ih: (B, 2H), (B, H)
        hh = nn.functional.linear(h, self.weight_hh, self.bias_hh)  # W_hh h + b_hh: (B, 3H)
        h_rz, h_n = hh.split([2 * H, H], dim=1)
        r, z = torch.sigmoid(x_rz + h_rz).chunk(2, dim=1)  # reset and update gates
        n = torch.tanh(torch.addcmul(x_n, r, h_n))  # candidate: tanh(x_n + r * h_n)
        h = torch.lerp(n, h, z)  # h_t = (1 - z) * n + z * h_{t-1} = n + z * (h_{t-1} - n)
        return h, h, ({"r": r, "z": z, "n": n} if keep_gates else {})


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
