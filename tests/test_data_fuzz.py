"""Property tests: random bytes and broken files make every reader either succeed or raise
DataFormatError, never anything else."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.data.errors import DataFormatError
from rnnkit.data.readers import (
    read_conll,
    read_conllu,
    read_fasta,
    read_jsonl,
    read_lines,
    read_parallel,
    read_scores,
    read_table,
    read_tagged_jsonl,
    read_text,
    read_ts,
)
from rnnkit.data.representations import read_vectors

Reader = Callable[[Path, bool], object]

READERS: dict[str, tuple[str, Reader, bytes]] = {
    "csv": (
        ".csv",
        lambda p, s: read_table(p, ["text", "label"], skip_bad=s),
        b'text,label\n"a, b",1\nc,0\n',
    ),
    "tsv": (
        ".tsv",
        lambda p, s: read_table(p, ["text", "label"], skip_bad=s),
        b"text\tlabel\nab\t1\nc\t0\n",
    ),
    "jsonl": (
        ".jsonl",
        lambda p, s: read_jsonl(p, ["text", "label"], skip_bad=s),
        b'{"text": "a", "label": 1}\n{"text": "b", "label": "x"}\n',
    ),
    "text": (".txt", lambda p, s: read_text(p, skip_bad=s), b"line one\nline two\n"),
    "lines": (".txt", lambda p, s: read_lines(p, skip_bad=s), b"a\n\nb\n"),
    "parallel": (".tsv", lambda p, s: read_parallel(p, skip_bad=s), b"hi\thola\nyes\ts\xc3\xad\n"),
    "conll": (
        ".conll",
        lambda p, s: read_conll(p, skip_bad=s),
        b"-DOCSTART- O\n\nEU B-ORG\nsays O\n\nHe O\n",
    ),
    "conllu": (
        ".conllu",
        lambda p, s: read_conllu(p, skip_bad=s),
        b"# id = 1\n1\tA\ta\tDET\t_\t_\t2\tdet\t_\t_\n2\tb\tb\tNOUN\t_\t_\t0\troot\t_\t_\n",
    ),
    "tagged": (
        ".jsonl",
        lambda p, s: read_tagged_jsonl(p, skip_bad=s),
        b'{"tokens": ["a", "b"], "tags": ["O", "B-X"]}\n',
    ),
    "fasta": (".fasta", lambda p, s: read_fasta(p, skip_bad=s), b">s1 x\nACGT\nAC\n>s2\nTT\n"),
    "ts": (
        ".ts",
        lambda p, s: read_ts(p, skip_bad=s),
        b"@problemName T\n@univariate false\n@dimensions 2\n@equalLength false\n"
        b"@classLabel true a b\n@data\n1,2:3,4:a\n5:6:b\n",
    ),
    "vectors": (
        ".vec",
        lambda p, s: read_vectors(p, skip_bad=s),
        b"2 3\nthe 1 2 3\na 0.5 -1 2e3\n",
    ),
}


def run(name: str, content: bytes, skip_bad: bool) -> None:
    suffix, reader, _ = READERS[name]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(content)
        try:
            reader(path, skip_bad)
        except DataFormatError as exc:
            assert str(path) in str(exc)


def mutate(seed: bytes, data: st.DataObject) -> bytes:
    """Delete, insert or replace a few bytes of a valid file, or truncate it."""
    content = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["delete", "insert", "replace", "truncate"]))
        at = data.draw(st.integers(0, max(len(content) - 1, 0)))
        if op == "delete" and content:
            del content[at]
        elif op == "insert":
            content[at:at] = data.draw(
                st.sampled_from(
                    [b"\t", b"\n", b",", b":", b'"', b"\xff", b"\x00", b">", b"@", b"?", b"#", b"x"]
                )
            )
        elif op == "replace" and content:
            content[at] = data.draw(st.integers(0, 255))
        elif op == "truncate":
            del content[at:]
    return bytes(content)


FUZZ = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
NAMES = pytest.mark.parametrize("name", sorted(READERS))


@NAMES
@FUZZ
@given(content=st.binary(max_size=300), skip_bad=st.booleans())
def test_random_bytes(name: str, content: bytes, skip_bad: bool) -> None:
    run(name, content, skip_bad)


@NAMES
@FUZZ
@given(data=st.data(), skip_bad=st.booleans())
def test_broken_files(name: str, data: st.DataObject, skip_bad: bool) -> None:
    run(name, mutate(READERS[name][2], data), skip_bad)


@NAMES
@FUZZ
@given(data=st.data())
def test_text_like_random_input(name: str, data: st.DataObject) -> None:
    pieces = st.sampled_from(
        [
            "\t",
            "\n",
            ",",
            ":",
            '"',
            "a",
            "1",
            "@data",
            "@dimensions 2",
            ">",
            "-DOCSTART-",
            "{",
            "}",
            "[",
            "]",
            " ",
            "é",
            "?",
        ]
    )
    text = "".join(data.draw(st.lists(pieces, max_size=60)))
    run(name, text.encode("utf-8"), data.draw(st.booleans()))


@settings(max_examples=15, deadline=None)
@given(suffix=st.sampled_from([".abc", ".mid", ".musicxml"]), content=st.binary(max_size=200))
def test_scores_random_bytes(suffix: str, content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"score{suffix}"
        path.write_bytes(content)
        try:
            read_scores(path)
        except DataFormatError as exc:
            assert str(path) in str(exc)
