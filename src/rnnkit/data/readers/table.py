"""CSV, TSV and JSONL readers that pick columns by name.

Each row becomes a ``dict`` from the requested column names to their string values, in
file order. The first line of a CSV/TSV file is its header; JSONL has one JSON object per
line. Example, for a file ``reviews.tsv``::

    text<TAB>label
    a gripping film<TAB>pos

``read_table("reviews.tsv", ["text", "label"])`` gives ``[{"text": "a gripping film",
"label": "pos"}]``. Bad rows (a wrong column count, an empty value in a requested column,
a line that is not a JSON object, undecodable bytes) raise :class:`DataFormatError`, or are
skipped and counted with ``skip_bad=True``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

from rnnkit.data.errors import BadRows, DataFormatError, Records, iter_lines


def _delimiter_for(path: Path, delimiter: str | None) -> str:
    if delimiter is not None:
        return delimiter
    return "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","


FIELD_LIMIT = 16 * 2**20  # characters in one field (Python's csv default is 128 KiB)


def _csv_rows(path: Path, delimiter: str, rows: BadRows) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, fields)``, quoted fields spanning lines included; a field may hold up to
    :data:`FIELD_LIMIT` characters (a long document), a longer one is a bad row saying so."""
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
    numbered = list(iter_lines(path, rows))
    lines = [text + "\n" for _, text in numbered]
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    while True:
        index = reader.line_num
        start = numbered[index][0] if index < len(numbered) else None
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            kind = "TSV" if delimiter == chr(9) else "CSV"
            if "field larger than field limit" in str(exc):
                limit = csv.field_size_limit()
                rows.bad(start, f"a field is longer than {limit:,} characters ({kind} limit)")
            else:
                rows.bad(start, f"expected well-formed {kind} quoting: {exc}")
            continue
        yield (start or 0), fields


def read_table(
    path: str | Path,
    columns: Sequence[str],
    *,
    delimiter: str | None = None,
    allow_empty: Sequence[str] = (),
    skip_bad: bool = False,
) -> Records[dict[str, str]]:
    """Read chosen columns of a CSV or TSV file with a header line.

    Args:
        path: The file. ``.tsv``/``.tab`` files are tab-separated, others comma-separated,
            unless ``delimiter`` says otherwise.
        columns: Header names of the columns to return, e.g. ``["text", "label"]``.
        delimiter: Field separator, overriding the guess from the file name.
        allow_empty: Columns that may hold an empty string (others may not).
        skip_bad: Skip bad rows (recorded in the result's ``skipped``) instead of raising.

    Returns:
        One dict per data row, mapping each name in ``columns`` to its value.
    """
    path = Path(path)
    rows = BadRows(path, skip_bad)
    records: list[dict[str, str]] = []
    header: list[str] | None = None
    for line, fields in _csv_rows(path, _delimiter_for(path, delimiter), rows):
        if header is None:
            header = fields
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataFormatError(
                    path,
                    line,
                    f"expected header columns {list(columns)}, "
                    f"missing {missing} (header: {header})",
                )
            index = {c: header.index(c) for c in columns}
            continue
        if not fields:
            continue
        if len(fields) != len(header):
            rows.bad(
                line, f"expected {len(header)} columns ({', '.join(header)}), found {len(fields)}"
            )
            continue
        record = {c: fields[i] for c, i in index.items()}
        empty = [c for c, v in record.items() if not v.strip() and c not in allow_empty]
        if empty:
            rows.bad(line, f"expected non-empty {empty[0]!r}, found an empty value")
            continue
        records.append(record)
    if header is None:
        raise DataFormatError(path, 1, "expected a header line, found an empty file")
    return rows.result(records)


def _json_value(value: object) -> str | list[str] | None:
    if isinstance(value, bool | int | float | str):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    return None


class _NonFiniteNumber(ValueError):
    """A ``NaN``/``Infinity`` literal or a number too large for a float, in JSON text."""


def _refuse_constant(name: str) -> float:
    raise _NonFiniteNumber(f"expected a finite number, found {name} (not valid JSON)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFiniteNumber(f"expected a finite number, found {text} (overflows a float)")
    return value


def iter_json_objects(path: str | Path, rows: BadRows) -> Iterator[tuple[int, dict]]:
    """Yield ``(line, object)`` for each non-blank line of a JSONL file that is an object.

    ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's json accepts but JSON does not)
    and numbers that overflow a float are bad rows, not values.
    """
    for line, text in iter_lines(path, rows):
        if not text.strip():
            continue
        try:
            obj = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        except _NonFiniteNumber as exc:
            rows.bad(line, str(exc))
            continue
        except (json.JSONDecodeError, RecursionError) as exc:
            rows.bad(line, f"expected a JSON object, found invalid JSON ({exc})")
            continue
        if not isinstance(obj, dict):
            rows.bad(line, f"expected a JSON object, found {type(obj).__name__}")
            continue
        yield line, obj


def json_fields(
    rows: BadRows, line: int, obj: dict, fields: Sequence[str], allow_empty: Sequence[str] = ()
) -> dict[str, str | list[str]] | None:
    """Pick ``fields`` from one JSON object as strings or lists of strings, or report why not."""
    missing = [f for f in fields if f not in obj]
    if missing:
        rows.bad(line, f"expected fields {list(fields)}, missing {missing}")
        return None
    record = {f: _json_value(obj[f]) for f in fields}
    wrong = [f for f, v in record.items() if v is None]
    if wrong:
        rows.bad(
            line,
            f"expected a string, number or list for {wrong[0]!r}, "
            f"found {type(obj[wrong[0]]).__name__}",
        )
        return None
    empty = [
        f
        for f, v in record.items()
        if f not in allow_empty and (not v or (isinstance(v, str) and not v.strip()))
    ]
    if empty:
        rows.bad(line, f"expected non-empty {empty[0]!r}, found an empty value")
        return None
    return record  # type: ignore[return-value]


def read_jsonl(
    path: str | Path,
    fields: Sequence[str],
    *,
    allow_empty: Sequence[str] = (),
    skip_bad: bool = False,
) -> Records[dict[str, str | list[str]]]:
    """Read chosen fields of a JSON-lines file (one JSON object per line).

    Values must be strings, numbers (returned as strings) or lists of them (returned as
    lists of strings). Blank lines are ignored.

    Args:
        path: The file.
        fields: Keys to return from each object, e.g. ``["text", "label"]``.
        allow_empty: Fields that may be empty.
        skip_bad: Skip bad lines instead of raising.
    """
    rows = BadRows(path, skip_bad)
    records = []
    for line, obj in iter_json_objects(path, rows):
        record = json_fields(rows, line, obj, fields, allow_empty)
        if record is not None:
            records.append(record)
    return rows.result(records)


def read_columns(path: str | Path, columns: Sequence[str], what: str = "file") -> list[list[str]]:
    """The values of ``columns`` in every row of a CSV/TSV (header line) or JSONL file, one
    list per column; a missing file is an error naming it as ``what``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such {what}: {path}")
    if path.suffix.lower() in (".jsonl", ".json"):
        records = read_jsonl(path, columns)
    else:
        records = read_table(path, columns)
    return [[str(r[c]) for r in records] for c in columns]
