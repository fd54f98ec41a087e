"""The one error type for bad input data, and the bookkeeping for skipping bad rows.

Every reader in :mod:`rnnkit.data` raises :class:`DataFormatError` for input it cannot
use, whatever the format: a wrong column count, an empty text, a tag count different from
the token count, a malformed ``.ts`` header, undecodable bytes. The message names the
file, the line (1-based, when the format has lines) and what was expected::

    data/train.tsv:17: expected 2 columns (text, label), found 3

Readers take ``skip_bad``: with ``skip_bad=True`` a bad row is recorded instead of raised,
and the reader's result (a :class:`Records` list) carries the skipped errors, so callers
can report how many rows were dropped and why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

#: the largest finite float32: a number read beyond it would reach the model as inf
FLOAT32_MAX = 3.4028234663852886e38

T = TypeVar("T")

log = logging.getLogger(__name__)


class DataFormatError(ValueError):
    """Input that a reader cannot use.

    Args:
        path: The file that holds the bad input.
        line: 1-based line number of the bad row, or ``None`` when the format has no lines
            (a binary score, a whole-file problem).
        message: What was expected and what was found.
    """

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[type, tuple[str, int | None, str]]:
        return (type(self), (self.path, self.line, self.message))


class Records(list[T], Generic[T]):
    """A reader's result: a plain list of records plus the rows it skipped.

    Attributes:
        path: The file the records came from.
        skipped: One :class:`DataFormatError` per skipped row (empty unless the reader
            was called with ``skip_bad=True``).
    """

    def __init__(
        self,
        items: Iterable[T] = (),
        *,
        path: str | Path = "",
        skipped: list[DataFormatError] | None = None,
    ) -> None:
        super().__init__(items)
        self.path = str(path)
        self.skipped: list[DataFormatError] = list(skipped or [])

    @property
    def n_skipped(self) -> int:
        """Number of rows skipped as bad."""
        return len(self.skipped)


class BadRows:
    """Raises or records bad rows for one file, as ``skip_bad`` asks.

    Args:
        path: The file being read.
        skip_bad: Record bad rows instead of raising.
    """

    def __init__(self, path: str | Path, skip_bad: bool) -> None:
        self.path = Path(path)
        self.skip_bad = skip_bad
        self.skipped: list[DataFormatError] = []

    def error(self, line: int | None, message: str) -> DataFormatError:
        """Make the error for ``line`` without deciding what to do with it."""
        return DataFormatError(self.path, line, message)

    def bad(self, line: int | None, message: str) -> None:
        """Report a bad row: raise, or record it when skipping."""
        err = self.error(line, message)
        if not self.skip_bad:
            raise err
        self.skipped.append(err)

    def result(self, items: Iterable[T]) -> Records[T]:
        """Wrap ``items`` with the skipped rows, logging how many were skipped."""
        if self.skipped:
            log.warning(
                "skipped %d bad rows in %s (first: %s)",
                len(self.skipped),
                self.path,
                self.skipped[0],
            )
        return Records(items, path=self.path, skipped=self.skipped)


def read_bytes(path: str | Path) -> bytes:
    """Read a whole file, turning a missing or unreadable file into a DataFormatError."""
    try:
        return Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise DataFormatError(path, None, f"cannot read file: {exc.strerror}") from exc


def iter_lines(path: str | Path, rows: BadRows) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each line of a UTF-8 file, newline stripped.

    A line whose bytes are not valid UTF-8 is a bad row ("undecodable bytes"); a leading
    byte-order mark is dropped. Both ``\\n`` and ``\\r\\n`` endings are accepted.
    """
    data = read_bytes(path)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    raw_lines = data.split(b"\n")
    if raw_lines[-1] == b"":
        raw_lines.pop()
    for number, raw in enumerate(raw_lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            rows.bad(
                number, f"expected UTF-8 text, found undecodable bytes at column {exc.start + 1}"
            )
            continue
        yield number, text.removesuffix("\r")
