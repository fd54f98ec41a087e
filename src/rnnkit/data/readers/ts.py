"""UEA/UCR ``.ts`` time-series files (the sktime format), read and written.

A header of ``@key value`` lines, then ``@data`` and one case per line: the dimensions
separated by ``:``, the values of each dimension by ``,``, the class label (or regression
target) last::

    @problemName BasicMotions
    @univariate false
    @dimensions 2
    @equalLength true
    @seriesLength 3
    @classLabel true Walking Running
    @data
    0.1,0.2,0.3:1.0,1.1,1.2:Walking

Each case becomes an array of shape (T, D): time first, as RNN layers take it. ``?`` is a
missing value (NaN), allowed only with ``@missing true`` (which also lets ``nan`` stand for
one); ``inf`` and numbers beyond float32's range are always refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.data.errors import FLOAT32_MAX, BadRows, DataFormatError, iter_lines

_BOOL_KEYS = {"timestamps", "missing", "univariate", "equallength"}
_KEYS = _BOOL_KEYS | {
    "problemname",
    "dimensions",
    "serieslength",
    "classlabel",
    "targetlabel",
    "data",
}


@dataclass
class TsData:
    """The cases of one ``.ts`` file."""

    series: list[np.ndarray]  # N arrays, each (T_i, D) float32
    labels: list[str]  # (N,) class labels, or targets as strings for regression
    class_labels: list[str]  # the declared classes ([] for regression)
    problem_name: str = ""
    header: dict[str, str] = field(default_factory=dict)  # lower-cased key -> raw value
    skipped: list[DataFormatError] = field(default_factory=list)  # with skip_bad=True

    @property
    def dimensions(self) -> int:
        """D, the number of channels per time step."""
        return int(self.series[0].shape[1]) if self.series else 0


def _parse_header(path: Path, line: int, text: str, header: dict[str, str]) -> None:
    key, _, value = text[1:].strip().partition(" ")
    key, value = key.lower(), value.strip()
    if key not in _KEYS:
        raise DataFormatError(
            path, line, f"expected a .ts header key ({', '.join(sorted(_KEYS))}), found @{key}"
        )
    if key in _BOOL_KEYS | {"classlabel", "targetlabel"}:
        flag = value.split(" ")[0].lower()
        if flag not in {"true", "false"}:
            raise DataFormatError(
                path, line, f"expected 'true' or 'false' after @{key}, found {value!r}"
            )
    if key in {"dimensions", "serieslength"} and not (value.isdigit() and int(value) > 0):
        raise DataFormatError(
            path, line, f"expected a positive integer after @{key}, found {value!r}"
        )
    if key == "classlabel" and value.lower().startswith("true") and not value.split()[1:]:
        raise DataFormatError(path, line, "expected class labels after '@classLabel true'")
    if key == "timestamps" and value.lower() == "true":
        raise DataFormatError(
            path, line, "expected '@timeStamps false': timestamped .ts files are not supported"
        )
    header[key] = value


def _parse_case(
    text: str, header: dict[str, str], labelled: bool, dims: int | None
) -> tuple[np.ndarray, str]:
    """Parse one data line into ((T, D) array, label); ValueError says what was wrong."""
    parts = text.split(":")
    label = parts.pop().strip() if labelled else ""
    if labelled and not label:
        raise ValueError("expected a class label or target after the last ':', found none")
    if dims is not None and len(parts) != dims:
        raise ValueError(f"expected {dims} dimensions separated by ':', found {len(parts)}")
    missing_ok = header.get("missing", "false").lower() == "true"
    channels = []
    for d, part in enumerate(parts):
        values = [v.strip() for v in part.split(",")]
        if "?" in values and not missing_ok:
            raise ValueError(
                f"expected numbers in dimension {d + 1}, found '?' without '@missing true'"
            )
        try:
            numbers = [float("nan") if v == "?" else float(v) for v in values]
        except ValueError as exc:
            raise ValueError(
                f"expected comma-separated numbers in dimension {d + 1}: {exc}"
            ) from None
        for i, (v, x) in enumerate(zip(values, numbers, strict=True)):
            if math.isnan(x) and v != "?" and not missing_ok:
                raise ValueError(
                    f"expected a finite number at dimension {d + 1}, value {i + 1}, "
                    f"found {v!r} without '@missing true'"
                )
            if math.isinf(x) or (math.isfinite(x) and abs(x) > FLOAT32_MAX):
                raise ValueError(
                    f"expected a finite number at dimension {d + 1}, value {i + 1}, "
                    f"found {v!r} (infinite, or beyond float32's range)"
                )
        channels.append(numbers)
    lengths = {len(c) for c in channels}
    if len(lengths) != 1:
        raise ValueError(
            f"expected every dimension to have the same length, found lengths {sorted(lengths)}"
        )
    return np.asarray(channels, dtype=np.float32).T, label  # (T, D)


def read_ts(path: str | Path, *, skip_bad: bool = False) -> TsData:
    """Read a ``.ts`` file into (T, D) float32 arrays and labels.

    Args:
        path: The file.
        skip_bad: Skip bad data lines instead of raising. A malformed header is always
            an error.
    """
    path = Path(path)
    rows = BadRows(path, skip_bad)
    header: dict[str, str] = {}
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    for line, raw in iter_lines(path, rows):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if not in_data:
            if not text.startswith("@"):
                raise DataFormatError(
                    path, line, f"expected an @key header line or @data, found {text[:40]!r}"
                )
            _parse_header(path, line, text, header)
            in_data = text[1:].lower().startswith("data")
            if in_data:
                classes = header.get("classlabel", "false").split()[1:]
                labelled = bool(classes) or header.get("targetlabel", "").lower() == "true"
                dims = (
                    1
                    if header.get("univariate", "").lower() == "true"
                    else int(header["dimensions"])
                    if "dimensions" in header
                    else None
                )
            continue
        try:
            case, label = _parse_case(text, header, labelled, dims)
        except ValueError as exc:
            rows.bad(line, str(exc))
            continue
        if classes and label not in classes:
            rows.bad(line, f"expected a class label from {classes}, found {label!r}")
            continue
        length = header.get("serieslength")
        if (
            header.get("equallength", "").lower() == "true"
            and length
            and case.shape[0] != int(length)
        ):
            rows.bad(line, f"expected series of length {length}, found {case.shape[0]}")
            continue
        dims = dims or case.shape[1]
        series.append(case)
        labels.append(label)
    if not in_data:
        raise DataFormatError(path, None, "expected an @data line, found none")
    return TsData(
        series, labels, classes, header.get("problemname", ""), header, rows.result([]).skipped
    )


def write_ts(
    path: str | Path,
    series: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    problem_name: str,
    class_labels: Sequence[str] | None = None,
) -> None:
    """Write (T_i, D) arrays with class labels as a ``.ts`` file that :func:`read_ts` reads.

    Args:
        path: The output file.
        series: N arrays of shape (T_i, D), the same D for all.
        labels: N class labels (no spaces or colons).
        problem_name: The ``@problemName`` value (no spaces).
        class_labels: The declared classes, default: the sorted distinct labels.
    """
    if len(series) != len(labels):
        raise ValueError(f"series and labels differ in length: {len(series)} vs {len(labels)}")
    dims = {int(s.shape[1]) for s in series}
    if len(dims) != 1:
        raise ValueError(f"series must share one dimension D, found {sorted(dims)}")
    lengths = {int(s.shape[0]) for s in series}
    classes = list(class_labels) if class_labels is not None else sorted(set(labels))
    d = dims.pop()
    head = [
        f"@problemName {problem_name}",
        "@timeStamps false",
        f"@missing {'true' if any(np.isnan(s).any() for s in series) else 'false'}",
        f"@univariate {'true' if d == 1 else 'false'}",
    ]
    head += [f"@dimensions {d}"] if d > 1 else []
    head += [f"@equalLength {'true' if len(lengths) == 1 else 'false'}"]
    head += [f"@seriesLength {lengths.pop()}"] if len(lengths) == 1 else []
    head += [f"@classLabel true {' '.join(classes)}", "@data"]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(head) + "\n")
        for case, label in zip(series, labels, strict=True):
            dims_text = [
                ",".join("?" if np.isnan(v) else f"{v:.9g}" for v in case[:, j]) for j in range(d)
            ]
            f.write(":".join([*dims_text, label]) + "\n")
