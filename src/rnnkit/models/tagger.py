"""Many-to-many aligned: one tag per input step (NER, POS, chunking, punctuation).

For word ids w (B, T) and, optionally, the characters of every word c (B, T, W):

    e_t = [E w_t ; charBiLSTM(c_t)]            # word embedding + character features
    h_1..h_T = BiRNN(e_1..e_T)                  # rk.LSTM / rk.GRU / rk.RNN, stacked
    s_t = W_o h_t + b_o                         # (B, T, K) emission scores
    softmax decoder:  p(y_t | x) = softmax(s_t)
    CRF decoder:      p(y | x) ∝ exp(Σ_t s_t(y_t) + Σ_t A[y_{t-1}, y_t])  (rnnkit.crf)

The character BiLSTM reads each word alone and contributes its two final states. The model
implements the trainer's contract (``loss``, ``predict``, ``get_config``/``from_config``)
on :class:`rnnkit.training.batch.SequenceBatch` rows whose ``inputs`` are (B, T) word ids,
or (B, T, 1 + W) with the word id first and the word's character ids after it (0 pads).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

import rnnkit as rk
from rnnkit.crf import LinearChainCRF, allowed_transitions
from rnnkit.training.batch import SequenceBatch

__all__ = ["SequenceTagger", "TaggerConfig"]

LAYERS = {"lstm": rk.LSTM, "gru": rk.GRU, "rnn": rk.RNN}


@dataclass(frozen=True)
class TaggerConfig:
    vocab_size: int  # words, id 0 is padding
    num_tags: int  # K
    char_vocab_size: int = 0  # > 0: character features from a char BiLSTM (id 0 pads)
    word_dim: int = 100  # word embedding size
    char_dim: int = 25  # character embedding size
    char_hidden: int = 25  # char BiLSTM hidden size per direction
    cell: Literal["lstm", "gru", "rnn"] = "lstm"  # the word-level recurrent cell
    hidden_size: int = 128  # per direction
    num_layers: int = 1  # stacked word-level layers
    bidirectional: bool = True  # False: a left-to-right tagger
    dropout: float = 0.5  # on embeddings and on the recurrent outputs
    decoder: Literal["softmax", "crf"] = "crf"  # per-step softmax or linear-chain CRF
    tags: tuple[str, ...] = ()  # tag names, index = tag id (for CRF constraints)
    scheme: str = ""  # "BIO" / "BIOES": forbid invalid CRF transitions; "" none

    def __post_init__(self) -> None:
        for name in ("vocab_size", "num_tags", "word_dim", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.decoder not in ("softmax", "crf"):
            raise ValueError(f"decoder: expected 'softmax' or 'crf', got {self.decoder!r}")
        if self.tags and len(self.tags) != self.num_tags:
            raise ValueError(f"tags: expected {self.num_tags} names, got {len(self.tags)}")
        if self.scheme and not self.tags:
            raise ValueError("scheme: needs the tag names in `tags`")


class SequenceTagger(nn.Module):
    """Word (+ character) embeddings, a stacked (Bi)RNN and a softmax or CRF decoder."""

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        c = self.config = config
        self.words = nn.Embedding(c.vocab_size, c.word_dim, padding_idx=0)
        features = c.word_dim
        if c.char_vocab_size:
            self.chars = nn.Embedding(c.char_vocab_size, c.char_dim, padding_idx=0)
            self.char_rnn = rk.LSTM(c.char_dim, c.char_hidden, batch_first=True, bidirectional=True)
            features += 2 * c.char_hidden
        kwargs = {"nonlinearity": "tanh"} if c.cell == "rnn" else {}
        self.rnn = LAYERS[c.cell](
            features,
            c.hidden_size,
            num_layers=c.num_layers,
            batch_first=True,
            bidirectional=c.bidirectional,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
            **kwargs,
        )
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(c.hidden_size * (2 if c.bidirectional else 1), c.num_tags)
        if c.decoder == "crf":
            constraints = allowed_transitions(list(c.tags), c.scheme) if c.scheme else None
            self.crf = LinearChainCRF(c.num_tags, constraints)

    # -- checkpoint contract -------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SequenceTagger:
        config = {**config, "tags": tuple(config.get("tags", ()))}
        return cls(TaggerConfig(**config))

    # -- forward -------------------------------------------------------------------------
    def _char_features(self, chars: Tensor) -> Tensor:
        """Characters (B, T, W) -> the char BiLSTM's two final states (B, T, 2*Hc)."""
        b, t, w = chars.shape
        flat = chars.reshape(b * t, w)  # (B*T, W): one word per row
        lengths = (flat != 0).sum(1).clamp(min=1)  # padding words read one pad char
        _, (h, _) = self.char_rnn(self.chars(flat), lengths=lengths)  # h: (2, B*T, Hc)
        return torch.cat([h[0], h[1]], dim=1).reshape(b, t, -1)

    def emissions(self, batch: SequenceBatch) -> Tensor:
        """Emission scores s (B, T, K)."""
        inputs = batch.inputs
        words = inputs[..., 0] if inputs.dim() == 3 else inputs  # (B, T)
        e = self.words(words)  # (B, T, word_dim)
        if self.config.char_vocab_size:
            if inputs.dim() != 3:
                raise ValueError("inputs: expected (B, T, 1 + W) word and character ids")
            e = torch.cat([e, self._char_features(inputs[..., 1:])], dim=2)
        out, _ = self.rnn(self.drop(e), lengths=batch.lengths.clamp(min=1))  # (B, T, D*H)
        return self.out(self.drop(out))

    def _valid(self, batch: SequenceBatch) -> Tensor:
        """(B, T) bool: the steps of each sequence (a prefix mask, at least one step)."""
        steps = torch.arange(batch.steps, device=batch.lengths.device)
        return steps < batch.lengths.clamp(min=1).unsqueeze(1)

    def loss(self, batch: SequenceBatch) -> tuple[Tensor, dict[str, float]]:
        s = self.emissions(batch)  # (B, T, K)
        mask = batch.mask
        n = max(int(mask.sum()), 1)
        tags = batch.targets.long().clamp(min=0)
        if self.config.decoder == "crf":
            loss = self.crf.nll(s, tags, self._valid(batch)).sum() / n  # per token
        else:
            nll = nn.functional.cross_entropy(s.transpose(1, 2), tags, reduction="none")
            loss = (nll * mask).sum() / n
        correct = (s.argmax(-1) == tags) & mask
        return loss, {"accuracy": float(correct.sum()) / n}

    @torch.no_grad()
    def decode(self, batch: SequenceBatch) -> list[list[int]]:
        """The tag ids of every sequence, as long as its length."""
        s = self.emissions(batch)
        if self.config.decoder == "crf":
            return self.crf.decode(s, self._valid(batch))
        best = s.argmax(-1)
        return [best[b, :n].tolist() for b, n in enumerate(batch.lengths.clamp(min=1).tolist())]

    @torch.no_grad()
    def predict(self, batch: SequenceBatch) -> Tensor:
        """Tag ids at the marked steps in row-major order (n,), as the trainer expects."""
        paths = self.decode(batch)
        full = torch.zeros(batch.mask.shape, dtype=torch.long)
        for b, path in enumerate(paths):
            full[b, : len(path)] = torch.tensor(path)
        return full[batch.mask.cpu()]
