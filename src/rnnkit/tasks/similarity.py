"""The ``similarity`` task (alias ``siamese``): a :class:`SiameseEncoder` on pairs of texts.

The ``[task]`` table names the data: ``bible-paraphrase`` (one verse in two English
translations, and hard negatives from its chapter; split by book, fetched on first use) or a
CSV/TSV (header line) or JSONL file with the columns ``text_a``, ``text_b`` and ``label``
(1: similar, 0: not), split 80/10/10 (seeded, the pairs of one ``text_a`` kept together).
Both texts share one word vocabulary (:class:`~rnnkit.data.codec.TextCodec`, built on the
training split, saved in every checkpoint). Metrics of a split (validation with
``score_val = true``, and ``rnnkit evaluate``), for similarities y and labels l::

    accuracy        fraction of pairs with (y >= model.threshold) == l
    threshold       the threshold with the best accuracy on the validation split
    accuracy_tuned  accuracy at that threshold
    auc             ROC AUC by the rank formula, ties at average ranks:
                    (sum of the positives' ranks - P (P + 1) / 2) / (P N)
    recall_at_1     for each positive (a, b): b is found when y(a, b) beats y(a, c) for all of
                    ``candidates`` - 1 other second texts c of the split's positives (drawn with
                    ``candidate_seed``, texts equal to b left out): among 100 by default

The baseline (``baseline_tfidf_*`` in ``rnnkit evaluate``) scores the test split with the same
metrics and candidates, y = cos(tfidf(a), tfidf(b)) with tf = counts over the codec's
vocabulary (<unk> and specials ignored) and idf(w) = ln((1 + N) / (1 + df(w))) + 1 over the N
distinct training texts (scikit-learn's smooth idf), vectors L2-normalised.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnkit.data import Vocab, WordTokenizer
from rnnkit.data.batches import TwinBatch
from rnnkit.data.codec import TextCodec
from rnnkit.data.errors import BadRows, DataFormatError
from rnnkit.data.readers import read_columns
from rnnkit.data.readers.table import _csv_rows, _delimiter_for, iter_json_objects
from rnnkit.data.registry import dataset_dir, fetch, load_report
from rnnkit.data.splits import by_split, group_split
from rnnkit.data.vocab import SPECIALS
from rnnkit.models.siamese import SiameseEncoder
from rnnkit.tasks.base import Task, TaskData

DATASETS = ("bible-paraphrase",)  # registry datasets of (text_a, text_b, label) rows
SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}
LABELS = ("different", "similar")  # class names: label 0, label 1


@dataclass(frozen=True)
class SimilarityConfig:
    data: str = "bible-paraphrase"  # a dataset of pairs, or a .csv/.tsv/.jsonl file
    text_a: str = "text_a"  # column (field) of the first text
    text_b: str = "text_b"  # column (field) of the second text
    label_column: str = "label"  # column (field) of the label: 1 similar, 0 not
    lowercase: bool = True  # lower-case before tokenizing into words
    max_vocab: int = 20_000  # vocabulary size, specials included (from the training split)
    min_freq: int = 1  # fewest training occurrences a word needs
    max_len: int = 0  # keep only the first max_len tokens of a text (0: all)
    candidates: int = 100  # recall@1 among the true partner and candidates - 1 others
    candidate_seed: int = 0  # seed of the candidates drawn for recall@1

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("data must name a file of pairs or a dataset, got ''")
        for name in ("max_vocab", "min_freq"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_len < 0:
            raise ValueError(f"max_len must be >= 0, got {self.max_len}")
        if self.candidates < 2:
            raise ValueError(f"candidates must be >= 2, got {self.candidates}")


# ---- reading -------------------------------------------------------------------------------
Pairs = tuple[list[str], list[str], list[float]]  # texts a, texts b, labels


def _line_of(path: Path, k: int) -> int | None:
    """The line of the ``k``-th record (0-based) that the table readers return for ``path``."""
    rows = BadRows(path, skip_bad=True)
    if path.suffix.lower() in (".jsonl", ".json"):
        found = (line for line, _ in iter_json_objects(path, rows))
    else:
        records = _csv_rows(path, _delimiter_for(path, None), rows)
        next(records, None)  # the header
        found = (line for line, fields in records if fields)
    return next((line for i, line in enumerate(found) if i == k), None)


def read_pairs(path: str | Path, cfg: SimilarityConfig) -> Pairs:
    """Both texts and the 0/1 label of every row of a CSV/TSV (header line) or JSONL file; a
    bad row is a :class:`DataFormatError` naming the file, the line and the field."""
    path = Path(path)
    columns = [cfg.text_a, cfg.text_b, cfg.label_column]
    a, b, raw = read_columns(path, columns, "file of pairs")
    labels = []
    for k, value in enumerate(raw):
        try:
            label = float(value)
        except ValueError:
            label = -1.0
        if label not in (0.0, 1.0):
            raise DataFormatError(
                path, _line_of(path, k), f"{cfg.label_column}: expected 0 or 1, found {value!r}"
            )
        labels.append(label)
    return a, b, labels


def _splits(cfg: SimilarityConfig, seed: int) -> dict[str, Pairs]:
    path = Path(cfg.data)
    if path.is_file():
        a, b, y = read_pairs(path, cfg)
        names = group_split([t.lower() for t in a], seed=seed)
        parts = by_split(list(zip(a, b, y, strict=True)), names)
        return {
            k: tuple(map(list, zip(*parts.get(v, []), strict=True))) or ([], [], [])
            for k, v in SPLIT_FILES.items()
        }
    if path.suffix or cfg.data not in DATASETS:
        raise FileNotFoundError(
            f"task.data={cfg.data!r}: no such file of pairs, nor a dataset of pairs {DATASETS}"
        )
    if load_report(cfg.data) is None:
        fetch(cfg.data)
    folder = dataset_dir(cfg.data)
    return {s: read_pairs(folder / f"{stem}.tsv", cfg) for s, stem in SPLIT_FILES.items()}


def build_codec(cfg: SimilarityConfig, texts_a: list[str], texts_b: list[str]) -> TextCodec:
    """One word vocabulary for both sides, from the distinct training texts."""
    tokenizer = WordTokenizer(lowercase=cfg.lowercase)
    texts = dict.fromkeys(texts_a + texts_b)
    vocab = Vocab.build((tokenizer.tokenize(t) for t in texts), cfg.max_vocab, cfg.min_freq)
    return TextCodec(tokenizer, vocab, LABELS, cfg.max_len)


def pair_batch(codec: TextCodec, a: list[str], b: list[str], labels: list[float]) -> TwinBatch:
    ids_a, len_a = codec.batch(a)
    ids_b, len_b = codec.batch(b)
    return TwinBatch(ids_a, len_a, ids_b, len_b, torch.tensor(labels, dtype=torch.float32))


# ---- metrics -------------------------------------------------------------------------------
def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """ROC AUC: P(score of a positive > score of a negative), ties counting one half, by the
    rank formula (average ranks for ties); nan without both classes."""
    pos = labels >= 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return float("nan")
    _, inverse, counts = torch.unique(scores.double(), return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()  # rank of the last member of each tie group
    ranks = (ends - (counts - 1) / 2)[inverse]  # (N,) average 1-based ranks
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def best_threshold(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The threshold t with the most (score >= t) == label, midway between two scores."""
    values, inverse = torch.unique(scores.double(), return_inverse=True)  # sorted (K,)
    pos = torch.bincount(inverse, weights=(labels >= 0.5).double(), minlength=len(values))
    neg = torch.bincount(inverse, minlength=len(values)).double() - pos
    # t just below values[k]: groups k.. are predicted similar, groups ..k-1 different
    right = pos.flip(0).cumsum(0).flip(0) + torch.cat([neg.new_zeros(1), neg.cumsum(0)[:-1]])
    k = int(right.argmax())
    if float(neg.sum()) > float(right[k]):  # all different: above the largest score
        return float(values[-1]) + 1.0
    return float(values[k] + (values[k - 1] if k else 0.0)) / 2


