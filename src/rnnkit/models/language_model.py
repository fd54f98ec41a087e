"""``LanguageModel``: a stacked recurrent next-token model over characters, words or subwords.

For token ids x_1..x_T (B, T) and a carried state s_0 (zeros when None):

    e_t = E[x_t]                              # (B, T, D) embedding, dropout
    h_t, s_T = RNN(e_1..e_T, s_0)             # (B, T, H) rk.LSTM / rk.GRU / rk.RNN, stacked
    z_t = W_o dropout(P h_t) + b_o            # (B, T, V) logits; P = projection H -> D when tied
    L = mean_t -log softmax(z_t)[x_{t+1}]     # nats per token

With ``tie_weights`` the output matrix W_o is the embedding E itself (Press & Wolf 2017), and
a linear map P (H -> D) sits between the recurrent layer and W_o when H != D. The model reports
the loss in nats, the perplexity exp(L) and bits per token L / ln 2 (bits per character for
a character model). It is trainable, carrying (truncated BPTT over parallel streams),
traceable and stepping (:mod:`rnnkit.models.contract`; ``step`` and ``prime`` for the
decoders): a new token costs one recurrent step from the carried state, whatever the length of
the text so far. With a codec (``rnnkit.load``) it continues raw text:
``lm.generate("ROMEO:", 200, temperature=0.8)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rnnkit.data.batches import SequenceBatch
from rnnkit.models.contract import ModelContractError
from rnnkit.models.encoder import RecurrentConfig, build_encoder


@dataclass(frozen=True, kw_only=True)
class LanguageModelConfig(RecurrentConfig):
    vocab_size: int  # V, tokens in the vocabulary (set by the data)
    embedding_size: int = 64  # D, size of each token's embedding
    hidden_size: int = 256  # H
    num_layers: int = 2  # stacked recurrent layers
    tie_weights: bool = False  # share E (V, D) as the output matrix
    eval_chunk: int = 512  # evaluation without gradients runs long sequences in such chunks
    # RecurrentConfig's dropout applies to embeddings, between layers and before the output

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("vocab_size", "embedding_size", "eval_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def _metrics(nats: float) -> dict[str, float]:
    """Perplexity exp(L) and bits per token L / ln 2 of a mean loss L in nats."""
    return {"perplexity": math.exp(min(nats, 50.0)), "bpc": nats / math.log(2)}


class LanguageModel(nn.Module):
    """Next-token model with a carried state (see the module docstring for the equations).

    Inputs are token ids (B, T); states are the layer's: (L, B, H) for RNN/GRU, a pair of
    them for LSTM. ``batch.targets`` (B, T) holds the next token of every input position; all
    rows are full-length streams (``lengths`` is not read).
    """

    kind = "language model"
    config_cls = LanguageModelConfig

    def __init__(self, config: LanguageModelConfig, codec: Any = None) -> None:
        super().__init__()
        self.config = c = config
        self.codec = codec  # a TextCodec, for generate(text)
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_size)
        self.rnn = build_encoder(c.embedding_size, c)
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
    def from_config(cls, config: dict[str, Any], codec: Any = None) -> LanguageModel:
        return cls(LanguageModelConfig(**config), codec)

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits (B, T, V) for token ids (B, T), and the state after the last step."""
        e = self.drop(self.embedding(tokens))  # (B, T, D)
        h, state = self.rnn(e, state)  # (B, T, H)
        return self._logits(h), state  # (B, T, V)

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, H) -> logits (B, T, V)."""
        h = self.drop(h)
        if self.proj is not None:
            h = self.proj(h)  # (B, T, D)
        return self.head(h)

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

    def trace(self, batch: SequenceBatch) -> tuple[torch.Tensor, Any]:
        """The loss and the recurrent layer's per-step trace (the loop path)."""
        tr = self.rnn.trace(self.drop(self.embedding(batch.inputs)))
        return self._loss(self._logits(tr.output), batch)[0], tr

    # ---- decoding contract ------------------------------------------------------------------
    def step(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits (B, V) of the token after ``tokens`` (B,), one recurrent step from ``state``
        (the layer's cells stepped directly: :meth:`rnnkit.layers.Recurrent.step`)."""
        e = self.drop(self.embedding(tokens))  # (B, D)
        h, state = self.rnn.step(e, state)  # (B, H)
        return self._logits(h), state  # (B, V)

    def prime(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Run a prefix (B, P) at once; logits (B, V) of the token after it, and the state."""
        logits, state = self(tokens, state)  # (B, P, V)
        return logits[:, -1], state

    # ---- raw text -----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        prime: str,
        length: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> str:
        """Continue the text ``prime`` by ``length`` tokens; returns the new text.

        ``temperature`` 0 is greedy; ``top_k``/``top_p`` restrict sampling; ``seed`` repeats a
        sample; ``on_text(piece)`` receives each new token's text as it is drawn (streaming).
        """
        from rnnkit.decoding import generate

        if self.codec is None:
            raise ModelContractError(
                "the language model has no codec to read text with (load it with rnnkit.load)"
            )
        ids = self.codec.encode(prime)
        if not ids:
            raise ValueError(f"prime: {prime!r} holds no token of the vocabulary's tokenizer")
        pieces: list[str] = []

        def emit(token: torch.Tensor) -> None:
            pieces.append(self.codec.piece(int(token[0])))
            if on_text is not None:
                on_text(pieces[-1])

        was_training = self.training
        self.eval()
        prefix = torch.tensor([ids], device=self.head.weight.device)  # (1, P)
        try:
            generate(self, prefix, length, temperature, top_k, top_p, seed, on_token=emit)
        finally:
            self.train(was_training)
        return "".join(pieces)
