r"""Regularisation for recurrent models: the regularised cell kinds, locked and embedding dropout.

The cell kinds (registered in :data:`rnnkit.models.encoder.CELLS`, so ``model.cell = "..."``
picks one in any task) run :mod:`rnnkit.cells_regularized`'s cells in the one
:class:`rnnkit.layers.Recurrent`. Each reads only its own rates (the ``[model]`` keys of
:class:`rnnkit.models.encoder.RecurrentConfig`; unset, the default below; another kind's rate
is refused when the configuration is made)::

    kind               what                                         rates (default)
    lstm-ln, gru-ln    layer normalisation (Ba et al. 2016)         none
    lstm-variational   one dropout mask per sequence on x_t and     input_dropout (0.25),
    gru-variational    on h_{t-1} (Gal and Ghahramani 2016)         recurrent_dropout (0.25)
    lstm-weightdrop    DropConnect on W_hh, one mask per forward    weight_drop (0.5, AWD-LSTM's)
    gru-weightdrop     call (Merity et al. 2018)
    lstm-zoneout       units of h and c keep their previous value   zoneout (0.05),
                       (Krueger et al. 2016)                        zoneout_cell (0.5)
    gru-zoneout        the same for h                               zoneout (0.1)

The LSTM's zoneout defaults are the rates Krueger et al. report for character-level Penn
Treebank, the weight drop AWD-LSTM's default; the variational and GRU zoneout rates are this
module's choice.
A variational cell's ``input_dropout`` on layers above the first is locked dropout between
layers. :class:`LockedDropout` and :class:`EmbeddingDropout` are the same ideas as modules for
a model's own code (between an embedding and a layer, on the outputs, on the word vectors).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from rnnkit.cells_regularized import RegularizedGRUCell, RegularizedLSTMCell
from rnnkit.errors import check_flag
from rnnkit.layers import Recurrent

__all__ = ["REGULARIZED_KINDS", "EmbeddingDropout", "LockedDropout", "RegularizedLayer"]


def _check_p(p) -> float:
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p < 1:
        raise ValueError(f"p: expected a number in [0, 1), got {p!r}")
    return float(p)


class LockedDropout(nn.Module):
    r"""Dropout with one mask per sequence, shared by all its time steps (Gal and
    Ghahramani 2016's mask on a layer's inputs or outputs; "locked dropout" in AWD-LSTM).

    .. math::
        y_{b,t} = x_{b,t} \odot m_b, \quad m_b \in \{0, 1/(1-p)\}^F

    with each unit of m_b kept with probability 1 - p in training; ``y = x`` in evaluation.

    Args:
        p: the rate, in [0, 1).
        batch_first: x is (B, T, F) if true, else (T, B, F).

    Shape: x (B, T, F) or (T, B, F) -> the same.
    """

    def __init__(self, p: float = 0.5, batch_first: bool = True):
        super().__init__()
        check_flag("batch_first", batch_first)
        self.p, self.batch_first = _check_p(p), batch_first

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        if x.dim() != 3:
            raise ValueError(f"x: expected a 3-D tensor (batch, time, features), got {x.dim()}-D")
        b, f = (x.shape[0], x.shape[2]) if self.batch_first else (x.shape[1], x.shape[2])
        m = x.new_empty(b, f).bernoulli_(1 - self.p).div_(1 - self.p)  # m: (B, F)
        return x * (m.unsqueeze(1) if self.batch_first else m.unsqueeze(0))  # y = x ⊙ m

    def extra_repr(self) -> str:
        return f"p={self.p}, batch_first={self.batch_first}"


class EmbeddingDropout(nn.Embedding):
    r"""An ``nn.Embedding`` that drops whole words in training (Gal and Ghahramani 2016; the
    embedding dropout of AWD-LSTM).

    .. math::
        e_{b,t} = (m \odot E)[x_{b,t}], \quad m \in \{0, 1/(1-p)\}^V

    m holds one value per vocabulary row, drawn once per forward call: a dropped word is a
    zero vector at every position of the batch where it occurs, and a kept one is scaled by
    1 / (1 - p). In evaluation ``e = E[x]``. Parameters and ``state_dict`` are
    ``nn.Embedding``'s (``weight`` (V, D)), so it replaces one in a model unchanged.

    Args:
        num_embeddings: V. embedding_dim: D. padding_idx: as ``nn.Embedding``.
        p: the rate, in [0, 1). device, dtype: as torch.nn.

    Shape: ids (*) integers -> (*, D).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        p: float = 0.1,
        device=None,
        dtype=None,
    ):
        super().__init__(num_embeddings, embedding_dim, padding_idx, device=device, dtype=dtype)
        self.p = _check_p(p)

    def forward(self, ids: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return super().forward(ids)
        rows = self.weight.new_empty(self.num_embeddings, 1)
        m = rows.bernoulli_(1 - self.p).div_(1 - self.p)  # m: (V, 1)
        return nn.functional.embedding(ids, self.weight * m, self.padding_idx)  # (m ⊙ E)[x]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


@dataclass(frozen=True)
class RegularizedLayer:
    """A regularised cell kind: ``(input_size, hidden_size, num_layers=, ..., **rates) ->
    Recurrent`` running ``cell``, with the rates it reads and their defaults (a rate passed
    as None takes its default; one the kind does not read is refused naming it)."""

    cell: type  # RegularizedLSTMCell or RegularizedGRUCell
    layer_norm: bool = False  # LN_x, LN_h (and LN_c)
    defaults: tuple[tuple[str, float], ...] = ()  # (rate, default) the kind reads

    @property
    def options(self) -> tuple[str, ...]:
        """The rates this kind reads: the ``CellKind.options`` it is registered with."""
        return tuple(name for name, _ in self.defaults)

    def __call__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        batch_first: bool = False,
        backend: str = "auto",
        **rates: float | None,
    ) -> Recurrent:
        for name in rates:
            if name not in self.options:
                reads = ", ".join(self.options) or "no rates"
                raise ValueError(f"{name}: this cell kind reads {reads}; remove {name}")
        values = {n: d if rates.get(n) is None else rates[n] for n, d in self.defaults}
        cell = self.cell(input_size, hidden_size, layer_norm=self.layer_norm, **values)
        return Recurrent(cell, num_layers, bidirectional, batch_first, dropout, backend)


_LSTM, _GRU = RegularizedLSTMCell, RegularizedGRUCell
_VARIATIONAL = (("input_dropout", 0.25), ("recurrent_dropout", 0.25))

#: the regularised cell kinds by registry name (see the module docstring)
REGULARIZED_KINDS: dict[str, RegularizedLayer] = {
    "lstm-ln": RegularizedLayer(_LSTM, layer_norm=True),
    "gru-ln": RegularizedLayer(_GRU, layer_norm=True),
    "lstm-variational": RegularizedLayer(_LSTM, defaults=_VARIATIONAL),
    "gru-variational": RegularizedLayer(_GRU, defaults=_VARIATIONAL),
    "lstm-weightdrop": RegularizedLayer(_LSTM, defaults=(("weight_drop", 0.5),)),
    "gru-weightdrop": RegularizedLayer(_GRU, defaults=(("weight_drop", 0.5),)),
    "lstm-zoneout": RegularizedLayer(_LSTM, defaults=(("zoneout", 0.05), ("zoneout_cell", 0.5))),
    "gru-zoneout": RegularizedLayer(_GRU, defaults=(("zoneout", 0.1),)),
}
