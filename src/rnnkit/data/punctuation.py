"""Punctuation and case restoration data: lowercased, unpunctuated words and their labels.

From real text, every word keeps only its letters and digits, lowercased, and gets two labels
that restore it exactly: its case class and the punctuation mark that follows it::

    text     "Why, Romeo?  The LORD said: go."
    words    why    romeo  the    lord   said   go
    case     cap    cap    cap    upper  lower  lower
    punct    ,      ?      none   none   :      .

Case classes: ``lower`` (no capital letter, also words without letters such as ``42``),
``cap`` (first letter capital, some later letter lowercase, or a one-letter capital ``I``),
``upper`` (two or more letters, all capital). A word with any other mix (``McDonald``,
``iPhone``) is ``cap`` or ``lower`` by its first letter and cannot be restored exactly;
:func:`words_and_labels` reports such words so a caller can count or drop them.

A word is a run of letters and digits, with inner apostrophes (``don't``, ``o'er``); the marks
between two words (or after the last) are reduced to the first of ``, . ? ! ; :`` among them,
or ``none``; quotes, brackets and dashes are dropped. :func:`restore` rebuilds the normalised
text (``"Why, Romeo? The LORD said: go."``) from the words and labels, and the tests pin the
round trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.readers import read_table, read_text

CASES = ("lower", "cap", "upper")
PUNCTS = ("none", ",", ".", "?", "!", ";", ":")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


@dataclass(frozen=True)
class Labelled:
    words: list[str]  # (T,) lowercased words without punctuation
    cases: list[str]  # (T,) one of CASES
    puncts: list[str]  # (T,) one of PUNCTS: the mark after the word
    inexact: list[int]  # positions whose case is not one of the three classes (McDonald)

    def tags(self) -> list[str]:
        """One joint tag per word, ``case|punct``: the label set of a single tagger head."""
        return [f"{c}|{p}" for c, p in zip(self.cases, self.puncts, strict=True)]


def case_class(word: str) -> tuple[str, bool]:
    """The case class of ``word`` and whether :func:`apply_case` restores it exactly."""
    letters = [ch for ch in word if ch.isalpha()]
    if not letters or not letters[0].isupper():
        return "lower", not any(ch.isupper() for ch in letters)
    if len(letters) > 1 and all(ch.isupper() for ch in letters):
        return "upper", True
    return "cap", not any(ch.isupper() for ch in letters[1:])


def apply_case(word: str, case: str) -> str:
    """``word`` (lowercase) written in ``case``: ``apply_case("lord", "upper") == "LORD"``."""
    if case == "upper":
        return word.upper()
    if case == "cap":
        i = next((k for k, ch in enumerate(word) if ch.isalpha()), 0)
        return word[:i] + word[i : i + 1].upper() + word[i + 1 :]
    if case == "lower":
        return word
    raise ValueError(f"case: expected one of {CASES}, got {case!r}")


def _first_mark(between: str) -> str:
    return next((ch for ch in between if ch in PUNCTS[1:]), "none")


def words_and_labels(text: str) -> Labelled:
    """The lowercased words of ``text`` with their case and following-punctuation labels."""
    matches = list(_WORD.finditer(text))
    words, cases, puncts, inexact = [], [], [], []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        case, exact = case_class(m.group())
        words.append(m.group().lower())
        cases.append(case)
        puncts.append(_first_mark(text[m.end() : end]))
        if not exact:
            inexact.append(i)
    return Labelled(words, cases, puncts, inexact)


def restore(words: list[str], cases: list[str], puncts: list[str]) -> str:
    """The text the labels describe: cased words, each followed by its mark, space-separated."""
    if not len(words) == len(cases) == len(puncts):
        raise ValueError(
            f"words, cases and puncts must be equally long, got "
            f"{len(words)}, {len(cases)} and {len(puncts)}"
        )
    out = []
    for word, case, punct in zip(words, cases, puncts, strict=True):
        if punct not in PUNCTS:
            raise ValueError(f"punct: expected one of {PUNCTS}, got {punct!r}")
        out.append(apply_case(word, case) + ("" if punct == "none" else punct))
    return " ".join(out)


def normalise(text: str) -> str:
    """``text`` as :func:`restore` writes it back (exact words, first marks, single spaces)."""
    lab = words_and_labels(text)
    return restore(lab.words, lab.cases, lab.puncts)


def units(texts: list[str], max_words: int = 0, drop_inexact: bool = True) -> list[Labelled]:
    """Labelled units of ``texts``, each cut into pieces of at most ``max_words`` (0: whole).

    Texts without words, and (with ``drop_inexact``) texts with a word outside the three
    case classes, are left out.
    """
    out = []
    for text in texts:
        lab = words_and_labels(text)
        if not lab.words or (drop_inexact and lab.inexact):
            continue
        step = max_words or len(lab.words)
        for i in range(0, len(lab.words), step):
            part = slice(i, i + step)
            inexact = [k - i for k in lab.inexact if i <= k < i + step]
            out.append(Labelled(lab.words[part], lab.cases[part], lab.puncts[part], inexact))
    return out


def write_conll(path: str | Path, labelled: list[Labelled]) -> int:
    """Write one sentence block per unit: ``word case punct case|punct`` columns.

    Returns the number of blocks. Train the ``tagging`` task on the file with
    ``column = "1"`` (case), ``"2"`` (punctuation) or ``"3"`` (both as one tag).
    """
    with open(path, "w", encoding="utf-8") as f:
        for lab in labelled:
            rows = zip(lab.words, lab.cases, lab.puncts, lab.tags(), strict=True)
            f.writelines(" ".join(row) + "\n" for row in rows)
            f.write("\n")
    return len(labelled)


def shakespeare_texts(path: str | Path) -> list[str]:
    """The paragraphs (blank-line separated blocks: speeches, headings) of a shakespeare split."""
    blocks = re.split(r"\n\s*\n", read_text(path))
    return [" ".join(line.strip() for line in b.splitlines()) for b in blocks if b.strip()]


def bible_texts(path: str | Path) -> list[str]:
    """The English verses of a bible-en-es split."""
    return [row["en"] for row in read_table(path, ["en", "es"])]


SOURCES = {"shakespeare": ("txt", shakespeare_texts), "bible-en-es": ("tsv", bible_texts)}


def build_punctuation(source: str, out_dir: str | Path, max_words: int = 60) -> dict[str, int]:
    """Write ``{train,valid,test}.conll`` of ``source``'s splits (by play or book) to ``out_dir``.

    The registry dataset is fetched when not yet on disk; returns the units per split.
    """
    from rnnkit.data.registry import dataset_dir, fetch

    if source not in SOURCES:
        raise ValueError(f"source: expected one of {list(SOURCES)}, got {source!r}")
    ext, reader = SOURCES[source]
    root = dataset_dir(source)
    if not (root / f"train.{ext}").exists():
        fetch(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in ("train", "valid", "test"):
        labelled = units(reader(root / f"{split}.{ext}"), max_words)
        counts[split] = write_conll(out / f"{split}.conll", labelled)
    return counts
