r"""Regularised LSTM and GRU steps: layer normalisation, variational dropout, weight drop, zoneout.

:class:`RegularizedLSTMCell` and :class:`RegularizedGRUCell` are the plain cells of
:mod:`rnnkit.cells` with five switches, each the identity at its default (``False`` / 0):

* ``layer_norm`` (Ba et al. 2016): the input and recurrent pre-activations (and the LSTM's
  cell state) are normalised over their units, with a learned gain and shift;
* ``input_dropout`` p_x and ``recurrent_dropout`` p_h (Gal and Ghahramani 2016): one dropout
  mask per sequence on x_t and one on h_{t-1}, shared by all time steps and all gates;
* ``weight_drop`` p_w (DropConnect on W_hh, as AWD-LSTM, Merity et al. 2018): one mask on the
  hidden-to-hidden matrix per forward call, shared by the batch and the steps;
* ``zoneout`` zeta_h (and ``zoneout_cell`` zeta_c for the LSTM's c; Krueger et al. 2016): in
  training each unit keeps its previous value with that probability, drawn anew at every step;
  in evaluation the expectation ``zeta * old + (1 - zeta) * new``.

Dropout masks are inverted (kept units scaled by 1 / (1 - p)), so evaluation uses the plain
weights and inputs, and eval mode is deterministic. The layer norm is
``LN(a; alpha, beta) = alpha * (a - mean(a)) / sqrt(var(a) + eps) + beta`` over the last
dimension (eps = 1e-5, biased variance, as ``torch.nn.LayerNorm``).

How "one mask per sequence" meets one-step cells: a layer calls ``project_input`` once for a
whole sequence (T, B, I) and then ``recurrent_step`` at every step (:func:`rnnkit.unroll.run_loop`),
so ``project_input`` draws the masks of the call (in training) and the steps read them. A
call of ``cell(x_t, state)`` or of :meth:`rnnkit.layers.Recurrent.step` is a one-step sequence
and draws its own. The cells keep torch.nn's parameters, names and gate order (the layer owns
them as ``weight_ih_l0``...); the layer norms are the cell's ``ln_ih``, ``ln_hh`` and
``ln_c`` (``ln_hh.weight_l0`` in a layer's ``state_dict``). Torch's fused kernels do not
run these cells. rnnkit's compiled sequence kernels run a call that is the plain recurrence
with another W_hh (weight drop alone, and any cell without layer norm or zoneout in
evaluation: :meth:`kernel_base`); otherwise the layer steps the cell in Python (``backend``
"auto" or "loop").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.cells import GRUCell, LSTMCell
from rnnkit.errors import check_flag
from rnnkit.kernels.dense import linear

__all__ = ["RATES", "RegularizedGRUCell", "RegularizedLSTMCell"]

#: the rate arguments of the regularised cells (each in [0, 1); 0 turns it off)
RATES = ("input_dropout", "recurrent_dropout", "weight_drop", "zoneout", "zoneout_cell")


@dataclass
class _Noise:
    """What one forward call draws in training: the masks shared by all its steps."""

    batch: int  # B the masks were drawn for
    h: Tensor | None  # m_h (B, H_out) in {0, 1/(1-p_h)}, or None for p_h = 0
    weight_hh: Tensor | None  # W_hh * M, M (G*H, H_out) in {0, 1/(1-p_w)}, or None


def _check_rate(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}")
    return float(value)


def _mask(like: Tensor, shape: tuple[int, ...], p: float) -> Tensor | None:
    """An inverted dropout mask: 1 / (1 - p) with probability 1 - p, else 0 (None for p = 0)."""
    if p == 0:
        return None
    return like.new_empty(shape).bernoulli_(1 - p).div_(1 - p)


class _Regularized:
    """What both regularised cells share: the switches, the masks, the layer norms.

    Mixed into a :class:`~rnnkit.cells.GatedCell` subclass, before it in the bases."""

    def _setup(self, layer_norm: bool, rates: dict[str, float], device, dtype) -> None:
        check_flag("layer_norm", layer_norm)
        self.layer_norm = layer_norm
        for name, value in rates.items():
            setattr(self, name, _check_rate(name, value))
        factory = {"device": device, "dtype": dtype}
        g = self.weight_ih.shape[0]  # G*H
        self.ln_ih = nn.LayerNorm(g, **factory) if layer_norm else None  # LN_x
        self.ln_hh = nn.LayerNorm(g, **factory) if layer_norm else None  # LN_h
        self.__dict__["_noise"] = None

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for torch.nn's weights the cell holds (as the plain
        cells), gain 1 and shift 0 for the layer norms."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters(recurse=False):
            nn.init.uniform_(p, -bound, bound)
        for norm in self.children():
            norm.reset_parameters()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        return {**state, "_noise": None}  # the last call's masks are not part of the cell

    # -- the masks of one call -----------------------------------------------------------
    def _draw(self, like: Tensor, batch: int) -> _Noise | None:
        """New masks for a call over ``batch`` rows (None in evaluation or with no dropout)."""
        noise = None
        if self.training and (self.recurrent_dropout or self.weight_drop):
            w = self.weight_hh
            m_w = _mask(w, tuple(w.shape), self.weight_drop)  # (G*H, H_out)
            m_h = _mask(like, (batch, w.shape[1]), self.recurrent_dropout)  # (B, H_out)
            noise = _Noise(batch, m_h, None if m_w is None else w * m_w)
        self.__dict__["_noise"] = noise
        return noise

    def _noise_for(self, h: Tensor) -> _Noise | None:
        """The masks of this call for h_{t-1} (B, H_out): drawn now if the call did not."""
        if not self.training or not (self.recurrent_dropout or self.weight_drop):
            return None
        noise = self.__dict__.get("_noise")
        if noise is None or (noise.h is not None and noise.batch != h.shape[0]):
            noise = self._draw(h, h.shape[0])
        return noise

    # -- the two halves of the step ------------------------------------------------------
    def project_input(self, x: Tensor) -> Tensor:
        """``LN_x(W_ih (x ⊙ m_x)) + b`` for inputs (..., B, I) -> (..., B, G*H), drawing
        this call's masks in training (m_x, m_h, M); ``b`` as the plain cell's."""
        batch = x.shape[-2] if x.dim() > 1 else 1
        self._draw(x, batch)
        if self.training and self.input_dropout:
            x = x * _mask(x, (batch, x.shape[-1]), self.input_dropout)  # x~ = x ⊙ m_x
        if self.ln_ih is None:
            return linear(x, self.weight_ih, self.input_bias())
        a = self.ln_ih(linear(x, self.weight_ih))  # LN_x(W_ih x~)
        bias = self.input_bias()
        return a if bias is None else a + bias

    def _recurrent_product(self, h: Tensor) -> Tensor:
        """``LN_h(W~_hh (h ⊙ m_h))``: (B, H_out) -> (B, G*H), without bias."""
        noise = self._noise_for(h)
        weight = self.weight_hh
        if noise is not None:
            weight = weight if noise.weight_hh is None else noise.weight_hh  # W~ = W ⊙ M
            h = h if noise.h is None else h * noise.h  # h~ = h ⊙ m_h
        a = linear(h, weight)
        return a if self.ln_hh is None else self.ln_hh(a)

    # -- the compiled kernels --------------------------------------------------------------
    def kernel_base(self) -> type | None:
        """The plain cell (:class:`~rnnkit.cells.LSTMCell` or :class:`~rnnkit.cells.GRUCell`)
        whose compiled sequence kernel runs this call exactly, given
        :meth:`kernel_weight_hh`; None when the call is more than the plain recurrence with
        another W_hh (layer norm, zoneout, or variational dropout in training). Weight drop
        alone qualifies: it only replaces W_hh by W~_hh for the whole call."""
        if self.layer_norm or any(getattr(self, n, 0.0) for n in ("zoneout", "zoneout_cell")):
            return None
        if self.training and (self.input_dropout or self.recurrent_dropout):
            return None
        return LSTMCell if isinstance(self, LSTMCell) else GRUCell

    def kernel_weight_hh(self, h: Tensor) -> Tensor:
        """The W_hh the kernel runs this call with, for h_0 (B, H_out): W~_hh = W_hh ⊙ M in
        training with weight drop (the mask ``project_input`` drew for this call, or one drawn
        now), else W_hh. Gradients reach W_hh through the product with M."""
        noise = self._noise_for(h)
        return self.weight_hh if noise is None or noise.weight_hh is None else noise.weight_hh

    def _zoneout(self, new: Tensor, old: Tensor, zeta: float) -> Tensor:
        """``d ⊙ old + (1 - d) ⊙ new``: d ~ Bernoulli(zeta) per unit in training, zeta in
        evaluation."""
        if zeta == 0:
            return new
        d = new.new_empty(new.shape).bernoulli_(zeta) if self.training else zeta
        return torch.lerp(new, old, d)

    def get_config(self) -> dict[str, Any]:
        rates = {name: getattr(self, name) for name in RATES if hasattr(self, name)}
        return {**super().get_config(), "layer_norm": self.layer_norm, **rates}


class RegularizedLSTMCell(_Regularized, LSTMCell):
    r"""The LSTM step with layer normalisation, variational and weight dropout, and zoneout.

    .. math::
        \tilde x_t = x_t \odot m_x, \quad \tilde h_{t-1} = h_{t-1} \odot m_h,
        \quad \tilde W_{hh} = W_{hh} \odot M
        a_t = LN_x(W_{ih} \tilde x_t) + LN_h(\tilde W_{hh} \tilde h_{t-1}) + b_{ih} + b_{hh}
        i_t, f_t, g_t, o_t = \sigma(a^i_t), \sigma(a^f_t), \tanh(a^g_t), \sigma(a^o_t)
        \hat c_t = f_t \odot c_{t-1} + i_t \odot g_t
        \hat h_t = o_t \odot \tanh(LN_c(\hat c_t))
        c_t = d^c_t \odot c_{t-1} + (1 - d^c_t) \odot \hat c_t
        h_t = d^h_t \odot h_{t-1} + (1 - d^h_t) \odot \hat h_t

    Glossary: m_x (B, I) and m_h (B, H) are inverted dropout masks with rates p_x =
    ``input_dropout`` and p_h = ``recurrent_dropout``, one per sequence (all steps, all four
    gates); M (4H, H) the DropConnect mask with rate p_w = ``weight_drop``, one per forward
    call; d^c_t, d^h_t (B, H) zoneout masks, Bernoulli(zeta_c = ``zoneout_cell``) and
    Bernoulli(zeta_h = ``zoneout``) at every step in training and the constants zeta_c, zeta_h
    in evaluation. m_x, m_h and M are all ones in evaluation or at rate 0, d^c_t and d^h_t
    zero at rate 0. LN_x, LN_h
    (over 4H) and LN_c (over H) are the identity unless ``layer_norm``; with it, this is Ba et
    al.'s LN-LSTM (their separate bias b is ``b_ih + b_hh`` here). Gates stacked i, f, g, o;
    parameters as :class:`~rnnkit.cells.LSTMCell` (no projection) plus ``ln_ih``, ``ln_hh``,
    ``ln_c`` (``nn.LayerNorm``) with ``layer_norm``.

    Args:
        input_size: I. hidden_size: H. bias: whether ``bias_ih`` / ``bias_hh`` exist.
        layer_norm: normalise as above. input_dropout, recurrent_dropout, weight_drop,
            zoneout, zoneout_cell: the rates, each in [0, 1). device, dtype: as torch.nn.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        layer_norm: bool = False,
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        zoneout: float = 0.0,
        zoneout_cell: float = 0.0,
        device=None,
        dtype=None,
    ):
        super().__init__(input_size, hidden_size, bias, device, dtype)
        rates = {
            "input_dropout": input_dropout,
            "recurrent_dropout": recurrent_dropout,
            "weight_drop": weight_drop,
            "zoneout": zoneout,
            "zoneout_cell": zoneout_cell,
        }
        self._setup(layer_norm, rates, device, dtype)
        self.ln_c = nn.LayerNorm(hidden_size, device=device, dtype=dtype) if layer_norm else None

    def step_with_gates(self, xp, state, keep_gates=True):
        h0, c0 = state  # h_{t-1}, c_{t-1}: (B, H)
        a = xp + self._recurrent_product(h0)  # a_t: (B, 4H)
        i, f, _, o = torch.sigmoid(a).chunk(4, dim=1)  # input, forget, output gates
        g = torch.tanh(a.chunk(4, dim=1)[2])  # modulation (candidate cell)
        c = torch.addcmul(f * c0, i, g)  # c^_t = f * c_{t-1} + i * g
        h = o * torch.tanh(c if self.ln_c is None else self.ln_c(c))  # h^_t = o * tanh(LN_c(c^))
        c = self._zoneout(c, c0, self.zoneout_cell)  # c_t = d^c * c_{t-1} + (1 - d^c) * c^_t
        h = self._zoneout(h, h0, self.zoneout)  # h_t = d^h * h_{t-1} + (1 - d^h) * h^_t
        return h, (h, c), ({"i": i, "f": f, "g": g, "o": o} if keep_gates else {})


