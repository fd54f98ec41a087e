"""``Vocab``: tokens to integer ids and back, built from training data.

The four special tokens come first, with fixed ids::

    <pad> = 0, <unk> = 1, <bos> = 2, <eos> = 3

then the most frequent training tokens (ties broken alphabetically, so the result does not
depend on the order of the data) up to ``max_size`` entries in all (default 10,000, the
dictionary size of the seeds) and with at least ``min_freq`` occurrences. Tokens outside
the vocabulary map to ``<unk>``; :meth:`Vocab.unknown_report` counts them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)


@dataclass(frozen=True)
class UnknownReport:
    """How much of some text a vocabulary does not cover."""

    tokens: int  # tokens seen
    unknown: int  # of which mapped to <unk>
    unknown_types: Counter[str] = field(default_factory=Counter)  # unknown token -> count

    @property
    def rate(self) -> float:
        """Fraction of tokens that are unknown (0 for no tokens)."""
        return self.unknown / self.tokens if self.tokens else 0.0

    def __str__(self) -> str:
        top = ", ".join(f"{t!r}×{n}" for t, n in self.unknown_types.most_common(5))
        return f"{self.unknown:,} of {self.tokens:,} tokens unknown ({self.rate:.2%})" + (
            f"; most frequent: {top}" if top else ""
        )


class Vocab:
    """A fixed token list; the token at position ``i`` has id ``i``.

    Args:
        tokens: All tokens, specials first (as :meth:`build` makes them).
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        if list(tokens[: len(SPECIALS)]) != list(SPECIALS):
            raise ValueError(f"tokens must start with {list(SPECIALS)}, got {list(tokens[:4])}")
        if len(set(tokens)) != len(tokens):
            dup = next(t for t, n in Counter(tokens).items() if n > 1)
            raise ValueError(f"tokens must be distinct, {dup!r} appears twice")
        self.tokens: list[str] = list(tokens)
        self._ids = {t: i for i, t in enumerate(self.tokens)}

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    @classmethod
    def build(
        cls, sequences: Iterable[Sequence[str]], max_size: int = 10_000, min_freq: int = 1
    ) -> Vocab:
        """Count tokens in ``sequences`` (the training split) and keep the most frequent.

        Args:
            sequences: Token sequences, e.g. ``[tokenizer.tokenize(t) for t in train]``.
            max_size: Most entries in all, the four specials included.
            min_freq: Fewest occurrences a token needs to be kept.
        """
        if max_size < len(SPECIALS):
            raise ValueError(f"max_size={max_size}: expected at least {len(SPECIALS)}")
        if min_freq < 1:
            raise ValueError(f"min_freq={min_freq}: expected at least 1")
        counts: Counter[str] = Counter()
        for sequence in sequences:
            counts.update(sequence)
        for special in SPECIALS:
            counts.pop(special, None)
        ranked = sorted(
            (t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t)
        )
        return cls([*SPECIALS, *ranked[: max_size - len(SPECIALS)]])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __getitem__(self, token: str) -> int:
        """The id of ``token``, or ``unk_id``."""
        return self._ids.get(token, self.unk_id)

    def encode(
        self, tokens: Sequence[str], add_bos: bool = False, add_eos: bool = False
    ) -> list[int]:
        """Token strings -> ids, (T,) -> (T + add_bos + add_eos,)."""
        ids = [self._ids.get(t, self.unk_id) for t in tokens]
        return [self.bos_id] * add_bos + ids + [self.eos_id] * add_eos

    def decode(self, ids: Iterable[int], strip_specials: bool = True) -> list[str]:
        """Ids -> token strings, dropping ``<pad> <bos> <eos>`` unless asked to keep them."""
        drop = {self.pad_id, self.bos_id, self.eos_id} if strip_specials else set()
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"id {i} out of range for a vocabulary of {len(self.tokens)}")
            if i not in drop:
                out.append(self.tokens[i])
        return out

    def unknown_report(self, sequences: Iterable[Sequence[str]]) -> UnknownReport:
        """Count the tokens of ``sequences`` that would map to ``<unk>``."""
        total, unknown = 0, Counter[str]()
        for sequence in sequences:
            total += len(sequence)
            unknown.update(t for t in sequence if t not in self._ids)
        return UnknownReport(total, sum(unknown.values()), unknown)

    def to_json(self) -> str:
        return json.dumps({"tokens": self.tokens}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Vocab:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise ValueError("expected a JSON object with a 'tokens' list")
        return cls(data["tokens"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.tokens == other.tokens

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, first={self.tokens[4:9]})"
