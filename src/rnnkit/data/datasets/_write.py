"""Writers shared by the recipes: TSV with a header, JSON lines, and split bookkeeping."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from rnnkit.data.splits import by_split


def write_tsv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Tab-separated, a header line, minimal quoting (tabs and newlines in text removed)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([" ".join(str(v).split()) for v in row])


def write_jsonl(path: Path, records: Sequence[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")


def write_splits(
    out: Path,
    items: Sequence[object],
    names: Sequence[str],
    suffix: str,
    writer: Callable[[Path, list], None],
) -> dict[str, int]:
    """Write ``items`` into ``<split><suffix>`` files by split name; return split sizes."""
    counts = {}
    for split, members in by_split(items, names).items():
        writer(out / f"{split}{suffix}", members)
        counts[split] = len(members)
    return counts
