"""A recurrent stack with a linear read-out at every step: the synthetic long-range tasks.

For inputs x (B, T, D) (or token ids (B, T), one-hot encoded to D = vocab_size):

    h_1..h_T, state = RNN(x)            # (B, T, H), rk.RNN / rk.LSTM / rk.GRU, batch first
    y_t = W_o h_t + b_o                 # (B, T, K)

and the loss is taken only where ``batch.mask`` is set: the mean squared error of y_t (K = 1)
or the cross-entropy of softmax(y_t) (K classes), averaged over the marked steps. The model is
trainable, carrying (truncated BPTT) and traceable (:mod:`rnnkit.models.contract`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from rnnkit.data.batches import SequenceBatch
from rnnkit.kernels.dense import Linear
from rnnkit.layers import LayerTrace
from rnnkit.models.encoder import RecurrentConfig, build_encoder, orthogonal_recurrence


@dataclass(frozen=True, kw_only=True)
class RecurrentModelConfig(RecurrentConfig):
    input_size: int = 1  # D, features per step (1 when vocab_size > 0) (set by the data)
    vocab_size: int = 0  # > 0: inputs are token ids in [0, vocab_size), one-hot (data)
    output_size: int = 1  # K: 1 for regression, classes for classification (data)
    objective: Literal["mse", "xent"] = "mse"  # squared error or cross-entropy (data)
    hidden_size: int = 64  # H
    bidirectional: bool = False  # read-outs see the whole sequence (not for carried states)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("input_size", "output_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.vocab_size < 0:
            raise ValueError(f"vocab_size must be >= 0, got {self.vocab_size}")
        if self.dropout > 0 and self.num_layers == 1:
            raise ValueError(
                f"dropout={self.dropout} acts between stacked layers only in this model, and "
                f"num_layers=1: set num_layers >= 2 or dropout = 0"
            )
        if self.objective == "mse" and self.output_size != 1:
            raise ValueError(f"objective 'mse' needs output_size 1, got {self.output_size}")


class RecurrentModel(nn.Module):
    """A recurrent layer with a linear read-out at every step (see module docstring)."""

    kind = "per-step model"
    config_cls = RecurrentModelConfig

    def __init__(self, config: RecurrentModelConfig, codec: Any = None) -> None:
        super().__init__()
        self.config = c = config
        self.codec = codec  # what the inputs and outputs are (not needed to train)
        # the read-out is made before the orthogonal recurrence, as in earlier releases, so a
        # seed gives the same initial weights as before
        self.rnn = build_encoder(c.vocab_size or c.input_size, c, recurrent_scale=0.0)
        self.head = Linear(c.hidden_size * (2 if c.bidirectional else 1), c.output_size)
        if c.recurrent_scale > 0:
            orthogonal_recurrence(self.rnn, c.recurrent_scale, c.hidden_size)

    # ---- checkpoint contract --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any], codec: Any = None) -> RecurrentModel:
        return cls(RecurrentModelConfig(**config), codec)

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
    def predict_steps(self, batch: SequenceBatch) -> torch.Tensor:
        """Predictions at the marked steps, in row-major order: values or class ids (n,)."""
        y, _ = self.run(batch)
        y = y[batch.mask]  # (n, K)
        return y.squeeze(-1) if self.config.objective == "mse" else y.argmax(-1)

    def trace(self, batch: SequenceBatch) -> tuple[torch.Tensor, LayerTrace]:
        """Loss and the layer's per-step trace (hidden states in the graph, gates)."""
        tr = self.rnn.trace(self._inputs(batch), lengths=batch.lengths)
        loss, _ = self._loss(self.head(tr.output), batch)
        return loss, tr
