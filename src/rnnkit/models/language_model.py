"""``LanguageModel``: a stacked recurrent next-token model over characters, words or subwords.

For token ids x_1..x_T (B, T) and a carried state s_0 (zeros when None):

    e_t = E[x_t]                              # (B, T, D) embedding, dropout
    h_t, s_T = RNN(e_1..e_T, s_0)             # (B, T, H) rk.LSTM / rk.GRU / rk.RNN, stacked
    z_t = W_o dropout(P h_t) + b_o            # (B, T, V) logits; P = projection H -> D when tied
    L = mean_t -log softmax(z_t)[x_{t+1}]     # nats per token

With ``tie_weights`` the output matrix W_o is the embedding E itself (Press & Wolf 2017), and
a linear map P (H -> D) sits between the recurrent layer and W_o when H != D. The model reports
the loss in nats, the perplexity exp(L) and bits per token L / ln 2 (bits per character for
a character model). It implements the trainer's contract (``loss``, ``carry_loss`` for
truncated BPTT over parallel streams, ``predict``, ``get_config``/``from_config``) and the
decoders' (``step`` and ``prime``): a new token costs one recurrent step from the carried
state, whatever the length of the text so far.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

import rnnkit as rk
from rnnkit.training.batch import SequenceBatch

CELLS = {"rnn": rk.RNN, "lstm": rk.LSTM, "gru": rk.GRU}


@dataclass(frozen=True)
class LanguageModelConfig:
    vocab_size: int  # V, tokens in the vocabulary
    cell: Literal["rnn", "lstm", "gru"] = "lstm"  # Elman RNN, LSTM or GRU
    embedding_size: int = 64  # D, size of each token's embedding
    hidden_size: int = 256  # H
    num_layers: int = 2  # stacked recurrent layers
    nonlinearity: Literal["tanh", "relu"] = "tanh"  # Elman RNN activation
    dropout: float = 0.0  # on embeddings, between stacked layers and before the output
    tie_weights: bool = False  # share E (V, D) as the output matrix
    backend: Literal["auto", "torch", "loop"] = "auto"  # how the layer unrolls time
    eval_chunk: int = 512  # evaluation without gradients runs long sequences in such chunks

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_layers", "eval_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")


def _metrics(nats: float) -> dict[str, float]:
    """Perplexity exp(L) and bits per token L / ln 2 of a mean loss L in nats."""
    return {"perplexity": math.exp(min(nats, 50.0)), "bpc": nats / math.log(2)}


class LanguageModel(nn.Module):
    """Next-token model with a carried state (see the module docstring for the equations).

    Inputs are token ids (B, T); states are the layer's: (L, B, H) for RNN/GRU, a pair of
    them for LSTM. ``batch.targets`` (B, T) holds the next token of every input position; all
    rows are full-length streams (``lengths`` is not read).
    """

    def __init__(self, config: LanguageModelConfig) -> None:
        super().__init__()
        self.config = c = config
        kwargs: dict[str, Any] = {
            "num_layers": c.num_layers,
            "batch_first": True,
            "dropout": c.dropout if c.num_layers > 1 else 0.0,
            "backend": c.backend,
        }
        if c.cell == "rnn":
            kwargs["nonlinearity"] = c.nonlinearity
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_size)
        self.rnn = CELLS[c.cell](c.embedding_size, c.hidden_size, **kwargs)
        self.drop = nn.Dropout(c.dropout)
        tied_proj = c.tie_weights and c.hidden_size != c.embedding_size
        self.proj = nn.Linear(c.hidden_size, c.embedding_size) if tied_proj else None
        out_in = c.embedding_size if c.tie_weights else c.hidden_size
        self.head = nn.Linear(out_in, c.vocab_size)
        if c.tie_weights:
            self.head.weight = self.embedding.weight  # one Parameter, (V, D)

    # ---- checkpoint contract --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LanguageModel:
        return cls(LanguageModelConfig(**config))

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits (B, T, V) for token ids (B, T), and the state after the last step."""
        e = self.drop(self.embedding(tokens))  # (B, T, D)
        h, state = self.rnn(e, state)  # (B, T, H)
        h = self.drop(h)
        if self.proj is not None:
            h = self.proj(h)  # (B, T, D)
        return self.head(h), state  # (B, T, V)

    def _loss(self, logits: torch.Tensor, batch: SequenceBatch) -> tuple[torch.Tensor, dict]:
        mask = batch.mask  # (B, T)
        nll = nn.functional.cross_entropy(
            logits.flatten(0, 1), batch.targets.flatten().long(), reduction="none"
        ).view_as(mask)  # (B, T)
        n = max(int(mask.sum()), 1)
        loss = (nll * mask).sum() / n
        return loss, _metrics(float(loss.detach()))

    def loss(self, batch: SequenceBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean nats per target token, with perplexity and bits per token (``bpc``)."""
        if torch.is_grad_enabled() or batch.steps <= self.config.eval_chunk:
            logits, _ = self(batch.inputs)
            return self._loss(logits, batch)
        # no gradient: chunks with the state carried give the same loss in bounded memory
        state, total, n = None, 0.0, 0
        for chunk in batch.time_chunks(self.config.eval_chunk):
            logits, state = self(chunk.inputs, state)
            loss, _ = self._loss(logits, chunk)
            total += float(loss) * chunk.n_targets
            n += chunk.n_targets
        nats = total / max(n, 1)
        return torch.tensor(nats), _metrics(nats)

    def carry_loss(self, batch: SequenceBatch, state: Any) -> tuple[torch.Tensor, dict, Any]:
        """The loss of one chunk of B parallel streams, starting from the carried ``state``."""
        logits, state = self(batch.inputs, state)
        loss, metrics = self._loss(logits, batch)
        return loss, metrics, state

    @torch.no_grad()
    def predict(self, batch: SequenceBatch) -> torch.Tensor:
        """The most likely next token at the marked steps, in row-major order (n,)."""
        logits, _ = self(batch.inputs)
        return logits[batch.mask].argmax(-1)

    # ---- decoding contract ------------------------------------------------------------------
    def step(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits (B, V) of the token after ``tokens`` (B,), one recurrent step from ``state``."""
        logits, state = self(tokens.unsqueeze(1), state)  # (B, 1, V)
        return logits[:, -1], state

    def prime(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Run a prefix (B, P) at once; logits (B, V) of the token after it, and the state."""
        logits, state = self(tokens, state)  # (B, P, V)
        return logits[:, -1], state
