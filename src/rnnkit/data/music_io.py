"""Note events, piano rolls and score files: the conversions a music model needs.

A *part* is a list of note events ``(pitch, quarter_length)`` as the score readers give them
(:mod:`rnnkit.data.readers.music`): ``pitch`` is a MIDI number, or -1 for a rest. A *piano
roll* samples the parts of one piece every ``frame`` quarter notes (0.5: eighths)::

    roll[t, k] = 1  when some part sounds pitch low + k at time t * frame     (T, P) bool

so a note shorter than a frame that does not sound at a frame's start is lost, and a note
repeated in one part reads as one held note (the piano roll of Boulanger-Lewandowski et al.
2012 has both losses). :func:`roll_to_parts` reads a roll back into parts by rank: in every
frame the highest sounding pitch goes to the first part, the next to the second, and so on,
and equal pitches in successive frames of a part merge into one note. A chorale of four
voices that neither cross nor double one another comes back as it went in.

:func:`write_parts` writes parts as MIDI and MusicXML through music21 (imported on use only),
:func:`plot_pianoroll` a roll as a PNG through matplotlib (also on use only).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

REST = -1  # the pitch of a rest
Event = tuple[int, float]  # (MIDI pitch or REST, quarter length)

__all__ = ["REST", "frames", "parts_to_roll", "roll_to_parts", "write_parts"]

_EPS = 1e-6  # quarter notes: onsets closer than this to a frame's start count as on it


def frames(parts: Sequence[Sequence[Event]], frame: float) -> int:
    """T: the frames that cover the longest part (its last note's end, rounded up)."""
    if not frame > 0:
        raise ValueError(f"frame: expected a quarter length > 0, got {frame!r}")
    end = max((sum(d for _, d in part) for part in parts), default=0.0)
    return max(math.ceil(end / frame - _EPS), 0)


def parts_to_roll(
    parts: Sequence[Sequence[Event]], low: int, pitches: int, frame: float
) -> torch.Tensor:
    """The piano roll (T, P) bool of ``parts`` over MIDI pitches ``low`` .. ``low + P - 1``.

    Raises:
        ValueError: a note outside that range (naming its pitch, part and onset).
    """
    roll = np.zeros((frames(parts, frame), pitches), dtype=bool)  # (T, P)
    for index, part in enumerate(parts):
        onset = 0.0
        for pitch, duration in part:
            end = onset + duration
            if pitch != REST:
                k = pitch - low
                if not 0 <= k < pitches:
                    raise ValueError(
                        f"pitch {pitch} (part {index + 1}, quarter {onset:g}) is outside the "
                        f"piano roll's range {low}-{low + pitches - 1}"
                    )
                first = math.ceil(onset / frame - _EPS)  # frames whose start the note covers
                last = math.ceil(end / frame - _EPS)  # exclusive
                roll[first:last, k] = True
            onset = end
    return torch.from_numpy(roll)


def roll_to_parts(roll: torch.Tensor, low: int, frame: float) -> list[list[Event]]:
    """Parts read back from a roll (T, P), highest pitch of every frame in the first part.

    There are as many parts as the most pitches any frame holds (one, silent, for an empty
    roll); a part with no pitch in a frame rests there.
    """
    if roll.dim() != 2:
        raise ValueError(f"roll: expected (T, P), got shape {tuple(roll.shape)}")
    chords = [
        sorted((low + int(k) for k in torch.nonzero(row).flatten()), reverse=True)
        for row in roll.bool()
    ]
    voices = max((len(c) for c in chords), default=0) or 1
    parts: list[list[Event]] = []
    for v in range(voices):
        part: list[Event] = []
        for chord in chords:
            pitch = chord[v] if v < len(chord) else REST
            if part and part[-1][0] == pitch:
                part[-1] = (pitch, part[-1][1] + frame)  # held on
            else:
                part.append((pitch, frame))
        parts.append(part)
    return parts


def _music21_part(events: Sequence[Event], name: str):  # type: ignore[no-untyped-def]
    from fractions import Fraction

    from music21 import note, stream

    part = stream.Part()
    part.partName = name
    for pitch, duration in events:
        ql = Fraction(duration).limit_denominator(96)
        item = note.Rest(quarterLength=ql) if pitch == REST else note.Note(pitch, quarterLength=ql)
        part.append(item)
    return part


def write_parts(
    parts: Mapping[str, Sequence[Event]], path: str | Path, title: str = ""
) -> list[Path]:
    """Write named parts as a MIDI file at ``path`` and MusicXML beside it (same stem,
    ``.musicxml``); returns both paths. An empty part list is an error."""
    import music21

    if not parts or not any(parts.values()):
        raise ValueError("parts: expected at least one note or rest to write, got none")
    path = Path(path)
    logging.getLogger("music21").setLevel(logging.ERROR)
    score = music21.stream.Score()
    score.insert(0, music21.metadata.Metadata(title=title or path.stem))
    for name, events in parts.items():
        score.insert(0, _music21_part(events, name))
    path.parent.mkdir(parents=True, exist_ok=True)
    xml = path.with_suffix(".musicxml")
    score.write("midi", fp=str(path))
    score.write("musicxml", fp=str(xml))
    return [path, xml]


_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def note_name(midi: int) -> str:
    """``60`` -> ``"C4"`` (scientific pitch notation, middle C = C4)."""
    return f"{_NAMES[midi % 12]}{midi // 12 - 1}"


def plot_pianoroll(
    roll: torch.Tensor, low: int, frame: float, path: str | Path, title: str = ""
) -> Path:
    """Draw a roll (T, P), bool or probabilities in [0, 1], whose column k is MIDI pitch
    ``low + k`` and row t starts at quarter ``t * frame``, as a PNG at ``path``: pitch up,
    time (in quarter notes) to the right, C of every octave labelled.

    >>> plot_pianoroll(torch.eye(4, dtype=torch.bool), 60, 0.5, "roll.png")  # C4 D-flat4 ...
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = torch.as_tensor(roll).float()
    if r.dim() != 2:
        raise ValueError(f"roll: expected (T, P), got shape {tuple(r.shape)}")
    t, p = r.shape
    width = min(max(6.4, 0.05 * t * frame * 4), 16.0)
    fig, ax = plt.subplots(figsize=(width, 4.0))
    ax.imshow(
        r.T.numpy(),
        origin="lower",
        aspect="auto",
        cmap="Greys",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        extent=(0.0, t * frame, low - 0.5, low + p - 0.5),
    )
    cs = [m for m in range(low, low + p) if m % 12 == 0]
    ax.set_yticks(cs, [note_name(m) for m in cs])
    ax.set_xlabel("time (quarter notes)")
    ax.set_ylabel("pitch")
    ax.grid(True, axis="y", alpha=0.2)
    if title:
        ax.set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
