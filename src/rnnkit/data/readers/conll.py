"""Token-per-line tagged text: CoNLL-2003 style, CoNLL-U, and tokens/tags JSONL.

CoNLL-2003 style: one token per line with whitespace-separated columns (token first, tags
after), a blank line between sentences, ``-DOCSTART-`` lines between documents::

    EU B-ORG
    rejects O

CoNLL-U (Universal Dependencies): ten tab-separated columns ``ID FORM LEMMA UPOS XPOS
FEATS HEAD DEPREL DEPS MISC``, ``#`` comment lines, multiword-token ranges (``1-2``) and
empty nodes (``1.1``) that are kept out of the token sequence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rnnkit.data.errors import BadRows, Records, iter_lines
from rnnkit.data.readers.table import iter_json_objects, json_fields


@dataclass(frozen=True)
class TaggedSentence:
    """A sentence as aligned token and tag sequences (both of length T)."""

    tokens: list[str]  # (T,) surface tokens
    tags: list[str]  # (T,) one tag per token
    line: int  # 1-based line of the first token
    columns: dict[str, list[str]] = field(default_factory=dict)  # other columns, each (T,)


def _sentences(path: Path, rows: BadRows, comment: str | None) -> Iterator[list[tuple[int, str]]]:
    block: list[tuple[int, str]] = []
    for line, text in iter_lines(path, rows):
        if comment is not None and text.startswith(comment):
            continue
        if text.strip():
            block.append((line, text))
        elif block:
            yield block
            block = []
    if block:
        yield block


_METADATA = re.compile(r"#\s*[\w.-]+\s*=")  # "# sent_id = 12", "# text = ..."


def read_conll(
    path: str | Path,
    *,
    tag_column: int = -1,
    column_names: Sequence[str] | None = None,
    fixed_width: bool = True,
    skip_bad: bool = False,
) -> Records[TaggedSentence]:
    """Read a CoNLL-2003 style file.

    Args:
        path: The file.
        tag_column: Index of the tag column (default: the last).
        column_names: Names for all columns (token first); the named columns other than
            the token and tag ones are returned in ``TaggedSentence.columns``. When given,
            every line must have exactly that many columns; otherwise every line of the
            file must have as many columns as the first token line.
        fixed_width: With ``False``, lines may differ in column count (at least two:
            token and tag), as in corpora that append a variable number of features.
        skip_bad: Skip a sentence with a bad line instead of raising.
    """
    path = Path(path)
    rows = BadRows(path, skip_bad)
    width = len(column_names) if column_names else None
    sentences: list[TaggedSentence] = []
    for block in _sentences(path, rows, comment=None):
        # "-DOCSTART-" lines, and "# key = value" metadata lines (CoNLL-U style sentence
        # comments; a "#" token with its tag has no "=" as its third field)
        block = [
            (n, t) for n, t in block if not t.startswith("-DOCSTART-") and not _METADATA.match(t)
        ]
        if not block:
            continue
        split = [(n, t.split()) for n, t in block]
        width = width or len(split[0][1])
        need = max(2, tag_column + 1 if tag_column >= 0 else -tag_column)  # tag_column exists
        exact = fixed_width or bool(column_names)  # named columns: exactly that many
        bad = next(((n, f) for n, f in split if (exact and len(f) != width) or len(f) < need), None)
        if bad is not None:
            rows.bad(
                bad[0],
                f"expected {max(width, need)} columns (token ... tag), found {len(bad[1])}",
            )
            continue
        extra = {
            name: [f[i] for _, f in split]
            for i, name in enumerate(column_names or [])
            if i not in (0, tag_column % width)
        }
        sentences.append(
            TaggedSentence(
                [f[0] for _, f in split], [f[tag_column] for _, f in split], block[0][0], extra
            )
        )
    return rows.result(sentences)


@dataclass(frozen=True)
class UDSentence:
    """A CoNLL-U sentence: syntactic words only (no ranges, no empty nodes), each (T,)."""

    forms: list[str]  # word forms
    lemmas: list[str]
    upos: list[str]  # universal part-of-speech tags
    heads: list[int]  # head index per word, 0 for the root, -1 where HEAD is "_"
    deprels: list[str]  # dependency relations
    line: int  # 1-based line of the first word
    comments: list[str] = field(default_factory=list)  # "# key = value" lines


def _ud_sentence(rows: BadRows, block: list[tuple[int, str]]) -> UDSentence | None:
    words: list[list[str]] = []
    comments = [t for _, t in block if t.startswith("#")]
    first = next((n for n, t in block if not t.startswith("#")), block[0][0])
    for line, text in block:
        if text.startswith("#"):
            continue
        cols = text.split("\t")
        if len(cols) != 10:
            rows.bad(line, f"expected 10 tab-separated CoNLL-U columns, found {len(cols)}")
            return None
        if "-" in cols[0] or "." in cols[0]:
            continue
        if not cols[0].isdigit() or int(cols[0]) != len(words) + 1:
            rows.bad(line, f"expected word ID {len(words) + 1}, found {cols[0]!r}")
            return None
        if not (cols[6] == "_" or cols[6].isdigit()):
            rows.bad(line, f"expected an integer HEAD or '_', found {cols[6]!r}")
            return None
        words.append(cols)
    if not words:
        rows.bad(first, "expected at least one word line in the sentence, found none")
        return None
    return UDSentence(
        [w[1] for w in words],
        [w[2] for w in words],
        [w[3] for w in words],
        [int(w[6]) if w[6] != "_" else -1 for w in words],
        [w[7] for w in words],
        first,
        comments,
    )


def read_conllu(path: str | Path, *, skip_bad: bool = False) -> Records[UDSentence]:
    """Read a CoNLL-U file; a sentence with a bad line is an error (or skipped)."""
    path = Path(path)
    rows = BadRows(path, skip_bad)
    sentences = []
    for block in _sentences(path, rows, comment=None):
        sentence = _ud_sentence(rows, block)
        if sentence is not None:
            sentences.append(sentence)
    return rows.result(sentences)


def read_tagged_jsonl(
    path: str | Path,
    *,
    tokens_field: str = "tokens",
    tags_field: str = "tags",
    skip_bad: bool = False,
) -> Records[TaggedSentence]:
    """Read ``{"tokens": [...], "tags": [...]}`` lines; the two lists must be equally long."""
    rows = BadRows(path, skip_bad)
    sentences = []
    for line, obj in iter_json_objects(path, rows):
        record = json_fields(rows, line, obj, [tokens_field, tags_field])
        if record is None:
            continue
        tokens, tags = record[tokens_field], record[tags_field]
        if not isinstance(tokens, list) or not isinstance(tags, list):
            rows.bad(line, f"expected lists for {tokens_field!r} and {tags_field!r}")
            continue
        if len(tokens) != len(tags):
            rows.bad(line, f"expected as many tags as tokens ({len(tokens)}), found {len(tags)}")
            continue
        sentences.append(TaggedSentence(tokens, tags, line))
    return rows.result(sentences)
