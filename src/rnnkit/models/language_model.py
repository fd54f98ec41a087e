"""``LanguageModel``: a stacked recurrent next-token model over characters, words or subwords.

For token ids x_1..x_T (B, T) and a carried state s_0 (zeros when None):

    e_t = E[x_t]                              # (B, T, D) embedding, dropout
    h_t, s_T = RNN(e_1..e_T, s_0)             # (B, T, H) rk.LSTM / rk.GRU / rk.RNN, stacked
    z_t = W_o dropout(P h_t) + b_o            # (B, T, V) logits; P = projection H -> D when tied
    L = mean_t -log softmax(z_t)[x_{t+1}]     # nats per token

With ``tie_weights`` the output matrix W_o is the embedding E itself (Press & Wolf 2017), and
a linear map P (H -> D) sits between the recurrent layer and W_o when H != D.

With ``adaptive_cutoffs`` = (c_1, .., c_n) the output is an adaptive softmax (Grave et al.
2017, ``nn.AdaptiveLogSoftmaxWithLoss``): the c_1 most frequent tokens and one entry per tail
cluster share a head softmax, and cluster k (tokens c_k..c_{k+1}) has its own softmax over a
projection of size D' / div^k:

    log p(x) = log p_head(x)                                 x < c_1
    log p(x) = log p_head(cluster k) + log p_k(x | cluster k) x in cluster k

It is an exact distribution over all V tokens (perplexity stays comparable) that costs a
fraction of the full V-way softmax in training, since a tail cluster is computed only for the
targets that fall in it. The "logits" of ``forward`` and ``step`` are then the log-probabilities
log p (B, T, V), which sampling reads like logits. Token ids must be ordered by frequency
(:meth:`rnnkit.data.vocab.Vocab.build` orders them so, after the four specials). The model reports
the loss in nats, the perplexity exp(L) and bits per token L / ln 2 (bits per character for
a character model). It is trainable, carrying (truncated BPTT over parallel streams),
traceable and stepping (:mod:`rnnkit.models.contract`; ``step`` and ``prime`` for the
decoders): a new token costs one recurrent step from the carried state, whatever the length of
the text so far. With a codec (``rnnkit.load``) it continues raw text:
``lm.generate("ROMEO:", 200, temperature=0.8)``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rnnkit.data.batches import SequenceBatch
from rnnkit.kernels.dense import Linear
from rnnkit.models.contract import ModelContractError
from rnnkit.models.encoder import RecurrentConfig, build_encoder


@dataclass(frozen=True, kw_only=True)
class LanguageModelConfig(RecurrentConfig):
    vocab_size: int  # V, tokens in the vocabulary (set by the data)
    embedding_size: int = 64  # D, size of each token's embedding
    hidden_size: int = 256  # H
    num_layers: int = 2  # stacked recurrent layers
    tie_weights: bool = False  # share E (V, D) as the output matrix
    adaptive_cutoffs: tuple[int, ...] = ()  # adaptive softmax cluster bounds, e.g. (2000, 6000)
    adaptive_div: float = 4.0  # each tail cluster's projection is div times smaller
    eval_chunk: int = 512  # evaluation without gradients runs long sequences in such chunks
    # > 0: E (and a tied output matrix) drawn uniform in [-r, r] and the output bias zero, as
    # Zaremba et al. and PyTorch's word_language_model initialise them; 0: torch's N(0, 1)
    init_range: float = 0.0
    # RecurrentConfig's dropout applies to embeddings, between layers and before the output

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("vocab_size", "embedding_size", "eval_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        cuts = tuple(self.adaptive_cutoffs)
        if cuts and not (
            all(isinstance(c, int) and not isinstance(c, bool) for c in cuts)
            and cuts[0] > 0
            and all(a < b for a, b in itertools.pairwise(cuts))
            and cuts[-1] < self.vocab_size
        ):
            raise ValueError(
                f"adaptive_cutoffs must be increasing integers in (0, vocab_size="
                f"{self.vocab_size}), got {list(cuts)}"
            )
        if cuts and self.tie_weights:
            raise ValueError(
                f"tie_weights=true and adaptive_cutoffs={list(cuts)} do not combine: the "
                "adaptive softmax has its own output matrices"
            )
        r = self.init_range
        if isinstance(r, bool) or not (isinstance(r, int | float) and r >= 0):
            raise ValueError(f"init_range must be a number >= 0, got {self.init_range!r}")
        if not self.adaptive_div >= 1.0:
            raise ValueError(f"adaptive_div must be >= 1, got {self.adaptive_div!r}")


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
        self.proj = Linear(c.hidden_size, c.embedding_size) if tied_proj else None
        out_in = c.embedding_size if c.tie_weights else c.hidden_size
        self.head: nn.Module
        if c.adaptive_cutoffs:
            self.head = nn.AdaptiveLogSoftmaxWithLoss(
                out_in, c.vocab_size, list(c.adaptive_cutoffs), div_value=c.adaptive_div
            )
        else:
            self.head = Linear(out_in, c.vocab_size)
        if c.tie_weights:
            self.head.weight = self.embedding.weight  # one Parameter, (V, D)
        if c.init_range > 0:
            nn.init.uniform_(self.embedding.weight, -c.init_range, c.init_range)
            if isinstance(self.head, nn.Linear):
                nn.init.uniform_(self.head.weight, -c.init_range, c.init_range)
                nn.init.zeros_(self.head.bias)

    # ---- checkpoint contract --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any], codec: Any = None) -> LanguageModel:
        return cls(LanguageModelConfig(**config), codec)

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits (B, T, V) for token ids (B, T), and the state after the last step."""
        h, state = self._hidden(tokens, state)  # (B, T, H')
        return self._logits(h), state  # (B, T, V)

    def _hidden(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """The output layer's input (B, T, H') for token ids (B, T), and the new state."""
        e = self.drop(self.embedding(tokens))  # (B, T, D)
        h, state = self.rnn(e, state)  # (B, T, H)
        return self._out(h), state

    def _out(self, h: torch.Tensor) -> torch.Tensor:
        """Recurrent outputs (..., H) -> the output layer's input (..., H'): dropout, P."""
        h = self.drop(h) if self.training else h
        return self.proj(h) if self.proj is not None else h  # (..., D) when projected

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        """Output-layer inputs (..., H') -> logits (..., V) (log p for the adaptive softmax)."""
        if isinstance(self.head, nn.AdaptiveLogSoftmaxWithLoss):
            return self.head.log_prob(h.flatten(0, -2)).view(*h.shape[:-1], -1)
        return self.head(h)

    def _loss(self, h: torch.Tensor, batch: SequenceBatch) -> tuple[torch.Tensor, dict]:
        """Mean nats over the batch's targets from output-layer inputs ``h`` (B, T, H')."""
        mask = batch.mask  # (B, T)
        targets = batch.targets.flatten().long()  # (B T,)
        if isinstance(self.head, nn.AdaptiveLogSoftmaxWithLoss):
            nll = -self.head(h.flatten(0, 1), targets).output.view_as(mask)  # (B, T)
        else:
            nll = nn.functional.cross_entropy(
                self.head(h).flatten(0, 1), targets, reduction="none"
            ).view_as(mask)  # (B, T)
        n = max(int(mask.sum()), 1)
        loss = (nll * mask).sum() / n
        return loss, _metrics(float(loss.detach()))

    def loss(self, batch: SequenceBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean nats per target token, with perplexity and bits per token (``bpc``)."""
        if torch.is_grad_enabled() or batch.steps <= self.config.eval_chunk:
            h, _ = self._hidden(batch.inputs)
            return self._loss(h, batch)
        # no gradient: chunks with the state carried give the same loss in bounded memory
        state, total, n = None, 0.0, 0
        for chunk in batch.time_chunks(self.config.eval_chunk):
            h, state = self._hidden(chunk.inputs, state)
            loss, _ = self._loss(h, chunk)
            total += float(loss) * chunk.n_targets
            n += chunk.n_targets
        nats = total / max(n, 1)
        return torch.tensor(nats), _metrics(nats)

    def carry_loss(self, batch: SequenceBatch, state: Any) -> tuple[torch.Tensor, dict, Any]:
        """The loss of one chunk of B parallel streams, starting from the carried ``state``."""
        h, state = self._hidden(batch.inputs, state)
        loss, metrics = self._loss(h, batch)
        return loss, metrics, state

    def trace(self, batch: SequenceBatch) -> tuple[torch.Tensor, Any]:
        """The loss and the recurrent layer's per-step trace (the loop path)."""
        tr = self.rnn.trace(self.drop(self.embedding(batch.inputs)))
        return self._loss(self._out(tr.output), batch)[0], tr

    # ---- decoding contract ------------------------------------------------------------------
    def step(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits (B, V) of the token after ``tokens`` (B,), one recurrent step from ``state``
        (the layer's cells stepped directly: :meth:`rnnkit.layers.Recurrent.step`)."""
        e = self.embedding(tokens)  # (B, D)
        e = self.drop(e) if self.training else e
        h, state = self.rnn.step(e, state)  # (B, H)
        return self._logits(self._out(h)), state  # (B, V)

    def prime(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Run a prefix (B, P) at once; logits (B, V) of the token after it, and the state."""
        logits, state = self(tokens, state)  # (B, P, V)
        return logits[:, -1], state

    def onnx_graphs(self) -> list:
        """``rnnkit export``'s graph (:mod:`rnnkit.export`): :meth:`step`, tokens (B,) and
        the state h (L, B, H) (and c for an LSTM) -> logits (B, V) and the next state
        h_next (and c_next), batch dynamic. Zeros are the first state."""
        from rnnkit.export import OnnxGraph

        sizes = self.rnn.cells[0].state_sizes  # (H,), or (H, H) for the LSTM
        state_in, state_out = ("h", "c")[: len(sizes)], ("h_next", "c_next")[: len(sizes)]
        layers = self.config.num_layers

        def inputs(batch: int, steps: int) -> tuple[torch.Tensor, ...]:
            g = torch.Generator().manual_seed(batch * 1000 + steps)
            tokens = torch.randint(0, self.config.vocab_size, (batch,), generator=g)
            return tokens, *(torch.randn(layers, batch, n, generator=g) * 0.5 for n in sizes)

        def step(tokens: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
            logits, new = self.step(tokens, state if len(state) > 1 else state[0])
            return (logits, *(new if isinstance(new, tuple) else (new,)))

        axes = {name: {1: "batch"} for name in (*state_in, *state_out)}
        axes.update(tokens={0: "batch"}, logits={0: "batch"})
        names = ("tokens", *state_in), ("logits", *state_out)
        return [OnnxGraph("step", self, step, inputs, *names, axes)]

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
        prefix = torch.tensor([ids], device=self.embedding.weight.device)  # (1, P)
        try:
            banned = self.codec.never_generated()
            generate(
                self, prefix, length, temperature, top_k, top_p, seed, on_token=emit, banned=banned
            )
        finally:
            self.train(was_training)
        return "".join(pieces)
