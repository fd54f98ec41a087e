"""POS and NER on real corpora: BiLSTM-softmax against BiLSTM-CRF, with and without characters.

Data: the registry datasets ``wsj-pos`` (Penn tags), ``wnut16-ner`` (tweets, BIO),
``hebrew-ud`` (UPOS), ``hebrew-ner`` (NEMO, BIOES) and ``turkish-ud`` (coarse tags), each
with its fixed train / valid / test split (``rnnkit data info NAME``). Every variant is the
``tagging`` task trained by ``rnnkit.tasks.run.train`` (the same code as
``rnnkit train tagging --set task.dataset='"wsj-pos"'``), differing only in
``model.decoder`` (softmax / crf) and ``task.chars`` (character BiLSTM features or not).

Model selection: after every epoch the validation split is scored (``score_val=True``) and
the checkpoint of the best validation token accuracy (POS, ``val_token_accuracy``) or span F1
(NER, ``val_f1_overall``) is kept; the test split is read once, by that checkpoint, after
training. ``--no-test`` stops before that, for choosing settings on validation. Epochs and
the other settings are fixed per dataset in :data:`DATASETS` (chosen on validation).

Baseline on the same split: the most frequent training tag of each word (ties: the tag more
frequent overall), the most frequent training tag overall for a word never seen in training.
Scores: token accuracy for POS; span precision, recall and F1 by the conlleval definition
(``rnnkit.tagging.span_scores``) and token accuracy for NER. Training time is the wall time
of ``train`` (per-epoch validation included) on one torch thread, and the process CPU time
(which other jobs on a shared machine do not inflate).

    rnnkit data fetch wsj-pos   # and the others (train fetches them too)
    OMP_NUM_THREADS=1 python benchmarks/tagging_corpora.py --json tagging.json
    python benchmarks/tagging_corpora.py --datasets wsj-pos --epochs 1 --variants bilstm-crf
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple

import torch

from rnnkit.data.readers import read_conll
from rnnkit.data.registry import dataset_dir, fetch
from rnnkit.tagging import span_scores, token_accuracy
from rnnkit.tasks import run

# name -> (decoder, chars)
VARIANTS = {
    "bilstm-softmax": ("softmax", False),
    "bilstm-softmax+chars": ("softmax", True),
    "bilstm-crf": ("crf", False),
    "bilstm-crf+chars": ("crf", True),
}


class Setting(NamedTuple):
    kind: str  # "pos" (token accuracy) or "ner" (span F1)
    epochs: int  # most epochs; the best validation epoch is kept
    batch_size: int  # sentences per step


# Fixed before any test run (docs/drafts/tagging_corpora.md): the model sizes below were
# chosen on wsj-pos validation accuracy; the epoch caps keep each run near 5 CPU minutes.
DATASETS = {
    "wsj-pos": Setting("pos", epochs=30, batch_size=8),
    "wnut16-ner": Setting("ner", epochs=20, batch_size=16),
    "turkish-ud": Setting("pos", epochs=12, batch_size=32),
    "hebrew-ud": Setting("pos", epochs=6, batch_size=32),
    "hebrew-ner": Setting("ner", epochs=6, batch_size=32),
}
MONITOR = {"pos": "val_token_accuracy", "ner": "val_f1_overall"}

Sentences = list[tuple[list[str], list[str]]]


def read_split(name: str, split: str) -> Sentences:
    """(tokens, tags) of each sentence of a registry dataset's split (fetched when needed)."""
    root = dataset_dir(name)
    if not (root / "train.conll").exists():
        fetch(name)
    return [(s.tokens, s.tags) for s in read_conll(root / f"{split}.conll")]


def word_majority(train: Sentences, sentences: list[list[str]]) -> list[list[str]]:
    """Each word's most frequent training tag; the most frequent tag overall for unseen words.

    Ties between a word's tags go to the tag more frequent overall, then to the first by name.
    """
    overall: Counter = Counter(t for _, tags in train for t in tags)
    per_word: dict[str, Counter] = defaultdict(Counter)
    for tokens, tags in train:
        for token, tag in zip(tokens, tags, strict=True):
            per_word[token][tag] += 1
    rank = {t: (-n, t) for t, n in overall.items()}
    best = {w: min(c, key=lambda t: (-c[t], *rank[t])) for w, c in per_word.items()}
    default = min(overall, key=lambda t: rank[t])
    return [[best.get(w, default) for w in tokens] for tokens in sentences]


