"""Codecs: raw input to ids and back, one per task, saved in every checkpoint.

A codec holds everything that turns a task's raw input into model input and model output
back into something readable: the tokenizer, the vocabulary, the label or tag names. A task
builds it once, from the training split, and the trainer writes it into each checkpoint as
``codec.json``; ``evaluate``, ``predict``, ``diagnose`` and ``rnnkit.load`` read it back with
:func:`codec_from_json` and never rebuild it from data (a sentencepiece model travels inside)::

    codec = TextCodec(WordTokenizer(lowercase=True), vocab, labels=("neg", "pos"))
    ids, lengths = codec.batch(["a witty film", "dull"])     # (2, 3) int64, (2,)
    same = codec_from_json(codec.to_json())

Every codec has a ``kind`` (its key in :data:`CODECS`) and ``to_json()``; add a kind with
:func:`register_codec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from rnnkit.data.batches import SequenceBatch
from rnnkit.data.tokenizers import (
    TAGGING_PATTERN,
    CharTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    WordTokenizer,
    tokenizer_from_config,
)
from rnnkit.data.vocab import Vocab

__all__ = [
    "CODECS",
    "FeatureCodec",
    "SymbolCodec",
    "TaggingCodec",
    "TextCodec",
    "codec_from_json",
    "register_codec",
]

CODECS: dict[str, type] = {}


def register_codec(cls: type) -> type:
    """Class decorator: make ``cls`` readable by :func:`codec_from_json` under ``cls.kind``."""
    CODECS[cls.kind] = cls
    return cls


def codec_from_json(data: dict[str, Any]) -> Any:
    """Rebuild a codec from what its ``to_json()`` returned."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in CODECS:
        raise ValueError(f"codec kind {kind!r} is unknown; known kinds: {sorted(CODECS)}")
    return CODECS[kind].from_json(data)


@register_codec
@dataclass(frozen=True)
class TextCodec:
    """Text <-> token ids through a tokenizer and a vocabulary; optional class labels.

    ``labels`` name the classes of a classifier (id = position); a language model has none.
    ``max_len`` > 0 keeps only the first ``max_len`` tokens of each text in :meth:`batch`.
    """

    tokenizer: Tokenizer
    vocab: Vocab
    labels: tuple[str, ...] = ()
    max_len: int = 0
    kind = "text"

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""
        return self.vocab.encode(self.tokenizer.tokenize(text))

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (special tokens dropped)."""
        return self.tokenizer.detokenize(self.vocab.decode(ids))

    def piece(self, token_id: int) -> str:
        """The text one generated token adds: the character itself, the subword with its own
        word boundary (``"▁the"`` -> ``" the"``, ``"s"`` -> ``"s"``), or a space and the word."""
        if isinstance(self.tokenizer, CharTokenizer):
            return self.decode([token_id])
        if isinstance(self.tokenizer, SentencePieceTokenizer):
            return "".join(self.vocab.decode([token_id])).replace("\u2581", " ")
        return " " + self.decode([token_id])

    def batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (N, T) padded with ``<pad>`` and lengths (N,); an empty text is [<unk>]."""
        seqs = []
        for text in texts:
            ids = self.encode(text) or [self.vocab.unk_id]
            seqs.append(ids[: self.max_len] if self.max_len else ids)
        t = max((len(s) for s in seqs), default=1)
        out = torch.full((len(seqs), t), self.vocab.pad_id, dtype=torch.long)
        for b, s in enumerate(seqs):
            out[b, : len(s)] = torch.tensor(s, dtype=torch.long)
        return out, torch.tensor([len(s) for s in seqs], dtype=torch.long)

    def label_ids(self, labels: Sequence[str], where: str) -> torch.Tensor:
        """(N,) ids of label names; a name not among ``labels`` is an error naming ``where``."""
        index = {name: i for i, name in enumerate(self.labels)}
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise ValueError(f"{where}: labels {unknown[:5]} not among the trained {list(index)}")
        return torch.tensor([index[y] for y in labels], dtype=torch.long)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tokenizer": self.tokenizer.to_config(),
            "tokens": self.vocab.tokens,
            "labels": list(self.labels),
            "max_len": self.max_len,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TextCodec:
        return cls(
            tokenizer_from_config(data["tokenizer"]),
            Vocab(data["tokens"]),
            tuple(data.get("labels", ())),
            int(data.get("max_len", 0)),
        )


