"""One entry point over all readers, by format name: what ``rnnkit data check`` runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rnnkit.data.errors import DataFormatError
from rnnkit.data.readers.conll import read_conll, read_conllu, read_tagged_jsonl
from rnnkit.data.readers.fasta import read_fasta
from rnnkit.data.readers.music import read_scores
from rnnkit.data.readers.table import read_jsonl, read_table
from rnnkit.data.readers.text import read_lines, read_parallel
from rnnkit.data.readers.ts import read_ts

FORMATS = (
    "csv",
    "tsv",
    "jsonl",
    "conll",
    "conllu",
    "tagged-jsonl",
    "parallel",
    "text",
    "fasta",
    "ts",
    "score",
)


def check_file(
    path: str | Path,
    fmt: str,
    columns: Sequence[str] = ("text", "label"),
    *,
    skip_bad: bool = False,
) -> tuple[int, list[DataFormatError]]:
    """Read ``path`` as ``fmt``; return (records read, rows skipped as bad).

    Raises:
        DataFormatError: The file is bad (and ``skip_bad`` is off or cannot help).
        ValueError: ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt in ("csv", "tsv"):
        records = read_table(
            path, columns, delimiter="\t" if fmt == "tsv" else ",", skip_bad=skip_bad
        )
    elif fmt == "jsonl":
        records = read_jsonl(path, columns, skip_bad=skip_bad)
    elif fmt == "conll":
        records = read_conll(path, skip_bad=skip_bad)
    elif fmt == "conllu":
        records = read_conllu(path, skip_bad=skip_bad)
    elif fmt == "tagged-jsonl":
        records = read_tagged_jsonl(path, skip_bad=skip_bad)
    elif fmt == "parallel":
        records = read_parallel(path, skip_bad=skip_bad)
    elif fmt == "text":
        records = read_lines(path, skip_bad=skip_bad)
    elif fmt == "fasta":
        records = read_fasta(path, skip_bad=skip_bad)
    elif fmt == "ts":
        data = read_ts(path, skip_bad=skip_bad)
        return len(data.series), data.skipped
    elif fmt == "score":
        return len(read_scores(path)), []
    else:
        raise ValueError(f"format={fmt!r}: expected one of {', '.join(FORMATS)}")
    return len(records), records.skipped
