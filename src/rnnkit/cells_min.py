r"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): cells whose gates
read x_t only, so that a whole sequence runs in parallel over time as a scan.

With :math:`g(v) = v + 1/2` for :math:`v \ge 0` and :math:`\sigma(v)` otherwise (positive, so
:math:`\log g` exists; the paper's log-space version):

.. math::
    \text{minGRU:}\quad z_t = \sigma(W_z x_t + b_z), \quad \tilde h_t = g(W_h x_t + b_h),
    \quad h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    \text{minLSTM:}\quad f_t = \sigma(W_f x_t + b_f), \quad i_t = \sigma(W_i x_t + b_i),
    \quad f'_t = \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t},
    \quad \tilde h_t = g(W_h x_t + b_h), \quad h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t

Both are ``h_t = a_t * h_{t-1} + b_t`` with ``a_t`` in [0, 1] and ``b_t > 0``, independent of
h. The coefficients come without a division or a log of a probability: with pre-activations
k, :math:`\log(1 - z) = -\mathrm{softplus}(k_z)` and :math:`\log z = -\mathrm{softplus}(-k_z)`;
for the minLSTM, with :math:`d = \log i - \log f = \mathrm{softplus}(-k_f) -
\mathrm{softplus}(-k_i)`, :math:`f' = \sigma(-d)`, :math:`i' = 1 - f'`, :math:`\log f' =
-\mathrm{softplus}(d)` and :math:`\log i' = -\mathrm{softplus}(-d)`.

The step (``forward``; :meth:`rnnkit.layers.Recurrent.step` calls it to generate a token at
a time) applies the recurrence once. ``scan`` (what the layer's ``forward`` calls for whole
sequences, in training and evaluation) solves it for all t, by one of two methods:

* ``"log"``, the paper's log-space (Heinsen) scan, with :math:`a^*_t = \sum_{k \le t} \log
  a_k`:

  .. math::
      h_t = e^{a^*_t} h_0 + \exp\Big(a^*_t + \operatorname{logcumsumexp}_{k \le t}
            (\log b_k - a^*_k)\Big)

  which is :math:`\log h_t = a^*_t + \log(h_0 + \sum_{k \le t} e^{\log b_k - a^*_k})` with
  h_0 kept out of the logarithm, so that any initial state (zeros, a carried state of either
  sign) is exact. It runs in chunks of 64 steps (all at once) whose end states are chained,
  which keeps :math:`|a^*|` small: float32 then stays within a few 1e-6 of the recurrence
  over thousands of steps (3e-4 without chunks at T = 4096, where a* + logcumsumexp cancels).
* ``"chunked"`` (the default): chunks of ceil(sqrt(T)) steps, the steps inside every chunk
  run one after another for all chunks at once and the chunk ends chained
  (:func:`chunked_scan`): sqrt(T) + sqrt(T) sequential elementwise products, as exact as the
  recurrence. On CPU torch's ``logcumsumexp`` and its backward cost far more than these
  products (docs/RESULTS.md, minGRU and minLSTM), so this is the default there.

Padded steps (``mask`` false) have ``a = 1`` and ``b = 0``: the state stops at each row's own
last step and the output there is zero, as for every cell. Parameters as torch.nn's input
half: ``weight_ih`` (G*H, I) and ``bias_ih`` (G*H,), gates stacked (z, h) for the minGRU
(G = 2) and (f, i, h) for the minLSTM (G = 3); there is no ``weight_hh``.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.functional import softplus

from rnnkit.cells import CellBase
from rnnkit.errors import ShapeError, check_dtype, check_flag, describe
from rnnkit.kernels.common import function_transform
from rnnkit.layers import Recurrent

__all__ = [
    "SCAN_METHODS",
    "MinGRU",
    "MinGRUCell",
    "MinLSTM",
    "MinLSTMCell",
    "chunked_scan",
    "g",
    "heinsen_scan",
    "log_g",
]

SCAN_METHODS = ("chunked", "log")


def g(v: Tensor) -> Tensor:
    """g(v) = v + 1/2 for v >= 0, sigmoid(v) otherwise: positive, continuous at 0."""
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def log_g(v: Tensor) -> Tensor:
    """log g(v): log(v + 1/2) for v >= 0, -softplus(-v) = log sigmoid(v) otherwise."""
    return torch.where(v >= 0, torch.log(torch.relu(v) + 0.5), -softplus(-v))


def chunked_scan(a: Tensor, b: Tensor, h0: Tensor, reverse: bool = False) -> Tensor:
    """All h_t of ``h_t = a_t * h_{t-1} + b_t`` from a, b (T, B, H) and h0 (B, H): h (T, B, H)
    (with ``reverse``, ``h_t = a_t * h_{t+1} + b_t`` from h_T = h0 after the last step).

    Time is cut into N chunks of C = ceil(sqrt(T)) steps. The C steps inside every chunk run
    one after another for all chunks at once, from a zero state, with P_j, the product of
    the chunk's a up to step j; the N chunk ends are then chained (``h_end = P_C * h_start
    + local_C``) and each chunk's start enters as ``h_j = local_j + P_j * h_start``. The
    backward pass is the same scan in the other direction (:class:`_LinearScan`):
    ``dL/dh_t = grad_t + a_{t+1} dL/dh_{t+1}``, ``dL/db_t = dL/dh_t``, ``dL/da_t = dL/dh_t
    h_{t-1}``; it is built from differentiable operations, so double backward works too."""
    if function_transform():  # torch.func, forward AD: autograd through the scan itself
        return _chunks(a, b, h0, reverse)
    return _LinearScan.apply(a, b, h0, reverse)


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, h0, reverse):
        h = _chunks(a, b, h0, reverse)  # (T, B, H)
        ctx.save_for_backward(a, h0, h)
        ctx.reverse = reverse
        return h

    @staticmethod
    def backward(ctx, grad):
        a, h0, h = ctx.saved_tensors
        zero = torch.zeros_like(a[:1])
        if not ctx.reverse:  # dh_t = grad_t + a_{t+1} dh_{t+1}, from the last step back
            dh = chunked_scan(torch.cat([a[1:], zero]), grad, torch.zeros_like(h0), True)
            before = torch.cat([h0.unsqueeze(0), h[:-1]])  # h_{t-1}: (T, B, H)
            return dh * before, dh, dh[0] * a[0], None  # dL/da, dL/db, dL/dh0
        dh = chunked_scan(torch.cat([zero, a[:-1]]), grad, torch.zeros_like(h0), False)
        after = torch.cat([h[1:], h0.unsqueeze(0)])  # h_{t+1}: (T, B, H)
        return dh * after, dh, dh[-1] * a[-1], None


def _chunks(a: Tensor, b: Tensor, h0: Tensor, reverse: bool) -> Tensor:
    """The chunked scan of :func:`chunked_scan`, without its backward."""
    steps, rest = a.shape[0], a.shape[1:]
    c = math.isqrt(steps - 1) + 1  # C = ceil(sqrt(T))
    n = -(-steps // c)  # N chunks
    pad = n * c - steps  # steps with a = 1, b = 0 that fill a chunk: at the end it meets last
    if pad:
        where = (0, 0, 0, 0, pad, 0) if reverse else (0, 0, 0, 0, 0, pad)
        a, b = nn.functional.pad(a, where, value=1.0), nn.functional.pad(b, where)
    order = slice(None, None, -1 if reverse else 1)  # the order the steps are taken in
    a_steps = a.reshape(n, c, *rest).unbind(1)[order]  # C x (N, B, H): step j of every chunk
    b_steps = b.reshape(n, c, *rest).unbind(1)[order]
    h, p = b_steps[0], a_steps[0]  # local_1 = b_1 (from a zero state), P_1 = a_1
    local, prods = [h], [p]
    for a_j, b_j in zip(a_steps[1:], b_steps[1:], strict=True):
        h = torch.addcmul(b_j, a_j, h)  # local_j = a_j * local_{j-1} + b_j
        p = p * a_j  # P_j = P_{j-1} * a_j
        local.append(h)
        prods.append(p)
    starts, s = [], h0
    for p_end, h_end in zip(p.unbind(0)[order], h.unbind(0)[order], strict=True):  # (B, H)
        starts.append(s)
        s = torch.addcmul(h_end, p_end, s)  # the state at the chunk's end
    start = torch.stack(starts[order]).unsqueeze(1)  # each chunk's initial state: (N, 1, B, H)
    local, prods = torch.stack(local[order], 1), torch.stack(prods[order], 1)  # (N, C, B, H)
    out = torch.addcmul(local, prods, start).reshape(n * c, *rest)  # (N C, B, H)
    return out[pad:] if reverse else out[:steps]  # h_t: (T, B, H)


def heinsen_scan(log_a: Tensor, log_b: Tensor, h0: Tensor, chunk: int = 64) -> Tensor:
    """The same h (T, B, H) from log a, log b (T, B, H) and h0 (B, H) by the log-space formula
    of the module docstring, in chunks of ``chunk`` steps (all at once) chained at their ends."""
    steps = log_a.shape[0]
    n = -(-steps // chunk)  # N chunks
    if n * chunk > steps:  # a = 1, b ~ 0 on the steps that fill the last chunk
        log_a = nn.functional.pad(log_a, (0, 0, 0, 0, 0, n * chunk - steps))
        log_b = nn.functional.pad(log_b, (0, 0, 0, 0, 0, n * chunk - steps), value=_tiny(log_b))
    shape = (n, chunk, *log_a.shape[1:])
    a_star = log_a.reshape(shape).cumsum(1)  # a*_t within each chunk: (N, C, B, H)
    s = torch.logcumsumexp(log_b.reshape(shape) - a_star, dim=1)  # (N, C, B, H)
    decay = a_star.exp()  # e^{a*_t}: (N, C, B, H)
    inner = (a_star + s).exp()  # the chunk's own part, exp(a*_t + logcumsumexp): (N, C, B, H)
    starts, h = [], h0
    for p_end, h_end in zip(decay[:, -1].unbind(0), inner[:, -1].unbind(0), strict=True):
        starts.append(h)
        h = torch.addcmul(h_end, p_end, h)  # the state at the chunk's end
    start = torch.stack(starts).unsqueeze(1)  # each chunk's initial state: (N, 1, B, H)
    return torch.addcmul(inner, decay, start).flatten(0, 1)[:steps]  # h_t: (T, B, H)


def _tiny(x: Tensor) -> float:
    """log b of a padded step: its exp is 0, and unlike -inf it keeps logcumsumexp's gradient
    finite in a chunk of padding only."""
    return torch.finfo(x.dtype).min / 8


class _ScanCell(CellBase):
    """What both cells share: torch.nn's input weights for G gates, the checked step, the
    masked scan. A subclass writes ``coefficients`` and ``log_coefficients``."""

    num_gates = 0
    gate_names: tuple[str, ...] = ()

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        scan_method: str = "chunked",
    ):
        super().__init__(input_size, hidden_size)
        check_flag("bias", bias)
        if scan_method not in SCAN_METHODS:
            raise ValueError(f"scan_method: expected one of {SCAN_METHODS}, got {scan_method!r}")
        self.bias, self.scan_method = bias, scan_method
        factory = {"device": device, "dtype": dtype}
        rows = self.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows, **factory))
        else:
            self.register_parameter("bias_ih", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every parameter, as torch.nn's cells."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def gate_inputs(self, x: Tensor) -> tuple[Tensor, ...]:
        """The pre-activations ``W x + b`` of each gate, (..., I) -> G x (..., H): one product
        per gate, so that backward needs no (..., G*H) gradient assembled from G parts."""
        biases = self.bias_ih.chunk(self.num_gates) if self.bias else (None,) * self.num_gates
        weights = self.weight_ih.chunk(self.num_gates)  # G x (H, I)
        return tuple(nn.functional.linear(x, w, b) for w, b in zip(weights, biases, strict=True))

    @abc.abstractmethod
    def coefficients(self, *k: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """a_t, b_t (..., H) of ``h_t = a_t * h_{t-1} + b_t`` and the gates by name, from the
        pre-activations of the G gates (each (..., H)); each cell kind defines its own."""

    @abc.abstractmethod
    def log_coefficients(self, *k: Tensor) -> tuple[Tensor, Tensor]:
        """log a_t, log b_t (..., H) from the gates' pre-activations, in log space; each cell
        kind defines its own."""

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One step: x (B, I) or unbatched (I,), state h_{t-1} of x's batch (None: zeros)
        -> (h_t, h_t)."""
        self._check_step(x, state)
        if state is None:
            state = x.new_zeros(*x.shape[:-1], self.hidden_size)
        a, b, _ = self.coefficients(*self.gate_inputs(x))  # (B, H) each
        h = torch.addcmul(b, a, state)  # h_t = a_t * h_{t-1} + b_t
        return h, h

    def gates(self, x: Tensor, state: Tensor | None = None) -> dict[str, Tensor]:
        """The gate activations of one step by name, each (B, H): for diagnostics."""
        return self.coefficients(*self.gate_inputs(x))[2]

    def scan(self, x: Tensor, h0: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """A whole sequence: x (T, B, I), h0 (B, H), mask (T, B, 1) true on valid steps ->
        (h (T, B, H), zero where masked; the state at each row's last valid step (B, H))."""
        k = self.gate_inputs(x)  # G x (T, B, H)
        if self.scan_method == "log":
            log_a, log_b = self.log_coefficients(*k)  # (T, B, H) each
            if mask is not None:  # a = 1, b = 0 on padding: the state is carried unchanged
                log_a = log_a.masked_fill(~mask, 0.0)
                log_b = log_b.masked_fill(~mask, _tiny(log_b))
            h = heinsen_scan(log_a, log_b, h0)  # (T, B, H)
        else:
            a, b, _ = self.coefficients(*k)  # (T, B, H) each
            if mask is not None:
                a, b = a.masked_fill(~mask, 1.0), b.masked_fill(~mask, 0.0)
            h = chunked_scan(a, b, h0)  # (T, B, H)
        return (h if mask is None else h.masked_fill(~mask, 0.0)), h[-1]

    def _check_step(self, x, state) -> None:
        size = self.input_size
        if not isinstance(x, Tensor) or x.dim() not in (1, 2) or x.shape[-1] != size:
            raise ShapeError(
                f"x: expected (batch, input_size={size}) or unbatched (input_size={size},), "
                f"got {describe(x)}"
            )
        check_dtype("x", x, self.weight_ih.dtype, "the weights'")
        if state is None:
            return
        want = (*x.shape[:-1], self.hidden_size)
        if not isinstance(state, Tensor) or tuple(state.shape) != want:
            raise ShapeError(
                f"state: expected a tensor of shape {want} (x's batch, hidden_size), "
                f"got {describe(state)}"
            )
        check_dtype("state", state, x.dtype, "the input's")

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "bias": self.bias}
        return {**config, "scan_method": self.scan_method}


class MinGRUCell(_ScanCell):
    r"""The minGRU step, gates stacked (z, h) in ``weight_ih`` (2H, I) and ``bias_ih`` (2H,).

    .. math::
        z_t = \sigma(W_z x_t + b_z), \quad \tilde h_t = g(W_h x_t + b_h),
        \quad h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t
    """

    num_gates = 2
    gate_names = ("z", "h")

    def coefficients(self, k_z, k_h):  # pre-activations: (..., H) each
        z, h_tilde = torch.sigmoid(k_z), g(k_h)  # update gate, candidate (positive)
        return 1 - z, z * h_tilde, {"z": z, "h": h_tilde}  # a_t = 1 - z_t, b_t = z_t * h~_t

    def log_coefficients(self, k_z, k_h):
        log_a = -softplus(k_z)  # log(1 - z_t)
        log_b = -softplus(-k_z) + log_g(k_h)  # log z_t + log h~_t
        return log_a, log_b


class MinLSTMCell(_ScanCell):
    r"""The minLSTM step, gates stacked (f, i, h) in ``weight_ih`` (3H, I), ``bias_ih`` (3H,).

    .. math::
        f_t = \sigma(W_f x_t + b_f), \quad i_t = \sigma(W_i x_t + b_i),
        \quad f'_t = \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t},
        \quad \tilde h_t = g(W_h x_t + b_h), \quad h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t
    """

    num_gates = 3
    gate_names = ("f", "i", "h")

    def coefficients(self, k_f, k_i, k_h):  # pre-activations: (..., H) each
        d = softplus(-k_f) - softplus(-k_i)  # d = log i_t - log f_t
        f_n = torch.sigmoid(-d)  # f' = f / (f + i) = 1 / (1 + e^d)
        i_n = 1 - f_n  # i' = i / (f + i)
        h_tilde = g(k_h)  # candidate, positive
        return f_n, i_n * h_tilde, {"f": f_n, "i": i_n, "h": h_tilde}  # a = f', b = i' * h~

    def log_coefficients(self, k_f, k_i, k_h):
        d = softplus(-k_f) - softplus(-k_i)  # d = log i_t - log f_t
        log_a = -softplus(d)  # log f'_t = -log(1 + i/f)
        log_b = -softplus(-d) + log_g(k_h)  # log i'_t + log h~_t
        return log_a, log_b


class _MinLayer(Recurrent):
    """A stack of one scan cell kind: torch.nn's layer arguments plus ``backend`` and
    ``scan_method``."""

    cell_type: type[_ScanCell]

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
        scan_method: str = "chunked",
    ):
        cell = self.cell_type(input_size, hidden_size, bias, device, dtype, scan_method)
        super().__init__(cell, num_layers, bidirectional, batch_first, dropout, backend)
        self.bias = bias


class MinGRU(_MinLayer):
    """minGRU layer (:class:`MinGRUCell`): ``forward`` scans whole sequences, ``step`` and
    ``trace`` step the cell. Arguments as ``rk.GRU`` (``backend`` "auto" or "loop": torch has
    no kernel) plus ``scan_method``; weights ``weight_ih_l{k}`` (2H, I or D*H) and
    ``bias_ih_l{k}`` (2H,), ``_reverse`` for the reverse direction."""

    cell_type = MinGRUCell


class MinLSTM(_MinLayer):
    """minLSTM layer (:class:`MinLSTMCell`), as :class:`MinGRU` with ``weight_ih_l{k}``
    (3H, I or D*H) and ``bias_ih_l{k}`` (3H,); the state is h alone, no c."""

    cell_type = MinLSTMCell
