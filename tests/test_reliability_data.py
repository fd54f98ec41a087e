"""Issue 18: no code from data files, no hang from a saved config, no NaN through a reader."""

from __future__ import annotations

import json
import os
import pickle
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.codec import TAGGING_PATTERN, TaggingCodec, TextCodec, codec_from_json
from rnnkit.data.errors import DataFormatError
from rnnkit.data.readers import read_jsonl, read_scores, read_tagged_jsonl, read_ts
from rnnkit.data.tokenizers import (
    DEFAULT_WORD_PATTERN,
    CharTokenizer,
    WordTokenizer,
    load_tokenizer,
    tokenizer_from_config,
)
from rnnkit.data.vocab import Vocab

# ---------------------------------------------------------------- music21's pickle cache

TUNE = "X:1\nT:Scale\nM:4/4\nL:1/4\nK:G\nG A B c | d2 z2 |]\n"
TUNE_PITCHES = [67, 69, 71, 72, 74]


class _Payload:
    """Unpickling this creates (opens for writing) the marker file: code run from data."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def _music21_pickle_path(score: Path) -> Path:
    """Where music21 looks for (and writes) the cached pickle of ``score``: the same
    function music21's converter uses, on the same cleaned path, in its scratch dir."""
    from music21 import common
    from music21.converter import PickleFilter

    fp = common.cleanpath(score, returnPathlib=True)
    return Path(PickleFilter(fp).getPickleFp(zipType="gz"))


def _score(tmp_path: Path) -> Path:
    path = tmp_path / "tune.abc"
    path.write_text(TUNE, encoding="utf-8")
    return path


def _pitches(scores: list) -> list[int]:
    return [p for s in scores for part in s.parts.values() for p, _ in part if p >= 0]


def _plant(score: Path, marker: Path) -> Path:
    """A malicious cache entry for ``score``, newer than it, in the format music21 thaws."""
    planted = _music21_pickle_path(score)
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_bytes(zlib.compress(pickle.dumps(_Payload(marker))))
    past = time.time() - 3600
    os.utime(score, (past, past))  # the score is older than the pickle: music21 would load it
    return planted


def test_planted_music21_pickle_is_never_loaded(tmp_path: Path) -> None:
    score = _score(tmp_path)
    marker = tmp_path / "pwned"
    planted = _plant(score, marker)
    try:
        assert planted.stat().st_mtime > score.stat().st_mtime
        scores = read_scores(score)
        assert not marker.exists(), "read_scores unpickled music21's cache file"
        assert _pitches(scores) == TUNE_PITCHES  # the real score, from its source
        assert [s.title for s in scores] == ["Scale"]
    finally:
        planted.unlink(missing_ok=True)


def test_planted_pickle_would_run_through_music21s_cache(tmp_path: Path) -> None:
    """The planted file is where music21 looks: its default parse runs the payload. This
    keeps the test above honest (it would pass vacuously if the pickle were misplaced)."""
    import music21

    score = _score(tmp_path)
    marker = tmp_path / "pwned"
    planted = _plant(score, marker)
    try:
        with pytest.raises(Exception):  # noqa: B017 - the payload is not a stream
            music21.converter.parse(str(score), format="abc")
        assert marker.exists()
    finally:
        planted.unlink(missing_ok=True)


def test_parsing_a_score_writes_no_music21_pickle(tmp_path: Path) -> None:
    score = _score(tmp_path)
    cache = _music21_pickle_path(score)
    cache.unlink(missing_ok=True)
    before = set(cache.parent.glob("m21-*.p*")) if cache.parent.exists() else set()
    assert _pitches(read_scores(score)) == TUNE_PITCHES
    assert not cache.exists(), f"read_scores left a pickle at {cache}"
    after = set(cache.parent.glob("m21-*.p*")) if cache.parent.exists() else set()
    # Other processes may share the scratch dir; none of the new files may be ours.
    new = {p for p in after - before if p.name == cache.name}
    assert not new


# ------------------------------------------------------- tokenizer patterns from a config

EVIL = "(a|a)+$"


def test_tokenizer_config_with_a_custom_pattern_is_refused_fast(tmp_path: Path) -> None:
    config = WordTokenizer().to_config() | {"pattern": EVIL}
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"pattern='\(a\|a\)\+\$'") as info:
        tokenizer_from_config(config)
    assert "not one of the patterns rnnkit writes" in str(info.value)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match=r"\(a\|a\)\+\$"):
        load_tokenizer(path)
    assert time.perf_counter() - start < 1.0


def test_codec_json_with_a_custom_pattern_is_refused(tmp_path: Path) -> None:
    from rnnkit.models import RecurrentModel, RecurrentModelConfig
    from rnnkit.training.checkpoint import load_codec, save_checkpoint

    codec = TextCodec(WordTokenizer(), Vocab.build([["good", "bad"]]), ("neg", "pos"))
    data = codec.to_json()
    data["tokenizer"]["pattern"] = EVIL
    # a complete, verified checkpoint whose codec.json holds the pattern (its manifest agrees:
    # whoever writes the files can write the checksums too)
    model = RecurrentModel(RecurrentModelConfig(hidden_size=2))
    save_checkpoint(tmp_path / "ckpt", model, codec=data)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"\(a\|a\)\+\$"):
        load_codec(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="not one of the patterns rnnkit writes"):
        codec_from_json(data)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("pattern", [[EVIL], 3, None])
