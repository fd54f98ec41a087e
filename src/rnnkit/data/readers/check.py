"""One entry point over all readers, by format name: what ``rnnkit data check`` runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rnnkit.data.errors import DataFormatError, Records
from rnnkit.data.readers.conll import read_conll, read_conllu, read_tagged_jsonl
from rnnkit.data.readers.fasta import read_fasta
from rnnkit.data.readers.music import SCORE_SUFFIXES, read_scores
from rnnkit.data.readers.series import FASTA_SUFFIXES
from rnnkit.data.readers.table import read_jsonl, read_table
from rnnkit.data.readers.text import read_lines, read_parallel
from rnnkit.data.readers.ts import read_ts

Counted = tuple[int, list[DataFormatError]]


def _counted(records: Records) -> Counted:
    return len(records), records.skipped


def _ts(path: Path, skip_bad: bool) -> Counted:
    data = read_ts(path, skip_bad=skip_bad)
    return len(data.series), data.skipped


# format -> (path, columns, skip_bad) -> (records read, rows skipped)
_CHECKS: dict[str, Callable[[Path, Sequence[str], bool], Counted]] = {
    "csv": lambda p, c, s: _counted(read_table(p, c, delimiter=",", skip_bad=s)),
    "tsv": lambda p, c, s: _counted(read_table(p, c, delimiter="\t", skip_bad=s)),
    "jsonl": lambda p, c, s: _counted(read_jsonl(p, c, skip_bad=s)),
    "conll": lambda p, c, s: _counted(read_conll(p, skip_bad=s)),
    "conllu": lambda p, c, s: _counted(read_conllu(p, skip_bad=s)),
    "tagged-jsonl": lambda p, c, s: _counted(read_tagged_jsonl(p, skip_bad=s)),
    "parallel": lambda p, c, s: _counted(read_parallel(p, skip_bad=s)),
    "text": lambda p, c, s: _counted(read_lines(p, skip_bad=s)),
    "fasta": lambda p, c, s: _counted(read_fasta(p, skip_bad=s)),
    "ts": lambda p, c, s: _ts(p, s),
    "score": lambda p, c, s: (len(read_scores(p)), []),
}
FORMATS = tuple(_CHECKS)

#: the format a file's suffix names, for ``rnnkit data check`` without ``--format``
SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".conll": "conll",
    ".conllu": "conllu",
    ".txt": "text",
    ".ts": "ts",
    **dict.fromkeys(FASTA_SUFFIXES, "fasta"),
    **dict.fromkeys(SCORE_SUFFIXES, "score"),
}


def format_of(path: str | Path) -> str:
    """The format named by ``path``'s suffix (:data:`SUFFIXES`), or one error saying so."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(
            f"--format: the suffix {suffix!r} of {path} names no format; give --format, one "
            f"of: {', '.join(FORMATS)}"
        )
    return SUFFIXES[suffix]


def check_file(
    path: str | Path,
    fmt: str,
    columns: Sequence[str] = ("text", "label"),
    *,
    skip_bad: bool = False,
) -> Counted:
    """Read ``path`` as ``fmt``; return (records read, rows skipped as bad).

    Args:
        path: The file.
        fmt: One of :data:`FORMATS`.
        columns: Column or field names, for ``csv``, ``tsv`` and ``jsonl``.
        skip_bad: Skip bad rows instead of raising.

    Raises:
        DataFormatError: The file is bad (and ``skip_bad`` is off or cannot help).
        ValueError: ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt not in _CHECKS:
        raise ValueError(f"format={fmt!r}: expected one of {', '.join(FORMATS)}")
    return _CHECKS[fmt](Path(path), columns, skip_bad)
