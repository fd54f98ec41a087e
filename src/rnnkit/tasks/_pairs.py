"""What the encoder-decoder tasks share: decoding a split and scoring the outputs.

Metrics, on detokenized text (BLEU and chrF through sacrebleu, as published MT results are) or
on tokens (the error rates of grapheme-to-phoneme and captioning)::

    bleu    corpus BLEU, sacrebleu's default 13a tokenization, 0-100
    chrf    corpus chrF2, 0-100
    exact   fraction of sources whose output equals a reference (token for token)
    wer     fraction of sources whose output has any error: 1 - exact (G2P's word error rate)
    per     token edit distance / reference tokens, summed over the corpus (G2P's phoneme
            error rate; the word error rate of speech recognition when tokens are words)

The token metrics count rows with one source once, against their closest reference (a word's
alternative pronunciations in CMUdict), as G2P results are reported.

References are the raw target texts of the split (``TaskData.references``), never texts
rebuilt from ids, so a word outside the vocabulary counts against the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from rnnkit.data.registry import dataset_dir, fetch, load_report
from rnnkit.models.seq2seq import DATA_FIELDS
from rnnkit.tasks.base import TaskData

SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}
FIXED = DATA_FIELDS  # the Seq2Seq config fields the data sets

METRICS = ("bleu", "chrf", "exact", "wer", "per")


@runtime_checkable
class PairScoring(Protocol):
    """What :func:`score_pairs` reads of a pair task's ``[task]`` config."""

    beam: int  # beam width (1: greedy)
    length_penalty: float  # GNMT alpha of beam search

    @property
    def resolved_metrics(self) -> tuple[str, ...]:
        """The metrics to report: the config's own, or its dataset's defaults where empty."""
        ...


