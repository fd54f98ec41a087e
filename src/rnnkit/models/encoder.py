"""The one cell registry and the one builder every model makes its recurrent stack with.

A cell kind is one registry entry: the layer class that unrolls it and the options it reads
beyond the common ones. Every model config inherits :class:`RecurrentConfig`, whose fields
are the ``[model]`` keys of the recurrent stack, and :func:`build_encoder` honours each::

    cell            registry name: "rnn" (Elman), "lstm", "gru", a regularised kind
                    ("lstm-ln", "gru-zoneout"... rnnkit.regularized), "mingru" or "minlstm"
                    (parallel scan, rnnkit.cells_min) or one added by register_cell
    hidden_size     H per direction
    num_layers      stacked layers; layer k + 1 reads layer k's outputs
    bidirectional   (models that allow it) also read each sequence from its end
    nonlinearity    "tanh" or "relu": the Elman cell's activation (an error for other cells)
    dropout         between stacked layers (models also use it on embeddings and outputs)
    recurrent_scale > 0: each (H, H) block of W_hh starts as scale * an orthogonal matrix
    backend         "auto", "torch" or "loop": how the layer unrolls time
    input_dropout, recurrent_dropout, weight_drop, zoneout, zoneout_cell
                    rates of the regularised kinds (unset: the kind's default); refused for a
                    kind that does not read them

Adding a cell kind::

    register_cell("mycell", CellKind(lambda i, h, **kw: rk.Recurrent(MyCell(i, h), **kw)))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from rnnkit.cells_min import MinGRU, MinLSTM
from rnnkit.cells_regularized import RATES  # fields only some kinds read (None: unset)
from rnnkit.config import check_types
from rnnkit.layers import GRU, LSTM, RNN, Recurrent
from rnnkit.regularized import REGULARIZED_KINDS

__all__ = ["CELLS", "CellKind", "RecurrentConfig", "build_encoder", "register_cell"]


@dataclass(frozen=True)
class CellKind:
    # (input_size, hidden_size, num_layers=, bidirectional=, dropout=, batch_first=, backend=,
    #  **options) -> a Recurrent layer
    layer: Callable[..., Recurrent]
    options: tuple[str, ...] = ()  # RecurrentConfig fields passed on to the layer as well


CELLS: dict[str, CellKind] = {
    "rnn": CellKind(RNN, options=("nonlinearity",)),
    "lstm": CellKind(LSTM),
    "gru": CellKind(GRU),
    # lstm-ln, gru-ln, {lstm,gru}-variational, -weightdrop, -zoneout (rnnkit.regularized)
    **{name: CellKind(kind, options=kind.options) for name, kind in REGULARIZED_KINDS.items()},
    "mingru": CellKind(MinGRU),  # parallel-scan cells (rnnkit.cells_min), no W_hh
    "minlstm": CellKind(MinLSTM),
}


def register_cell(name: str, kind: CellKind) -> None:
    """Add a cell kind under ``name`` (an error if the name is taken)."""
    if name in CELLS:
        raise ValueError(f"cell {name!r} is already registered")
    CELLS[name] = kind


@dataclass(frozen=True, kw_only=True)
class RecurrentConfig:
    """The recurrent stack's settings, shared by every model config (see module docstring)."""

    cell: str = "lstm"  # a registered cell kind: rnn, lstm, gru, lstm-ln, ...
    hidden_size: int = 128  # H per direction
    num_layers: int = 1  # stacked recurrent layers
    nonlinearity: Literal["tanh", "relu"] = "tanh"  # Elman RNN activation (cell "rnn" only)
    dropout: float = 0.0  # between stacked layers (and where the model says)
    recurrent_scale: float = 0.0  # > 0: W_hh blocks = scale * orthogonal (0: layer default)
    backend: Literal["auto", "torch", "loop"] = "auto"  # how the layers unroll time
    # rates of the regularised kinds (rnnkit.regularized), each in [0, 1); None: the default
    input_dropout: float | None = None  # *-variational: mask on x_t, one per sequence
    recurrent_dropout: float | None = None  # *-variational: mask on h_{t-1}, one per sequence
    weight_drop: float | None = None  # *-weightdrop: DropConnect on W_hh, one mask per call
    zoneout: float | None = None  # *-zoneout: P(a unit of h keeps its previous value)
    zoneout_cell: float | None = None  # lstm-zoneout: the same for c

    def __post_init__(self) -> None:
        check_types(self)  # Python callers get the checks TOML values get
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        for name in ("hidden_size", "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {self.nonlinearity!r}")
        if self.nonlinearity != "tanh" and "nonlinearity" not in CELLS[self.cell].options:
            raise ValueError(
                f"nonlinearity={self.nonlinearity!r} applies to the Elman cell (cell='rnn'), "
                f"not to cell={self.cell!r}"
            )
        for name in RATES:
            value = getattr(self, name)
            if value is not None and name not in CELLS[self.cell].options:
                reads = " or ".join(repr(k) for k, kind in CELLS.items() if name in kind.options)
                raise ValueError(f"{name}={value!r} applies to cell={reads}, not to {self.cell!r}")
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.recurrent_scale >= 0.0:  # also refuses nan
            raise ValueError(f"recurrent_scale must be >= 0, got {self.recurrent_scale!r}")
        if self.backend not in ("auto", "torch", "loop"):
            raise ValueError(f"backend must be auto, torch or loop, got {self.backend!r}")


def build_encoder(input_size: int, config: RecurrentConfig, **overrides: Any) -> Recurrent:
    """The batch-first recurrent stack ``config`` describes, reading ``input_size`` features.

    ``overrides`` replace config fields for this stack (a character encoder's own size, say).
    """
    c = {
        "cell": config.cell,
        "hidden_size": config.hidden_size,
        "num_layers": config.num_layers,
        "bidirectional": getattr(config, "bidirectional", False),
        "nonlinearity": config.nonlinearity,
        "dropout": config.dropout,
        "recurrent_scale": config.recurrent_scale,
        "backend": config.backend,
        **{name: getattr(config, name) for name in RATES},
        **overrides,
    }
    kind = CELLS[c["cell"]]
    layer = kind.layer(
        input_size,
        c["hidden_size"],
        num_layers=c["num_layers"],
        bidirectional=c["bidirectional"],
        dropout=c["dropout"] if c["num_layers"] > 1 else 0.0,
        batch_first=True,
        backend=c["backend"],
        **{name: c[name] for name in kind.options},
    )
    if c["recurrent_scale"] > 0:
        orthogonal_recurrence(layer, c["recurrent_scale"], c["hidden_size"])
    return layer


def orthogonal_recurrence(layer: nn.Module, scale: float, hidden_size: int) -> None:
    """Set each (H, H) gate block of every ``weight_hh`` to ``scale`` * an orthogonal matrix
    (an error for a layer without one: the minGRU's and minLSTM's)."""
    done = 0
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.rsplit(".", 1)[-1].startswith("weight_hh"):
                for block in p.split(hidden_size, dim=0):  # one (H, H) per gate
                    nn.init.orthogonal_(block)
                    block.mul_(scale)
                done += 1
    if not done:
        cell = type(getattr(layer, "cells", [layer])[0]).__name__
        raise ValueError(f"recurrent_scale={scale!r} sets W_hh, and {cell} has none; remove it")
