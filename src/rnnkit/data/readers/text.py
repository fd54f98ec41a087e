"""Plain text and parallel text readers.

Plain text is UTF-8, read whole (for character and word language models) or line by line.
Parallel text pairs a source and a target sentence, either as two columns of one TSV file
(``source<TAB>target``, no header) or as two files aligned line by line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.errors import BadRows, DataFormatError, Records, iter_lines


def read_text(path: str | Path, *, skip_bad: bool = False) -> str:
    """Read a whole UTF-8 text file, ``\\r\\n`` normalised to ``\\n``.

    Lines with undecodable bytes raise :class:`DataFormatError`, or are dropped with
    ``skip_bad=True``.
    """
    rows = BadRows(path, skip_bad)
    lines = [text for _, text in iter_lines(path, rows)]
    rows.result(lines)
    return "\n".join(lines) + ("\n" if lines else "")


def read_lines(
    path: str | Path, *, skip_blank: bool = True, skip_bad: bool = False
) -> Records[str]:
    """Read a UTF-8 file as a list of lines (newline stripped), blank lines dropped."""
    rows = BadRows(path, skip_bad)
    lines = [t for _, t in iter_lines(path, rows) if t.strip() or not skip_blank]
    return rows.result(lines)


@dataclass(frozen=True)
class SentencePair:
    """One aligned pair of parallel text."""

    source: str  # the sentence in the source language
    target: str  # its translation
    line: int  # 1-based line number in the (source) file


def _pair(rows: BadRows, line: int, source: str, target: str) -> SentencePair | None:
    if not source.strip() or not target.strip():
        side = "source" if not source.strip() else "target"
        rows.bad(line, f"expected a non-empty {side} sentence, found an empty one")
        return None
    return SentencePair(source, target, line)


def read_parallel(
    path: str | Path, target_path: str | Path | None = None, *, skip_bad: bool = False
) -> Records[SentencePair]:
    """Read parallel text from a two-column TSV file or from two aligned files.

    Args:
        path: A TSV file with ``source<TAB>target`` per line, or, with ``target_path``,
            the source-side file with one sentence per line.
        target_path: The target-side file, aligned line by line with ``path``.
        skip_bad: Skip bad pairs (wrong column count, an empty side) instead of raising.
            Files of different lengths are always an error.
    """
    rows = BadRows(path, skip_bad)
    pairs: list[SentencePair] = []
    if target_path is None:
        for line, text in iter_lines(path, rows):
            if not text.strip():
                continue
            fields = text.split("\t")
            if len(fields) != 2:
                rows.bad(
                    line, f"expected 2 tab-separated columns (source, target), found {len(fields)}"
                )
                continue
            pair = _pair(rows, line, fields[0], fields[1])
            if pair is not None:
                pairs.append(pair)
        return rows.result(pairs)
    target_rows = BadRows(target_path, skip_bad=False)
    source = list(iter_lines(path, BadRows(path, skip_bad=False)))
    target = list(iter_lines(target_path, target_rows))
    if len(source) != len(target):
        shorter, n = (
            (path, len(source)) if len(source) < len(target) else (target_path, len(target))
        )
        raise DataFormatError(
            shorter,
            n + 1,
            f"expected as many lines as the other side "
            f"({max(len(source), len(target))}), "
            f"file ends after {n}",
        )
    for (line, src), (_, tgt) in zip(source, target, strict=True):
        pair = _pair(rows, line, src, tgt)
        if pair is not None:
            pairs.append(pair)
    return rows.result(pairs)
