"""Small recurrent models for the tasks: an Elman, LSTM or GRU layer and a linear head.

For inputs x (B, T, D) (or token ids (B, T), one-hot encoded to D = vocab_size):

    h_1..h_T, state = RNN(x)            # (B, T, H), rk.RNN / rk.LSTM / rk.GRU, batch first
    y_t = W_o h_t + b_o                 # (B, T, K)

and the loss is taken only where ``batch.mask`` is set: the mean squared error of y_t (K = 1)
or the cross-entropy of softmax(y_t) (K classes), averaged over the marked steps. The model
implements the trainer's contract: ``loss``, ``carry_loss`` (truncated BPTT), ``predict``,
``trace`` (diagnostics) and ``get_config``/``from_config`` (checkpoints).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

import rnnkit as rk
from rnnkit.layers import LayerTrace
from rnnkit.training.batch import SequenceBatch

CELLS = {"rnn": rk.RNN, "lstm": rk.LSTM, "gru": rk.GRU}


@dataclass(frozen=True)
class RecurrentModelConfig:
    cell: Literal["rnn", "lstm", "gru"] = "lstm"  # Elman RNN, LSTM or GRU
    input_size: int = 1  # D, features per step (ignored when vocab_size > 0)
    vocab_size: int = 0  # > 0: inputs are token ids in [0, vocab_size), one-hot encoded
    hidden_size: int = 64  # H
    num_layers: int = 1  # stacked recurrent layers
    nonlinearity: Literal["tanh", "relu"] = "tanh"  # Elman RNN activation
    output_size: int = 1  # K: 1 for regression, classes for classification
    objective: Literal["mse", "xent"] = "mse"  # squared error or cross-entropy
    recurrent_scale: float = 0.0  # > 0: W_hh = scale * orthogonal matrix (0: layer default)
    dropout: float = 0.0  # between stacked layers
    backend: Literal["auto", "torch", "loop"] = "auto"  # how the layer unrolls time

    def __post_init__(self) -> None:
        for name in ("input_size", "hidden_size", "num_layers", "output_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.vocab_size < 0 or self.recurrent_scale < 0:
            raise ValueError("vocab_size and recurrent_scale must be >= 0")
        if self.objective == "mse" and self.output_size != 1:
            raise ValueError(f"objective 'mse' needs output_size 1, got {self.output_size}")


class RecurrentModel(nn.Module):
    """A recurrent layer with a linear read-out at every step (see module docstring)."""

    def __init__(self, config: RecurrentModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        d_in = c.vocab_size if c.vocab_size else c.input_size
        kwargs: dict[str, Any] = {
            "num_layers": c.num_layers,
            "batch_first": True,
            "dropout": c.dropout,
            "backend": c.backend,
        }
        if c.cell == "rnn":
            kwargs["nonlinearity"] = c.nonlinearity
        self.rnn = CELLS[c.cell](d_in, c.hidden_size, **kwargs)
        self.head = nn.Linear(c.hidden_size, c.output_size)
        if c.recurrent_scale > 0:
            for name, p in self.rnn.named_parameters():
                if name.endswith("weight_hh"):
                    with torch.no_grad():
                        for block in p.split(c.hidden_size, dim=0):  # one (H, H) per gate
                            nn.init.orthogonal_(block)
                            block.mul_(c.recurrent_scale)

    # ---- checkpoint contract --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RecurrentModel:
        return cls(RecurrentModelConfig(**config))

    # ---- forward ----------------------------------------------------------------------------
    def _inputs(self, batch: SequenceBatch) -> torch.Tensor:
        dtype = self.head.weight.dtype
        if self.config.vocab_size:
            return nn.functional.one_hot(batch.inputs, self.config.vocab_size).to(dtype)
        return batch.inputs.to(dtype)  # (B, T, D)

    def run(self, batch: SequenceBatch, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Read-outs y (B, T, K) and the final state; rows with length 0 keep ``state``."""
        alive = batch.lengths > 0  # (B,)
        out, new = self.rnn(self._inputs(batch), state, lengths=batch.lengths.clamp(min=1))
        if state is not None and not bool(alive.all()):
            out = out * alive.view(-1, 1, 1)  # (B, T, H): ended sequences output zeros
            keep = alive.view(1, -1, 1)  # (1, B, 1) over (L*D, B, H)
            if isinstance(new, tuple):
                new = tuple(torch.where(keep, n, o) for n, o in zip(new, state, strict=True))
            else:
                new = torch.where(keep, new, state)
        return self.head(out), new

    def _loss(self, y: torch.Tensor, batch: SequenceBatch) -> tuple[torch.Tensor, dict]:
        mask = batch.mask  # (B, T)
        n = max(int(mask.sum()), 1)
        if self.config.objective == "mse":
            err = (y.squeeze(-1) - batch.targets.to(y.dtype)) ** 2  # (B, T)
            return (err * mask).sum() / n, {}
        logp = torch.log_softmax(y, dim=-1)  # (B, T, K)
        nll = -logp.gather(-1, batch.targets.long().unsqueeze(-1)).squeeze(-1)  # (B, T)
        correct = (y.argmax(-1) == batch.targets) & mask
        return (nll * mask).sum() / n, {"accuracy": float(correct.sum()) / n}

    def loss(self, batch: SequenceBatch) -> tuple[torch.Tensor, dict[str, float]]:
        y, _ = self.run(batch)
        return self._loss(y, batch)

    def carry_loss(self, batch: SequenceBatch, state: Any) -> tuple[torch.Tensor, dict, Any]:
        y, new = self.run(batch, state)
        loss, metrics = self._loss(y, batch)
        return loss, metrics, new

    @torch.no_grad()
    def predict(self, batch: SequenceBatch) -> torch.Tensor:
        """Predictions at the marked steps, in row-major order: values or class ids (n,)."""
        y, _ = self.run(batch)
        y = y[batch.mask]  # (n, K)
        return y.squeeze(-1) if self.config.objective == "mse" else y.argmax(-1)

    def trace(self, batch: SequenceBatch) -> tuple[torch.Tensor, LayerTrace]:
        """Loss and the layer's per-step trace (hidden states in the graph, gates)."""
        tr = self.rnn.trace(self._inputs(batch), lengths=batch.lengths)
        loss, _ = self._loss(self.head(tr.output), batch)
        return loss, tr
