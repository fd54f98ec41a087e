"""Readers for the formats users have. Every one raises :class:`DataFormatError` on bad
input (or skips and counts bad rows with ``skip_bad=True``)."""

from rnnkit.data.readers.conll import (
    TaggedSentence,
    UDSentence,
    read_conll,
    read_conllu,
    read_tagged_jsonl,
)
from rnnkit.data.readers.fasta import DNA, IUPAC_DNA, PROTEIN, FastaRecord, read_fasta, write_fasta
from rnnkit.data.readers.music import REST, Score, read_scores
from rnnkit.data.readers.table import read_columns, read_jsonl, read_table
from rnnkit.data.readers.text import SentencePair, read_lines, read_parallel, read_text
from rnnkit.data.readers.ts import TsData, read_ts, write_ts

__all__ = [
    "DNA",
    "IUPAC_DNA",
    "PROTEIN",
    "REST",
    "FastaRecord",
    "Score",
    "SentencePair",
    "TaggedSentence",
    "TsData",
    "UDSentence",
    "read_columns",
    "read_conll",
    "read_conllu",
    "read_fasta",
    "read_jsonl",
    "read_lines",
    "read_parallel",
    "read_scores",
    "read_table",
    "read_tagged_jsonl",
    "read_text",
    "read_ts",
    "write_fasta",
    "write_ts",
]
