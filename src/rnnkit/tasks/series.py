"""The ``classify-series`` task: many-to-one classification of numeric and symbolic sequences.

A :class:`~rnnkit.models.SequenceClassifier` over frames of numbers (multivariate time
series, MFCCs, motion sensors) or strings of symbols (DNA as one-hot vectors or embeddings).
The ``[task]`` table names the data: a registry dataset, or the user's own files in any of
the formats of :mod:`rnnkit.data.readers.series` (``.ts``, FASTA, CSV/TSV, JSONL)::

    rnnkit train classify-series --set task.data='"japanese-vowels"' --out runs/vowels
    rnnkit train classify-series --set task.data='"my_train.ts"' --set task.test='"my_test.ts"'

Datasets keep their own splits (the official UEA/UCR train/test split, StatLog's DNA split,
watch-activity by subject); where one has no validation split, ``valid_fraction`` of the
training cases is set aside, stratified by label and seeded; of a file given as ``data``
alone, ``test_fraction`` of the cases is the test split and ``valid_fraction`` of the rest
the validation split. Numbers are standardised per feature with the training
split's mean and standard deviation (saved in the codec, so ``rnnkit predict`` applies
them); symbols become ids of a vocabulary of the training split's symbols, one-hot with
``model.embedding_dim = 0`` (the seeds' representation) or embedded otherwise.

The data fixes ``input_features`` (numbers) or ``vocab_size`` (symbols), ``num_classes`` and
``padding_idx``; the model's own keys (cell, hidden size, layers, direction, pooling: last,
mean, max, attention or flatten; ``wide_summary``, the linear baseline's statistics as a
wide part beside the RNN) sit in ``[model]``. Baselines on the test split: the majority class
and a linear model (multinomial logistic regression) on summary features (numbers: mean,
standard deviation, minimum, maximum, first and last value of each feature and the log
length; symbols: one-hot per position for sequences of one length, 3-mer frequencies
otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnkit.config import ConfigError
from rnnkit.data.batches import SequenceBatch
from rnnkit.data.codec import SeriesCodec, Standardizer
from rnnkit.data.readers.series import SERIES_SUFFIXES, LabelledSeries, read_series
from rnnkit.data.registry import dataset_dir, fetch, get, load_report, names
from rnnkit.data.vocab import Vocab
from rnnkit.models.classifier import SequenceClassifier, frame_statistics
from rnnkit.tasks.base import Task, TaskData
from rnnkit.tasks.classify import labelled_batch

SPLITS = {"train": "train", "val": "valid", "test": "test"}  # TaskData name -> file stem
SUFFIXES = (".ts", ".fasta")  # the suffixes of dataset files, in the order looked for


@dataclass(frozen=True)
class SeriesConfig:
    data: str = "japanese-vowels"  # a dataset (`rnnkit data list`) or a training file
    valid: str = ""  # a validation file ("" : set valid_fraction of the training cases aside)
    test: str = ""  # a test file ("" with data a file: set test_fraction aside)
    valid_fraction: float = 0.2  # of the training cases, when there is no validation split
    test_fraction: float = 0.1  # of the cases of a data file given without a test file
    standardize: bool = True  # numbers: per-feature z-scores with the training statistics
    sequence_column: str = "sequence"  # CSV/TSV column, JSONL field of the sequence
    label_column: str = "label"  # CSV/TSV column, JSONL field of the label
    label_field: str = "class"  # FASTA: the header key of the label (>seq1 class=EI)

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("data must name a dataset or a file, got ''")
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"valid_fraction + test_fraction must be < 1, got "
                f"{self.valid_fraction} + {self.test_fraction}"
            )


# ---- reading -------------------------------------------------------------------------------
def _read(cfg: SeriesConfig, path: Path, what: str) -> LabelledSeries:
    found = read_series(
        path,
        sequence_column=cfg.sequence_column,
        label_column=cfg.label_column,
        label_field=cfg.label_field,
    )
    if not len(found):
        raise ValueError(f"{what}: {path} holds no sequences")
    return found


def _dataset_files(cfg: SeriesConfig) -> dict[str, Path]:
    if cfg.data not in names():
        raise ValueError(
            f"task.data={cfg.data!r} is neither a file ({', '.join(SERIES_SUFFIXES)}) nor a "
            f"dataset ({', '.join(names())})"
        )
    info = get(cfg.data).info
    if not any(f"{suffix}:" in info.files or f"{suffix} " in info.files for suffix in SUFFIXES):
        raise ValueError(
            f"task.data={cfg.data!r}: dataset {cfg.data} ({info.task}) holds no labelled "
            f"sequences ({', '.join(SUFFIXES)} files); give a sequence-classification dataset "
            "or file"
        )
    if load_report(cfg.data) is None:
        fetch(cfg.data)
    folder = dataset_dir(cfg.data)
    files = {}
    for split, stem in SPLITS.items():
        for suffix in SUFFIXES:
            if (folder / f"{stem}{suffix}").is_file():
                files[split] = folder / f"{stem}{suffix}"
                break
    if "train" not in files or "test" not in files:
        kind = get(cfg.data).info.task
        raise ValueError(
            f"task.data={cfg.data!r}: dataset {cfg.data} ({kind}) holds no train and test "
            f"sequences ({', '.join(SUFFIXES)}); give a sequence-classification dataset or file"
        )
    return files


def stratified_split(labels: list[str], fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of about ``fraction`` of the cases of each label (at least one of a
    label with two or more cases), chosen by a generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    chosen = np.zeros(len(labels), dtype=bool)
    for label in sorted(set(labels)):
        index = np.flatnonzero(np.asarray(labels) == label)
        k = round(fraction * len(index))
        k = max(k, 1) if len(index) > 1 else 0
        chosen[rng.permutation(index)[:k]] = True
    return chosen


def _subset(found: LabelledSeries, keep: np.ndarray) -> LabelledSeries:
    index = np.flatnonzero(keep)
    return LabelledSeries(
        [found.items[i] for i in index], [found.labels[i] for i in index], found.kind, found.path
    )


def read_splits(cfg: SeriesConfig, seed: int) -> dict[str, LabelledSeries]:
    """The train, val and test cases the configuration names (module docstring)."""
    path = Path(cfg.data).expanduser()
    if path.suffix.lower() in SERIES_SUFFIXES or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"task.data: no such file: {path}")
        files = {"train": path}
        if cfg.valid:
            files["val"] = Path(cfg.valid).expanduser()
        if cfg.test:
            files["test"] = Path(cfg.test).expanduser()
    else:
        if cfg.valid or cfg.test:
            raise ConfigError(
                f"task.valid and task.test name files to go with a training file; "
                f"task.data={cfg.data!r} is a dataset with its own splits"
            )
        files = _dataset_files(cfg)
    for split, f in files.items():
        if not f.is_file():
            raise FileNotFoundError(
                f"task.{'data' if split == 'train' else split}: no such file: {f}"
            )
    splits = {split: _read(cfg, f, f"task.{split}") for split, f in files.items()}
    train = splits["train"]
    if "test" not in splits:  # one file: stratified test, then validation
        held = stratified_split(train.labels, cfg.test_fraction, seed)
        splits["test"], train = _subset(train, held), _subset(train, ~held)
    if "val" not in splits:
        held = stratified_split(train.labels, cfg.valid_fraction, seed + 1)
        splits["val"], train = _subset(train, held), _subset(train, ~held)
    splits["train"] = train
    kinds = {s: part.kind for s, part in splits.items()}
    if len(set(kinds.values())) > 1:
        raise ValueError(f"task: the splits hold different kinds of sequences {kinds}")
    return splits


def input_kind(cfg: SeriesConfig) -> str:
    """ "frames" or "symbols": what the configured data holds (the training file is read)."""
    path = Path(cfg.data).expanduser()
    if not (path.suffix.lower() in SERIES_SUFFIXES or path.is_file()):
        path = _dataset_files(cfg)["train"]
    if path.suffix.lower() == ".ts":
        return "frames"
    if path.suffix.lower() in (".fasta", ".fa", ".fna", ".faa"):
        return "symbols"
    return _read(cfg, path, "task.data").kind if path.is_file() else "frames"


# ---- codec and batches ---------------------------------------------------------------------
def build_codec(cfg: SeriesConfig, train: LabelledSeries) -> SeriesCodec:
    """Labels, and standardisation statistics or the symbol vocabulary, of the training split."""
    labels = tuple(sorted(set(train.labels)))
    if len(labels) < 2:
        raise ValueError(f"task.data={cfg.data!r}: expected >= 2 labels, found {list(labels)}")
    if train.kind == "symbols":
        return SeriesCodec(labels, vocab=Vocab.build([list(s) for s in train.items]))
    d = train.items[0].shape[1]
    std = Standardizer.fit(train.items) if cfg.standardize else Standardizer.identity(d)
    return SeriesCodec(labels, standardizer=std)


def encode(codec: SeriesCodec, found: LabelledSeries, where: str) -> SequenceBatch:
    """The many-to-one batch of a split: inputs, each label at its case's last step."""
    if found.kind != codec.input_kind:
        raise ValueError(f"{where}: holds {found.kind}, but the codec reads {codec.input_kind}")
    try:
        inputs, lengths = codec.batch(found.items)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return labelled_batch(inputs, lengths, codec.label_ids(found.labels, where))