class RegularizedGRUCell(_Regularized, GRUCell):
    r"""The GRU step with layer normalisation, variational and weight dropout, and zoneout.

    .. math::
        \tilde x_t = x_t \odot m_x, \quad \tilde h_{t-1} = h_{t-1} \odot m_h,
        \quad \tilde W_{hh} = W_{hh} \odot M
        a^x_t = LN_x(W_{ih} \tilde x_t) + b_{ih}, \quad
        a^h_t = LN_h(\tilde W_{hh} \tilde h_{t-1}) + b_{hh}
        r_t = \sigma(a^{x,r}_t + a^{h,r}_t), \quad z_t = \sigma(a^{x,z}_t + a^{h,z}_t)
        n_t = \tanh(a^{x,n}_t + r_t \odot a^{h,n}_t)
        \hat h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        h_t = d_t \odot h_{t-1} + (1 - d_t) \odot \hat h_t

    Glossary: m_x (B, I) and m_h (B, H) inverted dropout masks with rates p_x =
    ``input_dropout`` and p_h = ``recurrent_dropout``, one per sequence (all steps and gates;
    m_h drops h_{t-1} in the product only, not in the interpolation with z_t); M (3H, H) the
    DropConnect mask with rate p_w = ``weight_drop``, one per forward call; d_t (B, H) the
    zoneout mask, Bernoulli(zeta = ``zoneout``) at every step in training, the constant zeta in
    evaluation. m_x, m_h and M are all ones in evaluation or at rate 0, d_t zero at rate 0.
    LN_x and LN_h (over 3H) are the
    identity unless ``layer_norm`` (Ba et al.'s normalisation of the two products, applied to
    torch.nn's GRU). Gates stacked r, z, n; parameters as :class:`~rnnkit.cells.GRUCell` plus
    ``ln_ih`` and ``ln_hh`` with ``layer_norm``.

    Args:
        input_size: I. hidden_size: H. bias: whether ``bias_ih`` / ``bias_hh`` exist.
        layer_norm: normalise as above. input_dropout, recurrent_dropout, weight_drop,
            zoneout: the rates, each in [0, 1). device, dtype: as torch.nn.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        layer_norm: bool = False,
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        zoneout: float = 0.0,
        device=None,
        dtype=None,
    ):
        super().__init__(input_size, hidden_size, bias, device, dtype)
        rates = {
            "input_dropout": input_dropout,
            "recurrent_dropout": recurrent_dropout,
            "weight_drop": weight_drop,
            "zoneout": zoneout,
        }
        self._setup(layer_norm, rates, device, dtype)

    def step_with_gates(self, xp, state, keep_gates=True):
        h0, H = state, self.hidden_size  # h_{t-1}: (B, H)
        x_rz, x_n = xp.split([2 * H, H], dim=1)  # a^x_t: (B, 2H), (B, H)
        hh = self._recurrent_product(h0)  # LN_h(W~_hh h~_{t-1}): (B, 3H)
        if self.bias_hh is not None:
            hh = hh + self.bias_hh  # a^h_t
        h_rz, h_n = hh.split([2 * H, H], dim=1)
        r, z = torch.sigmoid(x_rz + h_rz).chunk(2, dim=1)  # reset and update gates
        n = torch.tanh(torch.addcmul(x_n, r, h_n))  # n_t = tanh(a^x_n + r * a^h_n)
        h = torch.lerp(n, h0, z)  # h^_t = (1 - z) * n + z * h_{t-1}
        h = self._zoneout(h, h0, self.zoneout)  # h_t = d * h_{t-1} + (1 - d) * h^_t
        return h, h, ({"r": r, "z": z, "n": n} if keep_gates else {})
