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

import functools
import itertools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from rnnkit.data.batches import PairBatch, SequenceBatch
from rnnkit.data.tokenizers import (
    TAGGING_PATTERN,
    CharTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    WordTokenizer,
    tokenizer_from_config,
)
from rnnkit.data.vocab import SPECIALS, Vocab

__all__ = [
    "CODECS",
    "FeatureCodec",
    "ItemCodec",
    "MelodyCodec",
    "PairCodec",
    "PianoRollCodec",
    "SeriesCodec",
    "Standardizer",
    "SymbolCodec",
    "TaggingCodec",
    "TextCodec",
    "codec_from_json",
    "register_codec",
    "token_bigrams",
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


def label_ids(labels: Sequence[str], known: Sequence[str], where: str) -> torch.Tensor:
    """(N,) indices in ``known`` of label names; a name not among them is one error naming
    ``where``, the first data row that has one (1-based, in the order read) and the label."""
    index = {name: i for i, name in enumerate(known)}
    for row, name in enumerate(labels, 1):
        if name not in index:
            unknown = sorted({y for y in labels if y not in index})
            more = f" (unknown labels: {unknown[:5]})" if len(unknown) > 1 else ""
            raise ValueError(
                f"{where}: data row {row}: label {name!r} is not among the trained labels "
                f"{list(known)}{more}"
            )
    return torch.tensor([index[y] for y in labels], dtype=torch.long)


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
        """Text of ``ids`` (special tokens dropped, but ``<eos>`` kept as a line break when the
        tokenizer reads line breaks as ``<eos>``)."""
        if getattr(self.tokenizer, "eos", False):  # WhitespaceTokenizer(eos=True)
            v = self.vocab
            tokens = [v.tokens[int(i)] for i in ids if int(i) not in (v.pad_id, v.bos_id)]
            return self.tokenizer.detokenize(tokens)
        return self.tokenizer.detokenize(self.vocab.decode(ids))

    def never_generated(self) -> list[int]:
        """Ids a language model trained on text through this codec never sees as a target,
        so never generates: ``<pad>`` and ``<bos>``, and ``<eos>`` unless the tokenizer reads
        line breaks as ``<eos>``."""
        v = self.vocab
        ids = [v.pad_id, v.bos_id]
        if not getattr(self.tokenizer, "eos", False):
            ids.append(v.eos_id)
        return ids

    def piece(self, token_id: int) -> str:
        """The text one generated token adds: the character itself, the subword with its own
        word boundary (``"▁the"`` -> ``" the"``, ``"s"`` -> ``"s"``), or a space and the word."""
        if isinstance(self.tokenizer, CharTokenizer):
            return self.decode([token_id])
        if isinstance(self.tokenizer, SentencePieceTokenizer):
            return "".join(self.vocab.decode([token_id])).replace("\u2581", " ")
        text = self.decode([token_id])
        return text if text == "\n" else " " + text

    def batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (N, T) padded with ``<pad>`` and lengths (N,); an empty text is [<unk>]."""
        seqs = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"texts[{i}]: expected a string, got {type(text).__name__} {text!r}"
                )
            ids = self.encode(text) or [self.vocab.unk_id]
            seqs.append(ids[: self.max_len] if self.max_len else ids)
        t = max((len(s) for s in seqs), default=1)
        out = torch.full((len(seqs), t), self.vocab.pad_id, dtype=torch.long)
        for b, s in enumerate(seqs):
            out[b, : len(s)] = torch.tensor(s, dtype=torch.long)
        return out, torch.tensor([len(s) for s in seqs], dtype=torch.long)

    def label_ids(self, labels: Sequence[str], where: str) -> torch.Tensor:
        """(N,) ids of label names; a name not among ``labels`` is an error naming ``where``."""
        return label_ids(labels, self.labels, where)

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

    :meth:`batch` gives ``inputs`` (B, T) word ids, or (B, T, C) with the word id first, then
    with ``bigrams`` the ids of the token pairs to its left and right (:func:`token_bigrams`),
    then with ``chars`` the ids of the word's first W = ``max_word_len`` characters (0 pads).
    With a :class:`CharTokenizer` (and ``joiner=""``) it tags unspaced text such as Chinese,
    one character per token; white space is never a token.
    """

    words: Vocab
    tags: tuple[str, ...]
    chars: Vocab | None = None
    max_word_len: int = 20
    scheme: str = ""  # "IO", "BIO", "BIOES" or "BMES" when spans or words are scored; "" not
    tokenizer: Tokenizer = field(default_factory=lambda: WordTokenizer(pattern=TAGGING_PATTERN))
    bigrams: Vocab | None = None  # token pairs (token_bigrams) with their own ids, or None
    joiner: str = " "  # joins tokens back into text: " " for words, "" for characters
    lexicon: tuple[str, ...] = ()  # BMES: the training split's words (OOV/IV recall)
    lower: bool = False  # word ids from lowercased words (characters keep their case)
    kind = "tagging"

    def tokenize(self, text: str) -> list[str]:
        """The words of raw ``text``: ``"Hi, Bob."`` -> ``["Hi", ",", "Bob", "."]`` (or its
        characters, white space dropped: ``"我爱 北京"`` -> ``["我", "爱", "北", "京"]``).

        Words are split at white space first, as the CoNLL files the tagger was trained on
        are; a piece that is a training word stays whole (``U.S.``, ``don't``, ``1,000``),
        others are split by the tokenizer, combining marks kept with their letter
        (``लिखा`` is one word). A byte-order mark is dropped."""
        text = text.replace("\ufeff", "")
        if self.joiner:  # words
            out: list[str] = []
            for piece in text.split():
                known = (piece.lower() if self.lower else piece) in self.words
                out += [piece] if known else _with_marks(self.tokenizer.tokenize(piece))
            return out
        return [t for t in self.tokenizer.tokenize(text) if t and not t.isspace()]

    def batch(
        self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]] | None = None
    ) -> SequenceBatch:
        """Rows of word (+ character) ids and tag ids (B, T); a tag unseen in training is not
        scored (mask False)."""
        tag_ids = {t: i for i, t in enumerate(self.tags)}
        w = self.max_word_len if self.chars is not None else 0
        g = 2 if self.bigrams is not None else 0  # left and right pair columns
        b, t = len(sentences), max((len(s) for s in sentences), default=1) or 1
        inputs = torch.zeros(b, t, 1 + g + w, dtype=torch.long)  # (B, T, 1 + G + W)
        targets = torch.zeros(b, t, dtype=torch.long)  # (B, T)
        for i, tokens in enumerate(sentences):
            n = len(tokens)
            words = [x.lower() for x in tokens] if self.lower else tokens
            inputs[i, :n, 0] = torch.tensor(self.words.encode(words), dtype=torch.long)
            if g and n:
                pair_ids = self.bigrams.encode(token_bigrams(tokens))  # type: ignore[union-attr]
                pairs = torch.tensor(pair_ids, dtype=torch.long)  # (T + 1,)
                inputs[i, :n, 1] = pairs[:n]  # (x_{t-1}, x_t)
                inputs[i, :n, 2] = pairs[1:]  # (x_t, x_{t+1})
            for j, token in enumerate(tokens if w else []):
                ids = self.chars.encode(list(token[:w]))  # type: ignore[union-attr]
                inputs[i, j, 1 + g : 1 + g + len(ids)] = torch.tensor(ids, dtype=torch.long)
            if tags is not None:
                targets[i, : len(tokens)] = torch.tensor(
                    [tag_ids.get(x, -1) for x in tags[i]], dtype=torch.long
                )
        lengths = torch.tensor([len(s) for s in sentences], dtype=torch.long)
        mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        if tags is not None:
            mask &= targets >= 0
        return SequenceBatch(
            inputs if w or g else inputs[..., 0], targets.clamp(min=0), mask, lengths
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "words": self.words.tokens,
            "tags": list(self.tags),
            "chars": self.chars.tokens if self.chars is not None else None,
            "max_word_len": self.max_word_len,
            "scheme": self.scheme,
            "tokenizer": self.tokenizer.to_config(),
            "bigrams": self.bigrams.tokens if self.bigrams is not None else None,
            "joiner": self.joiner,
            "lexicon": list(self.lexicon),
            "lower": self.lower,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaggingCodec:
        chars, bigrams = data.get("chars"), data.get("bigrams")
        return cls(
            Vocab(data["words"]),
            tuple(data["tags"]),
            Vocab(chars) if chars else None,
            int(data["max_word_len"]),
            str(data.get("scheme", "")),
            tokenizer_from_config(data["tokenizer"]),
            Vocab(bigrams) if bigrams else None,
            str(data.get("joiner", " ")),  # codecs saved before characters as tokens: words
            tuple(data.get("lexicon", ())),
            bool(data.get("lower", False)),  # codecs saved before the option: cased
        )


def _with_marks(tokens: list[str]) -> list[str]:
    """The tokens of one white-space-free piece with adjacent word-like tokens (letters,
    digits and combining marks, Unicode L*, N*, M*) joined: a regex's ``\\w`` leaves the
    vowel signs of Devanagari or the points of Hebrew out of words, splitting them."""

    def wordish(token: str) -> bool:
        return all(unicodedata.category(c)[0] in "LNM" for c in token)

    out: list[str] = []
    for token in tokens:
        if out and wordish(token) and wordish(out[-1]):
            out[-1] += token
        else:
            out.append(token)
    return out


def token_bigrams(tokens: Sequence[str]) -> list[str]:
    """The T + 1 adjacent pairs of T tokens, boundaries included, as ``"a b"`` strings:
    ``["我", "爱"]`` -> ``["<s> 我", "我 爱", "爱 </s>"]``. Token t's left pair is item t,
    its right pair item t + 1 (tokens hold no white space, so a pair reads back unambiguously).
    """
    padded = ["<s>", *tokens, "</s>"]
    return [f"{a} {b}" for a, b in itertools.pairwise(padded)]


@dataclass(frozen=True)
class Standardizer:
    """Per-feature standardisation of frames, fitted on the training split only::

        mu_d = mean over all training frames t of x_{t,d}
        sigma_d = std over the same frames (1 where a feature is constant)
        z_{t,d} = (x_{t,d} - mu_d) / sigma_d

    Saved inside the codec that uses it, so prediction applies the training statistics.
    """

    mean: tuple[float, ...]  # (D,) mu
    std: tuple[float, ...]  # (D,) sigma, all > 0

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise ValueError(f"std: expected {len(self.mean)} values, got {len(self.std)}")
        if any(not s > 0 for s in self.std):
            raise ValueError(f"std: every value must be > 0, got {self.std}")

    @classmethod
    def fit(cls, arrays: Sequence[Any]) -> Standardizer:
        """Statistics of every frame of ``arrays`` (each (T_i, D)), computed in float64."""
        if not arrays:
            raise ValueError("arrays: expected at least one (T, D) array to fit, got none")
        x = torch.cat(
            [torch.as_tensor(a, dtype=torch.float64).reshape(-1, a.shape[-1]) for a in arrays]
        )
        mean = x.mean(0)
        std = x.std(0, unbiased=False)
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        return cls(tuple(mean.tolist()), tuple(std.tolist()))

    @classmethod
    def identity(cls, d: int) -> Standardizer:
        """No change: mean 0, std 1 for each of ``d`` features."""
        return cls((0.0,) * d, (1.0,) * d)

    @property
    def features(self) -> int:
        """D."""
        return len(self.mean)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """z = (x - mu) / sigma over the last dimension of ``x`` (..., D)."""
        if x.shape[-1] != self.features:
            raise ValueError(
                f"frames: expected {self.features} features per step, got {x.shape[-1]}"
            )
        mean = torch.tensor(self.mean, dtype=x.dtype)
        std = torch.tensor(self.std, dtype=x.dtype)
        return (x - mean) / std

    def to_json(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Standardizer:
        return cls(tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"]))


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


@register_codec
@dataclass(frozen=True)
class ItemCodec:
    """Item ids of a catalogue (movies) <-> model ids 1..V-1 (0 pads), with their titles.

    ``ids[k]`` is the item of model id k + 1 as the data names it; ``titles[k]`` its title::

        codec = ItemCodec(("50", "172"), ("Star Wars (1977)", "Empire Strikes Back (1980)"))
        codec.parse_items("172, 50")     # [2, 1]: what `rnnkit predict RUN --items` reads
    """

    ids: tuple[str, ...]
    titles: tuple[str, ...]
    kind = "items"

    def __post_init__(self) -> None:
        if len(self.titles) != len(self.ids):
            raise ValueError(
                f"titles: expected {len(self.ids)}, one per item, got {len(self.titles)}"
            )
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("ids: an item id appears twice")

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {item: k + 1 for k, item in enumerate(self.ids)}

    @property
    def size(self) -> int:
        """V: model ids, padding included."""
        return len(self.ids) + 1

    def encode(self, items: Sequence[str], where: str = "") -> list[int]:
        """Model ids of item ids; an unknown one is an error naming it (and ``where``)."""
        unknown = [str(i) for i in items if str(i) not in self._index]
        if unknown:
            raise ValueError(
                f"{where}{': ' if where else ''}item {unknown[0]!r} is not among the "
                f"{len(self.ids):,} items the model knows"
            )
        return [self._index[str(i)] for i in items]

    def parse_items(self, text: str) -> list[int]:
        """Model ids of a history written as item ids separated by commas or spaces."""
        items = text.replace(",", " ").split()
        if not items:
            raise ValueError(f"expected item ids separated by commas, got {text!r}")
        return self.encode(items)

    def item(self, model_id: int) -> str:
        return self.ids[model_id - 1]

    def title(self, model_id: int) -> str:
        return self.titles[model_id - 1] or self.ids[model_id - 1]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "ids": list(self.ids), "titles": list(self.titles)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ItemCodec:
        return cls(tuple(str(i) for i in data["ids"]), tuple(str(t) for t in data["titles"]))


@register_codec
@dataclass(frozen=True)
class SeriesCodec:
    """Labelled sequences for many-to-one classification: numbers or symbols.

    Numbers (``standardizer`` given): each case is an array (T, D), standardised per feature
    with the training split's statistics, padded with zeros into (N, T, D) float32. Symbols
    (``vocab`` given): each case is a string, one symbol per character, encoded to ids (N, T)
    (``<unk>`` for a symbol the training split never had). The label names sit in ``labels``
    (id k is ``labels[k]``)::

        codec = SeriesCodec(("ei", "ie", "n"), vocab=Vocab(["<pad>", "<unk>", ..., "A", "C"]))
        inputs, lengths = codec.batch(["ACGT", "GGA"])      # (2, 4) int64, (2,)
        cases = codec.read_inputs("new.fasta")              # what `rnnkit predict --file` reads
    """

    labels: tuple[str, ...]
    standardizer: Standardizer | None = None  # numbers: per-feature statistics
    vocab: Vocab | None = None  # symbols: one token per character
    kind = "series"

    def __post_init__(self) -> None:
        if (self.standardizer is None) == (self.vocab is None):
            raise ValueError("SeriesCodec: give a standardizer (numbers) or a vocab (symbols)")

    @property
    def input_kind(self) -> str:
        """ "frames" or "symbols"."""
        return "frames" if self.standardizer is not None else "symbols"

    def encode(self, item: Any) -> torch.Tensor:
        """One case: standardised frames (T, D) float32, or symbol ids (T,) int64."""
        if self.vocab is not None:
            if not isinstance(item, str) or not item:
                raise ValueError(f"expected a non-empty string of symbols, got {item!r:.60}")
            known = self.vocab.tokens[len(SPECIALS) :]
            if all(t == t.upper() for t in known):  # as the FASTA reader reads: acgt is ACGT
                item = item.upper()
            if not any(symbol in self.vocab for symbol in item):
                raise ValueError(
                    f"none of the symbols of {item!r:.40} is among the trained ones "
                    f"({''.join(known)[:40]})"
                )
            return torch.tensor(self.vocab.encode(list(item)), dtype=torch.long)
        if isinstance(item, str | bytes):
            raise ValueError(f"expected an array of numbers (T, D), got text {item!r:.40}")
        try:
            x = torch.as_tensor(item, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"expected an array of numbers (T, D) ({exc})") from None
        if x.dim() == 1:
            x = x.unsqueeze(-1)  # (T, 1): a univariate series
        if x.dim() != 2 or x.shape[0] < 1:
            raise ValueError(f"expected an array (T, D) with T >= 1, got {tuple(x.shape)}")
        return self.standardizer(x)  # type: ignore[misc]

    def batch(self, items: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded inputs (N, T, D) float32 or (N, T) int64, and lengths (N,)."""
        if not items:
            raise ValueError("items: expected at least one case, got none")
        seqs = [self.encode(x) for x in items]
        lengths = torch.tensor([len(s) for s in seqs])
        out = torch.zeros(len(seqs), int(lengths.max()), *seqs[0].shape[1:], dtype=seqs[0].dtype)
        for b, s in enumerate(seqs):
            out[b, : len(s)] = s
        return out, lengths

    def label_ids(self, labels: Sequence[str], where: str) -> torch.Tensor:
        """(N,) ids of label names; an unknown label is an error naming ``where``."""
        return label_ids(labels, self.labels, where)

    def read_inputs(self, path: Any) -> list:
        """The cases of a .ts, FASTA, CSV/TSV, JSONL or .npy file, labels not needed."""
        from rnnkit.data.readers.series import read_series

        found = read_series(path, labelled=False)
        if found.kind == "symbols" and self.input_kind == "frames":
            first = str(found.items[0])
            raise ValueError(
                f"{path}: this model reads frames of numbers (steps separated by spaces, "
                f"features by commas), but the file's first case is not: {first[:40]!r}"
            )
        if found.kind != self.input_kind:
            raise ValueError(f"{path}: holds {found.kind}, but this model reads {self.input_kind}")
        return found.items

    def describe(self, item: Any) -> str:
        """A short name of a case for printed predictions."""
        if isinstance(item, str):
            return item if len(item) <= 60 else item[:57] + "..."
        shape = tuple(getattr(item, "shape", ()))
        return "series " + "x".join(map(str, shape)) if shape else "series"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "labels": list(self.labels),
            "standardizer": self.standardizer.to_json() if self.standardizer else None,
            "tokens": self.vocab.tokens if self.vocab is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeriesCodec:
        std = data.get("standardizer")
        tokens = data.get("tokens")
        return cls(
            tuple(data["labels"]),
            Standardizer.from_json(std) if std else None,
            Vocab(tokens) if tokens else None,
        )


@register_codec
@dataclass(frozen=True)
class PairCodec:
    """The two sides of an encoder-decoder: a text target and a text, image or frame source.

    The target is tokenized, encoded with ``target_vocab`` and ended with ``<eos>`` (no
    ``<bos>``: the decoder starts from it by itself). The source is text (``source_kind``
    ``"tokens"``: ``source_tokenizer`` and ``source_vocab``, the same Vocab object as the
    target's when the vocabulary is shared), images (``"image"``: arrays (H, W) or (C, H, W),
    read column by column, grey levels times ``image_scale``) or feature frames (``"frames"``:
    arrays (S, D)). ``max_source_len`` > 0 keeps only the first tokens (or columns, frames)
    of a source.

    ``standardizer`` (frames only): each frame is standardised with the training split's
    per-feature statistics before it reaches the model, here and in prediction alike.
    ``target_eos=False`` leaves ``<eos>`` off the targets: a CTC target is its labels alone,
    since a CTC model emits no end token (its output ends where the frames do).
    :meth:`read_inputs` reads image or frame sources from a ``.npy``/``.npz`` file
    (``rnnkit predict RUN --file utterance.npy``).
    """

    target_tokenizer: Tokenizer
    target_vocab: Vocab
    source_tokenizer: Tokenizer | None = None
    source_vocab: Vocab | None = None
    source_kind: str = "tokens"  # "tokens", "image" or "frames"
    max_source_len: int = 0
    image_scale: float = 1.0
    standardizer: Standardizer | None = None  # frames: z = (x - mu) / sigma per feature
    target_eos: bool = True  # end every target with <eos> (False for CTC)
    kind = "pair"

    def __post_init__(self) -> None:
        if self.source_kind not in ("tokens", "image", "frames"):
            raise ValueError(
                f"source_kind: expected 'tokens', 'image' or 'frames', got {self.source_kind!r}"
            )
        if self.source_kind == "tokens" and (
            self.source_tokenizer is None or self.source_vocab is None
        ):
            raise ValueError("source_kind='tokens' needs a source_tokenizer and a source_vocab")
        if self.standardizer is not None and self.source_kind != "frames":
            raise ValueError(
                f"standardizer: applies to feature frames, not to source_kind={self.source_kind!r}"
            )

    @property
    def shared(self) -> bool:
        """True when source and target use one vocabulary."""
        return self.source_vocab is self.target_vocab or self.source_vocab == self.target_vocab

    # ---- source --------------------------------------------------------------------------
    def source_tokens(self, source: Any) -> list[str]:
        """The tokens of a text source as the model sees them; column or frame numbers for
        images and frames (the labels of an attention plot's source axis)."""
        if self.source_kind == "tokens":
            tokens = self.source_tokenizer.tokenize(source)  # type: ignore[union-attr]
            return tokens[: self.max_source_len] if self.max_source_len else tokens
        steps = self._array(source).shape[-1 if self.source_kind == "image" else 0]
        return [str(i) for i in range(steps)]

    def _array(self, source: Any) -> torch.Tensor:
        what = "image" if self.source_kind == "image" else "frames"
        if isinstance(source, str | bytes):
            raise ValueError(
                f"{what}: expected an array of numbers, got text {str(source)[:40]!r} (a "
                f"{what} source is given from Python: model.translate([array, ...]))"
            )
        try:
            x = torch.as_tensor(source, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{what}: expected an array of numbers ({exc})") from None
        if self.source_kind == "image":
            if x.dim() == 2:
                x = x.unsqueeze(0)  # (1, H, W)
            if x.dim() != 3:
                raise ValueError(f"image: expected (H, W) or (C, H, W), got {tuple(x.shape)}")
            x = x * self.image_scale
            return x[..., : self.max_source_len] if self.max_source_len else x
        if x.dim() != 2:
            raise ValueError(f"frames: expected (S, D), got {tuple(x.shape)}")
        if self.standardizer is not None:
            x = self.standardizer(x)  # (S, D): z_{t,d} = (x_{t,d} - mu_d) / sigma_d
        return x[: self.max_source_len] if self.max_source_len else x

    def encode_source(self, source: Any) -> list[int]:
        """Source token ids of a text (``<unk>`` for an empty one)."""
        ids = self.source_vocab.encode(self.source_tokens(source))  # type: ignore[union-attr]
        return ids or [self.source_vocab.unk_id]  # type: ignore[union-attr]

    def source_batch(self, sources: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded sources and their lengths: ids (N, S), images (N, C, H, W) padded in width
        with zeros, or frames (N, S, D); lengths (N,) in tokens, columns or frames."""
        if not sources:
            raise ValueError("sources: expected at least one source, got none")
        if self.source_kind == "tokens":
            seqs = [self.encode_source(s) for s in sources]
            out = torch.full((len(seqs), max(map(len, seqs))), self.source_vocab.pad_id)  # type: ignore[union-attr]
            for b, s in enumerate(seqs):
                out[b, : len(s)] = torch.tensor(s)
            return out.long(), torch.tensor([len(s) for s in seqs])
        arrays = [self._array(s) for s in sources]
        time = -1 if self.source_kind == "image" else 0
        lengths = torch.tensor([a.shape[time] for a in arrays])
        if int(lengths.min()) < 1:
            raise ValueError("sources: a source with no column or frame")
        shape = arrays[0].shape
        for i, a in enumerate(arrays):
            rest = a.shape[:-1] if time == -1 else a.shape[1:]
            if rest != (shape[:-1] if time == -1 else shape[1:]):
                raise ValueError(
                    f"sources[{i}]: shape {tuple(a.shape)} differs from {tuple(shape)}"
                )
        width = int(lengths.max())
        if time == -1:
            out = torch.zeros(len(arrays), *shape[:-1], width)
            for b, a in enumerate(arrays):
                out[b, ..., : a.shape[-1]] = a
        else:
            out = torch.zeros(len(arrays), width, shape[1])
            for b, a in enumerate(arrays):
                out[b, : a.shape[0]] = a
        return out, lengths

    def read_inputs(self, path: Any) -> list[Any]:
        """The sources held by a file (``rnnkit predict RUN --file F``): the non-blank lines
        of a text file for a text source; for image or frame sources a NumPy file.

        ``.npy``: one array, frames (S, D) or (N, S, D) for N sources; images (H, W), or
        (N, H, W) / (N, C, H, W) for N. ``.npz``: each array one source, in the file's
        order (sources of different lengths). Read with ``allow_pickle=False``; anything else
        is a :class:`~rnnkit.data.errors.DataFormatError` naming the file.
        """
        from pathlib import Path

        import numpy as np

        from rnnkit.data.errors import FLOAT32_MAX, DataFormatError

        path = Path(path)
        if self.source_kind == "tokens":  # a text source: the file's non-blank lines
            try:
                lines = path.read_text("utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise DataFormatError(path, None, f"cannot read it as UTF-8 text ({e})") from None
            return [line for line in lines if line.strip()]
        if path.suffix.lower() not in (".npy", ".npz"):
            what = "frames" if self.source_kind == "frames" else "images"
            raise DataFormatError(
                path,
                None,
                f"this run reads {what} from NumPy .npy or .npz files, not "
                f"{path.suffix or 'a file without a suffix'}",
            )
        try:
            loaded = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise DataFormatError(path, None, "no such file") from None
        except (OSError, ValueError, EOFError) as e:
            raise DataFormatError(path, None, f"not a NumPy .npy or .npz file ({e})") from None
        frames = self.source_kind == "frames"
        stacked = not isinstance(loaded, np.lib.npyio.NpzFile)  # .npy: N sources stacked
        if not stacked:  # .npz: each array one source
            with loaded:
                try:
                    arrays = [np.asarray(loaded[k]) for k in loaded.files]
                except ValueError as e:  # an object array
                    raise DataFormatError(path, None, f"not an array of numbers ({e})") from None
            dims, shapes = ((2,), "(S, D)") if frames else ((2, 3), "(H, W) or (C, H, W)")
        else:  # one array: one source, or N along the first axis
            arrays = [loaded]
            dims, shapes = (
                ((2, 3), "(S, D) or (N, S, D)")
                if frames
                else ((2, 3, 4), "(H, W), (N, H, W) or (N, C, H, W)")
            )
        if not arrays:
            raise DataFormatError(path, None, "holds no array")
        out: list[Any] = []
        for a in arrays:
            if a.dtype.kind not in "biuf" or a.size == 0 or a.ndim not in dims:
                raise DataFormatError(
                    path, None, f"expected numbers of shape {shapes}, got {a.dtype} {a.shape}"
                )
            if not np.isfinite(a).all():
                raise DataFormatError(path, None, "holds NaN or infinite values")
            if a.dtype.kind == "f" and float(np.abs(a).max()) > FLOAT32_MAX:
                raise DataFormatError(
                    path, None, "holds numbers beyond float32's range (the model reads float32)"
                )
            out += list(a) if stacked and a.ndim > 2 else [a]
        return out

    # ---- target ----------------------------------------------------------------------------
    def encode_target(self, text: str) -> list[int]:
        """Target ids of ``text``, ended by ``<eos>`` (unless ``target_eos`` is False)."""
        tokens = self.target_tokenizer.tokenize(text)
        return self.target_vocab.encode(tokens, add_eos=self.target_eos)

    def target_tokens(self, ids: Sequence[int]) -> list[str]:
        """Target token strings up to (not including) the first ``<eos>``."""
        ids = list(ids)
        if self.target_vocab.eos_id in ids:
            ids = ids[: ids.index(self.target_vocab.eos_id)]
        return self.target_vocab.decode(ids)

    def decode_target(self, ids: Sequence[int]) -> str:
        """Detokenized text of target ids, cut at the first ``<eos>``."""
        return self.target_tokenizer.detokenize(self.target_tokens(ids))

    def batch(self, sources: Sequence[Any], targets: Sequence[str]) -> PairBatch:
        """A :class:`PairBatch` of sources and their target texts."""
        if len(sources) != len(targets):
            raise ValueError(f"targets: expected {len(sources)} texts, got {len(targets)}")
        source, source_lengths = self.source_batch(sources)
        seqs = [self.encode_target(t) for t in targets]
        target = torch.full((len(seqs), max(map(len, seqs))), self.target_vocab.pad_id)
        for b, s in enumerate(seqs):
            target[b, : len(s)] = torch.tensor(s)
        return PairBatch(
            source, source_lengths, target.long(), torch.tensor([len(s) for s in seqs])
        )

    def to_json(self) -> dict[str, Any]:
        source_vocab = None
        if self.source_vocab is not None:
            source_vocab = "target" if self.shared else self.source_vocab.tokens
        return {
            "kind": self.kind,
            "target_tokenizer": self.target_tokenizer.to_config(),
            "target_tokens": self.target_vocab.tokens,
            "source_tokenizer": (
                self.source_tokenizer.to_config() if self.source_tokenizer is not None else None
            ),
            "source_tokens": source_vocab,
            "source_kind": self.source_kind,
            "max_source_len": self.max_source_len,
            "image_scale": self.image_scale,
            "standardizer": self.standardizer.to_json() if self.standardizer else None,
            "target_eos": self.target_eos,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PairCodec:
        target_vocab = Vocab(data["target_tokens"])
        source = data.get("source_tokens")
        source_vocab = target_vocab if source == "target" else Vocab(source) if source else None
        tok = data.get("source_tokenizer")
        return cls(
            tokenizer_from_config(data["target_tokenizer"]),
            target_vocab,
            tokenizer_from_config(tok) if tok else None,
            source_vocab,
            str(data.get("source_kind", "tokens")),
            int(data.get("max_source_len", 0)),
            float(data.get("image_scale", 1.0)),
            Standardizer.from_json(data["standardizer"]) if data.get("standardizer") else None,
            bool(data.get("target_eos", True)),  # codecs saved before the option had <eos>
        )


def _midi_paths(path: Any) -> list[Any]:
    """The files a music sample goes to: ``song.mid`` and, beside it, ``song.musicxml`` and
    the piano roll ``song.png``; a name not ending in .mid or .midi is an error."""
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() not in (".mid", ".midi"):
        raise ValueError(f"expected a MIDI file name ending in .mid or .midi, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder; name a .mid file")
    return [path, path.with_suffix(".musicxml"), path.with_suffix(".png")]


@register_codec
@dataclass(frozen=True)
class PianoRollCodec:
    """Scores <-> piano rolls (T, P) over MIDI pitches ``low`` .. ``low + pitches - 1``, one
    frame every ``frame`` quarter notes (:mod:`rnnkit.data.music_io`).

    :meth:`batch` lays rolls out for a next-frame model: the input at frame t is frame t - 1
    (all zeros before the first), the target is frame t. A roll as text (what ``rnnkit
    generate`` prints and reads as ``--prime``) is one word per frame, its sounding pitches
    joined by dots, ``-`` for silence: ``"60.64.67.72 60.64.67.72 - 59.62.67.74"``.
    :meth:`write_sample` writes such a text as MIDI, MusicXML and a piano-roll PNG.
    """

    low: int  # MIDI pitch of column 0
    pitches: int  # P, columns
    frame: float  # quarter notes per frame (0.5: eighths)
    part_names: tuple[str, ...] = ()  # the parts' names by rank, top first ("Soprano", ...)
    kind = "pianoroll"

    def __post_init__(self) -> None:
        if not (self.low >= 0 and self.pitches >= 1 and self.low + self.pitches <= 128):
            raise ValueError(
                f"low, pitches: expected MIDI pitches within 0-127, got {self.low} and "
                f"{self.pitches} more"
            )
        if not self.frame > 0:
            raise ValueError(f"frame: expected a quarter length > 0, got {self.frame!r}")

    def roll(self, parts: Sequence[Sequence[tuple[int, float]]]) -> torch.Tensor:
        """The roll (T, P) bool of a piece's parts of (pitch, quarter length) events."""
        from rnnkit.data.music_io import parts_to_roll

        return parts_to_roll(parts, self.low, self.pitches, self.frame)

    def batch(self, rolls: Sequence[torch.Tensor]) -> SequenceBatch:
        """Rolls (T_i, P) as inputs (B, T, P) (frame t - 1) and targets (B, T, P) (frame t),
        both bool, sharing one padded tensor; mask (B, T) marks the T_i frames of each."""
        if not rolls or any(r.dim() != 2 or r.shape[1] != self.pitches for r in rolls):
            raise ValueError(f"rolls: expected one or more (T, {self.pitches}) piano rolls")
        lengths = torch.tensor([r.shape[0] for r in rolls], dtype=torch.long)
        if int(lengths.min()) < 1:
            raise ValueError("rolls: a piece with no frame")
        t = int(lengths.max())
        padded = torch.zeros(len(rolls), t + 1, self.pitches, dtype=torch.bool)  # (B, T+1, P)
        for b, r in enumerate(rolls):
            padded[b, 1 : r.shape[0] + 1] = r.bool()
        mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        return SequenceBatch(padded[:, :-1], padded[:, 1:], mask, lengths)

    # ---- text ------------------------------------------------------------------------------
    def frame_text(self, frame: torch.Tensor) -> str:
        """One frame (P,) as a word: ``"48.55.64.72"``, or ``"-"`` when silent."""
        pitches = [str(self.low + int(k)) for k in torch.nonzero(frame).flatten()]
        return ".".join(pitches) or "-"

    def encode(self, text: str) -> torch.Tensor:
        """The roll (T, P) of a text of frames (see the class docstring)."""
        words = text.split()
        roll = torch.zeros(len(words), self.pitches, dtype=torch.bool)
        for t, word in enumerate(words):
            if word == "-":
                continue
            try:
                pitches = [int(p) for p in word.split(".")]
            except ValueError:
                pitches = [-1]
            if any(not 0 <= p - self.low < self.pitches for p in pitches):
                raise ValueError(
                    f"frame {t + 1} {word!r}: expected MIDI pitches {self.low}-"
                    f"{self.low + self.pitches - 1} joined by dots, or '-' for silence"
                )
            roll[t, [p - self.low for p in pitches]] = True
        return roll

    def decode(self, roll: torch.Tensor) -> str:
        """The text of a roll (T, P)."""
        return " ".join(self.frame_text(f) for f in roll)

    # ---- files -----------------------------------------------------------------------------
    def sample_paths(self, path: Any) -> list[Any]:
        """The files :meth:`write_sample` writes for ``path`` (a bad name is an error)."""
        return _midi_paths(path)

    def write_sample(self, text: str, path: Any, title: str = "") -> list[Any]:
        """Write a text of frames as MIDI at ``path``, MusicXML and a piano-roll PNG beside it;
        the parts are read from the roll by rank (:func:`rnnkit.data.music_io.roll_to_parts`)."""
        from rnnkit.data.music_io import plot_pianoroll, roll_to_parts, write_parts

        paths = _midi_paths(path)
        roll = self.encode(text)
        if not roll.any():
            raise ValueError("the sample holds no note to write")
        parts = roll_to_parts(roll, self.low, self.frame)
        names = (
            self.part_names
            if len(parts) == len(self.part_names)
            else tuple(f"Voice {i + 1}" for i in range(len(parts)))
        )
        written = write_parts(dict(zip(names, parts, strict=True)), paths[0], title)
        written.append(plot_pianoroll(roll, self.low, self.frame, paths[2], title))
        return written

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "low": self.low,
            "pitches": self.pitches,
            "frame": self.frame,
            "part_names": list(self.part_names),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PianoRollCodec:
        return cls(
            int(data["low"]),
            int(data["pitches"]),
            float(data["frame"]),
            tuple(str(n) for n in data.get("part_names", ())),
        )


@register_codec
@dataclass(frozen=True)
class MelodyCodec(TextCodec):
    """A :class:`TextCodec` over note-event tokens (:class:`MusicTokenizer`: ``p70_1.0``,
    ``r_0.5``) that also writes a melody's text as MIDI, MusicXML and a piano-roll PNG."""

    kind = "melody"

    def events(self, text: str) -> list[tuple[int, float]]:
        """The (pitch, quarter length) events of a text of tokens."""
        from rnnkit.data.tokenizers import MusicTokenizer

        return [MusicTokenizer.event(t) for t in MusicTokenizer().tokenize(text)]

    def sample_paths(self, path: Any) -> list[Any]:
        """The files :meth:`write_sample` writes for ``path`` (a bad name is an error)."""
        return _midi_paths(path)

    def write_sample(self, text: str, path: Any, title: str = "") -> list[Any]:
        """Write the melody of ``text`` as MIDI at ``path``, MusicXML and a piano-roll PNG
        (sampled every 1/24 quarter note, which holds 32nd notes and triplets)."""
        from rnnkit.data.music_io import REST, parts_to_roll, plot_pianoroll, write_parts

        paths = _midi_paths(path)
        events = self.events(text)
        notes = [p for p, _ in events if p != REST]
        if not notes:
            raise ValueError("the sample holds no note to write")
        written = write_parts({"Melody": events}, paths[0], title)
        low, high, frame = min(notes) - 2, max(notes) + 2, 1 / 24
        # in the picture each note ends a frame early, so repeated notes stay apart
        gapped = [
            e
            for p, d in events
            for e in ([(p, d - frame), (REST, frame)] if d > frame else [(p, d)])
        ]
        roll = parts_to_roll([gapped], low, high - low + 1, frame)
        written.append(plot_pianoroll(roll, low, frame, paths[2], title))
        return written
