"""The ``pianoroll`` task: polyphonic music (Bach chorales) as piano rolls, next-frame NLL.

Every piece of a JSONL file of score records (``bach-chorales``, or files of the same
records: ``{"parts": {name: [[midi or -1, quarter_length], ...]}}``, read by
:func:`~rnnkit.data.readers.music.read_score_records`) becomes a piano roll sampled every
``frame`` quarter notes (:mod:`rnnkit.data.music_io`), and a :class:`PianoRollModel`
predicts each frame from the ones before::

    [task]
    dataset = "bach-chorales"   # split 60/20/20 by tune (docs: rnnkit data info bach-chorales)
    frame = 0.5                 # eighths; 1.0 is the resolution of JSB Chorales' results
    transpose = 6               # training pieces also in every key -6..+6 semitones away

The pitch range is the training split's, widened by ``transpose`` on both sides so every
transposed piece fits; validation and test pieces are never transposed. The metric is the
model's loss: negative log-likelihood per frame in nats (summed over pitches), the measure
published for JSB Chorales. Baselines on the same rolls (``rnnkit evaluate`` prints them):

    marginal   each pitch on with its training frequency, independently of the past
    repeat     w * (previous frame) + (1 - w) * marginal, w fitted on the validation split

The codec (:class:`~rnnkit.data.codec.PianoRollCodec`) writes a generated text of frames as
MIDI, MusicXML and a piano-roll PNG: ``rnnkit generate RUN --length 64 --out song.mid``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch

from rnnkit.data.batches import SequenceBatch
from rnnkit.data.codec import PianoRollCodec
from rnnkit.data.readers.music import read_score_records
from rnnkit.models.pianoroll import PianoRollModel
from rnnkit.tasks._pairs import check_split_files, read_splits
from rnnkit.tasks.base import Task, TaskData

log = logging.getLogger(__name__)

__all__ = ["TASK", "PianoRollTaskConfig", "marginal_nll", "repeat_nll"]


@dataclass(frozen=True)
class PianoRollTaskConfig:
    dataset: str = "bach-chorales"  # a registered dataset of score records, or "" for files
    train: str = ""  # JSONL of score records (dataset = "")
    valid: str = ""  # validation file (required with train)
    test: str = ""  # test file (default: the validation file)
    frame: float = 0.5  # quarter notes per frame: 0.25 sixteenths, 0.5 eighths, 1.0 quarters
    transpose: int = 6  # also train on every transposition by -transpose..+transpose semitones
    riemenschneider_only: bool = True  # drop records whose "riemenschneider" list is empty
    # (bach-chorales: keep the 371 Riemenschneider chorales; records without the field stay)

    def __post_init__(self) -> None:
        if self.dataset and self.dataset != "bach-chorales":
            raise ValueError(f"dataset must be 'bach-chorales' or '' (files), got {self.dataset!r}")
        check_split_files(self)
        if not (self.frame > 0 and math.isfinite(self.frame)):
            raise ValueError(f"frame must be a quarter length > 0, got {self.frame!r}")
        if not 0 <= self.transpose <= 12:
            raise ValueError(f"transpose must be 0-12 semitones, got {self.transpose!r}")


def _kept(records: list[dict], cfg: PianoRollTaskConfig) -> list[dict]:
    if not cfg.riemenschneider_only:
        return records
    return [r for r in records if r.get("riemenschneider", [0])]


def make_codec(records: list[dict], cfg: PianoRollTaskConfig) -> PianoRollCodec:
    """The codec of the training pieces: their pitch range widened by ``transpose``."""
    pitches = [p for r in records for part in r["parts"].values() for p, _ in part if p >= 0]
    if not pitches:
        raise ValueError("the training split holds no note")
    low = max(min(pitches) - cfg.transpose, 0)
    high = min(max(pitches) + cfg.transpose, 127)
    names = {tuple(r["parts"]) for r in records}
    return PianoRollCodec(low, high - low + 1, cfg.frame, names.pop() if len(names) == 1 else ())


def rolls(records: list[dict], codec: PianoRollCodec, shifts: range = range(1)) -> list:
    """The roll (T, P) of every record at every shift (records first, then shifts)."""
    out = []
    for r in records:
        try:
            base = codec.roll(list(r["parts"].values()))
            out += [transposed(base, s) for s in shifts]
        except ValueError as e:
            raise ValueError(f"piece {r['id']!r}: {e}") from None
    return out


def transposed(roll: torch.Tensor, shift: int) -> torch.Tensor:
    """A roll (T, P) moved ``shift`` columns (semitones) up; a note moved off is an error."""
    if shift == 0:
        return roll
    p = roll.shape[1]
    off = roll[:, p - shift :] if shift > 0 else roll[:, :-shift]
    if abs(shift) >= p or bool(off.any()):
        raise ValueError(f"transposed by {shift:+d} semitones, a note leaves the pitch range")
    out = torch.zeros_like(roll)
    if shift > 0:
        out[:, shift:] = roll[:, : p - shift]
    else:
        out[:, :shift] = roll[:, -shift:]
    return out


def marginal(batch: SequenceBatch) -> torch.Tensor:
    """m_k (P,) float64: how often pitch k sounds in the frames of ``batch``, Laplace-smoothed
    ((count + 1) / (frames + 2))."""
    mask = batch.mask.unsqueeze(-1)  # (B, T, 1)
    on = (batch.targets & mask).sum((0, 1)).double()  # (P,)
    return (on + 1) / (batch.mask.sum().double() + 2)


def _bernoulli_nll(p: torch.Tensor, batch: SequenceBatch) -> float:
    """Mean over the frames of sum_k -log p(y_tk) for probabilities p (B, T, P) of pitch on."""
    y = batch.targets.double()
    p = p.clamp(1e-12, 1 - 1e-12)
    nll = -(y * p.log() + (1 - y) * (1 - p).log()).sum(-1)  # (B, T)
    return float((nll * batch.mask).sum() / batch.mask.sum())


def marginal_nll(m: torch.Tensor, batch: SequenceBatch) -> float:
    """NLL per frame of the independent-Bernoulli model p(y_tk = 1) = m_k."""
    return _bernoulli_nll(m.expand(batch.targets.shape), batch)


def repeat_nll(m: torch.Tensor, weight: float, batch: SequenceBatch) -> float:
    """NLL per frame of p(y_tk = 1) = w * y_(t-1)k + (1 - w) * m_k (m_k at the first frame)."""
    previous = batch.inputs.double()  # (B, T, P): frame t - 1, zeros before the first
    p = weight * previous + (1 - weight) * m
    p[:, 0] = m
    return _bernoulli_nll(p, batch)


def baselines(train: SequenceBatch, val: SequenceBatch, test: SequenceBatch) -> dict[str, float]:
    """The marginal and repeat baselines on validation and test (the weight w from a grid,
    by validation NLL)."""
    m = marginal(train)
    grid = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98]
    weight = min(grid, key=lambda w: repeat_nll(m, w, val))
    return {
        "marginal_val": marginal_nll(m, val),
        "marginal_test": marginal_nll(m, test),
        "repeat_val": repeat_nll(m, weight, val),
        "repeat_test": repeat_nll(m, weight, test),
        "repeat_weight": weight,
    }


def prepare(cfg: PianoRollTaskConfig, seed: int, codec: PianoRollCodec | None = None) -> TaskData:
    splits = {s: _kept(records, cfg) for s, records in read_splits(cfg, ".jsonl", _read).items()}
    if cfg.dataset == "bach-chorales" and "tune" not in splits["train"][0]:
        log.warning(
            "bach-chorales was fetched before its split by tune (60/20/20); this run uses the "
            "old 80/10/10 split by file: `rnnkit data fetch bach-chorales --force` remakes it"
        )
    for split, records in splits.items():
        if not records:
            raise ValueError(f"the {split} split holds no piece (task.riemenschneider_only?)")
    if codec is None:
        codec = make_codec(splits["train"], cfg)
    shifts = range(-cfg.transpose, cfg.transpose + 1)
    train = codec.batch(rolls(splits["train"], codec, shifts))
    val = codec.batch(rolls(splits["val"], codec))
    test = codec.batch(rolls(splits["test"], codec))
    return TaskData(
        train=train,
        val=val,
        test=test,
        codec=codec,
        fixed={"pitches": codec.pitches},
        baseline=baselines(train, val, test),
        config=cfg,
    )


def _read(path: Any) -> list[dict]:
    return read_score_records(path)


def read_file(cfg: PianoRollTaskConfig, path: str, codec: PianoRollCodec) -> SequenceBatch:
    """The pieces of a JSONL file of score records, for ``rnnkit evaluate --data``: every
    record of the file (the dataset's Riemenschneider filter is for its own records)."""
    records = read_score_records(path)
    if not records:
        raise ValueError(f"{path}: holds no score record")
    return codec.batch(rolls(records, codec))


def init_model(model: PianoRollModel, data: TaskData, cfg: Any, seed: int) -> None:
    """Start the output biases at the log-odds of each pitch's training frequency, so the
    first steps learn the music rather than how rare most pitches are."""
    m = marginal(data.train)
    with torch.no_grad():
        model.head.bias.copy_((m / (1 - m)).log().to(model.head.bias.dtype))


TASK = Task(
    "pianoroll",
    "polyphonic music as piano rolls, an independent sigmoid per pitch (Bach chorales)",
    PianoRollTaskConfig,
    PianoRollModel,
    prepare,
    fixed=("pitches",),
    aliases=("chorales",),
    init_model=init_model,
    read_file=read_file,
)
