"""The ``recommend`` task: the next item of a user's time-ordered history (GRU4Rec).

Each user's interactions, in time order (a stable sort by timestamp: ties keep the file's
order, which ``movielens-100k`` writes by item id), form one sequence s_1..s_n. The last
item s_n is the user's test item, s_(n-1) the validation item, s_1..s_(n-2) training
(leave-one-out; users with fewer than 3 items train only)::

    [task]
    dataset = "movielens-100k"   # or "" with interactions = "log.tsv", items = "items.tsv"
    max_len = 200                # a training row: the last N training items of a user

A :class:`~rnnkit.models.recommender.SessionRecommender` learns the next item at every step
of the training rows. A validation (test) row is the user's whole history before the held-out
item, with that item as the one target at its last step. Scores: Recall@k (the held-out item
among the k best) and MRR@k (1 / its rank, 0 past k), averaged over users; an item's rank
counts the items scored above it and those tied with it (ties count against it). With
``exclude_seen`` (the default) the items of the history are left out of the ranking, for
the model and both baselines alike. Baselines on the same rows (``rnnkit evaluate``):

    popular   training counts of each item
    knn       item-kNN after the last item: sim(i, j) = c_ij / (sqrt(c_i c_j) + lambda), c_ij
              the users whose training items hold both i and j, c_i those holding i (cosine of
              the item-user vectors, shrunk by lambda, as GRU4Rec's baseline); ties by
              popularity; lambda from {0, 5, 20, 50, 100} by validation Recall@k
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnkit.data.batches import SequenceBatch, trimmed
from rnnkit.data.codec import ItemCodec
from rnnkit.data.errors import BadRows, DataFormatError, iter_lines
from rnnkit.data.registry import dataset_dir, fetch, load_report
from rnnkit.models.recommender import SessionRecommender
from rnnkit.tasks.base import Task, TaskData

__all__ = ["TASK", "RecommendConfig", "item_knn", "leave_last_out", "rank_metrics", "ranks"]

LAMBDAS = (0.0, 5.0, 20.0, 50.0, 100.0)  # item-kNN shrinkage, chosen on validation


@dataclass(frozen=True)
class RecommendConfig:
    dataset: str = "movielens-100k"  # a registered dataset of interactions, or "" for files
    interactions: str = ""  # TSV, header with user, item, timestamp (dataset = "")
    items: str = ""  # TSV, header with item, title (year): the catalogue ("": the items seen)
    max_len: int = 200  # N: a training row holds the user's last N training items
    cutoff: int = 20  # k of Recall@k and MRR@k
    exclude_seen: bool = True  # rank the held-out item among the items not in the history

    def __post_init__(self) -> None:
        if self.dataset and self.dataset != "movielens-100k":
            raise ValueError(
                f"dataset must be 'movielens-100k' or '' (files), got {self.dataset!r}"
            )
        if self.dataset and (self.interactions or self.items):
            raise ValueError("interactions and items name files for dataset = '' (no dataset)")
        if not self.dataset and not self.interactions:
            raise ValueError("dataset = '' needs an interactions file (task.interactions)")
        for name, low in (("max_len", 2), ("cutoff", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


# ---- reading and the split -----------------------------------------------------------------
def _rows(
    path: Path, columns: list[str], optional: tuple[str, ...] = ()
) -> list[tuple[int, dict[str, str]]]:
    """(line, {column: value}) of a TSV file whose header names ``columns`` (and, where it
    has them, the ``optional`` ones, which may be empty)."""
    lines = iter(iter_lines(path, BadRows(path, False)))
    first = next(lines, None)
    header = first[1].split("\t") if first else []
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataFormatError(path, 1, f"expected header columns {columns}, missing {missing}")
    wanted = {c: header.index(c) for c in [*columns, *(c for c in optional if c in header)]}
    out = []
    for line, text in lines:
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != len(header):
            raise DataFormatError(path, line, f"expected {len(header)} fields, found {len(fields)}")
        row = {c: fields[i].strip() for c, i in wanted.items()}
        empty = [c for c in columns if not row[c]]
        if empty:
            raise DataFormatError(path, line, f"{empty[0]}: expected a value, found none")
        out.append((line, row))
    return out


def read_catalogue(path: Path) -> tuple[list[str], list[str]]:
    """Item ids and titles ("Star Wars (1977)" where a year column holds one) of an items file."""
    rows, first = [], {}
    for line, r in _rows(path, ["item", "title"], ("year",)):
        if r["item"] in first:
            raise DataFormatError(
                path, line, f"item {r['item']!r} is already on line {first[r['item']]}"
            )
        first[r["item"]] = line
        rows.append(r)
    titles = [f"{r['title']} ({r['year']})" if r.get("year") else r["title"] for r in rows]
    return [r["item"] for r in rows], titles


def read_histories(path: Path, known: set[str] | None) -> dict[str, list[str]]:
    """Each user's items in time order (a stable sort by timestamp: ties keep file order)."""
    events: dict[str, list[tuple[float, str]]] = {}
    for line, row in _rows(path, ["user", "item", "timestamp"]):
        try:
            stamp = float(row["timestamp"])
        except ValueError:
            stamp = math.nan
        if not math.isfinite(stamp):
            raise DataFormatError(
                path, line, f"timestamp: expected a number, found {row['timestamp']!r}"
            )
        if known is not None and row["item"] not in known:
            raise DataFormatError(path, line, f"item {row['item']!r} is not in the items file")
        events.setdefault(row["user"], []).append((stamp, row["item"]))
    if not events:
        raise DataFormatError(path, None, "holds no interaction")
    return {u: [i for _, i in sorted(e, key=lambda x: x[0])] for u, e in events.items()}


