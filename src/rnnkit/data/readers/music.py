"""Music scores through music21: MusicXML, MIDI, ABC, Humdrum (``**kern``).

A score becomes, per part, a sequence of note events ``(pitch, duration)``: ``pitch`` is
the MIDI number of a note (the top note of a chord) or ``-1`` for a rest, ``duration`` is
in quarter notes. That sequence is what a melody language model consumes. A file holding
several pieces (an ABC collection) gives several :class:`Score` objects.

Scores are always parsed from their source: music21's pickle cache in its scratch
directory is neither read nor written, so no file there can run code in rnnkit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.errors import DataFormatError, read_bytes

REST = -1  # pitch value of a rest

_FORMATS = {
    ".xml": "musicxml",
    ".musicxml": "musicxml",
    ".mxl": "musicxml",
    ".mid": "midi",
    ".midi": "midi",
    ".abc": "abc",
    ".krn": "humdrum",
}
SCORE_SUFFIXES = tuple(_FORMATS)


@dataclass(frozen=True)
class Score:
    """One piece as note events per part."""

    id: str  # file stem, plus the tune number inside a collection
    title: str
    key: str  # e.g. "G major", "" when the score states none
    time_signature: str  # e.g. "3/4", "" when none
    parts: dict[str, list[tuple[int, float]]]  # part name -> (pitch, quarter length) events


def _events(part: object) -> list[tuple[int, float]]:
    events = []
    for item in part.flatten().notesAndRests:  # type: ignore[attr-defined]
        duration = float(item.quarterLength)
        if duration <= 0:
            continue  # grace notes
        if item.isRest:
            events.append((REST, duration))
        elif item.isChord:
            events.append((max(p.midi for p in item.pitches), duration))
        else:
            events.append((int(item.pitch.midi), duration))
    return events


def _score(stream: object, sid: str) -> Score:
    from music21 import key, meter

    keys = stream.recurse().getElementsByClass(key.KeySignature)  # type: ignore[attr-defined]
    first_key = keys.first() if keys else None
    key_name = ""
    if first_key is not None:
        k = first_key if isinstance(first_key, key.Key) else first_key.asKey()
        key_name = f"{k.tonic.name} {k.mode}"
    metres = stream.recurse().getElementsByClass(meter.TimeSignature)  # type: ignore[attr-defined]
    metre = metres.first().ratioString if metres else ""
    title = (stream.metadata.title or "") if stream.metadata else ""  # type: ignore[attr-defined]
    parts = getattr(stream, "parts", None)
    if parts:
        named = {}
        for index, part in enumerate(parts):
            name = part.partName or f"part{index + 1}"
            named[name if name not in named else f"{name}{index + 1}"] = _events(part)
    else:
        named = {"melody": _events(stream)}
    return Score(sid, title, key_name, metre, named)


def read_scores(path: str | Path) -> list[Score]:
    """Read every piece in a score file.

    Args:
        path: A MusicXML (``.xml``, ``.musicxml``, ``.mxl``), MIDI (``.mid``), ABC
            (``.abc``) or Humdrum (``.krn``) file.

    Raises:
        DataFormatError: The file is not a score music21 can read, or holds no notes.
    """
    import music21

    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataFormatError(
            path,
            None,
            f"expected a score file ({', '.join(_FORMATS)}), found suffix {path.suffix!r}",
        )
    read_bytes(path)
    logging.getLogger("music21").setLevel(logging.ERROR)
    try:
        # forceSource=True: never load music21's pickle cache (``<scratch>/m21-*.p.gz``),
        # which anyone who can write the scratch dir could fill with code to run;
        # storePickle=False: never write one either. parseFile, not parse: a path is never
        # sniffed as inline data or a URL.
        parsed = music21.converter.parseFile(path, format=fmt, forceSource=True, storePickle=False)
    except Exception as exc:  # music21 raises many unrelated types for bad input
        raise DataFormatError(
            path, None, f"expected a valid {fmt} score: {type(exc).__name__}: {exc}"
        ) from exc
    pieces = list(parsed.scores) if isinstance(parsed, music21.stream.Opus) else [parsed]
    scores = []
    for index, piece in enumerate(pieces):
        number = piece.metadata.number if piece.metadata and piece.metadata.number else index + 1
        sid = path.stem if len(pieces) == 1 else f"{path.stem}-{number}"
        score = _score(piece, sid)
        if any(score.parts.values()):
            scores.append(score)
    if not scores:
        raise DataFormatError(path, None, "expected at least one note, found none")
    return scores


def _events_ok(events: object) -> bool:
    return isinstance(events, list) and all(
        isinstance(e, list)
        and len(e) == 2
        and isinstance(e[0], int)
        and not isinstance(e[0], bool)
        and -1 <= e[0] <= 127
        and isinstance(e[1], int | float)
        and not isinstance(e[1], bool)
        and e[1] > 0
        for e in events
    )


def read_score_records(path: str | Path) -> list[dict]:
    """The pieces of a JSONL file as the music datasets write them, one object per line:
    ``{"id": ..., "parts": {name: [[midi or -1, quarter_length], ...], ...}, ...}``.

    Each record keeps its other fields (title, key, tune, ...); its parts become lists of
    ``(pitch, quarter_length)`` tuples.

    Raises:
        DataFormatError: a line that is no such object (naming file and line), or no piece.
    """
    from rnnkit.data.errors import BadRows
    from rnnkit.data.readers.table import iter_json_objects

    rows = BadRows(path, skip_bad=False)
    records = []
    for line, obj in iter_json_objects(path, rows):
        parts = obj.get("parts")
        if not (isinstance(parts, dict) and parts and all(map(_events_ok, parts.values()))):
            rows.bad(
                line,
                "field 'parts': expected {name: [[pitch (MIDI 0-127, -1 for a rest), "
                "quarter_length > 0], ...]} with at least one part",
            )
        if not any(parts.values()):
            rows.bad(line, "field 'parts': expected at least one note or rest")
        obj["id"] = str(obj.get("id", f"line{line}"))
        obj["parts"] = {str(k): [(int(p), float(d)) for p, d in v] for k, v in parts.items()}
        records.append(obj)
    if not records:
        raise DataFormatError(path, None, "expected at least one piece, found none")
    return records
