"""Music from the music21 corpus: Bach chorales (MusicXML) and Essen folk melodies (ABC).

Both are parsed with music21 (through :func:`rnnkit.data.readers.read_scores`) into note
events ``[pitch, quarter_length]`` with pitch the MIDI number or -1 for a rest.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rnnkit.data.datasets._write import write_jsonl, write_splits
from rnnkit.data.fetching import Artifact, list_members, read_member
from rnnkit.data.readers.music import Score, read_scores
from rnnkit.data.registry import DatasetInfo, register
from rnnkit.data.splits import group_split

MUSIC21 = Artifact(
    "pypi",
    "music21==10.5.1",
    "music21-10.5.1-py3-none-any.whl",
    "dc3309498c4c95cebdf8d4f20c868deb6b63bce1d929cad4f51a7ccc982987b1",
    ("--only-binary", ":all:"),
)
VOICES = ("Soprano", "Alto", "Tenor", "Bass")
LICENSE = (
    "music21 BSD-3-Clause; Bach chorales public domain; Essen: non-commercial "
    "distribution in music21 by permission (corpus/essenFolksong/license.txt)"
)
CUTHBERT = (
    "Michael Scott Cuthbert and Christopher Ariza, music21: a toolkit for "
    "computer-aided musicology and symbolic music data, ISMIR 2010"
)


def _scores(
    archive: Path, prefix: str, suffixes: tuple[str, ...], skip: tuple[str, ...] = ()
) -> list[Score]:
    scores = []
    with tempfile.TemporaryDirectory() as tmp:
        for member in list_members(archive, prefix):
            name = member.rsplit("/", 1)[-1]
            if not name.endswith(suffixes) or name.startswith(skip):
                continue
            path = Path(tmp) / name
            path.write_bytes(read_member(archive, member))
            scores.extend(read_scores(path))
    return scores


def _record(score: Score, parts: dict[str, list[tuple[int, float]]]) -> dict:
    return {
        "id": score.id,
        "title": score.title,
        "key": score.key,
        "time_signature": score.time_signature,
        "parts": {k: [[p, d] for p, d in v] for k, v in parts.items()},
    }


@register(
    DatasetInfo(
        name="bach-chorales",
        title="Bach four-part chorales (music21 corpus)",
        task="polyphonic/melodic sequence modelling, generation",
        artifacts=(MUSIC21,),
        inside="music21/corpus/bach/*.mxl and *.xml; scores with Soprano, Alto, Tenor and Bass "
        "parts are kept, other instrument parts dropped",
        size="405 four-voice harmonisations (the 371 Riemenschneider chorales among them)",
        license=LICENSE,
        citation=CUTHBERT,
        files="{train,valid,test}.jsonl: {id, title, key, time_signature, parts: {Soprano, Alto,"
        " Tenor, Bass: [[midi or -1, quarter_length], ...]}}",
        splits="seeded 80/10/10 by chorale (seed 0)",
    )
)
def convert_chorales(paths: dict[str, Path], out: Path) -> dict[str, int]:
    records = []
    for score in _scores(paths["music21"], "music21/corpus/bach/", (".mxl", ".xml")):
        if all(v in score.parts for v in VOICES):
            records.append(_record(score, {v: score.parts[v] for v in VOICES}))
    names = group_split([r["id"] for r in records], seed=0)
    return write_splits(out, records, names, ".jsonl", write_jsonl)


@register(
    DatasetInfo(
        name="essen-folk",
        title="Essen folk song melodies (music21 corpus, ABC)",
        task="melody language modelling, generation",
        artifacts=(MUSIC21,),
        inside="music21/corpus/essenFolksong/*.abc except the test*.abc samples",
        size="8,462 monophonic melodies, mostly German folk songs",
        license=LICENSE,
        citation="Helmut Schaffrath, The Essen Folksong Collection, ed. D. Huron, CCARH 1995; "
        + CUTHBERT,
        files="{train,valid,test}.jsonl: {id (collection-number), title, key, time_signature, "
        "parts: {melody: [[midi or -1, quarter_length], ...]}}",
        splits="seeded 80/10/10 by melody (seed 0)",
    )
)
def convert_essen(paths: dict[str, Path], out: Path) -> dict[str, int]:
    records = [
        _record(s, {"melody": next(iter(s.parts.values()))})
        for s in _scores(
            paths["music21"], "music21/corpus/essenFolksong/", (".abc",), skip=("test",)
        )
    ]
    names = group_split([r["id"] for r in records], seed=0)
    return write_splits(out, records, names, ".jsonl", write_jsonl)
