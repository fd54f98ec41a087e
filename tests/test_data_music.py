"""Scores through music21: ABC written here, and the same tune as MIDI and MusicXML."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnkit.data.errors import DataFormatError
from rnnkit.data.readers import REST, read_scores

ABC = """X:1
T:Scale
M:4/4
L:1/4
K:G
G A B c | d2 z2 |]

X:2
T:Two
M:3/4
L:1/4
K:C
C E G | c3 |]
"""


def test_abc_collection_gives_one_score_per_tune(tmp_path: Path) -> None:
    path = tmp_path / "tunes.abc"
    path.write_text(ABC, encoding="utf-8")
    first, second = read_scores(path)
    assert first.id == "tunes-1" and first.title == "Scale" and first.time_signature == "4/4"
    assert first.key == "G major"
    [melody] = first.parts.values()
    assert melody == [(67, 1.0), (69, 1.0), (71, 1.0), (72, 1.0), (74, 2.0), (REST, 2.0)]
    assert [p for p, _ in next(iter(second.parts.values()))] == [60, 64, 67, 72]


@pytest.mark.parametrize("fmt", ["midi", "musicxml"])
def test_midi_and_musicxml_round_trip(tmp_path: Path, fmt: str) -> None:
    import music21

    source = tmp_path / "one.abc"
    source.write_text(ABC.split("\n\n")[0] + "\n", encoding="utf-8")
    out = tmp_path / ("one.mid" if fmt == "midi" else "one.musicxml")
    score = music21.converter.parse(str(source), forceSource=True, storePickle=False)
    score.write(fmt, fp=str(out))
    [score] = read_scores(out)
    pitches = [p for part in score.parts.values() for p, _ in part if p != REST]
    assert pitches == [67, 69, 71, 72, 74]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bad.mid", b"MThd\x00\x00\x00\x06garbage"),
        ("bad.musicxml", b"<score-partwise><part id='P1'><measure><note>"),
        ("bad.txt", b"X:1\n"),
    ],
)
def test_bad_scores_raise_the_one_error(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=name.replace(".", r"\.")):
        read_scores(path)


def test_humdrum_kern(tmp_path: Path) -> None:
    path = tmp_path / "tune.krn"
    path.write_text("**kern\n*M2/4\n=1\n4c\n4e\n=2\n2g\n==\n*-\n", encoding="utf-8")
    [score] = read_scores(path)
    assert [p for part in score.parts.values() for p, _ in part] == [60, 64, 67]
    assert score.time_signature == "2/4"