def leave_last_out(histories: dict[str, list[Any]]) -> dict[str, tuple[list, Any, Any]]:
    """user -> (training items, validation item, test item): the last item for test, the one
    before for validation; a user with fewer than 3 items keeps them all for training."""
    return {
        u: (s[:-2], s[-2], s[-1]) if len(s) >= 3 else (list(s), None, None)
        for u, s in histories.items()
    }


def _files(cfg: RecommendConfig) -> tuple[Path, Path | None]:
    """The interactions file and the items file (None: no catalogue) the config names."""
    if cfg.dataset:
        if load_report(cfg.dataset) is None:
            fetch(cfg.dataset)
        folder = dataset_dir(cfg.dataset)
        return folder / "interactions.tsv", folder / "items.tsv"
    files = {"interactions": cfg.interactions, "items": cfg.items}
    paths = {key: Path(name).expanduser() for key, name in files.items() if name}
    for key, path in paths.items():
        if not path.is_file():
            raise FileNotFoundError(f"task.{key}: no such file: {path}")
    return paths["interactions"], paths.get("items")


# ---- batches -------------------------------------------------------------------------------
def _pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)  # (B,)
    out = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)  # (B, T), 0 pads
    for b, r in enumerate(rows):
        out[b, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out, lengths


def training_rows(sequences: list[list[int]], max_len: int) -> SequenceBatch:
    """Rows of the last ``max_len`` items of each sequence (2 or more): inputs all but the
    last, targets the next item at every step."""
    windows = [s[-max_len:] for s in sequences if len(s) >= 2]
    if not windows:
        raise ValueError("no user has 2 training items: nothing to train on")
    inputs, lengths = _pad([w[:-1] for w in windows])
    targets, _ = _pad([w[1:] for w in windows])
    mask = torch.arange(inputs.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    return SequenceBatch(inputs, targets, mask, lengths)


def held_out_rows(histories: list[list[int]], targets: list[int]) -> SequenceBatch:
    """Rows of whole histories, each with its held-out item as the target of its last step."""
    inputs, lengths = _pad(histories)
    last = torch.arange(inputs.shape[1]).unsqueeze(0) == (lengths - 1).unsqueeze(1)  # (B, T)
    target = last.long() * torch.tensor(targets, dtype=torch.long).unsqueeze(1)  # (B, T)
    return SequenceBatch(inputs, target, last, lengths)


def _last(batch: SequenceBatch, field: torch.Tensor) -> torch.Tensor:
    """(B,) the entry of ``field`` (B, T) at each row's last step."""
    return field[torch.arange(batch.size), batch.lengths - 1]


def excluded(batch: SequenceBatch, v: int, exclude_seen: bool) -> torch.Tensor:
    """(B, V) bool: the padding id and, with ``exclude_seen``, the history's items other than
    the held-out one."""
    out = torch.zeros(batch.size, v, dtype=torch.bool)
    out[:, 0] = True
    if exclude_seen:
        valid = torch.arange(batch.steps).unsqueeze(0) < batch.lengths.unsqueeze(1)  # (B, T)
        out.scatter_(1, batch.inputs.cpu() * valid, True)  # padded steps mark id 0
        out[torch.arange(batch.size), _last(batch, batch.targets).cpu()] = False
    return out


# ---- metrics and baselines -----------------------------------------------------------------
def ranks(
    scores: torch.Tensor,
    targets: torch.Tensor,
    exclude: torch.Tensor,
    secondary: torch.Tensor | None = None,
) -> torch.Tensor:
    """(N,) 1-based rank of each target among the items not in ``exclude`` (N, V), by
    ``scores`` (N, V) and then ``secondary`` (V,) (N, V): 1 + the items above it + the items
    tied with it on both keys (ties count against it)."""
    s = scores.double().masked_fill(exclude, -math.inf)  # (N, V)
    rows = torch.arange(s.shape[0])
    t = s[rows, targets].unsqueeze(1)  # (N, 1)
    above, tied = s > t, s == t  # (N, V)
    if secondary is not None:
        u = secondary.double().expand_as(s)  # (N, V)
        u_t = u[rows, targets].unsqueeze(1)
        above, tied = above | (tied & (u > u_t)), tied & (u == u_t)
    return 1 + above.sum(1) + tied.sum(1) - 1  # the target is tied with itself


def rank_metrics(r: torch.Tensor, k: int) -> dict[str, float]:
    """Recall@k = mean [r <= k]; MRR@k = mean of 1 / r where r <= k, else 0."""
    hit = (r <= k).double()
    return {f"recall@{k}": float(hit.mean()), f"mrr@{k}": float((hit / r.double()).mean())}


def item_knn(x: torch.Tensor, lam: float) -> torch.Tensor:
    """sim (V, V) = c_ij / (sqrt(c_i c_j) + lam), c = x^T x of a user-item 0/1 matrix x (U, V);
    the diagonal is 0."""
    c = x.T.double() @ x.double()  # (V, V) co-occurrence counts
    n = c.diagonal().clone()  # (V,) users per item
    sim = c / (torch.sqrt(n.unsqueeze(1) * n.unsqueeze(0)) + lam).clamp_min(1e-12)
    return sim.fill_diagonal_(0.0)


def baselines(
    train: list[list[int]], held: dict[str, SequenceBatch], v: int, cfg: RecommendConfig
) -> dict[str, float]:
    """Recall@k and MRR@k of the popular and item-kNN baselines on validation and test."""
    users = torch.tensor([u for u, seq in enumerate(train) for _ in seq], dtype=torch.long)
    items = torch.tensor([j for seq in train for j in seq], dtype=torch.long)
    counts = torch.bincount(items, minlength=v).double()  # (V,) training counts
    x = torch.zeros(len(train), v)  # (U, V): user u holds item j in training
    x[users, items] = 1.0
    k = cfg.cutoff
    view = {
        s: (_last(b, b.targets), _last(b, b.inputs), excluded(b, v, cfg.exclude_seen))
        for s, b in held.items()
    }  # split -> (held-out item, last item of the history, excluded items), (B,) (B,) (B, V)

    def scored(name: str, ranked: dict[str, torch.Tensor]) -> dict[str, float]:
        return {
            f"{name}_{split}_{m}": value
            for split, r in ranked.items()
            for m, value in rank_metrics(r, k).items()
        }

    out = scored(
        "popular", {s: ranks(counts.expand(len(t), v), t, e) for s, (t, _, e) in view.items()}
    )
    best: dict[str, float] = {}
    for lam in LAMBDAS:
        sim = item_knn(x, lam)  # (V, V)
        found = scored("knn", {s: ranks(sim[a], t, e, counts) for s, (t, a, e) in view.items()})
        if not best or found[f"knn_val_recall@{k}"] > best[f"knn_val_recall@{k}"]:
            best = {**found, "knn_lambda": lam}
    return {**out, **best}


# ---- hooks ---------------------------------------------------------------------------------
def prepare(cfg: RecommendConfig, seed: int, codec: ItemCodec | None = None) -> TaskData:
    interactions, items = _files(cfg)
    catalogue = read_catalogue(items) if items is not None else None
    histories = read_histories(interactions, set(catalogue[0]) if catalogue else None)
    if codec is None:
        ids, titles = catalogue or (sorted({i for s in histories.values() for i in s}), None)
        codec = ItemCodec(tuple(ids), tuple(titles or [""] * len(ids)))
    split = leave_last_out(
        {u: codec.encode(s, f"{interactions}: user {u}") for u, s in histories.items()}
    )
    train = [t for t, _, _ in split.values()]
    held = [(t, val, test) for t, val, test in split.values() if val is not None]
    if not held:
        raise ValueError(f"{interactions}: no user has 3 items, so none is held out")
    batches = {
        "val": held_out_rows([t for t, _, _ in held], [val for _, val, _ in held]),
        "test": held_out_rows([[*t, val] for t, val, _ in held], [test for _, _, test in held]),
    }
    return TaskData(
        train=training_rows(train, cfg.max_len),
        val=batches["val"],
        test=batches["test"],
        codec=codec,
        fixed={"num_items": codec.size},
        baseline=baselines(train, batches, codec.size, cfg),
        config=cfg,
    )


def score(model: Any, batch: SequenceBatch, data: TaskData) -> dict[str, float]:
    """Recall@k and MRR@k of the held-out items of ``batch`` (rows scored 256 at a time)."""
    cfg = data.config if isinstance(data.config, RecommendConfig) else RecommendConfig()
    model.eval()
    device = next(model.parameters()).device
    order = torch.argsort(batch.lengths.cpu())
    found = []
    for index in order.split(256):
        rows = trimmed(batch.rows(index.to(batch.lengths.device)))
        s = model.next_scores(rows.inputs.to(device), rows.lengths.to(device)).cpu()  # (b, V)
        rows = rows.to("cpu")
        found.append(
            ranks(s, _last(rows, rows.targets), excluded(rows, s.shape[1], cfg.exclude_seen))
        )
    return rank_metrics(torch.cat(found), cfg.cutoff)


TASK = Task(
    "recommend",
    "next item of a user's time-ordered history, GRU4Rec (MovieLens 100k)",
    RecommendConfig,
    SessionRecommender,
    prepare,
    fixed=("num_items",),
    aliases=("gru4rec",),
    score=score,
    eval_keys=("cutoff", "exclude_seen"),
)