def check_metrics(metrics: Sequence[str], where: str = "task.metrics") -> None:
    """Refuse a metric name not in :data:`METRICS`."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"{where}: unknown metrics {unknown}; known: {list(METRICS)}")


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences (substitution, insertion, deletion
    each cost 1)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def text_scores(
    hyps: Sequence[str],
    refs: Sequence[str],
    hyp_tokens: Sequence[Sequence[str]],
    ref_tokens: Sequence[Sequence[str]],
    metrics: Sequence[str],
) -> dict[str, float]:
    """The ``metrics`` of outputs against references (see the module docstring)."""
    if len(hyps) != len(refs):
        raise ValueError(f"hyps: expected {len(refs)} outputs, got {len(hyps)}")
    out: dict[str, float] = {}
    if "bleu" in metrics or "chrf" in metrics:
        import sacrebleu

        if "bleu" in metrics:
            out["bleu"] = float(sacrebleu.corpus_bleu(list(hyps), [list(refs)]).score)
        if "chrf" in metrics:
            out["chrf"] = float(sacrebleu.corpus_chrf(list(hyps), [list(refs)]).score)
    n = max(len(hyps), 1)
    exact = sum(list(h) == list(r) for h, r in zip(hyp_tokens, ref_tokens, strict=True)) / n
    if "exact" in metrics:
        out["exact"] = exact
    if "wer" in metrics:
        out["wer"] = 1.0 - exact
    if "per" in metrics:
        errors = sum(edit_distance(h, r) for h, r in zip(hyp_tokens, ref_tokens, strict=True))
        out["per"] = errors / max(sum(len(r) for r in ref_tokens), 1)
    return out


def decode_rows(
    model: Any,
    batch: Any,
    beam: int = 1,
    length_penalty: float = 0.0,
    batch_size: int = 64,
) -> list[list[int]]:
    """The best output ids of every row of a :class:`PairBatch`, in row order; rows are
    decoded in chunks of similar source length."""
    order = torch.argsort(batch.source_lengths, stable=True)
    out: list[list[int]] = [[] for _ in range(batch.size)]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for chunk in order.split(batch_size):
            rows = batch.rows(chunk)
            s = int(rows.source_lengths.max())
            source = rows.source[:, :s] if rows.source.dim() <= 3 else rows.source[..., :s]
            found = model.decode(
                source.to(device), rows.source_lengths, beam, 1, None, length_penalty
            )
            for i, row in zip(chunk.tolist(), found, strict=True):
                out[i] = row[0][0]
    finally:
        model.train(was_training)
    return out


def references_for(batch: Any, data: TaskData) -> list[str] | None:
    """The raw target texts of ``batch`` when it is one of the prepared splits."""
    for split in ("val", "test", "train"):
        rows = getattr(data, split, None)
        refs = data.references.get(split)
        if (
            rows is not None
            and refs is not None
            and rows.size == batch.size
            and torch.equal(rows.target, batch.target.cpu())
        ):
            return refs
    return None


def same_source_groups(batch: Any) -> list[list[int]]:
    """Rows of a :class:`PairBatch` grouped by identical source (valid steps only), in order
    of first appearance: the alternative references of one source."""
    groups: dict[bytes, list[int]] = {}
    for i in range(batch.size):
        n = int(batch.source_lengths[i])
        row = batch.source[i]
        valid = row[..., :n] if row.dim() == 3 else row[:n]
        groups.setdefault(valid.contiguous().numpy().tobytes(), []).append(i)
    return list(groups.values())


def score_pairs(model: Any, batch: Any, data: TaskData) -> dict[str, float]:
    """The task's metrics (``data.config.metrics``) of the outputs on ``batch``, decoded with
    ``data.config.beam`` (1: greedy) and ``data.config.length_penalty``.

    BLEU and chrF score every row against its own reference. The token metrics (exact, wer,
    per) count the rows of one source once, against the reference closest to the output
    (fewest token edits), as G2P results are reported: a word with two pronunciations is
    right when it matches either."""
    cfg = data.config
    if not isinstance(cfg, PairScoring):
        raise TypeError(
            f"data.config must have beam, length_penalty and resolved_metrics, "
            f"got {type(cfg).__name__}"
        )
    codec = data.codec
    refs = references_for(batch, data)
    if refs is None:  # a file given to evaluate: its targets, through the vocabulary
        refs = [
            codec.decode_target(t[:n].tolist())
            for t, n in zip(batch.target, batch.target_lengths, strict=True)
        ]
    ids = decode_rows(model, batch, cfg.beam, cfg.length_penalty)
    hyps = [codec.decode_target(i) for i in ids]
    hyp_tokens = [codec.target_tokens(i) for i in ids]
    ref_tokens = [codec.target_tokenizer.tokenize(r) for r in refs]
    metrics = cfg.resolved_metrics
    out = text_scores(
        hyps, refs, hyp_tokens, ref_tokens, [m for m in metrics if m in ("bleu", "chrf")]
    )
    token_metrics = [m for m in metrics if m not in ("bleu", "chrf")]
    if token_metrics:
        groups = same_source_groups(batch)
        first = [g[0] for g in groups]
        closest = [
            min(g, key=lambda r, h=hyp_tokens[g[0]]: edit_distance(h, ref_tokens[r]))
            for g in groups
        ]
        out.update(
            text_scores(
                [hyps[i] for i in first],
                [refs[r] for r in closest],
                [hyp_tokens[i] for i in first],
                [ref_tokens[r] for r in closest],
                token_metrics,
            )
        )
    return {m: out[m] for m in metrics}


def check_split_files(cfg: Any) -> None:
    """Refuse a ``[task]`` config whose data is ambiguous: ``train``/``valid``/``test`` files
    beside a ``dataset`` (which has its own splits, so the files would be ignored), or no
    dataset without a training and a validation file."""
    if cfg.dataset:
        given = [f"task.{n}" for n in ("train", "valid", "test") if getattr(cfg, n)]
        if given:
            raise ValueError(
                f"{', '.join(given)} name files for dataset = '' but dataset={cfg.dataset!r} "
                f'has its own splits: set task.dataset="" to train on your files'
            )
    elif not (cfg.train and cfg.valid):
        raise ValueError("dataset='' needs train and valid files (task.train, task.valid)")


def read_splits(cfg: Any, suffix: str, read: Callable[[Path], Any]) -> dict[str, Any]:
    """``read`` of each split's file: the dataset's ``{train,valid,test}<suffix>`` (fetched on
    first use) when ``cfg.dataset`` names one, else ``cfg.train``, ``cfg.valid`` and
    ``cfg.test`` (the validation file when empty)."""
    if cfg.dataset:
        if load_report(cfg.dataset) is None:
            fetch(cfg.dataset)
        root = dataset_dir(cfg.dataset)
        files = {s: root / f"{name}{suffix}" for s, name in SPLIT_FILES.items()}
    else:
        test = cfg.test or cfg.valid
        files = {"train": Path(cfg.train), "val": Path(cfg.valid), "test": Path(test)}
    return {split: read(path) for split, path in files.items()}


def store_pairs(records: list, path: Path, keys: tuple[str, str], what: str) -> list[str]:
    """Write (source, target) records as JSONL objects with ``keys`` at ``path``, which is
    also the validation file; the overrides that make a pair task read it."""
    lines = []
    for i, record in enumerate(records):
        if not isinstance(record, list | tuple) or len(record) != 2:
            raise ValueError(f"records[{i}]: expected {what} pair, got {record!r}")
        source = record[0].tolist() if hasattr(record[0], "tolist") else record[0]
        lines.append(json.dumps({keys[0]: source, keys[1]: str(record[1])}))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    name = json.dumps(str(path))
    return ['task.dataset=""', f"task.train={name}", f"task.valid={name}"]
