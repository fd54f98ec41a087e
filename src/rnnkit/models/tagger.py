"""Many-to-many aligned: one tag per input step (NER, POS, chunking, punctuation).

For word ids w (B, T) and, optionally, the ids of the token pairs around each token
(b_t = (w_{t-1}, w_t), with boundary markers at both ends) and the characters of every word
c (B, T, W):

    e_t = [E w_t ; F b_t ; F b_{t+1} ; charBiRNN(c_t)]   # word, left and right pair, chars
    h_1..h_T = BiRNN(e_1..e_T)                  # rk.LSTM / rk.GRU / rk.RNN, stacked
    s_t = W_o h_t + b_o                         # (B, T, K) emission scores
    softmax decoder:  p(y_t | x) = softmax(s_t)
    CRF decoder:      p(y | x) ∝ exp(Σ_t s_t(y_t) + Σ_t A[y_{t-1}, y_t])  (rnnkit.crf)

The character BiRNN (the same cell kind) reads each word alone and contributes its two final
states. The model is trainable and traceable (:mod:`rnnkit.models.contract`) on
:class:`~rnnkit.data.batches.SequenceBatch` rows whose ``inputs`` are (B, T) word ids, or
(B, T, 1 + G + W) with the word id first, then the G = 2 pair ids (b_t, b_{t+1}) when
``bigram_vocab_size`` is set, then the word's character ids (0 pads) when
``char_vocab_size`` is. Pair features help most where the tokens are characters (Chinese word
segmentation: Pei et al. 2014, Chen et al. 2015). With a codec (``rnnkit.load``) it tags raw
text: ``tagger.predict("John lives in Paris")``, or ``tagger.predict("我爱北京天安门")`` for a
character tagger, whose BMES tags read back as words.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from rnnkit.crf import LinearChainCRF, allowed_transitions
from rnnkit.data.batches import SequenceBatch
from rnnkit.kernels.dense import Linear
from rnnkit.models.contract import Predicting, require
from rnnkit.models.encoder import RecurrentConfig, build_encoder

__all__ = ["SequenceTagger", "Tagged", "TaggerConfig"]


@dataclass(frozen=True, kw_only=True)
class TaggerConfig(RecurrentConfig):
    vocab_size: int  # words, id 0 is padding (set by the data)
    num_tags: int  # K (set by the data)
    char_vocab_size: int = 0  # > 0: character features from a char BiRNN, id 0 pads (data)
    bigram_vocab_size: int = 0  # > 0: embeddings of the token pairs around each token (data)
    tags: tuple[str, ...] = ()  # tag names, index = tag id, for CRF constraints (data)
    scheme: str = ""  # "BIO" / "BIOES" / "BMES": forbid invalid CRF transitions; "" none (data)
    word_dim: int = 100  # word embedding size
    bigram_dim: int = 50  # size of each pair embedding (two per token: left and right pair)
    char_dim: int = 25  # character embedding size
    char_hidden: int = 25  # char BiRNN hidden size per direction
    bidirectional: bool = True  # False: a left-to-right tagger
    dropout: float = 0.5  # on embeddings, between layers and on the recurrent outputs
    decoder: Literal["softmax", "crf"] = "crf"  # per-step softmax or linear-chain CRF

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("vocab_size", "num_tags", "word_dim", "bigram_dim", "char_dim", "char_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.decoder not in ("softmax", "crf"):
            raise ValueError(f"decoder: expected 'softmax' or 'crf', got {self.decoder!r}")
        if self.tags and len(self.tags) != self.num_tags:
            raise ValueError(f"tags: expected {self.num_tags} names, got {len(self.tags)}")
        if self.scheme and not self.tags:
            raise ValueError("scheme: needs the tag names in `tags`")
        if self.bigram_vocab_size < 0:
            raise ValueError(f"bigram_vocab_size: expected >= 0, got {self.bigram_vocab_size}")


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
        if c.bigram_vocab_size:
            self.bigrams = nn.Embedding(c.bigram_vocab_size, c.bigram_dim, padding_idx=0)
            features += 2 * c.bigram_dim
        if c.char_vocab_size:
            self.chars = nn.Embedding(c.char_vocab_size, c.char_dim, padding_idx=0)
            self.char_rnn = build_encoder(
                c.char_dim, c, hidden_size=c.char_hidden, num_layers=1, bidirectional=True
            )
            features += 2 * c.char_hidden
        self.rnn = build_encoder(features, c)
        self.drop = nn.Dropout(c.dropout)
        self.out = Linear(c.hidden_size * (2 if c.bidirectional else 1), c.num_tags)
        if c.decoder == "crf":
            self.crf = LinearChainCRF(c.num_tags, _constraints(c))

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
        """Word (+ pair, + character) features e (B, T, F), dropout applied."""
        c, inputs = self.config, batch.inputs
        g = 2 if c.bigram_vocab_size else 0  # pair columns
        w = 1 if c.char_vocab_size else 0  # at least one character column
        if (g or w) and (inputs.dim() != 3 or inputs.shape[2] < 1 + g + w):
            want = "1 + 2" if g else "1"
            raise ValueError(
                f"inputs: expected (B, T, {want}{' + W' if w else ''}) word"
                f"{', pair' if g else ''}{' and character' if w else ''} ids for this tagger, "
                f"got {tuple(inputs.shape)}"
            )
        words = inputs[..., 0] if inputs.dim() == 3 else inputs  # (B, T)
        parts = [self.words(words)]  # (B, T, word_dim)
        if g:
            parts += [self.bigrams(inputs[..., 1]), self.bigrams(inputs[..., 2])]  # 2 x (B, T, Db)
        if c.char_vocab_size:
            parts.append(self._char_features(inputs[..., 1 + g :]))  # (B, T, 2 Hc)
        return self.drop(torch.cat(parts, dim=2))  # (B, T, F)

    def emissions(self, batch: SequenceBatch) -> Tensor:
        """Emission scores s (B, T, K)."""
        out, _ = self.rnn(self._features(batch), lengths=batch.lengths.clamp(min=1))
        return self.out(self.drop(out))  # (B, T, K)

    def onnx_graphs(self) -> list:
        """``rnnkit export``'s graph (:mod:`rnnkit.export`): the emission scores s (B, T, K)
        of ``inputs`` (B, T) word ids (or (B, T, 1 + G + W) with pair and character ids) and
        lengths (B,), batch and time dynamic. A CRF's Viterbi decoding stays in PyTorch:
        ``model.crf.decode(s, mask)``."""
        from types import SimpleNamespace

        from rnnkit.export import OnnxGraph, example_lengths

        c = self.config
        g_cols = 2 if c.bigram_vocab_size else 0

        def inputs(batch: int, steps: int) -> tuple[Tensor, Tensor]:
            g = torch.Generator().manual_seed(batch * 1000 + steps)
            x = torch.randint(1, max(c.vocab_size, 2), (batch, steps, 1), generator=g)
            if g_cols:
                pairs = torch.randint(0, c.bigram_vocab_size, (batch, steps, 2), generator=g)
                x = torch.cat([x, pairs], 2)
            if c.char_vocab_size:  # words of 1..W characters, then padding
                width = steps // 2 + 1
                shape = (batch, steps, width)
                chars = torch.randint(1, max(c.char_vocab_size, 2), shape, generator=g)
                n = torch.randint(1, width + 1, (batch, steps, 1), generator=g)
                x = torch.cat([x, chars * (torch.arange(width) < n)], 2)
            return (x if x.shape[2] > 1 else x[..., 0]), example_lengths(batch, steps)

        def emissions(x: Tensor, lengths: Tensor) -> Tensor:
            return self.emissions(SimpleNamespace(inputs=x, lengths=lengths))

        axes = {"inputs": {0: "batch", 1: "time"}, "lengths": {0: "batch"}}
        if c.char_vocab_size:
            axes["inputs"][2] = "columns"
        axes["emissions"] = {0: "batch", 1: "time"}
        names = ("inputs", "lengths"), ("emissions",)
        return [OnnxGraph("emissions", self, emissions, inputs, *names, axes)]

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
        joiner = getattr(self.codec, "joiner", " ")
        out = [
            _tagged(w, t, self.codec.scheme, joiner) for w, t in zip(sentences, rows, strict=True)
        ]
        return out[0] if single else out


def _constraints(c: TaggerConfig) -> tuple[Tensor, Tensor, Tensor] | None:
    """The CRF's allowed transitions, starts and ends for the tag scheme, or None."""
    if not c.scheme:
        return None
    if c.scheme == "BMES":
        from rnnkit.tagging.schemes import bmes_transitions

        allowed, start, end = bmes_transitions(list(c.tags))
        return torch.tensor(allowed), torch.tensor(start), torch.tensor(end)
    return allowed_transitions(list(c.tags), c.scheme)


