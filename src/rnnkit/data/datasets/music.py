"""Music from the music21 corpus: Bach chorales (MusicXML) and Essen folk melodies (ABC).

Both are parsed with music21 (through :func:`rnnkit.data.readers.read_scores`) into note
events ``[pitch, quarter_length]`` with pitch the MIDI number or -1 for a rest.

The chorales are split by tune, not by file: Bach harmonised many hymn melodies several
times ("O Haupt voll Blut und Wunden" five times among the 371 Riemenschneider chorales), so
a split by file would test on melodies the training split holds in another harmonisation.
Two harmonisations are one tune when they carry the same Riemenschneider title or their
soprano lines open with the same eight intervals (which also joins a melody sung to two
texts, "Herzlich tut mich verlangen" and "O Haupt voll Blut und Wunden"); whole tunes go to
one split, about 60/20/20 of the Riemenschneider chorales (seed 0). Every record names its
``tune`` and its ``riemenschneider`` numbers (empty for the harmonisations outside that
collection: instrumental variants and alternative versions, which join their tune's split).
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

from rnnkit.data.datasets._write import write_jsonl, write_splits
from rnnkit.data.fetching import Artifact, list_members, read_member
from rnnkit.data.readers.music import Score, read_scores
from rnnkit.data.registry import DatasetInfo, register
from rnnkit.data.splits import group_split

CHORALE_FRACTIONS = (0.6, 0.2, 0.2)  # train, valid, test: of the Riemenschneider chorales
INCIPIT = 8  # soprano intervals that identify a tune (4 at least are needed to use them)

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


def _record(score: Score, parts: dict[str, list[tuple[int, float]]], **extra: object) -> dict:
    return {
        "id": score.id,
        "title": score.title,
        "key": score.key,
        "time_signature": score.time_signature,
        "parts": {k: [[p, d] for p, d in v] for k, v in parts.items()},
        **extra,
    }


def riemenschneider() -> dict[str, tuple[list[int], str]]:
    """``"bwv269"`` -> (its Riemenschneider numbers, its title), from music21's table of the
    371 chorales (a BWV number under two Riemenschneider numbers lists both)."""
    from music21.corpus.chorales import ChoraleListRKBWV

    table = ChoraleListRKBWV()
    entries = {  # each index keeps the last of its duplicates (two chorales numbered R26)
        (e["riemenschneider"], e["bwv"]): e["title"]
        for index in (table.byRiemenschneider, table.byBWV, table.byKalmus, table.byTitle)
        for e in index.values()
    }
    out: dict[str, tuple[list[int], str]] = {}
    for (number, bwv), title in sorted(entries.items()):
        out.setdefault(f"bwv{bwv}", ([], title))[0].append(number)
    return out


def incipit(events: list[tuple[int, float]], n: int = INCIPIT) -> tuple[int, ...]:
    """The first ``n`` intervals (semitones) between the distinct successive pitches of a
    line, rests skipped: the same for a melody in any key and with repeated notes merged."""
    pitches: list[int] = []
    for pitch, _ in events:
        if pitch >= 0 and (not pitches or pitches[-1] != pitch):
            pitches.append(pitch)
    return tuple(b - a for a, b in itertools.pairwise(pitches))[:n]


def tunes(ids: list[str], sopranos: list[list], titles: dict[str, str]) -> list[str]:
    """The tune of each harmonisation: the groups of records joined by a shared title
    (``titles``: id -> title, when known) or a shared soprano incipit, each named by its
    first id in sorted order."""
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple, int] = {}
    for i, (sid, soprano) in enumerate(zip(ids, sopranos, strict=True)):
        keys = [("title", titles[sid])] if sid in titles else []
        line = incipit(soprano)
        if len(line) >= 4:
            keys.append(("incipit", line))
        for key in keys:
            j = first.setdefault(key, i)
            parent[root(i)] = root(j)
    names: dict[int, str] = {}
    for i in sorted(range(len(ids)), key=lambda i: ids[i]):
        names.setdefault(root(i), ids[i])
    return [names[root(i)] for i in range(len(ids))]


def chorale_splits(tune: list[str], in_collection: list[bool]) -> list[str]:
    """Whole tunes to train/valid/test, 60/20/20 of the collection's chorales (seed 0); a
    record outside the collection goes with its tune, or, when its tune has no chorale of
    the collection, to a split of those tunes made the same way."""
    core = [t for t, keep in zip(tune, in_collection, strict=True) if keep]
    split = dict(zip(core, group_split(core, CHORALE_FRACTIONS, seed=0), strict=True))
    rest = [t for t in tune if t not in split]
    split.update(zip(rest, group_split(rest, CHORALE_FRACTIONS, seed=0), strict=True))
    return [split[t] for t in tune]


@register(
    DatasetInfo(
        name="bach-chorales",
        title="Bach four-part chorales (music21 corpus)",
        task="polyphonic/melodic sequence modelling, generation",
        artifacts=(MUSIC21,),
        inside="music21/corpus/bach/*.mxl and *.xml; scores with Soprano, Alto, Tenor and Bass "
        "parts are kept, other instrument parts dropped",
        size="405 four-voice harmonisations: 351 of the 353 distinct scores of the 371 "
        "Riemenschneider chorales (bwv27.6 has five voices, bwv41.6 instrument-named parts), "
        "and 54 variants and chorales outside that collection",
        license=LICENSE,
        citation=CUTHBERT,
        files="{train,valid,test}.jsonl: {id, title, key, time_signature, parts: {Soprano, Alto,"
        " Tenor, Bass: [[midi or -1, quarter_length], ...]}, riemenschneider: [numbers], "
        "tune}",
        splits="seeded 60/20/20 of the Riemenschneider chorales by tune (seed 0): a melody "
        "harmonised several times, or sung to two texts, stays in one split",
    )
)
def convert_chorales(paths: dict[str, Path], out: Path) -> dict[str, int]:
    table = riemenschneider()
    scores = [
        score
        for score in _scores(paths["music21"], "music21/corpus/bach/", (".mxl", ".xml"))
        if all(v in score.parts for v in VOICES)
    ]
    ids = [s.id for s in scores]
    for key in [k for k in table if k not in ids]:  # bwv18.5-l is stored as bwv18.5-lz
        named = [sid for sid in ids if sid.startswith(key) and sid[len(key) :].isalpha()]
        if len(named) == 1 and named[0] not in table:
            table[named[0]] = table.pop(key)
    titles = {sid: table[sid][1] for sid in ids if sid in table}
    tune = tunes(ids, [s.parts["Soprano"] for s in scores], titles)
    records = [
        _record(
            score,
            {v: score.parts[v] for v in VOICES},
            riemenschneider=table.get(score.id, ([], ""))[0],
            tune=t,
        )
        for score, t in zip(scores, tune, strict=True)
    ]
    names = chorale_splits(tune, [sid in table for sid in ids])
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
