"""Tag schemes IO, BIO (IOB2), BIOES and BMES: span extraction and conversion between them.

A tag is ``O`` or ``P-TYPE`` with prefix ``P`` one of ``B`` (begin), ``I`` (inside),
``E`` (end), ``S`` (single). A span is ``(type, start, end)`` over token positions with
``end`` exclusive. Example, one sentence in each scheme::

    tokens   John  Smith  went  to  New  York  .
    IO       I-PER I-PER  O     O   I-LOC I-LOC O
    BIO      B-PER I-PER  O     O   B-LOC I-LOC O
    BIOES    B-PER E-PER  O     O   B-LOC E-LOC O
    spans    [("PER", 0, 2), ("LOC", 4, 6)]

Span extraction follows conlleval (and seqeval's default mode): an ill-formed sequence
such as ``O I-PER`` still yields the span ``("PER", 1, 2)``, and a change of type always
closes the open span. IO cannot mark the boundary between two adjacent spans of one type,
so converting such spans to IO and back merges them.

BMES (word segmentation) tags are untyped ``B``, ``M``, ``E``, ``S``: each marks where a
character stands in its word (:func:`words_to_bmes`, :func:`bmes_spans`, section below).
"""

from __future__ import annotations

SCHEMES = ("IO", "BIO", "BIOES")

Span = tuple[str, int, int]


def _check_scheme(scheme: str) -> str:
    upper = scheme.upper()
    if upper not in SCHEMES:
        raise ValueError(f"scheme: expected one of {SCHEMES}, got {scheme!r}")
    return upper