def accuracy(scores: torch.Tensor, labels: torch.Tensor, threshold: float) -> float:
    return float(((scores >= threshold) == (labels >= 0.5)).double().mean())


def _row_keys(ids: torch.Tensor, lengths: torch.Tensor) -> list[tuple[int, ...]]:
    return [tuple(r[:n].tolist()) for r, n in zip(ids, lengths.tolist(), strict=True)]


def candidate_sets(keys: list[Any], n: int, seed: int) -> list[list[int]]:
    """For each row i: [i] and up to n - 1 other rows whose key differs from row i's, drawn
    without replacement with ``random.Random(seed)``."""
    rng, count = random.Random(seed), Counter(keys)
    out = []
    for i, key in enumerate(keys):
        want, picked = min(n - 1, len(keys) - count[key]), {i}
        chosen = [i]
        while len(chosen) <= want:
            j = rng.randrange(len(keys))
            if j not in picked and keys[j] != key:
                picked.add(j)
                chosen.append(j)
        out.append(chosen)
    return out


def recall_at_1(scores: list[list[float]]) -> float:
    """Fraction of rows whose first score (the true partner's) beats every other one."""
    rows = [s for s in scores if len(s) > 1]
    return sum(s[0] > max(s[1:]) for s in rows) / len(rows) if rows else float("nan")