@register_codec
@dataclass(frozen=True)
class TaggingCodec:
    """Sentences <-> rows of word (+ character) ids, and tag names.

    :meth:`batch` gives ``inputs`` (B, T) word ids, or (B, T, 1 + W) with the ids of each
    word's first W = ``max_word_len`` characters after it (0 pads) when ``chars`` is set.
    """

    words: Vocab
    tags: tuple[str, ...]
    chars: Vocab | None = None
    max_word_len: int = 20
    scheme: str = ""  # "IO", "BIO" or "BIOES" when spans are scored; "" otherwise
    tokenizer: Tokenizer = field(default_factory=lambda: WordTokenizer(pattern=TAGGING_PATTERN))
    kind = "tagging"

    def tokenize(self, text: str) -> list[str]:
        """The words of raw ``text``: ``"Hi, Bob."`` -> ``["Hi", ",", "Bob", "."]``."""
        return self.tokenizer.tokenize(text)

    def batch(
        self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]] | None = None
    ) -> SequenceBatch:
        """Rows of word (+ character) ids and tag ids (B, T); a tag unseen in training is not
        scored (mask False)."""
        tag_ids = {t: i for i, t in enumerate(self.tags)}
        w = self.max_word_len if self.chars is not None else 0
        b, t = len(sentences), max((len(s) for s in sentences), default=1) or 1
        inputs = torch.zeros(b, t, 1 + w, dtype=torch.long)  # (B, T, 1 + W)
        targets = torch.zeros(b, t, dtype=torch.long)  # (B, T)
        for i, tokens in enumerate(sentences):
            inputs[i, : len(tokens), 0] = torch.tensor(self.words.encode(tokens), dtype=torch.long)
            for j, token in enumerate(tokens if w else []):
                ids = self.chars.encode(list(token[:w]))  # type: ignore[union-attr]
                inputs[i, j, 1 : 1 + len(ids)] = torch.tensor(ids, dtype=torch.long)
            if tags is not None:
                targets[i, : len(tokens)] = torch.tensor(
                    [tag_ids.get(x, -1) for x in tags[i]], dtype=torch.long
                )
        lengths = torch.tensor([len(s) for s in sentences], dtype=torch.long)
        mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        if tags is not None:
            mask &= targets >= 0
        return SequenceBatch(inputs if w else inputs[..., 0], targets.clamp(min=0), mask, lengths)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "words": self.words.tokens,
            "tags": list(self.tags),
            "chars": self.chars.tokens if self.chars is not None else None,
            "max_word_len": self.max_word_len,
            "scheme": self.scheme,
            "tokenizer": self.tokenizer.to_config(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaggingCodec:
        chars = data.get("chars")
        return cls(
            Vocab(data["words"]),
            tuple(data["tags"]),
            Vocab(chars) if chars else None,
            int(data["max_word_len"]),
            str(data.get("scheme", "")),
            tokenizer_from_config(data["tokenizer"]),
        )


@register_codec
@dataclass(frozen=True)
class SymbolCodec:
    """Symbols of a synthetic alphabet: id i is ``symbols[i]``."""

    symbols: tuple[str, ...]
    kind = "symbols"

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.symbols[int(i)] for i in ids]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "symbols": list(self.symbols)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SymbolCodec:
        return cls(tuple(data["symbols"]))


@register_codec
@dataclass(frozen=True)
class FeatureCodec:
    """Real-valued feature frames: the name of each of the D features of a step."""

    names: tuple[str, ...]
    kind = "features"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "names": list(self.names)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureCodec:
        return cls(tuple(data["names"]))