def scores(kind: str, gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Token accuracy, and for NER span precision/recall/F1 overall (conlleval)."""
    out = {"token_accuracy": token_accuracy(gold, pred)}
    if kind == "ner":
        s = span_scores(gold, pred).overall
        out.update(precision_overall=s.precision, recall_overall=s.recall, f1_overall=s.f1)
    return out


def baseline(name: str, kind: str, split: str = "test") -> dict:
    train, rows = read_split(name, "train"), read_split(name, split)
    known = {w for tokens, _ in train for w in tokens}
    words = [w for tokens, _ in rows for w in tokens]
    pred = word_majority(train, [tokens for tokens, _ in rows])
    return {
        **scores(kind, [tags for _, tags in rows], pred),
        "oov_rate": sum(w not in known for w in words) / len(words),
    }


def run_variant(dataset: str, variant: str, args: argparse.Namespace, out_dir: Path) -> dict:
    setting = DATASETS[dataset]
    decoder, chars = VARIANTS[variant]
    monitor = MONITOR[setting.kind]
    overrides = [
        f"seed={args.seed}",
        f'task.dataset="{dataset}"',
        f"task.chars={str(chars).lower()}",
        f"task.min_freq={args.min_freq}",
        f'model.decoder="{decoder}"',
        f"model.word_dim={args.word_dim}",
        f"model.hidden_size={args.hidden}",
        f"model.dropout={args.dropout}",
        f"trainer.epochs={args.epochs or setting.epochs}",
        f"trainer.batch_size={args.batch_size or setting.batch_size}",
        f"trainer.lr={args.lr}",
        f"trainer.clip_norm={args.clip}",
        f'trainer.monitor="{monitor}"',
        'trainer.mode="max"',
        'trainer.log.progress="none"',
        "trainer.log.tensorboard=false",
    ]
    if args.vectors:  # pretrained word vectors (their words lowercased with --lower)
        overrides += [
            f'task.vectors="{args.vectors}"',
            f"task.vectors_vocab={args.vectors_vocab}",
            f"task.lower={str(args.lower).lower()}",
        ]
    if chars:  # the task refuses character sizes without character input
        overrides += [f"model.char_dim={args.char_dim}", f"model.char_hidden={args.char_hidden}"]
    cfg = run.load_run_config("tagging", overrides=overrides)
    run_dir = out_dir / dataset / variant
    start, cpu = time.perf_counter(), time.process_time()
    summary = run.train(cfg, run_dir, score_val=True)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    curve = [h[monitor] for h in summary["history"]]
    best = max(range(len(curve)), key=lambda e: (curve[e], -e))
    result = {
        "dataset": dataset,
        "variant": variant,
        "decoder": decoder,
        "chars": chars,
        "train_seconds": seconds,
        "train_cpu_seconds": cpu_seconds,
        "epochs": len(curve),
        "best_epoch": best + 1,
        "val_best": curve[best],
        "val_curve": curve,
    }
    if not args.no_test:
        test = run.evaluate(run_dir, split="test", which="best")
        result["test"] = {k: v for k, v in test.items() if not k.startswith("baseline_")}
    return result


def table(dataset: str, base: dict, results: list[dict], split: str = "test") -> str:
    """One Markdown table: the baseline row, then one row per variant."""
    ner = DATASETS[dataset].kind == "ner"
    head = (
        "| model | test F1 | precision | recall | token acc. |" if ner else "| model | test acc. |"
    )
    head += f" best epoch (val {'F1' if ner else 'acc.'}) | train s (CPU s) |"
    cols = head.count("|") - 1
    title = f"**{dataset}** ({split} OOV rate {base['oov_rate']:.1%})"
    rows = [title, "", head, "|---" * cols + "|"]

    def cells(t: dict | None) -> str:
        if t is None:
            return " – |" * (cols - 3)
        if not ner:
            return f" {t['token_accuracy']:.4f} |"
        keys = ("f1_overall", "precision_overall", "recall_overall", "token_accuracy")
        return "".join(f" {t[k]:.4f} |" for k in keys)

    rows.append(f"| word-majority baseline ({split}) |" + cells(base) + " – | – |")
    for r in results:
        rows.append(
            f"| {r['variant']} |{cells(r.get('test'))} {r['best_epoch']}/{r['epochs']} "
            f"({r['val_best']:.4f}) | {r['train_seconds']:.0f} ({r['train_cpu_seconds']:.0f}) |"
        )
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--epochs", type=int, default=0, help="override every dataset's epochs")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--hidden", type=int, default=150, help="word LSTM size per direction")
    p.add_argument("--word-dim", type=int, default=100)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--char-dim", type=int, default=50, help="character embedding size")
    p.add_argument("--char-hidden", type=int, default=50, help="char BiLSTM size per direction")
    p.add_argument("--batch-size", type=int, default=0, help="override every dataset's batch")
    p.add_argument("--min-freq", type=int, default=2, help="rarer training words share <unk>")
    p.add_argument("--vectors", default="", help='word vectors: a file or "glove-100d"')
    p.add_argument("--vectors-vocab", type=int, default=0, help="ids for the first N vectors too")
    p.add_argument("--lower", action="store_true", help="lowercase word ids (GloVe's words)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-test", action="store_true", help="validation only (choosing settings)")
    p.add_argument("--runs", default="", help="keep the run directories here (default: temp)")
    p.add_argument("--json", default="", help="write the results here")
    args = p.parse_args()
    torch.set_num_threads(1)
    payload: dict = {"config": {k: v for k, v in vars(args).items() if k not in ("json", "runs")}}
    payload["settings"] = {d: DATASETS[d]._asdict() for d in args.datasets}
    payload["torch_threads"] = torch.get_num_threads()
    payload["datasets"] = {}
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.runs or tmp)
        for dataset in args.datasets:  # one after another, never in parallel
            kind = DATASETS[dataset].kind
            split = "valid" if args.no_test else "test"
            base = baseline(dataset, kind, split)
            print(f"{dataset}: word-majority baseline on {split}: {base}", flush=True)
            results = []
            for variant in args.variants:
                r = run_variant(dataset, variant, args, out_dir)
                t = r.get("test", {})
                main_score = t.get("f1_overall" if kind == "ner" else "token_accuracy")
                print(
                    f"{dataset} {variant}: test {main_score}, best epoch {r['best_epoch']} "
                    f"(val {r['val_best']:.4f}), {r['train_seconds']:.0f} s "
                    f"({r['train_cpu_seconds']:.0f} CPU s)",
                    flush=True,
                )
                results.append(r)
            payload["datasets"][dataset] = {"baseline": base, "baseline_split": split}
            payload["datasets"][dataset]["results"] = results
            tables.append(table(dataset, base, results, split))
            if args.json:
                Path(args.json).write_text(json.dumps(payload, indent=1))
    print()
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
