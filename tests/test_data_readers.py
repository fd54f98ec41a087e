"""Readers on small fixtures written here, in the formats users bring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.errors import DataFormatError
from rnnkit.data.readers import (
    read_conll,
    read_conllu,
    read_fasta,
    read_jsonl,
    read_lines,
    read_parallel,
    read_table,
    read_tagged_jsonl,
    read_text,
    read_ts,
    write_fasta,
    write_ts,
)


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_tsv_columns_by_name(tmp_path: Path) -> None:
    path = write(tmp_path / "r.tsv", "id\ttext\tlabel\n1\ta fine film\tpos\n2\tdull\tneg\n")
    rows = read_table(path, ["text", "label"])
    assert rows == [{"text": "a fine film", "label": "pos"}, {"text": "dull", "label": "neg"}]
    assert rows.n_skipped == 0


def test_csv_quoted_newline_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", '\ufefftext,label\n"two\nlines, here",1\nplain,0\n')
    assert read_table(path, ["label", "text"]) == [
        {"label": "1", "text": "two\nlines, here"},
        {"label": "0", "text": "plain"},
    ]


def test_wrong_column_count_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "r.tsv", "text\tlabel\nok\tpos\ntoo\tmany\tcols\nfine\tneg\n")
    with pytest.raises(DataFormatError) as info:
        read_table(path, ["text", "label"])
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: expected 2 columns")


def test_skip_bad_counts_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "r.tsv", b"text\tlabel\nok\tpos\n\tneg\nbad\xff\tneg\nfine\tneg\n")
    rows = read_table(path, ["text", "label"], skip_bad=True)
    assert [r["text"] for r in rows] == ["ok", "fine"]
    assert [e.line for e in rows.skipped] == [4, 3]
    assert "undecodable" in rows.skipped[0].message
    assert "empty" in rows.skipped[1].message


def test_missing_header_column(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "body,label\nx,1\n")
    with pytest.raises(DataFormatError, match=r"r\.csv:1: expected header columns.*'text'"):
        read_table(path, ["text", "label"])


def test_jsonl(tmp_path: Path) -> None:
    lines = [{"text": "good", "label": 1}, {"text": "bad", "label": 0, "extra": [1]}]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert read_jsonl(path, ["text", "label"]) == [
        {"text": "good", "label": "1"},
        {"text": "bad", "label": "0"},
    ]
    write(path, '{"text": "a", "label": 1}\n[1, 2]\n{"text": "", "label": 2}\n{"text": 1\n')
    with pytest.raises(DataFormatError, match=r":2: expected a JSON object, found list"):
        read_jsonl(path, ["text", "label"])
    rows = read_jsonl(path, ["text", "label"], skip_bad=True)
    assert len(rows) == 1 and [e.line for e in rows.skipped] == [2, 3, 4]


def test_plain_text_and_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", "First line\r\n\r\nsecond\n")
    assert read_text(path) == "First line\n\nsecond\n"
    assert read_lines(path) == ["First line", "second"]
    write(path, b"ok\n\xc3(\n")
    with pytest.raises(DataFormatError, match=r"t\.txt:2: expected UTF-8"):
        read_text(path)
    assert read_text(path, skip_bad=True) == "ok\n"


def test_parallel_tsv_and_two_files(tmp_path: Path) -> None:
    tsv = write(tmp_path / "p.tsv", "hello\thola\nthanks\tgracias\n")
    pairs = read_parallel(tsv)
    assert [(p.source, p.target) for p in pairs] == [("hello", "hola"), ("thanks", "gracias")]
    en = write(tmp_path / "a.en", "one\ntwo\nthree\n")
    es = write(tmp_path / "a.es", "uno\ndos\n")
    with pytest.raises(DataFormatError, match=r"a\.es:3: expected as many lines"):
        read_parallel(en, es)
    write(es, "uno\n\ntres\n")
    with pytest.raises(DataFormatError, match=r"a\.en:2: expected a non-empty target"):
        read_parallel(en, es)
    assert len(read_parallel(en, es, skip_bad=True)) == 2


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""


def test_conll_2003(tmp_path: Path) -> None:
    path = write(tmp_path / "train.txt", CONLL)
    sentences = read_conll(path, column_names=["token", "pos", "chunk", "ner"])
    assert [s.tokens for s in sentences] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert sentences[0].tags == ["B-ORG", "O", "B-MISC"]
    assert sentences[0].columns["pos"] == ["NNP", "VBZ", "JJ"]
    assert sentences[1].line == 7


def test_conll_missing_tag_is_error(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.txt", CONLL.replace("rejects VBZ B-VP O", "rejects VBZ B-VP"))
    with pytest.raises(DataFormatError, match=r"bad\.txt:4: expected 4 columns"):
        read_conll(path)
    assert len(read_conll(path, skip_bad=True)) == 1


CONLLU = """# sent_id = 1
# text = Dogs bark.
1-2\tDogs\t_\t_\t_\t_\t_\t_\t_\t_
1\tDogs\tdog\tNOUN\tNNS\t_\t2\tnsubj\t_\t_
2\tbark\tbark\tVERB\tVBP\t_\t0\troot\t_\tSpaceAfter=No
2.1\tx\tx\tX\t_\t_\t_\t_\t2:dep\t_
3\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_

