"""Tokenizers: characters, words (regex), and subwords (sentencepiece BPE or unigram).

Every tokenizer maps text to a list of string tokens and back, and round-trips through a
JSON-able config, so it is saved with the model that uses it::

    tok = WordTokenizer(lowercase=True, normalize_numbers=True)
    tok.tokenize("In 1999, Ada wrote 3 programs.")
    # ['in', '<num>', ',', 'ada', 'wrote', '<num>', 'programs', '.']
    same = tokenizer_from_config(tok.to_config())

Subword tokenizers are trained on the training split only::

    sp = SentencePieceTokenizer.train(train_texts, vocab_size=8000, model_type="unigram")
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

NUMBER_TOKEN = "<num>"  # what normalize_numbers turns a number into
DEFAULT_WORD_PATTERN = r"\d+(?:[.,]\d+)*|\w+(?:['’-]\w+)*|[^\w\s]"  # numbers, words, marks
TAGGING_PATTERN = r"\w+|[^\w\s]"  # words and single punctuation marks: "Hi, Bob." -> Hi , Bob .
# The only patterns a saved config may name: a config is data, and an arbitrary regex in it
# is code (``(a|a)+$`` backtracks for minutes on a long line). A WordTokenizer built in
# Python may still use any pattern.
CONFIG_WORD_PATTERNS = frozenset({DEFAULT_WORD_PATTERN, TAGGING_PATTERN})
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CLITIC = re.compile(r"(?i)^(.+?)(n't|'s|'re|'ll|'ve|'m|'d)$")  # does|n't, it|'s, we|'re


@runtime_checkable
class Tokenizer(Protocol):
    """What every tokenizer provides."""

    def tokenize(self, text: str) -> list[str]: ...

    def detokenize(self, tokens: list[str]) -> str: ...

    def to_config(self) -> dict[str, Any]: ...


class CharTokenizer:
    """Characters as tokens, optionally lower-cased. ``detokenize`` joins them back."""

    def __init__(self, lowercase: bool = False) -> None:
        self.lowercase = lowercase

    def tokenize(self, text: str) -> list[str]:
        """``"Ab c"`` -> ``["A", "b", " ", "c"]``."""
        return list(text.lower() if self.lowercase else text)

    def detokenize(self, tokens: list[str]) -> str:
        return "".join(tokens)

    def to_config(self) -> dict[str, Any]:
        return {"type": "char", "lowercase": self.lowercase}


class WordTokenizer:
    """Words and punctuation marks found by a regular expression.

    Args:
        lowercase: Lower-case the text first.
        normalize_numbers: Replace every number token (``1999``, ``3.14``, ``1,000``) by
            :data:`NUMBER_TOKEN`.
        pattern: The regex whose matches are the tokens.
        split_clitics: Split English clitics off as the Penn Treebank (and so GloVe and
            word2vec vocabularies) do: ``doesn't`` -> ``does n't``, ``it's`` -> ``it 's``,
            ``can't`` -> ``ca n't``; a curly apostrophe becomes a straight one first.
    """

    def __init__(
        self,
        lowercase: bool = False,
        normalize_numbers: bool = False,
        pattern: str = DEFAULT_WORD_PATTERN,
        split_clitics: bool = False,
    ) -> None:
        try:
            self._regex = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"pattern={pattern!r} is not a valid regex: {exc}") from exc
        self.lowercase = lowercase
        self.normalize_numbers = normalize_numbers
        self.pattern = pattern
        self.split_clitics = split_clitics

    def tokenize(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if self.split_clitics:
            text = text.replace("\u2019", "'")
        tokens = self._regex.findall(text)
        if self.split_clitics:
            tokens = [part for t in tokens for part in _split_clitic(t)]
        if self.normalize_numbers:
            tokens = [NUMBER_TOKEN if _NUMBER.fullmatch(t) else t for t in tokens]
        return tokens

    def detokenize(self, tokens: list[str]) -> str:
        """Join with spaces, no space before closing punctuation nor after opening marks
        (``¿``, ``¡``, brackets): ``"¿ Quién es ?"`` -> ``"¿Quién es?"``."""
        text = re.sub(r" ([.,;:!?)\]}»])", r"\1", " ".join(tokens))
        return re.sub(r"([¿¡(\[{«]) ", r"\1", text)

    def to_config(self) -> dict[str, Any]:
        return {
            "type": "word",
            "lowercase": self.lowercase,
            "normalize_numbers": self.normalize_numbers,
            "pattern": self.pattern,
            "split_clitics": self.split_clitics,
        }


def _split_clitic(token: str) -> tuple[str, ...]:
    match = _CLITIC.match(token) if "'" in token else None
    return match.groups() if match else (token,)


class WhitespaceTokenizer:
    """Tokens separated by whitespace, as in pre-tokenized corpora (Penn Treebank).

    With ``eos`` (the Mikolov language-model convention) a line break after a line that
    holds tokens is the token ``<eos>``, and ``detokenize`` turns it back into a line break.
    Text that does not end in a line break (a prompt) gets no ``<eos>`` at its end::

        WhitespaceTokenizer().tokenize("the cat <unk>\n\nit sat")
        # ['the', 'cat', '<unk>', '<eos>', 'it', 'sat']

    Args:
        eos: Turn line breaks into ``<eos>`` tokens.
        lowercase: Lower-case the text first.
    """

    EOS = "<eos>"

    def __init__(self, eos: bool = True, lowercase: bool = False) -> None:
        self.eos = eos
        self.lowercase = lowercase

    def tokenize(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if not self.eos:
            return text.split()
        *lines, last = text.split("\n")
        tokens = [t for line in lines if line.strip() for t in [*line.split(), self.EOS]]
        return tokens + last.split()

    def detokenize(self, tokens: list[str]) -> str:
        lines, words = [], []
        for token in tokens:
            if token == self.EOS and self.eos:
                lines.append(" ".join(words) + "\n")
                words = []
            else:
                words.append(token)
        return "".join(lines) + " ".join(words)

    def to_config(self) -> dict[str, Any]:
        return {"type": "whitespace", "eos": self.eos, "lowercase": self.lowercase}


class SentencePieceTokenizer:
    """Subword pieces from a trained sentencepiece model (BPE or unigram).

    Build one with :meth:`train`; the model itself (a few hundred kB) travels inside the
    config, base64-encoded, so the tokenizer is rebuilt from JSON alone.
    """

    def __init__(self, model_proto: bytes) -> None:
        import sentencepiece as spm

        self._proto = model_proto
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int = 8000,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
        seed: int = 0,
    ) -> SentencePieceTokenizer:
        """Train on ``texts`` (the training split, one sentence or line each).

        Args:
            texts: Training sentences.
            vocab_size: Number of pieces, including sentencepiece's ``<unk> <s> </s>``.
            model_type: ``"bpe"`` or ``"unigram"``.
            character_coverage: Fraction of characters the model must cover.
            seed: Seed for sentencepiece's sampling of training sentences.
        """
        import sentencepiece as spm

        if model_type not in ("bpe", "unigram"):
            raise ValueError(f"model_type={model_type!r}: expected 'bpe' or 'unigram'")
        if vocab_size < 4:
            raise ValueError(f"vocab_size={vocab_size}: expected at least 4")
        lines = [t.replace("\n", " ") for t in texts if t.strip()]
        if not lines:
            raise ValueError("texts is empty: sentencepiece needs training text")
        spm.set_random_generator_seed(seed)
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            hard_vocab_limit=False,
            minloglevel=2,
            num_threads=1,
        )
        return cls(model.getvalue())

    @property
    def vocab_size(self) -> int:
        return int(self._sp.get_piece_size())

    def tokenize(self, text: str) -> list[str]:
        return list(self._sp.encode(text, out_type=str))

    def detokenize(self, tokens: list[str]) -> str:
        return str(self._sp.decode_pieces(tokens))

    def to_config(self) -> dict[str, Any]:
        return {"type": "sentencepiece", "model": base64.b64encode(self._proto).decode("ascii")}


class MusicTokenizer:
    """Note events as whole tokens: ``p70_1.0`` (MIDI pitch 70 for a quarter note), ``r_0.5``
    (an eighth rest), ``p64_1/3`` (a triplet eighth), separated by white space.

    A duration is in quarter notes (to the nearest 1/96): a decimal when its denominator is a
    power of two (``0.25``, ``1.5``), else a fraction (``1/3``, ``2/3``), so a token reads back
    to the float of its duration. :meth:`token` and :meth:`event` convert one event. A word
    that is no such token is an error naming it; one written otherwise (``p70_1``) becomes the
    token of its event (``p70_1.0``). The word tokenizer would split ``p70_1.0`` into
    ``p70_1 . 0``::

        tok = MusicTokenizer()
        tok.tokenize("p67_1.0 r_0.5 p69_1/3")   # ['p67_1.0', 'r_0.5', 'p69_1/3']
        tok.event("p69_1/3")                     # (69, 0.3333333333333333)
    """

    _TOKEN = re.compile(r"(?:p(\d{1,3})|r)_(\d+(?:\.\d+)?|\d+/\d+)")
    REST = -1  # the pitch of a rest, as the score readers give it

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text``, each written as :meth:`token` writes it (``p70_1`` ->
        ``p70_1.0``); a word that is no event is an error naming it."""
        return [self.token(*self.event(word)) for word in text.split()]

    def detokenize(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def to_config(self) -> dict[str, Any]:
        return {"type": "music"}

    @staticmethod
    def token(pitch: int, quarter_length: float) -> str:
        """``(70, 1.0)`` -> ``"p70_1.0"``; pitch -1 is a rest: ``(-1, 0.5)`` -> ``"r_0.5"``."""
        from fractions import Fraction

        if not (pitch == MusicTokenizer.REST or 0 <= pitch <= 127):
            raise ValueError(f"pitch: expected a MIDI number 0-127 or -1 (rest), got {pitch!r}")
        if not quarter_length > 0:
            raise ValueError(f"quarter_length: expected > 0, got {quarter_length!r}")
        exact = Fraction(quarter_length).limit_denominator(96)
        if exact.denominator & (exact.denominator - 1) == 0:  # 1, 2, 4, ...: a decimal
            duration = repr(float(exact))
        else:
            duration = f"{exact.numerator}/{exact.denominator}"
        return f"p{pitch}_{duration}" if pitch != MusicTokenizer.REST else f"r_{duration}"

    @staticmethod
    def event(token: str) -> tuple[int, float]:
        """``"p70_1.0"`` -> ``(70, 1.0)``, ``"r_1/3"`` -> ``(-1, 0.333...)``."""
        from fractions import Fraction

        match = MusicTokenizer._TOKEN.fullmatch(token)
        try:
            duration = Fraction(match.group(2)) if match else Fraction(0)
        except ZeroDivisionError:  # "1/0"
            duration = Fraction(0)
        pitch = int(match.group(1)) if match and match.group(1) else MusicTokenizer.REST
        if match is None or duration <= 0 or pitch > 127:
            raise ValueError(
                f"music token {token!r}: expected a note such as p70_1.0 (MIDI pitch 0-127, "
                "then the duration in quarter notes) or a rest such as r_0.5"
            )
        return pitch, float(duration)


def tokenizer_from_config(config: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from the dict its ``to_config()`` returned.

    Raises:
        ValueError: Unknown type, or a word pattern other than :data:`DEFAULT_WORD_PATTERN`
            and :data:`TAGGING_PATTERN` (a regex from a file is not compiled).
    """
    kind = config.get("type")
    options = {k: v for k, v in config.items() if k != "type"}
    if kind == "char":
        return CharTokenizer(**options)
    if kind == "word":
        pattern = options.get("pattern", DEFAULT_WORD_PATTERN)
        if not isinstance(pattern, str) or pattern not in CONFIG_WORD_PATTERNS:
            raise ValueError(
                f"tokenizer config pattern={pattern!r}: not one of the patterns rnnkit writes "
                f"({', '.join(repr(p) for p in sorted(CONFIG_WORD_PATTERNS))}); a config is "
                "data, so a custom regex is refused (build WordTokenizer(pattern=...) in Python)"
            )
        return WordTokenizer(**options)
    if kind == "sentencepiece":
        return SentencePieceTokenizer(base64.b64decode(config["model"]))
    if kind == "music":
        return MusicTokenizer()
    if kind == "whitespace":
        return WhitespaceTokenizer(**options)
    raise ValueError(
        f"config type={kind!r}: expected 'char', 'word', 'whitespace', 'sentencepiece' or 'music'"
    )


def save_tokenizer(tokenizer: Tokenizer, path: str | Path) -> None:
    """Write a tokenizer's config as JSON."""
    Path(path).write_text(json.dumps(tokenizer.to_config(), ensure_ascii=False), "utf-8")


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a tokenizer written by :func:`save_tokenizer`."""
    return tokenizer_from_config(json.loads(Path(path).read_text("utf-8")))