def _tagged(tokens: list[str], tags: list[str], scheme: str, joiner: str) -> Tagged:
    """A :class:`Tagged` with the typed spans, or the words of a BMES segmentation."""
    from rnnkit.tagging.schemes import bmes_to_words, spans

    if scheme == "BMES":
        return Tagged(tokens, tags, [], joiner, bmes_to_words(tokens, tags, joiner))
    if not scheme:  # tags of no spans (POS): one line per token, characters too
        return Tagged(tokens, tags, [], " ")
    return Tagged(tokens, tags, spans(tags), joiner)


@dataclass(frozen=True)
class Tagged:
    tokens: list[str]  # (T,) the words (or characters) of the text
    tags: list[str]  # (T,) one predicted tag per token
    spans: list[tuple[str, int, int]]  # (type, start, end) with end exclusive; [] without spans
    joiner: str = " "  # joins tokens into text: " " for words, "" for characters
    words: list[str] | None = None  # the words of a segmentation (BMES tags); None otherwise

    def __str__(self) -> str:
        """A segmentation: its words separated by spaces (``我 爱 北京 天安门``). Words: one
        ``word  TAG`` line per word. Characters: the text with ``[entity]TYPE`` marked. Then,
        with spans, a blank line and ``TYPE<TAB>start-end<TAB>text`` per span."""
        if self.words is not None:
            return " ".join(self.words)
        if self.joiner:
            width = max(len(t) for t in self.tokens)
            lines = [f"{t:<{width}}  {tag}" for t, tag in zip(self.tokens, self.tags, strict=True)]
        else:
            lines = [self._marked()]
        if self.spans:
            lines.append("")
        for kind, start, end in self.spans:
            lines.append(f"{kind}\t{start}-{end}\t{self.joiner.join(self.tokens[start:end])}")
        return "\n".join(lines)

    def _marked(self) -> str:
        """The tokens joined, each span bracketed with its type: ``[江泽民]PER发表讲话``."""
        pieces = list(self.tokens)
        for kind, start, end in self.spans:
            pieces[start] = "[" + pieces[start]
            pieces[end - 1] = pieces[end - 1] + "]" + kind
        return self.joiner.join(pieces)
