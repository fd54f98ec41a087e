"""Siamese recurrent encoder for sentence similarity (MaLSTM: Mueller and Thyagarajan 2016).

Both sentences of a pair go through the same embedding and recurrent stack (one set of
weights). For token ids x (B, T) with lengths n_b (padding after step n_b is ignored)::

    e_t = E x_t                               # (B, T, D) embedding (dropout while training)
    h_1..h_T = RNN(e_1..e_T)                  # (B, T, H'), H' = 2H if bidirectional
    s = pool(h, n)                            # (B, H') sentence vector
        last: forward h_{n_b} (and the backward direction's h_1), each sequence's own last step
        mean: (1 / n_b) sum_{t <= n_b} h_t
        max:  max_{t <= n_b} h_t

and for a pair (a, b) the similarity y in [0, 1]::

    manhattan (MaLSTM):  d = ||s_a - s_b||_1,  y = exp(-d)
    cosine:              c = s_a . s_b / (||s_a||_2 ||s_b||_2),  y = (1 + c) / 2

The loss on the pair's label l (1: similar, 0: not; a graded score in [0, 1] works too)::

    bce:  L = -[l log y + (1 - l) log(1 - y)]
          (manhattan, in log space: log y = -d, log(1 - y) = log(-expm1(-d)))
    mse:  L = (y - l)^2   (MaLSTM's objective)

averaged over the batch; a pair is predicted similar when y >= ``threshold``. The model is
trainable, traceable and classifying (:mod:`rnnkit.models.contract`); with a codec
(``rnnkit.load``) ``model.predict("a text ||| another text")`` scores raw pairs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from rnnkit.attention import lengths_to_mask
from rnnkit.data.batches import TwinBatch
from rnnkit.models.contract import Predicting, check_batch_size, require
from rnnkit.models.encoder import RecurrentConfig, build_encoder

PAIR_SEPARATOR = " ||| "  # how a pair is written on one line (a tab works too)
EPS = 1e-6  # keeps log y and log(1 - y) finite


@dataclass(frozen=True, kw_only=True)
class SiameseConfig(RecurrentConfig):
    vocab_size: int = 0  # V, token ids in [0, V) (set by the data)
    padding_idx: int = 0  # id of <pad>: its embedding row is zero (set by the data)
    embedding_dim: int = 100  # D
    bidirectional: bool = False  # also read each sentence from its last step to its first
    pooling: Literal["last", "mean", "max"] = "last"  # the sentence vector s
    similarity: Literal["manhattan", "cosine"] = "manhattan"  # y = exp(-L1) or (1 + cos) / 2
    objective: Literal["bce", "mse"] = "bce"  # loss of y against the pair's label
    threshold: float = 0.5  # y >= threshold: predicted similar
    # RecurrentConfig's dropout applies to the embeddings and between layers

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {self.vocab_size}")
        if not 0 <= self.padding_idx < self.vocab_size:
            raise ValueError(
                f"padding_idx must be in [0, {self.vocab_size}), got {self.padding_idx}"
            )
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {self.embedding_dim}")
        for name, options in (
            ("pooling", ("last", "mean", "max")),
            ("similarity", ("manhattan", "cosine")),
            ("objective", ("bce", "mse")),
        ):
            if getattr(self, name) not in options:
                raise ValueError(f"{name} must be one of {options}, got {getattr(self, name)!r}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold!r}")


def split_pair(item: Any, where: str) -> tuple[str, str]:
    """(text_a, text_b) of a pair: two strings, or one line ``"a ||| b"`` or ``"a<TAB>b"``."""
    if isinstance(item, tuple | list) and len(item) == 2 and all(isinstance(t, str) for t in item):
        parts = [str(t).strip() for t in item]
    elif isinstance(item, str):
        parts = [p.strip() for p in item.split("\t" if "\t" in item else PAIR_SEPARATOR.strip())]
    else:
        parts = []
    if len(parts) != 2 or not all(parts):
        raise ValueError(
            f"{where}: expected two texts separated by {PAIR_SEPARATOR.strip()!r} or a tab, "
            f"got {item!r:.80}"
        )
    return parts[0], parts[1]


class SiameseEncoder(nn.Module):
    """A shared recurrent encoder and a similarity of two sentences (see the module docstring).

    Example::

        model = SiameseEncoder(SiameseConfig(vocab_size=100, hidden_size=50))
        y = model(a, a_lengths, b, b_lengths)          # (B,) in [0, 1]
        rnnkit.load("runs/paraphrase").predict("Jesus wept. ||| Jesus shed tears.")
    """

    kind = "siamese encoder"
    config_cls = SiameseConfig

    def __init__(self, config: SiameseConfig, codec: Any = None) -> None:
        super().__init__()
        self.config = c = config
        self.codec = codec  # a TextCodec (tokenizer, vocabulary, class names) for predict
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim, padding_idx=c.padding_idx)
        self.rnn = build_encoder(c.embedding_dim, c)
        self.drop = nn.Dropout(c.dropout)

    # ---- checkpoint contract --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any], codec: Any = None) -> SiameseEncoder:
        return cls(SiameseConfig(**config), codec)

    # ---- encoding -------------------------------------------------------------------------
    def _inputs(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """Checked ids (N, T) -> dropped-out embeddings (N, T', D), T' the longest length."""
        if ids.dim() != 2 or ids.dtype != torch.int64:
            raise ValueError(f"ids must be (N, T) int64, got {tuple(ids.shape)} {ids.dtype}")
        if lengths.shape != ids.shape[:1] or bool((lengths < 1).any()):
            raise ValueError(f"lengths must be (N,) = ({ids.shape[0]},) with values >= 1")
        ids = ids[:, : int(lengths.max())]  # (N, T')
        return self.drop(self.embedding(ids))  # (N, T', D)

    def _pool(self, out: Tensor, state: Any, lengths: Tensor) -> Tensor:
        """Outputs (N, T', H') and the final state -> sentence vectors s (N, H')."""
        c = self.config
        if c.pooling == "last":
            h = state[0] if isinstance(state, tuple) else state  # (L * dirs, N, H)
            dirs = 2 if c.bidirectional else 1
            return torch.cat(list(h[-dirs:]), dim=-1)  # (N, H'): top layer, each direction
        mask = lengths_to_mask(lengths, out.shape[1]).unsqueeze(-1)  # (N, T', 1)
        if c.pooling == "mean":
            return (out * mask).sum(1) / lengths.to(out.dtype).unsqueeze(-1)  # (N, H')
        return out.masked_fill(~mask, float("-inf")).amax(1)  # (N, H')

    def encode(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """ids (N, T) int64, lengths (N,) with 1 <= n <= T -> sentence vectors s (N, H')."""
        out, state = self.rnn(self._inputs(ids, lengths), lengths=lengths)  # (N, T', H')
        return self._pool(out, state, lengths)

    @staticmethod
    def _stack(a: Tensor, a_lengths: Tensor, b: Tensor, b_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Both sides as one (2B, T) batch, T = max(S, U): one recurrent call for the pair."""
        for name, ids, lengths in (("a", a, a_lengths), ("b", b, b_lengths)):
            if ids.dim() != 2 or lengths.shape != ids.shape[:1]:
                raise ValueError(
                    f"{name}: expected ids (B, T) with {name}_lengths (B,), got "
                    f"{tuple(ids.shape)} and {tuple(lengths.shape)}"
                )
            if len(lengths) and not 1 <= int(lengths.min()) <= int(lengths.max()) <= ids.shape[1]:
                raise ValueError(
                    f"{name}_lengths: expected values in 1..{ids.shape[1]} (the columns of "
                    f"{name}), got min {int(lengths.min())}, max {int(lengths.max())}"
                )
        t = max(int(a_lengths.max()), int(b_lengths.max()))
        a = nn.functional.pad(a[:, :t], (0, t - min(t, a.shape[1])))  # (B, T)
        b = nn.functional.pad(b[:, :t], (0, t - min(t, b.shape[1])))  # (B, T)
        return torch.cat([a, b]), torch.cat([a_lengths, b_lengths])  # (2B, T), (2B,)

    def similarity(self, s_a: Tensor, s_b: Tensor) -> Tensor:
        """y (...) in [0, 1] of sentence vectors s_a, s_b (..., H') (broadcast)."""
        if self.config.similarity == "manhattan":
            return torch.exp(-(s_a - s_b).abs().sum(-1))  # y = exp(-||s_a - s_b||_1)
        c = nn.functional.cosine_similarity(s_a, s_b, dim=-1)  # s_a.s_b / (|s_a| |s_b|)
        return (1 + c) / 2

    def forward(self, a: Tensor, a_lengths: Tensor, b: Tensor, b_lengths: Tensor) -> Tensor:
        """Similarities y (B,) of the pairs (a (B, S), b (B, U) int64 ids with their lengths)."""
        s = self.encode(*self._stack(a, a_lengths, b, b_lengths))  # (2B, H')
        s_a, s_b = s.chunk(2)  # (B, H') each
        return self.similarity(s_a, s_b)

    @torch.no_grad()
    def sentence_vectors(self, ids: Tensor, lengths: Tensor, batch_size: int = 256) -> Tensor:
        """s (N, H') of many sentences in eval mode, in chunks of similar length, in order."""
        check_batch_size(batch_size)
        was_training = self.training
        self.eval()
        weight = self.embedding.weight
        device = weight.device
        out = torch.empty(len(lengths), self.output_size, device=device, dtype=weight.dtype)
        try:
            for index in torch.argsort(lengths, stable=True).split(batch_size):
                out[index.to(device)] = self.encode(
                    ids[index].to(device), lengths[index].to(device)
                )
        finally:
            self.train(was_training)
        return out

    @property
    def output_size(self) -> int:
        """H', the size of a sentence vector."""
        return self.config.hidden_size * (2 if self.config.bidirectional else 1)

    # ---- trainer contract -------------------------------------------------------------------
    def _loss(self, s: Tensor, batch: TwinBatch) -> tuple[Tensor, dict[str, float]]:
        s_a, s_b = s.chunk(2)  # (B, H') each
        y = self.similarity(s_a, s_b)  # (B,)
        l = batch.labels.to(y.dtype)  # (B,)
        if self.config.objective == "mse":
            loss = ((y - l) ** 2).mean()  # (y - l)^2
        else:
            if self.config.similarity == "manhattan":
                d = (s_a - s_b).abs().sum(-1)  # (B,) ||s_a - s_b||_1
                log_y, log_not_y = -d, torch.log(-torch.expm1(-d.clamp_min(EPS)))
            else:
                p = y.clamp(EPS, 1 - EPS)
                log_y, log_not_y = torch.log(p), torch.log1p(-p)
            loss = -(l * log_y + (1 - l) * log_not_y).mean()
        right = (y >= self.config.threshold) == (l >= 0.5)
        return loss, {"accuracy": float(right.float().mean())}

    def loss(self, batch: TwinBatch) -> tuple[Tensor, dict[str, float]]:
        """Mean loss of the pairs' similarities against their labels, and accuracy."""
        ids, lengths = self._stack(batch.a, batch.a_lengths, batch.b, batch.b_lengths)
        return self._loss(self.encode(ids, lengths), batch)

    def trace(self, batch: TwinBatch) -> tuple[Tensor, Any]:
        """The loss and the recurrent layer's per-step trace over both sides (2B rows)."""
        ids, lengths = self._stack(batch.a, batch.a_lengths, batch.b, batch.b_lengths)
        tr = self.rnn.trace(self._inputs(ids, lengths), lengths=lengths)
        return self._loss(self._pool(tr.output, tr.state, lengths), batch)[0], tr

    @torch.no_grad()
    def confusion(self, batch: TwinBatch) -> Tensor:
        """(2, 2) int64 counts: row = true (0 different, 1 similar), column = predicted."""
        y = self(batch.a, batch.a_lengths, batch.b, batch.b_lengths)  # (B,)
        index = (batch.labels >= 0.5).long() * 2 + (y >= self.config.threshold).long()
        return torch.bincount(index.cpu(), minlength=4).reshape(2, 2)

    def class_names(self) -> list[str]:
        labels = getattr(self.codec, "labels", ())
        return [str(x) for x in labels] if len(labels) == 2 else ["different", "similar"]

    # ---- raw text ---------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, pairs: Any, batch_size: int = 256) -> Any:
        """The similarity and decision for each pair: ``"a ||| b"``, ``"a<TAB>b"`` or
        ``(a, b)``; a list of them gives a list, one gives one."""
        require(self, Predicting)
        check_batch_size(batch_size)
        single = isinstance(pairs, str) or (
            isinstance(pairs, tuple) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs)
        )
        items: Sequence[Any] = [pairs] if single else list(pairs)
        texts = [split_pair(item, f"input {i + 1}") for i, item in enumerate(items)]
        names = self.class_names()
        was_training = self.training
        self.eval()
        device = self.embedding.weight.device
        out = []
        try:
            for start in range(0, len(texts), batch_size):
                chunk = texts[start : start + batch_size]
                a, a_lengths = self.codec.batch([t[0] for t in chunk])
                b, b_lengths = self.codec.batch([t[1] for t in chunk])
                y = self(a.to(device), a_lengths.to(device), b.to(device), b_lengths.to(device))
                for (text_a, text_b), value in zip(chunk, y.tolist(), strict=True):
                    label = names[int(value >= self.config.threshold)]
                    out.append(Similarity(text_a, text_b, label, float(value)))
        finally:
            self.train(was_training)
        return out[0] if single else out


@dataclass(frozen=True)
class Similarity:
    text_a: str
    text_b: str
    label: str  # the decision at the model's threshold ("similar" or "different")
    similarity: float  # y in [0, 1]

    def __str__(self) -> str:
        return f"{self.label}\t{self.similarity:.4f}\t{self.text_a}{PAIR_SEPARATOR}{self.text_b}"