def metrics_of(
    y: torch.Tensor, labels: torch.Tensor, ranked: list[list[float]], threshold: float, tuned
) -> dict[str, float]:
    out = {"accuracy": accuracy(y, labels, threshold), "auc": roc_auc(y, labels)}
    if tuned is not None:
        out |= {"threshold": tuned, "accuracy_tuned": accuracy(y, labels, tuned)}
    return out | {"recall_at_1": recall_at_1(ranked)}


def _candidates(batch: TwinBatch, cfg: SimilarityConfig) -> tuple[list[int], list[list[int]]]:
    """The positive rows, and per positive its candidate rows (its own first)."""
    rows = torch.nonzero(batch.labels >= 0.5).flatten()
    keys = _row_keys(batch.b[rows], batch.b_lengths[rows])
    return rows.tolist(), candidate_sets(keys, cfg.candidates, cfg.candidate_seed)


def _model_scores(model: SiameseEncoder, batch: TwinBatch, cfg: Any, candidates: bool = True):
    """Similarities (B,) of the rows, and per positive its candidates' similarities."""
    s_a = model.sentence_vectors(batch.a, batch.a_lengths)  # (B, H')
    s_b = model.sentence_vectors(batch.b, batch.b_lengths)  # (B, H')
    y = model.similarity(s_a, s_b).cpu()  # (B,)
    if not candidates:
        return y, []
    rows, sets = _candidates(batch, cfg)
    rows = torch.tensor(rows, dtype=torch.long, device=s_b.device)
    ranked = []
    for i, chosen in zip(rows.tolist(), sets, strict=True):
        others = s_b[rows[chosen]]  # (n, H'): partner first
        ranked.append(model.similarity(s_a[i], others).tolist())
    return y, ranked


def score(model: SiameseEncoder, batch: TwinBatch, data: TaskData) -> dict[str, float]:
    """The metrics of the module docstring on ``batch``; the threshold from ``data.val``."""
    cfg = data.config or SimilarityConfig()
    y, ranked = _model_scores(model, batch, cfg)
    tuned = None
    if data.val is not None and data.val.size:
        same = data.val is batch
        y_val = y if same else _model_scores(model, data.val, cfg, candidates=False)[0]
        tuned = best_threshold(y_val, data.val.labels.cpu())
    return metrics_of(y, batch.labels.cpu(), ranked, model.config.threshold, tuned)


# ---- the TF-IDF baseline -------------------------------------------------------------------
def tfidf_vectors(keys: list[tuple[int, ...]], idf: dict[int, float]) -> list[dict[int, float]]:
    """L2-normalised tf * idf of each text (token ids); ids without an idf are left out."""
    out = []
    for key in keys:
        v = {t: c * idf[t] for t, c in Counter(key).items() if t in idf}
        norm = math.sqrt(sum(w * w for w in v.values())) or 1.0
        out.append({t: w / norm for t, w in v.items()})
    return out