"""


def test_conllu(tmp_path: Path) -> None:
    path = write(tmp_path / "s.conllu", CONLLU)
    [sentence] = read_conllu(path)
    assert sentence.forms == ["Dogs", "bark", "."]
    assert sentence.upos == ["NOUN", "VERB", "PUNCT"]
    assert sentence.heads == [2, 0, 2]
    assert sentence.comments == ["# sent_id = 1", "# text = Dogs bark."]
    write(path, CONLLU.replace("2\tbark\tbark\tVERB\tVBP\t_\t0", "2\tbark\tbark\tVERB\tVBP\t_\tx"))
    with pytest.raises(DataFormatError, match=r"s\.conllu:5: expected an integer HEAD"):
        read_conllu(path)


def test_tagged_jsonl_counts_must_agree(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.jsonl",
        '{"tokens": ["a", "b"], "tags": ["O", "O"]}\n{"tokens": ["a", "b"], "tags": ["O"]}\n',
    )
    with pytest.raises(DataFormatError, match=r"t\.jsonl:2: expected as many tags as tokens"):
        read_tagged_jsonl(path)
    assert [s.tokens for s in read_tagged_jsonl(path, skip_bad=True)] == [["a", "b"]]


def test_fasta_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.fasta"
    write_fasta(path, [("a", "class=ei", "ACGT" * 20), ("b", "", "ttga")], width=30)
    records = read_fasta(path)
    assert [(r.id, r.description, r.sequence) for r in records] == [
        ("a", "class=ei", "ACGT" * 20),
        ("b", "", "TTGA"),
    ]
    write(path, ">a\nACGT\nACXZ\n>b\nAC\n")
    with pytest.raises(DataFormatError, match=r"s\.fasta:3: expected letters .* found 'XZ'"):
        read_fasta(path)
    write(path, "ACGT\n>a\n>b\nAC\n")
    with pytest.raises(DataFormatError, match=r":1: expected a '>' header"):
        read_fasta(path)
    records = read_fasta(path, skip_bad=True)
    assert [r.id for r in records] == ["b"] and [e.line for e in records.skipped] == [1, 2]


TS = """# comment
@problemName Toy
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:4,5,6:up
7,8:9,10:down
"""


def test_ts_reads_time_major_arrays(tmp_path: Path) -> None:
    data = read_ts(write(tmp_path / "toy.ts", TS))
    assert data.problem_name == "Toy" and data.class_labels == ["up", "down"]
    assert data.labels == ["up", "down"] and data.dimensions == 2
    np.testing.assert_array_equal(data.series[0], [[1, 4], [2, 5], [3, 6]])  # (T, D)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("@dimensions 2", "@dimensions two"),
        ("@classLabel true up down", "@classLabel maybe"),
        ("@timeStamps false", "@timeStamps true"),
        ("@missing false", "@colour blue"),
    ],
)
def test_ts_malformed_header(tmp_path: Path, change: str, message: str) -> None:
    path = write(tmp_path / "bad.ts", TS.replace(change, message))
    with pytest.raises(DataFormatError, match=r"bad\.ts:\d+: expected"):
        read_ts(path)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("1,2,3:4,5:up", "same length"),
        ("1,2:3,4:sideways", "class label"),
        ("1,2,3:up", "2 dimensions"),
        ("1,x:2,3:up", "numbers"),
        ("1,?:2,3:up", "'?'"),
    ],
)
def test_ts_bad_case_names_line(tmp_path: Path, line: str, expected: str) -> None:
    path = write(tmp_path / "bad.ts", TS + line + "\n")
    with pytest.raises(DataFormatError, match=rf"bad\.ts:12: expected.*{expected}"):
        read_ts(path)
    assert len(read_ts(path, skip_bad=True).skipped) == 1


def test_ts_write_read_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    series = [rng.normal(size=(n, 3)).astype(np.float32) for n in (4, 7, 5)]
    series[1][2, 0] = np.nan
    write_ts(tmp_path / "x.ts", series, ["a", "b", "a"], problem_name="X")
    back = read_ts(tmp_path / "x.ts")
    assert back.labels == ["a", "b", "a"] and back.header["missing"] == "true"
    for got, want in zip(back.series, series, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_conll_metadata_comments_are_skipped_and_a_hash_token_kept(tmp_path):
    f = tmp_path / "c.conll"
    f.write_text("# sent_id = 1\n# text = I saw #\nI O\nsaw O\n# #\n\n# only = comment\n\n")
    [sentence] = read_conll(f)
    assert (sentence.tokens, sentence.tags) == (["I", "saw", "#"], ["O", "O", "#"])


def test_ts_round_trip_is_exact_in_float32(tmp_path):
    from rnnkit.data.readers import read_ts, write_ts

    rng = np.random.default_rng(0)
    series = [rng.standard_normal((50, 2)).astype(np.float32) for _ in range(20)]
    write_ts(tmp_path / "x.ts", series, ["a"] * 20, problem_name="x")
    back = read_ts(tmp_path / "x.ts").series
    assert all(np.array_equal(a, b) for a, b in zip(series, back, strict=True))  # 9 digits
