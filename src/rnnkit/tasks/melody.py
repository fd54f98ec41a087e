"""The ``melody`` task: monophonic melodies (Essen folk songs) as event tokens, a language model.

Every melody of a JSONL file of score records (``essen-folk``, or files of the same records,
:func:`~rnnkit.data.readers.music.read_score_records`) becomes a row of note-event tokens,
pitch and duration in one (:class:`~rnnkit.data.tokenizers.MusicTokenizer`: ``p67_1.0``,
``r_0.5``), framed by ``<bos>`` and ``<eos>``; a :class:`~rnnkit.models.melody.MelodyModel`
(the language model, one melody per row) predicts each next event::

    [task]
    dataset = "essen-folk"      # 8,462 melodies, split 80/10/10 by melody

The metric is the loss: negative log-likelihood per event in nats, the end of the melody
counted as one event. The baseline (``rnnkit evaluate`` prints it) is the Markov chain of
order n = 1, 2, 3 on the same tokens: the next event given the n before it, with interpolated
Kneser-Ney smoothing (:class:`KneserNey`). An event of a validation or test melody that the
training split never holds is ``<unk>`` for both.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rnnkit.data.batches import SequenceBatch
from rnnkit.data.codec import MelodyCodec
from rnnkit.data.readers.music import read_score_records
from rnnkit.data.tokenizers import MusicTokenizer
from rnnkit.data.vocab import Vocab
from rnnkit.models.melody import MelodyModel
from rnnkit.ngram import KneserNey
from rnnkit.tasks._pairs import check_split_files, read_splits
from rnnkit.tasks.base import Task, TaskData

__all__ = ["TASK", "KneserNey", "MelodyTaskConfig"]


@dataclass(frozen=True)
class MelodyTaskConfig:
    dataset: str = "essen-folk"  # a registered dataset of score records, or "" for files
    train: str = ""  # JSONL of score records (dataset = "")
    valid: str = ""  # validation file (required with train)
    test: str = ""  # test file (default: the validation file)
    part: str = ""  # the part that holds the melody ("": each record's first part)
    max_vocab: int = 5000  # most event tokens, the four specials included
    min_freq: int = 1  # events seen fewer times in training become <unk>

    def __post_init__(self) -> None:
        if self.dataset and self.dataset != "essen-folk":
            raise ValueError(f"dataset must be 'essen-folk' or '' (files), got {self.dataset!r}")
        check_split_files(self)
        if self.max_vocab < 5:
            raise ValueError(f"max_vocab must be >= 5, got {self.max_vocab}")
        if self.min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {self.min_freq}")


def _melodies(records: list[dict], part: str, where: str) -> list[list[tuple[int, float]]]:
    out = []
    for r in records:
        if part and part not in r["parts"]:
            raise ValueError(f"task.part={part!r}: {where} piece {r['id']!r} has no such part")
        events = r["parts"][part] if part else next(iter(r["parts"].values()))
        if events:
            out.append(events)
    return out


_token = functools.lru_cache(maxsize=65536)(MusicTokenizer.token)  # few distinct events


def tokens(melody: Sequence[tuple[int, float]]) -> list[str]:
    """``[(67, 1.0), (-1, 0.5)]`` -> ``["p67_1.0", "r_0.5"]``."""
    return [_token(p, d) for p, d in melody]


def batch(codec: MelodyCodec, melodies: Sequence[Sequence[str]]) -> SequenceBatch:
    """Rows ``<bos> e_1 .. e_n`` (inputs) and ``e_1 .. e_n <eos>`` (targets), padded."""
    v = codec.vocab
    rows = [v.encode(m, add_bos=True, add_eos=True) for m in melodies]
    lengths = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)
    t = int(lengths.max())
    ids = torch.full((len(rows), t + 1), v.pad_id, dtype=torch.long)  # (B, T + 1)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = torch.tensor(r)
    mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    return SequenceBatch(ids[:, :-1], ids[:, 1:], mask, lengths)


def markov_baselines(train: SequenceBatch, val: SequenceBatch, test: SequenceBatch, v: int):
    """NLL per event of the Kneser-Ney Markov chains of order 1-3 on validation and test."""

    def rows(b: SequenceBatch) -> list[list[int]]:
        full = torch.cat([b.inputs[:, :1], b.targets], 1)  # <bos> e_1 .. e_n <eos> (pad)
        return [full[i, : int(n) + 1].tolist() for i, n in enumerate(b.lengths)]

    train_rows = rows(train)
    out = {}
    for order in (1, 2, 3):
        model = KneserNey(train_rows, order, v - 2)  # <pad> and <bos> are never predicted
        out[f"markov{order}_val"] = model.nll(rows(val))
        out[f"markov{order}_test"] = model.nll(rows(test))
    return out


def prepare(cfg: MelodyTaskConfig, seed: int, codec: MelodyCodec | None = None) -> TaskData:
    splits = read_splits(cfg, ".jsonl", read_score_records)
    events = {s: [tokens(m) for m in _melodies(r, cfg.part, s)] for s, r in splits.items()}
    for split, melodies in events.items():
        if not melodies:
            raise ValueError(f"the {split} split holds no melody")
    if codec is None:
        vocab = Vocab.build(events["train"], max_size=cfg.max_vocab, min_freq=cfg.min_freq)
        codec = MelodyCodec(MusicTokenizer(), vocab)
    data = {s: batch(codec, m) for s, m in events.items()}
    return TaskData(
        train=data["train"],
        val=data["val"],
        test=data["test"],
        codec=codec,
        fixed={"vocab_size": len(codec.vocab)},
        baseline=markov_baselines(data["train"], data["val"], data["test"], len(codec.vocab)),
        config=cfg,
    )


def read_file(cfg: MelodyTaskConfig, path: str, codec: MelodyCodec) -> SequenceBatch:
    """The melodies of a JSONL file of score records, for ``rnnkit evaluate --data``."""
    melodies = [tokens(m) for m in _melodies(read_score_records(path), cfg.part, path)]
    if not melodies:
        raise ValueError(f"{path}: no melody in the file")
    return batch(codec, melodies)


TASK = Task(
    "melody",
    "monophonic melodies as (pitch, duration) event tokens, a language model (Essen folk)",
    MelodyTaskConfig,
    MelodyModel,
    prepare,
    fixed=("vocab_size",),
    aliases=("folk",),
    read_file=read_file,
)