# ---- baselines -----------------------------------------------------------------------------
def summary_features(codec: SeriesCodec, items: list, width: int | None) -> torch.Tensor:
    """(N, F) features of the linear baseline (module docstring)."""
    if codec.input_kind == "frames":  # the wide part's statistics of the standardised frames
        frames = [codec.encode(x).double() for x in items]  # (T, D) each
        padded = torch.nn.utils.rnn.pad_sequence(frames, batch_first=True)  # (N, T, D)
        return frame_statistics(padded, torch.tensor([len(z) for z in frames]))
    v = len(codec.vocab)  # type: ignore[arg-type]
    if width is not None:  # one length: one-hot of each position
        ids = torch.stack([codec.encode(s)[:width] for s in items])  # (N, L)
        return torch.nn.functional.one_hot(ids, v).flatten(1).double()
    grams = {g: i for i, g in enumerate(product(range(v), repeat=3))}
    out = torch.zeros(len(items), len(grams), dtype=torch.float64)
    for n, s in enumerate(items):
        ids = codec.encode(s).tolist()
        for i in range(len(ids) - 2):
            out[n, grams[tuple(ids[i : i + 3])]] += 1
        out[n] /= max(len(ids) - 2, 1)
    return out


def linear_baseline(
    x: torch.Tensor, y: torch.Tensor, tests: list[torch.Tensor], l2: float = 1e-3
) -> list[torch.Tensor]:
    """Multinomial logistic regression fitted by L-BFGS on standardised features ``x`` (N, F)
    with labels ``y`` (N,) and weight decay ``l2``; predicted labels of each test matrix."""
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-8)
    k = int(y.max()) + 1
    w = torch.zeros(x.shape[1], k, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")
    z = (x - mean) / std

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return [(((t - mean) / std) @ w + b).argmax(-1) for t in tests]


def baselines(codec: SeriesCodec, train: LabelledSeries, test: LabelledSeries) -> dict:
    """Test accuracy of the majority training label and of the linear model."""
    y = codec.label_ids(train.labels, "train")
    y_test = codec.label_ids(test.labels, "test")
    majority = int(torch.bincount(y, minlength=len(codec.labels)).argmax())
    out = {"accuracy": float((y_test == majority).double().mean())}
    widths = {len(s) for s in (*train.items, *test.items)} if train.kind == "symbols" else set()
    width = widths.pop() if len(widths) == 1 else None
    if train.kind == "symbols" and width is None and len(codec.vocab) ** 3 > 20_000:  # type: ignore[arg-type]
        return out  # too many 3-grams for a dense linear model
    torch.manual_seed(0)
    pred = linear_baseline(
        summary_features(codec, train.items, width),
        y,
        [summary_features(codec, test.items, width)],
    )[0]
    out["linear_accuracy"] = float((pred == y_test).double().mean())
    return out


# ---- hooks -----------------------------------------------------------------------------------
def prepare(cfg: SeriesConfig, seed: int, codec: SeriesCodec | None = None) -> TaskData:
    splits = read_splits(cfg, seed)
    codec = codec or build_codec(cfg, splits["train"])
    batches = {s: encode(codec, part, f"{part.path} ({s} split)") for s, part in splits.items()}
    longest = int(batches["train"].lengths.max())  # "flatten" pooling reads this many steps
    fixed: dict[str, Any] = {"num_classes": len(codec.labels), "positions": longest}
    if codec.input_kind == "frames":
        fixed.update(input_features=codec.standardizer.features, vocab_size=0, padding_idx=0)  # type: ignore[union-attr]
    else:
        fixed.update(input_features=0, vocab_size=len(codec.vocab), padding_idx=codec.vocab.pad_id)  # type: ignore[union-attr, arg-type]
    return TaskData(
        batches["train"],
        batches["val"],
        batches["test"],
        codec,
        fixed,
        baselines(codec, splits["train"], splits["test"]),
        cfg,
    )


def init_model(model: SequenceClassifier, data: TaskData, cfg: SeriesConfig, seed: int) -> None:
    """With ``model.wide_summary``: standardise the wide part's summary statistics with the
    training split's mean and standard deviation (as the linear baseline does)."""
    if model.wide_stats is None:
        return
    train = data.train
    phi = frame_statistics(train.inputs.double(), train.lengths)  # (N, 6 D + 1)
    model.set_statistics_scale(phi.mean(0), phi.std(0, unbiased=False))


def check(cfg: SeriesConfig, model: dict[str, Any]) -> None:
    """Refuse settings the data would not use: embedding keys for numbers (which go into the
    RNN as they are), column names for .ts/FASTA, the FASTA label key for other formats,
    standardisation for symbols, and split fractions where the split already exists."""
    path = Path(cfg.data).expanduser()
    single = path.suffix.lower() in SERIES_SUFFIXES or path.is_file()
    files = {"train": path} if single else _dataset_files(cfg)
    suffix = files["train"].suffix.lower()
    kind = input_kind(cfg)
    used = [k for k in ("embedding_dim", "freeze_embedding") if k in model]
    if used and kind == "frames":
        raise ConfigError(
            f"model.{used[0]}: task.data={cfg.data!r} holds numbers, which go into the RNN as "
            "they are (standardised); embeddings are for symbols"
        )
    default = SeriesConfig()
    fasta = suffix in (".fasta", ".fa", ".fna", ".faa")
    unused = {
        "sequence_column": suffix == ".ts" or fasta,
        "label_column": suffix == ".ts" or fasta,
        "label_field": not fasta,
        "standardize": kind == "symbols",
        "test_fraction": not single or bool(cfg.test),
        "valid_fraction": bool(cfg.valid) or "val" in files,
    }
    for name, ignored in unused.items():
        if ignored and getattr(cfg, name) != getattr(default, name):
            raise ConfigError(
                f"task.{name}={getattr(cfg, name)!r} does not apply to task.data={cfg.data!r} "
                f"({suffix} {kind}{', with its own splits' if 'fraction' in name else ''})"
            )


def read_file(cfg: SeriesConfig, path: str, codec: SeriesCodec) -> SequenceBatch:
    """A labelled file (any series format) encoded with the run's codec."""
    return encode(codec, _read(cfg, Path(path), "--data"), str(path))


TASK = Task(
    "classify-series",
    "many-to-one classification of numeric or symbolic sequences (.ts, FASTA, CSV, JSONL)",
    SeriesConfig,
    SequenceClassifier,
    prepare,
    fixed=("vocab_size", "input_features", "num_classes", "padding_idx", "positions"),
    aliases=("series",),
    check=check,
    init_model=init_model,
    read_file=read_file,
)
