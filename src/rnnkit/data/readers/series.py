"""Labelled sequences for many-to-one classification, from the formats users have.

One reader for every file a sequence classifier trains on or predicts for::

    .ts                 UEA/UCR time series (read_ts): a (T, D) array per case, label last
    .fasta .fa .fna     FASTA (read_fasta): the letters of each record; the label from the
                        header's ``class=VALUE`` (``label_field`` names the key)
    .csv .tsv           columns ``sequence`` and ``label``: numbers, time steps separated by
                        spaces and the D features of a step by commas ("0.1,2 0.3,4": T = 2,
                        D = 2), or a string of symbols ("ACGTTG")
    .jsonl              fields ``sequence`` (a list of numbers, a list of lists (T, D), or a
                        string of symbols) and ``label``
    .npy                prediction only: one (T, D) or (T,) array, or (N, T, D) of N cases
                        (read without pickles)

Numbers become float32 arrays (T, D); symbols stay strings, one symbol per character. A file
holds one kind or the other: a row of the other kind is an error naming its line::

    found = read_series("train.ts")
    found.kind           # "frames"
    found.items[0].shape # (T, D)
    found.labels[:3]     # ['1', '1', '2']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.errors import FLOAT32_MAX, BadRows, DataFormatError
from rnnkit.data.readers.fasta import read_fasta
from rnnkit.data.readers.table import _csv_rows, _delimiter_for, iter_json_objects
from rnnkit.data.readers.ts import read_ts

__all__ = ["SERIES_SUFFIXES", "LabelledSeries", "read_series", "series_kind"]

FASTA_SUFFIXES = (".fasta", ".fa", ".fna", ".faa")
SERIES_SUFFIXES = (".ts", *FASTA_SUFFIXES, ".csv", ".tsv", ".jsonl", ".npy")


@dataclass
class LabelledSeries:
    """The cases of one file."""

    items: list  # N cases: (T, D) float32 arrays ("frames") or strings ("symbols")
    labels: list[str]  # N labels ("" for a file without labels)
    kind: str  # "frames" or "symbols"
    path: str = ""

    def __len__(self) -> int:
        return len(self.items)


def _numbers(text: str) -> np.ndarray | None:
    """ "0.1,2 0.3,4" -> (2, 2) float32; None when the text is not numbers."""
    steps = text.split()
    try:
        rows = [[float(v) for v in step.split(",")] for step in steps]
    except ValueError:
        return None
    if not rows or len({len(r) for r in rows}) != 1:
        return None
    return np.asarray(rows, dtype=np.float64)


def _checked(path: Path, line: int | None, x: np.ndarray, field: str) -> np.ndarray:
    """(T,) or (T, D) finite numbers within float32 -> (T, D) float32, or an error."""
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise DataFormatError(
            path, line, f"{field}: expected (T, D) numbers, found shape {tuple(x.shape)}"
        )
    if not np.isfinite(x).all() or float(np.abs(x).max()) > FLOAT32_MAX:
        raise DataFormatError(path, line, f"{field}: expected finite numbers, found NaN or inf")
    return x.astype(np.float32)


def _ragged_numbers(text: str) -> list[int] | None:
    """The sorted distinct widths of a text of comma-separated numbers whose steps differ in
    width ("1,2 3" -> [1, 2]); None for anything else."""
    steps = text.split()
    try:
        widths = sorted({len([float(v) for v in step.split(",")]) for step in steps})
    except ValueError:
        return None
    return widths if len(widths) > 1 else None


def _json_sequence(path: Path, line: int, value: object, field: str) -> np.ndarray | str:
    if isinstance(value, str):
        found = _numbers(value)
        if found is not None:
            return _checked(path, line, found, field)
        widths = _ragged_numbers(value)
        if widths is not None:  # numbers, but steps of several widths: not symbols
            raise DataFormatError(
                path,
                line,
                f"{field}: numbers, but the steps hold different counts of comma-separated "
                f"values ({', '.join(map(str, widths))}); every step needs the same features",
            )
        if not value.strip():
            raise DataFormatError(path, line, f"expected a non-empty {field!r}, found ''")
        return value.strip()
    if isinstance(value, list) and value:
        flat = value if not isinstance(value[0], list) else [v for row in value for v in row]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in flat):
            try:
                x = np.asarray(value, dtype=np.float64)
            except ValueError:
                x = np.empty(0)
            if x.ndim in (1, 2) and x.size:
                return _checked(path, line, x, field)
            raise DataFormatError(
                path, line, f"{field}: expected a list of numbers or of equal-length lists"
            )
    raise DataFormatError(
        path,
        line,
        f"expected {field!r} to be a string of symbols, a list of numbers or a list of "
        f"lists (T, D), found {type(value).__name__}",
    )


def _table(
    path: Path, sequence_column: str, label_column: str, labelled: bool
) -> list[tuple[int, object, str]]:
    rows = BadRows(path, False)
    out = []
    if path.suffix.lower() == ".jsonl":
        for line, obj in iter_json_objects(path, rows):
            if sequence_column not in obj:
                raise DataFormatError(path, line, f"expected a field {sequence_column!r}")
            label = obj.get(label_column, "")
            if labelled and (label_column not in obj or str(label).strip() == ""):
                raise DataFormatError(path, line, f"expected a non-empty {label_column!r}")
            item = _json_sequence(path, line, obj[sequence_column], sequence_column)
            out.append((line, item, str(label).strip()))
        return out
    header: list[str] | None = None
    for line, fields in _csv_rows(path, _delimiter_for(path, None), rows):
        if header is None:
            header = fields
            need = [sequence_column] + ([label_column] if labelled else [])
            missing = [c for c in need if c not in header]
            if missing:
                raise DataFormatError(
                    path, line, f"expected header columns {need}, missing {missing}"
                )
            continue
        if not fields:
            continue
        if len(fields) != len(header):
            raise DataFormatError(
                path, line, f"expected {len(header)} columns, found {len(fields)}"
            )
        value = fields[header.index(sequence_column)]
        label = fields[header.index(label_column)] if label_column in header else ""
        if labelled and not label.strip():
            raise DataFormatError(path, line, f"expected a non-empty {label_column!r}")
        out.append((line, _json_sequence(path, line, value, sequence_column), label.strip()))
    if header is None:
        raise DataFormatError(path, 1, "expected a header line, found an empty file")
    return out


def _fasta_label(description: str, field: str) -> str:
    for word in description.split():
        key, sep, value = word.partition("=")
        if sep and key == field:
            return value
    return ""


def _npy(path: Path) -> list[np.ndarray]:
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataFormatError(
            path, None, f"expected a .npy array of numbers (no pickled objects): {exc}"
        ) from None
    except OSError as exc:
        raise DataFormatError(path, None, f"cannot read a .npy array: {exc}") from None
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataFormatError(path, None, f"expected real numbers, found dtype {x.dtype}")
    if x.ndim in (1, 2):
        return [_checked(path, None, x.astype(np.float64), "array")]
    if x.ndim == 3:
        return [_checked(path, None, c.astype(np.float64), f"case {i}") for i, c in enumerate(x)]
    raise DataFormatError(path, None, f"expected (T,), (T, D) or (N, T, D), found {x.shape}")


def read_series(
    path: str | Path,
    *,
    sequence_column: str = "sequence",
    label_column: str = "label",
    label_field: str = "class",
    labelled: bool = True,
) -> LabelledSeries:
    """The cases of a ``.ts``, FASTA, CSV/TSV, JSONL or (``labelled=False``) ``.npy`` file.

    Args:
        path: The file; its suffix picks the format (module docstring).
        sequence_column: CSV/TSV column, JSONL field of the sequence.
        label_column: CSV/TSV column, JSONL field of the label.
        label_field: FASTA header key of the label (``>seq1 class=EI``).
        labelled: Require a label on every case (training, evaluation); False for prediction.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SERIES_SUFFIXES:
        raise DataFormatError(
            path, None, f"expected a file ending in one of {', '.join(SERIES_SUFFIXES)}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if suffix == ".npy":
        if labelled:
            raise DataFormatError(path, None, "a .npy array has no labels: give .ts, CSV or JSONL")
        arrays = _npy(path)
        return LabelledSeries(arrays, [""] * len(arrays), "frames", str(path))
    if suffix == ".ts":
        data = read_ts(path)
        series = [
            _checked(path, None, np.asarray(s, dtype=np.float64), f"case {i + 1}")
            for i, s in enumerate(data.series)
        ]
        return LabelledSeries(series, list(data.labels), "frames", str(path))
    if suffix in FASTA_SUFFIXES:
        records = read_fasta(path)
        labels = []
        for r in records:
            label = _fasta_label(r.description, label_field)
            if labelled and not label:
                raise DataFormatError(
                    path, r.line, f"expected '{label_field}=LABEL' in the header of {r.id}"
                )
            labels.append(label)
        return LabelledSeries([r.sequence for r in records], labels, "symbols", str(path))
    rows = _table(path, sequence_column, label_column, labelled)
    if not rows:
        raise DataFormatError(path, None, "expected at least one sequence, found none")
    kind = series_kind(rows[0][1])
    for line, item, _ in rows:
        if series_kind(item) != kind:
            raise DataFormatError(
                path,
                line,
                f"{sequence_column}: expected {kind} like the first row, found {series_kind(item)}",
            )
    if kind == "frames":
        dims = {item.shape[1] for _, item, _ in rows}  # type: ignore[union-attr]
        if len(dims) > 1:
            line = next(ln for ln, it, _ in rows if it.shape[1] != rows[0][1].shape[1])  # type: ignore[union-attr]
            raise DataFormatError(
                path, line, f"{sequence_column}: steps of different widths D in one file {dims}"
            )
    return LabelledSeries(
        [item for _, item, _ in rows], [label for _, _, label in rows], kind, str(path)
    )


def series_kind(item: object) -> str:
    """ "frames" for an array of numbers, "symbols" for a string."""
    return "symbols" if isinstance(item, str) else "frames"