def _cos(u: dict[int, float], v: dict[int, float]) -> float:
    if len(v) < len(u):
        u, v = v, u
    return sum(w * v.get(t, 0.0) for t, w in u.items())


def fit_idf(train: TwinBatch) -> dict[int, float]:
    """Smooth idf over the distinct training texts (both sides), specials left out."""
    texts = set(_row_keys(train.a, train.a_lengths)) | set(_row_keys(train.b, train.b_lengths))
    df = Counter(t for key in texts for t in set(key) if t >= len(SPECIALS))
    n = len(texts)
    return {t: math.log((1 + n) / (1 + d)) + 1 for t, d in df.items()}


def tfidf_scores(batch: TwinBatch, idf: dict[int, float], cfg: Any, candidates: bool = True):
    """As :func:`_model_scores`, for TF-IDF cosine."""
    va = tfidf_vectors(_row_keys(batch.a, batch.a_lengths), idf)
    vb = tfidf_vectors(_row_keys(batch.b, batch.b_lengths), idf)
    y = torch.tensor([_cos(u, v) for u, v in zip(va, vb, strict=True)], dtype=torch.float64)
    if not candidates:
        return y, []
    rows, sets = _candidates(batch, cfg)
    ranked = [[_cos(va[i], vb[rows[j]]) for j in c] for i, c in zip(rows, sets, strict=True)]
    return y, ranked


def tfidf_baseline(batches: dict[str, TwinBatch], cfg: SimilarityConfig) -> dict[str, float]:
    """The module docstring's metrics of TF-IDF cosine on the test split (threshold 0.5, and
    the one best on validation)."""
    if not batches["test"].size:
        return {}
    idf = fit_idf(batches["train"])
    y, ranked = tfidf_scores(batches["test"], idf, cfg)
    tuned = None
    if batches["val"].size:
        y_val, _ = tfidf_scores(batches["val"], idf, cfg, candidates=False)
        tuned = best_threshold(y_val, batches["val"].labels)
    out = metrics_of(y, batches["test"].labels, ranked, 0.5, tuned)
    return {f"tfidf_{k}": v for k, v in out.items()}


# ---- the task hooks ------------------------------------------------------------------------
def prepare(cfg: SimilarityConfig, seed: int, codec: TextCodec | None = None) -> TaskData:
    splits = _splits(cfg, seed)
    if not splits["train"][0]:
        raise ValueError(f"task.data={cfg.data!r}: the training split is empty")
    codec = codec or build_codec(cfg, splits["train"][0], splits["train"][1])
    batches = {s: pair_batch(codec, *p) for s, p in splits.items()}
    fixed = {"vocab_size": len(codec.vocab), "padding_idx": codec.vocab.pad_id}
    return TaskData(
        batches["train"],
        batches["val"],
        batches["test"],
        codec,
        fixed,
        tfidf_baseline(batches, cfg),
        config=cfg,
    )


def read_file(cfg: SimilarityConfig, path: str, codec: TextCodec) -> TwinBatch:
    """A file of pairs read with the run's columns and encoded with the saved codec."""
    return pair_batch(codec, *read_pairs(path, cfg))


def store_records(records: list, path: Path) -> list[str]:
    """Write (text_a, text_b, label) triples as JSONL at ``path``; the overrides that read it."""
    lines = []
    for i, record in enumerate(records):
        if not isinstance(record, list | tuple) or len(record) != 3:
            raise ValueError(
                f"records[{i}]: expected a (text_a, text_b, label) triple, got {record!r}"
            )
        a, b, label = record
        lines.append(json.dumps({"text_a": str(a), "text_b": str(b), "label": str(label)}))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [
        f"task.data={json.dumps(str(path))}",
        'task.text_a="text_a"',
        'task.text_b="text_b"',
        'task.label_column="label"',
    ]


TASK = Task(
    "similarity",
    "sentence similarity of text pairs with a siamese recurrent encoder (MaLSTM)",
    SimilarityConfig,
    SiameseEncoder,
    prepare,
    fixed=("vocab_size", "padding_idx"),
    aliases=("siamese",),
    score=score,
    read_file=read_file,
    store_records=store_records,
    eval_keys=("candidates", "candidate_seed"),
)
