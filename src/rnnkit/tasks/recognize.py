"""The ``recognize`` task (aliases ``speech``, ``ctc``): a :class:`~rnnkit.models.CTCRecognizer`
from frames or an image to a transcript, without a segmentation.

Data (``task.dataset``)::

    "spoken-digits"  digit strings of min_words-max_words (2-7) digits, made by joining real
                     utterances of the Free Spoken Digit Dataset (13 MFCCs per frame) with
                     short gaps; transcripts like "4 1 7"
    "digit-strips"   strips of 3-6 handwritten 8x8 digits read column by column (handwriting
                     recognition without segmentation); transcripts like "seven three nine"
    ""               your files (task.train, task.valid, task.test): .ts files of utterances
                     labelled with one word each (composed into strings as spoken-digits is),
                     or JSONL captioned images ({"pixels": rows, "caption": text}, the caption
                     task's format)

Composing strings. Each split's strings are drawn (seeded) from that split's utterances only,
so no utterance is heard in two splits. A string of n ~ U{min_words..max_words} words takes n
utterances drawn uniformly from the split, and puts g ~ U{min_gap..max_gap} gap frames
between neighbours. A gap frame is a silence frame of the same split: the quietest frame
(lowest feature 0, the log energy c_0 of MFCCs) of a drawn utterance, so a gap sounds like the
pauses at the edges of real recordings, not like zeros the data never holds. The training
strings depend on the run's seed (``train_strings`` of them each run); the validation and
test strings do not (fixed seeds), so every run is scored on the same strings.

Frames are standardised per feature (``z = (x - mu) / sigma``) with statistics of the training
utterances, saved in the codec (:class:`~rnnkit.data.codec.Standardizer`). Targets carry no
``<eos>`` (``PairCodec(target_eos=False)``): a CTC output ends where the frames end.

Scores (``score_val`` gives them on the validation split at every epoch; ``task.beam`` decodes
with prefix beam search instead of best path)::

    error_rate   token (digit) edit distance / reference tokens, over the split
    exact        fraction of strings transcribed exactly

Baselines on the test split: the most frequent training transcript, and a duration guess (n =
round(S / f) copies of the most frequent training word, f the training frames per word).
``plot_posteriors(run_dir, path)`` draws the CTC posteriors of one test string over time.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnkit.data.batches import PairBatch
from rnnkit.data.codec import PairCodec, Standardizer
from rnnkit.data.readers import read_ts
from rnnkit.data.tokenizers import WordTokenizer
from rnnkit.data.vocab import Vocab
from rnnkit.models.ctc import CTCRecognizer
from rnnkit.tasks._pairs import check_split_files, edit_distance, read_splits, references_for
from rnnkit.tasks.base import Task, TaskData
from rnnkit.tasks.caption import read_captions, recompose

DATASETS = ("spoken-digits", "digit-strips", "")
FIXED = ("target_vocab_size", "source_features", "image_channels", "image_height")
SPLIT_SEEDS = {"val": 1_000_001, "test": 1_000_002}  # fixed: every run scores the same strings


@dataclass(frozen=True)
class RecognizeConfig:
    dataset: str = "spoken-digits"  # spoken-digits, digit-strips, or "" for your files
    train: str = ""  # dataset "": .ts utterances (one word each) or .jsonl captioned images
    valid: str = ""  # validation file, of the training file's kind (required with train)
    test: str = ""  # test file (default: the validation file)
    train_strings: int = 10000  # utterances: strings composed for training
    valid_strings: int = 500  # utterances: strings composed for validation
    test_strings: int = 1000  # utterances: strings composed for the test
    min_words: int = 2  # utterances: fewest words (digits) in a string
    max_words: int = 7  # utterances: most words in a string
    min_gap: int = 1  # utterances: fewest silence frames between two words
    max_gap: int = 4  # utterances: most silence frames between two words
    standardize: bool = True  # utterances: z = (x - mu) / sigma per feature, training stats
    scale: float = 1 / 16  # images: pixel values are multiplied by this (0-16 -> 0-1)
    compose: int = 0  # images: > 0 adds this many strips recomposed from the training strips
    beam: int = 1  # decoding of the scores: 1 best path, K > 1 prefix beam search

    @property
    def frames(self) -> bool:
        """True when the sources are utterances (frames), False for images."""
        if self.dataset:
            return self.dataset == "spoken-digits"
        return Path(self.train).suffix == ".ts"

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {list(DATASETS)}, got {self.dataset!r}")
        check_split_files(self)
        if not self.dataset:
            for name in ("train", "valid", "test"):
                suffix = Path(getattr(self, name)).suffix
                if getattr(self, name) and suffix not in (".ts", ".jsonl"):
                    raise ValueError(f"{name}: expected a .ts or .jsonl file, got {suffix!r}")
            kinds = {Path(f).suffix for f in (self.train, self.valid, self.test) if f}
            if len(kinds) > 1:
                raise ValueError(f"train, valid and test must be files of one kind, got {kinds}")
        for name in ("train_strings", "valid_strings", "test_strings", "min_words", "beam"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_words < self.min_words:
            raise ValueError(
                f"max_words must be >= min_words={self.min_words}, got {self.max_words}"
            )
        if not 0 <= self.min_gap <= self.max_gap:
            raise ValueError(
                f"min_gap and max_gap must satisfy 0 <= min_gap <= max_gap, got {self.min_gap} "
                f"and {self.max_gap}"
            )
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")
        if self.compose < 0:
            raise ValueError(f"compose must be >= 0, got {self.compose}")
        self._refuse_unused()

    def _refuse_unused(self) -> None:
        """A setting of the other source kind is an error, not silently ignored."""
        default = RecognizeConfig.__dataclass_fields__
        names = (
            ("scale", "compose")
            if self.frames
            else (
                "train_strings",
                "valid_strings",
                "test_strings",
                "min_words",
                "max_words",
                "min_gap",
                "max_gap",
                "standardize",
            )
        )
        what = "utterances (frames)" if self.frames else "images"
        for name in names:
            if getattr(self, name) != default[name].default:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} does not apply: the data is {what}"
                )


# ---- composing strings of utterances -----------------------------------------------------------
def compose_strings(
    series: list[np.ndarray],
    labels: list[str],
    count: int,
    seed: int,
    words: tuple[int, int] = (2, 7),
    gap: tuple[int, int] = (1, 4),
) -> tuple[list[np.ndarray], list[str]]:
    """``count`` strings of ``words`` utterances each, drawn (seeded) from ``series`` (each
    (T_i, D)) with their ``labels``, joined by ``gap`` silence frames (see the module
    docstring): the strings (S, D) and their transcripts ("4 1 7")."""
    if not series:
        raise ValueError("series: expected utterances to compose strings from, got none")
    silence = np.stack([s[int(np.argmin(s[:, 0]))] for s in series])  # (N, D): quietest frames
    rng = random.Random(seed)
    strings, transcripts = [], []
    for _ in range(count):
        chosen = [rng.randrange(len(series)) for _ in range(rng.randint(*words))]
        parts = []
        for j, i in enumerate(chosen):
            if j:
                g = rng.randint(*gap)
                parts.append(silence[[rng.randrange(len(silence)) for _ in range(g)]])
            parts.append(series[i])
        strings.append(np.concatenate(parts).astype(np.float32))  # (S, D)
        transcripts.append(" ".join(labels[i] for i in chosen))
    return strings, transcripts


def _read_utterances(path: Path) -> tuple[list[np.ndarray], list[str]]:
    data = read_ts(path)
    if not data.series:
        raise ValueError(f"{path}: no utterance in the file")
    tok = WordTokenizer()
    bad = [x for x in data.labels if tok.tokenize(x) != [x]]
    if bad:
        raise ValueError(
            f"{path}: each label must be one word token (it is one token of the transcript), "
            f"got {bad[0]!r}"
        )
    return data.series, data.labels


def _splits(cfg: RecognizeConfig, seed: int) -> tuple[dict[str, tuple[list, list[str]]], Any]:
    """The three splits as (sources, transcripts), and the training utterances (frames) or
    None (images)."""
    if not cfg.frames:
        splits = read_splits(cfg, ".jsonl", read_captions)
        if cfg.compose:
            images, captions = splits["train"]
            extra = recompose(images, captions, cfg.compose, seed)
            splits["train"] = (images + extra[0], captions + extra[1])
        return splits, None
    utterances = read_splits(cfg, ".ts", _read_utterances)
    counts = {"train": cfg.train_strings, "val": cfg.valid_strings, "test": cfg.test_strings}
    splits = {}
    for split, (series, labels) in utterances.items():
        split_seed = seed if split == "train" else SPLIT_SEEDS[split]
        words, gap = (cfg.min_words, cfg.max_words), (cfg.min_gap, cfg.max_gap)
        splits[split] = compose_strings(series, labels, counts[split], split_seed, words, gap)
    return splits, utterances["train"][0]


def _codec(cfg: RecognizeConfig, transcripts: list[str], train_frames: Any) -> PairCodec:
    tok = WordTokenizer()
    vocab = Vocab.build([tok.tokenize(t) for t in transcripts])
    if not cfg.frames:
        return PairCodec(tok, vocab, source_kind="image", image_scale=cfg.scale, target_eos=False)
    std = Standardizer.fit(train_frames) if cfg.standardize else None
    return PairCodec(tok, vocab, source_kind="frames", standardizer=std, target_eos=False)


def prepare(cfg: RecognizeConfig, seed: int, codec: PairCodec | None = None) -> TaskData:
    splits, train_frames = _splits(cfg, seed)
    sources, transcripts = splits["train"]
    if codec is None:
        codec = _codec(cfg, transcripts, train_frames)
    if cfg.frames:
        dims = {int(s.shape[1]) for split in splits.values() for s in split[0]}
        if len(dims) != 1:
            raise ValueError(f"utterances: expected one feature count in all splits, got {dims}")
        fixed = {"source_features": dims.pop()}
    else:
        heights = {len(img) for split in splits.values() for img in split[0]}
        if len(heights) != 1:
            raise ValueError(f"images: expected one height in all splits, got {sorted(heights)}")
        fixed = {"image_channels": 1, "image_height": heights.pop()}
    fixed["target_vocab_size"] = len(codec.target_vocab)
    train = codec.batch(sources, transcripts)
    test = codec.batch(*splits["test"])
    return TaskData(
        train=train,
        val=codec.batch(*splits["val"]),
        test=test,
        codec=codec,
        fixed=fixed,
        baseline=baselines(train, transcripts, test, splits["test"][1], codec),
        config=cfg,
        references={"val": splits["val"][1], "test": splits["test"][1]},
    )


# ---- scores ------------------------------------------------------------------------------------
def transcript_scores(hyps: list[list[str]], refs: list[list[str]]) -> dict[str, float]:
    """error_rate = sum of token edit distances / reference tokens; exact = fraction of
    transcripts equal to their reference."""
    if len(hyps) != len(refs):
        raise ValueError(f"hyps: expected {len(refs)} transcripts, got {len(hyps)}")
    errors = sum(edit_distance(h, r) for h, r in zip(hyps, refs, strict=True))
    return {
        "error_rate": errors / max(sum(len(r) for r in refs), 1),
        "exact": sum(h == r for h, r in zip(hyps, refs, strict=True)) / max(len(refs), 1),
    }


def baselines(
    train: PairBatch, transcripts: list[str], test: PairBatch, refs: list[str], codec: PairCodec
) -> dict[str, float]:
    """The scores on the test split of the most frequent training transcript, and of the
    duration guess: round(S / f) copies of the most frequent training word (f = training
    frames, or columns, per word)."""
    tok = codec.target_tokenizer
    ref_tokens = [tok.tokenize(r) for r in refs]
    common = tok.tokenize(Counter(transcripts).most_common(1)[0][0])
    word = Counter(w for t in transcripts for w in tok.tokenize(t)).most_common(1)[0][0]
    f = float(train.source_lengths.sum()) / max(int(train.target_lengths.sum()), 1)
    guesses = [[word] * max(1, round(int(s) / f)) for s in test.source_lengths]
    out = {
        f"frequent_transcript_{k}": v
        for k, v in transcript_scores([common] * len(refs), ref_tokens).items()
    }
    out.update(
        {f"duration_guess_{k}": v for k, v in transcript_scores(guesses, ref_tokens).items()}
    )
    return out


def decode_split(
    model: Any, batch: PairBatch, beam: int = 1, batch_size: int = 128
) -> list[list[int]]:
    """The label ids of every row of ``batch`` in row order, decoded in chunks of similar
    length."""
    order = torch.argsort(batch.source_lengths, stable=True)
    out: list[list[int]] = [[] for _ in range(batch.size)]
    for chunk in order.split(batch_size):
        for i, ids in zip(chunk.tolist(), model.decode(batch.rows(chunk), beam), strict=True):
            out[i] = ids
    return out


def score(model: Any, batch: PairBatch, data: TaskData) -> dict[str, float]:
    """error_rate and exact of the transcripts of ``batch`` decoded with ``task.beam``,
    against the raw reference transcripts (or, for a file given to evaluate, its targets)."""
    codec = data.codec
    refs = references_for(batch, data)
    if refs is None:
        refs = [
            codec.decode_target(t[:n].tolist())
            for t, n in zip(batch.target.cpu(), batch.target_lengths.cpu(), strict=True)
        ]
    beam = data.config.beam if data.config is not None else 1
    hyps = [codec.target_tokens(ids) for ids in decode_split(model, batch, beam)]
    return transcript_scores(hyps, [codec.target_tokenizer.tokenize(r) for r in refs])


def read_file(cfg: RecognizeConfig, path: str, codec: PairCodec) -> PairBatch:
    """A labelled file for ``rnnkit evaluate --data``: JSONL captioned images, or a .ts file of
    utterances composed into ``test_strings`` strings (the test split's fixed seed)."""
    if codec.source_kind == "image":
        return codec.batch(*read_captions(path))
    if Path(path).suffix != ".ts":
        raise ValueError(f"--data {path}: this run reads .ts files of utterances")
    series, labels = _read_utterances(Path(path))
    words, gap = (cfg.min_words, cfg.max_words), (cfg.min_gap, cfg.max_gap)
    return codec.batch(
        *compose_strings(series, labels, cfg.test_strings, SPLIT_SEEDS["test"], words, gap)
    )


def _check(cfg: RecognizeConfig, model: dict[str, Any]) -> None:
    if cfg.frames and "conv_channels" in model:
        raise ValueError("model.conv_channels sizes the image encoder; this data is frames")


# ---- the posterior plot ------------------------------------------------------------------------
def plot_posteriors(
    run_dir: str | Path, path: str | Path, split: str = "test", index: int = 0
) -> Path:
    """Draw the CTC posteriors y_s(k) of row ``index`` of a run's ``split`` over its frames,
    with the input above them (see :func:`rnnkit.diagnostics.ctc.plot_ctc_posteriors`)::

        from rnnkit.tasks.recognize import plot_posteriors
        plot_posteriors("runs/speech", "docs/figures/ctc_posteriors.png")
    """
    from rnnkit.diagnostics.ctc import plot_ctc_posteriors
    from rnnkit.tasks.run import load, read_run_config

    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    cfg = read_run_config(run_dir)
    model = load(run_dir)
    data = TASK.prepare(cfg.task_config, cfg.seed, model.codec)
    rows = getattr(data, split)
    if not 0 <= index < rows.size:
        raise ValueError(f"index must be in [0, {rows.size}), got {index}")
    row = rows.rows(slice(index, index + 1))
    n = int(row.source_lengths[0])
    refs = data.references.get(split)
    reference = refs[index] if refs else model.codec.decode_target(row.target[0].tolist())
    ids = model.decode(row, cfg.task_config.beam)[0]
    source = row.source[0, ..., :n].mean(0) if row.source.dim() == 4 else row.source[0, :n].T
    return plot_ctc_posteriors(
        model.posteriors(row)[0, :n],  # (S, V)
        model.codec.target_vocab.tokens,
        path,
        source=source,  # (D, S) frames or (H, W) image
        source_label="row" if row.source.dim() == 4 else "feature",
        reference=reference,
        output=model.codec.decode_target(ids),
    )


TASK = Task(
    "recognize",
    "CTC recognizer from frames or an image to a transcript (spoken digit strings, digit strips)",
    RecognizeConfig,
    CTCRecognizer,
    prepare,
    fixed=FIXED,
    aliases=("speech", "ctc"),
    check=_check,
    score=score,
    read_file=read_file,
    eval_keys=("beam",),
)