def split_tag(tag: str, position: int | None = None) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", "")``.

    Raises ValueError naming the tag (and its position when given) for any other form.
    """
    if tag == "O":
        return "O", ""
    prefix, dash, kind = tag.partition("-")
    if not dash or prefix not in ("B", "I", "E", "S") or not kind:
        where = "" if position is None else f" at position {position}"
        raise ValueError(f"tag {tag!r}{where}: expected 'O' or one of B-/I-/E-/S- and a type")
    return prefix, kind


def _ends(prev: str, prev_kind: str, prefix: str, kind: str) -> bool:
    """conlleval ``endOfChunk``: does the span open at the previous tag end before this one?"""
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and prefix in ("B", "S", "O"):
        return True
    return prev != "O" and prev_kind != kind


def _starts(prev: str, prev_kind: str, prefix: str, kind: str) -> bool:
    """conlleval ``startOfChunk``: does a span start at this tag?"""
    if prefix in ("B", "S"):
        return True
    if prev in ("E", "S", "O") and prefix in ("E", "I"):
        return True
    return prefix != "O" and prev_kind != kind


def spans(tags: list[str]) -> list[Span]:
    """Spans ``(type, start, end)`` (end exclusive) of a tag sequence in any scheme.

    >>> spans(["B-PER", "I-PER", "O", "S-LOC"])
    [('PER', 0, 2), ('LOC', 3, 4)]
    """
    found: list[Span] = []
    prev, prev_kind, start = "O", "", -1
    for i, tag in enumerate([*tags, "O"]):
        prefix, kind = split_tag(tag, i)
        if prev != "O" and _ends(prev, prev_kind, prefix, kind):
            found.append((prev_kind, start, i))
        if _starts(prev, prev_kind, prefix, kind):
            start = i
        prev, prev_kind = prefix, kind
    return found


def spans_to_tags(found: list[Span], length: int, scheme: str = "BIO") -> list[str]:
    """Tags of ``length`` tokens in ``scheme`` marking the (non-overlapping) ``found`` spans."""
    scheme = _check_scheme(scheme)
    tags = ["O"] * length
    for kind, start, end in sorted(found, key=lambda span: span[1]):
        if not 0 <= start < end <= length:
            raise ValueError(f"span {(kind, start, end)!r}: outside 0..{length} or empty")
        if any(tag != "O" for tag in tags[start:end]):
            raise ValueError(f"span {(kind, start, end)!r}: overlaps another span")
        for i in range(start, end):
            tags[i] = f"I-{kind}"
        if scheme == "IO":
            continue
        tags[start] = f"B-{kind}"
        if scheme == "BIOES":
            if end - start == 1:
                tags[start] = f"S-{kind}"
            else:
                tags[end - 1] = f"E-{kind}"
    return tags


def convert(tags: list[str], scheme: str) -> list[str]:
    """The same spans as ``tags`` (any scheme), written in ``scheme``.

    >>> convert(["B-PER", "I-PER", "O", "B-LOC"], "BIOES")
    ['B-PER', 'E-PER', 'O', 'S-LOC']
    """
    return spans_to_tags(spans(tags), len(tags), scheme)


def detect_scheme(tag_set: set[str] | list[str]) -> str:
    """The smallest scheme whose prefixes cover ``tag_set``: "IO", "BIO" or "BIOES"."""
    prefixes = {split_tag(tag)[0] for tag in tag_set}
    if prefixes & {"E", "S"}:
        return "BIOES"
    if "B" in prefixes:
        return "BIO"
    return "IO"


def tag_set(types: list[str], scheme: str) -> list[str]:
    """All tags of ``scheme`` for entity ``types``, ``O`` first, types in the given order."""
    scheme = _check_scheme(scheme)
    prefixes = {"IO": "I", "BIO": "BI", "BIOES": "BIES"}[scheme]
    return ["O"] + [f"{p}-{kind}" for kind in types for p in prefixes]


# -- BMES: words as untyped spans (word segmentation) -----------------------------------------
#
# Each character of a text gets one of four tags: B begins a word of two or more characters,
# M continues it, E ends it, S is a one-character word. The words of a text are then spans
# that cover it without gaps::
#
#     characters  我  爱  北  京  天  安  门
#     BMES        S   S   B   E   B   M   E
#     words       我 | 爱 | 北京 | 天安门       spans (0, 1) (1, 2) (2, 4) (4, 7)
#
# Reading an ill-formed sequence (a decoder without constraints may give one): a word
# boundary lies before position i exactly when tag i is B or S, or tag i-1 is E or S. So a
# word ends before every B or S even when it was not closed by an E (``B B`` is two words,
# ``B S`` too), an M or E after a closed word starts a new one (``S M E`` is two words), and
# a word still open at the end ends there. Every tag sequence thus gives a segmentation of
# the whole text, and a well-formed one gives exactly the words it was made from.

BMES = ("B", "M", "E", "S")


def is_bmes(tag_names: set[str] | list[str] | tuple[str, ...]) -> bool:
    """Whether ``tag_names`` is a non-empty subset of the untyped B, M, E, S tags."""
    return bool(tag_names) and set(tag_names) <= set(BMES)


def _check_bmes(tags: list[str]) -> None:
    for i, tag in enumerate(tags):
        if tag not in BMES:
            raise ValueError(f"tag {tag!r} at position {i}: expected one of B, M, E, S")


def words_to_bmes(words: list[str]) -> list[str]:
    """One BMES tag per character of ``words`` (each a non-empty string).

    >>> words_to_bmes(["我", "爱", "北京", "天安门"])
    ['S', 'S', 'B', 'E', 'B', 'M', 'E']
    """
    tags: list[str] = []
    for i, word in enumerate(words):
        if not word:
            raise ValueError(f"word {i}: empty; every word needs at least one character")
        tags += ["S"] if len(word) == 1 else ["B", *["M"] * (len(word) - 2), "E"]
    return tags


def bmes_spans(tags: list[str]) -> list[tuple[int, int]]:
    """Word spans ``(start, end)`` (end exclusive) of BMES ``tags``, read robustly (above).

    >>> bmes_spans(["S", "B", "E", "B", "B", "M"])  # B B: the first word ends before B
    [(0, 1), (1, 3), (3, 4), (4, 6)]
    """
    _check_bmes(tags)
    found: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(tags) + 1):
        if i == len(tags) or tags[i] in ("B", "S") or tags[i - 1] in ("E", "S"):
            found.append((start, i))
            start = i
    return found


def bmes_to_words(chars: str | list[str], tags: list[str], joiner: str = "") -> list[str]:
    """The words of ``chars`` (a string, or a list of tokens joined by ``joiner``) by ``tags``.

    >>> bmes_to_words("我爱北京天安门", ["S", "S", "B", "E", "B", "M", "E"])
    ['我', '爱', '北京', '天安门']
    """
    if len(chars) != len(tags):
        raise ValueError(f"{len(chars)} characters but {len(tags)} tags")
    return [joiner.join(chars[start:end]) for start, end in bmes_spans(tags)]


def bmes_transitions(tags: list[str]) -> tuple[list[list[bool]], list[bool], list[bool]]:
    """(allowed[i][j], start_allowed[i], end_allowed[i]) for CRF constraints over ``tags``.

    B and M are inside a word, which M or E must continue; after E or S (a closed word) only
    B or S may follow. A text starts with B or S and ends with E or S.
    """
    _check_bmes(list(tags))
    inside = [t in ("B", "M") for t in tags]
    allowed = [
        [inside[i] == (tags[j] in ("M", "E")) for j in range(len(tags))] for i in range(len(tags))
    ]
    start = [t in ("B", "S") for t in tags]
    end = [t in ("E", "S") for t in tags]
    return allowed, start, end