def test_tokenizer_config_pattern_of_the_wrong_type_is_refused(pattern: object) -> None:
    with pytest.raises(ValueError, match="pattern="):
        tokenizer_from_config({"type": "word", "pattern": pattern})


def test_patterns_the_library_writes_still_round_trip() -> None:
    for tok in (
        WordTokenizer(),
        WordTokenizer(pattern=DEFAULT_WORD_PATTERN, lowercase=True),
        WordTokenizer(pattern=TAGGING_PATTERN),
        CharTokenizer(),
    ):
        again = tokenizer_from_config(tok.to_config())
        assert again.to_config() == tok.to_config()
    assert tokenizer_from_config({"type": "word"}).tokenize("Hi, Bob.") == ["Hi", ",", "Bob", "."]
    tagging = TaggingCodec(Vocab.build([["hi"]]), ("O",))
    assert codec_from_json(tagging.to_json()).tokenize("Hi, Bob.") == ["Hi", ",", "Bob", "."]


def test_a_custom_pattern_in_python_code_stays_allowed() -> None:
    tok = WordTokenizer(pattern=r"[a-z]+")
    assert tok.tokenize("ab cd1ef") == ["ab", "cd", "ef"]


# ------------------------------------------------------------- non-finite numbers in data

TS_HEAD = "@problemName P\n@univariate true\n@equalLength false\n@classLabel true a b\n"


def _ts(tmp_path: Path, rows: str, missing: bool | None = None) -> Path:
    head = TS_HEAD + ("" if missing is None else f"@missing {str(missing).lower()}\n")
    path = tmp_path / "x.ts"
    path.write_text(head + "@data\n" + rows, encoding="utf-8")
    return path


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "1e39"])
@pytest.mark.parametrize("missing", [None, False])
def test_ts_refuses_non_finite_numbers_without_missing(
    tmp_path: Path, value: str, missing: bool | None
) -> None:
    path = _ts(tmp_path, f"1,2,3:a\n0.5,{value},1:b\n", missing)
    with pytest.raises(DataFormatError, match="finite number") as info:
        read_ts(path)
    err = info.value
    assert err.path == str(path) and err.line == 7 + (missing is not None)
    assert "dimension 1, value 2" in err.message and repr(value) in err.message


@pytest.mark.parametrize("value", ["inf", "-inf", "1e999", "-1e39"])
def test_ts_refuses_infinity_even_with_missing(tmp_path: Path, value: str) -> None:
    path = _ts(tmp_path, f"1,{value},3:a\n", missing=True)
    with pytest.raises(DataFormatError, match=r"x\.ts:7: expected a finite number"):
        read_ts(path)


def test_ts_with_missing_takes_nan_and_question_mark_as_missing(tmp_path: Path) -> None:
    data = read_ts(_ts(tmp_path, "1,nan,3:a\n?,2,3e38:b\n", missing=True))
    assert np.isnan(data.series[0][1, 0]) and np.isnan(data.series[1][0, 0])
    assert np.isfinite(data.series[1][1:]).all()


def test_ts_skip_bad_skips_the_non_finite_row(tmp_path: Path) -> None:
    data = read_ts(_ts(tmp_path, "1,2,3:a\n1,inf,3:b\n4,5:b\n"), skip_bad=True)
    assert data.labels == ["a", "b"] and len(data.skipped) == 1
    assert data.skipped[0].line == 7


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_jsonl_refuses_nan_and_infinity_literals(tmp_path: Path, literal: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(
        f'{{"text": "fine", "label": 1}}\n{{"text": "x", "label": {literal}}}\n', "utf-8"
    )
    with pytest.raises(DataFormatError, match=rf"r\.jsonl:2: .*finite number.*{literal}"):
        read_jsonl(path, ["text", "label"])
    rows = read_jsonl(path, ["text", "label"], skip_bad=True)
    assert rows == [{"text": "fine", "label": "1"}] and rows.skipped[0].line == 2


def test_jsonl_refuses_numbers_that_overflow(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"text": "x", "label": 1e999}\n', "utf-8")
    with pytest.raises(DataFormatError, match=r"r\.jsonl:1: .*1e999"):
        read_jsonl(path, ["text", "label"])


def test_tagged_jsonl_refuses_nan_too(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"tokens": ["a"], "tags": ["O"], "score": NaN}\n', "utf-8")
    with pytest.raises(DataFormatError, match=r"t\.jsonl:1: .*NaN"):
        read_tagged_jsonl(path)


def test_jsonl_finite_numbers_and_strings_still_read(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"text": "NaN", "label": 2.5}\n{"text": "Infinity", "label": -1e300}\n')
    assert read_jsonl(path, ["text", "label"]) == [
        {"text": "NaN", "label": "2.5"},
        {"text": "Infinity", "label": "-1e+300"},
    ]


def test_csv_field_over_128_kib_is_read_and_one_over_the_limit_is_named(tmp_path: Path) -> None:
    from rnnkit.data.readers import table

    long_text = "word " * 40_000  # 200 kB: over Python's default csv limit of 128 KiB
    path = tmp_path / "docs.csv"
    path.write_text(f'text,label\n"{long_text}",pos\nshort,neg\n', encoding="utf-8")
    rows = table.read_table(path, ["text", "label"])
    assert [r["label"] for r in rows] == ["pos", "neg"] and len(rows[0]["text"]) > 131_072
    huge = tmp_path / "huge.csv"
    huge.write_text(f'text,label\n"{"x" * (table.FIELD_LIMIT + 10)}",pos\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match="longer than 16,777,216 characters"):
        table.read_table(huge, ["text", "label"])
