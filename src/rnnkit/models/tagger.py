"""Many-to-many aligned: one tag per input step (NER, POS, chunking, punctuation).

For word ids w (B, T) and, optionally, the characters of every word c (B, T, W):

    e_t = [E w_t ; charBiRNN(c_t)]             # word embedding + character features
    h_1..h_T = BiRNN(e_1..e_T)                  # rk.LSTM / rk.GRU / rk.RNN, stacked
    s_t = W_o h_t + b_o                         # (B, T, K) emission scores
    softmax decoder:  p(y_t | x) = softmax(s_t)
    CRF decoder:      p(y | x) ∝ exp(Σ_t s_t(y_t) + Σ_t A[y_{t-1}, y_t])  (rnnkit.crf)

The character BiRNN (the same cell kind) reads each word alone and contributes its two final
states. The model is trainable and traceable (:mod:`rnnkit.models.contract`) on
:class:`~rnnkit.data.batches.SequenceBatch` rows whose ``inputs`` are (B, T) word ids, or
(B, T, 1 + W) with the word id first and the word's character ids after it (0 pads). With a
codec (``rnnkit.load``) it tags raw text: ``tagger.predict("John lives in Paris")``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from rnnkit.crf import LinearChainCRF, allowed_transitions
from rnnkit.data.batches import SequenceBatch
from rnnkit.models.contract import Predicting, require
from rnnkit.models.encoder import RecurrentConfig, build_encoder

__all__ = ["SequenceTagger", "Tagged", "TaggerConfig"]


@dataclass(frozen=True, kw_only=True)
class TaggerConfig(RecurrentConfig):
    vocab_size: int  # words, id 0 is padding (set by the data)
    num_tags: int  # K (set by the data)
    char_vocab_size: int = 0  # > 0: character features from a char BiRNN, id 0 pads (data)
    tags: tuple[str, ...] = ()  # tag names, index = tag id, for CRF constraints (data)
    scheme: str = ""  # "BIO" / "BIOES": forbid invalid CRF transitions; "" none (data)
    word_dim: int = 100  # word embedding size
    char_dim: int = 25  # character embedding size
    char_hidden: int = 25  # char BiRNN hidden size per direction
    bidirectional: bool = True  # False: a left-to-right tagger
    dropout: float = 0.5  # on embeddings, between layers and on the recurrent outputs
    decoder: Literal["softmax", "crf"] = "crf"  # per-step softmax or linear-chain CRF

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("vocab_size", "num_tags", "word_dim", "char_dim", "char_hidden"):
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

    kind = "tagger"
    config_cls = TaggerConfig

    def __init__(self, config: TaggerConfig, codec: Any = None) -> None:
        super().__init__()
        c = self.config = config
        self.codec = codec  # a TaggingCodec, for predict(text)
        self.words = nn.Embedding(c.vocab_size, c.word_dim, padding_idx=0)
        features = c.word_dim
        if c.char_vocab_size:
            self.chars = nn.Embedding(c.char_vocab_size, c.char_dim, padding_idx=0)
            self.char_rnn = build_encoder(
                c.char_dim, c, hidden_size=c.char_hidden, num_layers=1, bidirectional=True
            )
            features += 2 * c.char_hidden
        self.rnn = build_encoder(features, c)
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(c.hidden_size * (2 if c.bidirectional else 1), c.num_tags)
        if c.decoder == "crf":
            constraints = allowed_transitions(list(c.tags), c.scheme) if c.scheme else None
            self.crf = LinearChainCRF(c.num_tags, constraints)

    # -- checkpoint contract -------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any], codec: Any = None) -> SequenceTagger:
        config = {**config, "tags": tuple(config.get("tags", ()))}
        return cls(TaggerConfig(**config), codec)

    # -- forward -------------------------------------------------------------------------
    def _char_features(self, chars: Tensor) -> Tensor:
        """Characters (B, T, W) -> the char BiRNN's two final states (B, T, 2*Hc)."""
        b, t, w = chars.shape
        flat = chars.reshape(b * t, w)  # (B*T, W): one word per row
        lengths = (flat != 0).sum(1).clamp(min=1)  # padding words read one pad char
        _, state = self.char_rnn(self.chars(flat), lengths=lengths)
        h = state[0] if isinstance(state, tuple) else state  # (2, B*T, Hc)
        return torch.cat([h[0], h[1]], dim=1).reshape(b, t, -1)

    def _features(self, batch: SequenceBatch) -> Tensor:
        """Word (+ character) features e (B, T, F), dropout applied."""
        inputs = batch.inputs
        words = inputs[..., 0] if inputs.dim() == 3 else inputs  # (B, T)
        e = self.words(words)  # (B, T, word_dim)
        if self.config.char_vocab_size:
            if inputs.dim() != 3:
                raise ValueError("inputs: expected (B, T, 1 + W) word and character ids")
            e = torch.cat([e, self._char_features(inputs[..., 1:])], dim=2)
        return self.drop(e)

    def emissions(self, batch: SequenceBatch) -> Tensor:
        """Emission scores s (B, T, K)."""
        out, _ = self.rnn(self._features(batch), lengths=batch.lengths.clamp(min=1))
        return self.out(self.drop(out))  # (B, T, K)

    def _valid(self, batch: SequenceBatch) -> Tensor:
        """(B, T) bool: the steps of each sequence (a prefix mask, at least one step)."""
        steps = torch.arange(batch.steps, device=batch.lengths.device)
        return steps < batch.lengths.clamp(min=1).unsqueeze(1)

    def loss(self, batch: SequenceBatch) -> tuple[Tensor, dict[str, float]]:
        """Per-token CRF negative log-likelihood (or cross-entropy), and token accuracy."""
        return self._loss(self.emissions(batch), batch)

    def trace(self, batch: SequenceBatch) -> tuple[Tensor, Any]:
        """The loss and the word-level layer's per-step trace (the loop path)."""
        tr = self.rnn.trace(self._features(batch), lengths=batch.lengths.clamp(min=1))
        return self._loss(self.out(self.drop(tr.output)), batch)[0], tr

    def _loss(self, s: Tensor, batch: SequenceBatch) -> tuple[Tensor, dict[str, float]]:
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
    def tag_rows(self, batch: SequenceBatch, chunk: int = 256) -> list[list[str]]:
        """The decoded tag names of every row of ``batch``, ``chunk`` rows at a time."""
        names = self.config.tags or tuple(map(str, range(self.config.num_tags)))
        was_training = self.training
        self.eval()
        paths: list[list[int]] = []
        try:
            for start in range(0, batch.size, chunk):
                paths += self.decode(batch.rows(slice(start, start + chunk)))
        finally:
            self.train(was_training)
        return [[names[i] for i in path] for path in paths]

    def predict(self, texts: str | list[str]) -> Any:
        """Each word's tag and the typed spans: a :class:`Tagged` per text (one for a string)."""
        require(self, Predicting)
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        sentences = [self.codec.tokenize(t) for t in items]
        for k, words in enumerate(sentences):
            if not words:
                raise ValueError(f"text {k + 1}: no words to tag in {items[k]!r}")
        device = self.out.weight.device
        rows = self.tag_rows(self.codec.batch(sentences).to(device))
        out = [
            Tagged(w, t, _spans(t) if self.codec.scheme else [])
            for w, t in zip(sentences, rows, strict=True)
        ]
        return out[0] if single else out


def _spans(tags: list[str]) -> list[tuple[str, int, int]]:
    from rnnkit.tagging.schemes import spans

    return spans(tags)


@dataclass(frozen=True)
class Tagged:
    tokens: list[str]  # (T,) the words of the text
    tags: list[str]  # (T,) one predicted tag per word
    spans: list[tuple[str, int, int]]  # (type, start, end) with end exclusive; [] without spans

    def __str__(self) -> str:
        """One ``word  TAG`` line per word, then a blank line and ``TYPE<TAB>start-end<TAB>words``
        per span."""
        width = max(len(t) for t in self.tokens)
        lines = [f"{t:<{width}}  {tag}" for t, tag in zip(self.tokens, self.tags, strict=True)]
        if self.spans:
            lines.append("")
        for kind, start, end in self.spans:
            lines.append(f"{kind}\t{start}-{end}\t{' '.join(self.tokens[start:end])}")
        return "\n".join(lines)
