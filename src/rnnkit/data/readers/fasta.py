"""FASTA sequences (DNA, RNA, protein).

A record is a ``>`` header line (identifier, then an optional description after the first
space) followed by one or more sequence lines::

    >seq1 class=EI
    ACGTACGT
    ACG

Sequence letters are upper-cased; letters outside ``alphabet`` are errors naming the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.errors import BadRows, Records, iter_lines

DNA = "ACGTN"  # the four bases and N for unknown
IUPAC_DNA = "ACGTURYKMSWBDHVN-"  # IUPAC nucleotide codes and gap
PROTEIN = "ACDEFGHIKLMNPQRSTVWYBZXUO*-"  # amino acids, ambiguity codes, stop and gap


@dataclass(frozen=True)
class FastaRecord:
    """One FASTA entry."""

    id: str  # first word of the header
    description: str  # rest of the header ("" if none)
    sequence: str  # (L,) upper-case letters
    line: int  # 1-based line of the header


def read_fasta(
    path: str | Path, *, alphabet: str = IUPAC_DNA, skip_bad: bool = False
) -> Records[FastaRecord]:
    """Read a FASTA file.

    Args:
        path: The file.
        alphabet: Allowed sequence letters (upper case); see :data:`DNA`, :data:`PROTEIN`.
        skip_bad: Skip bad records (empty sequence, a header without an identifier, letters
            outside the alphabet, sequence lines before the first header) instead of raising.
    """
    rows = BadRows(path, skip_bad)
    allowed = set(alphabet.upper())
    records: list[FastaRecord] = []
    header: tuple[int, str, str] | None = None
    parts: list[str] = []
    broken = False

    def close() -> None:
        if header is None or broken:
            return
        if not parts:
            rows.bad(header[0], f"expected sequence lines after header >{header[1]}, found none")
            return
        records.append(FastaRecord(header[1], header[2], "".join(parts), header[0]))

    for line, text in iter_lines(path, rows):
        text = text.strip()
        if not text or text.startswith(";"):
            continue
        if text.startswith(">"):
            close()
            name, _, description = text[1:].strip().partition(" ")
            header, parts, broken = (line, name, description.strip()), [], False
            if not name:
                rows.bad(line, "expected an identifier after '>', found none")
                broken = True
            continue
        if header is None:
            rows.bad(line, "expected a '>' header line before sequence data")
            continue
        if broken:
            continue
        letters = text.upper().replace(" ", "")
        wrong = sorted(set(letters) - allowed)
        if wrong:
            rows.bad(line, f"expected letters from {alphabet!r}, found {''.join(wrong)!r}")
            broken = True
            continue
        parts.append(letters)
    close()
    return rows.result(records)


def write_fasta(path: str | Path, records: list[tuple[str, str, str]], width: int = 60) -> None:
    """Write ``(id, description, sequence)`` triples as FASTA, ``width`` letters a line."""
    with open(path, "w", encoding="utf-8") as f:
        for name, description, sequence in records:
            f.write(f">{name} {description}".rstrip() + "\n")
            for i in range(0, len(sequence), width):
                f.write(sequence[i : i + width] + "\n")
