"""Punctuation and case restoration on Shakespeare: baselines, a left-to-right and a BiLSTM tagger.

Data (``rnnkit.data.punctuation``): every word of the plays is lowercased and stripped of
punctuation, and labelled with its case class (``lower``, ``cap``, ``upper``) and the mark
that follows it (``none , . ? ! ; :``); paragraphs (speeches, stage directions) are cut into
units of at most 60 words; units with a word outside the three case classes (``McDonald``)
are dropped. Splits are the dataset's, by play (33 / 4 / 5 works): no test play is seen in
training. The training units are a seeded random sample (``--seed``) of the training plays
until ``--train-words`` words, the validation units likewise (``--val-words``); the test
split is used whole unless ``--test-words`` is given.

One label per word: the tagger predicts the joint tag ``case|punct`` (e.g. ``cap|,``) with
one softmax over the joint tags seen in training; the case and punctuation predictions are
the two halves of the predicted tag, so both are scored exactly from one model.

Models:
- ``majority``: every word gets the most frequent training label of each half
  (``lower``, ``none``).
- ``word-majority``: each word gets the case and the mark most often seen after it in the
  training sample (ties: the more frequent label overall); unseen words get the majority.
- ``lstm-l2r``: the ``tagging`` task's SequenceTagger with ``bidirectional = false``: a
  one-directional (left-to-right) LSTM, so a word's mark is chosen without seeing the next
  word. Softmax decoder (a CRF's Viterbi would let later words leak in).
- ``bilstm``: the same tagger, bidirectional, softmax decoder.
Both taggers: word embeddings only (``task.chars = false``), the same hidden size per
direction, best epoch by validation loss (``rnnkit.tasks.run.train``), one torch thread.

Scores on the test plays: per-class precision, recall and F1 of the case and of the
punctuation label (every word is one decision; ``rnnkit.tagging.label_scores``), and the
macro-F1 over the non-majority classes (``cap``, ``upper``; ``, . ? ! ; :``).

    rnnkit data fetch shakespeare
    OMP_NUM_THREADS=1 python benchmarks/punctuation.py --json punct.json
    python benchmarks/punctuation.py --train-words 5000 --val-words 2000 --test-words 2000 \\
        --epochs 1   # smoke test
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

from rnnkit.data.punctuation import CASES, PUNCTS, SOURCES, Labelled, units, write_conll
from rnnkit.data.readers import read_conll
from rnnkit.data.registry import dataset_dir, fetch
from rnnkit.tagging import PRF, label_scores, macro_f1
from rnnkit.tasks import get_task, run

MODELS = ("majority", "word-majority", "lstm-l2r", "bilstm")
HALVES = {"case": CASES, "punct": PUNCTS}
MAJORITY = {"case": "lower", "punct": "none"}


def sample(labelled: list[Labelled], words: int, seed: int) -> list[Labelled]:
    """A seeded random sample of units holding at least ``words`` words (0: all, in order)."""
    if not words:
        return labelled
    order = list(range(len(labelled)))
    random.Random(seed).shuffle(order)
    out, total = [], 0
    for i in order:
        if total >= words:
            break
        out.append(labelled[i])
        total += len(labelled[i].words)
    return out


def build_data(args: argparse.Namespace, out: Path) -> dict[str, dict[str, int]]:
    """Write ``{train,valid,test}.conll`` (columns ``word case punct case|punct``) to ``out``."""
    ext, reader = SOURCES[args.source]
    root = dataset_dir(args.source)
    if not (root / f"train.{ext}").exists():
        fetch(args.source)
    sizes = {}
    limits = {"train": args.train_words, "valid": args.val_words, "test": args.test_words}
    for offset, (split, words) in enumerate(limits.items()):
        labelled = units(reader(root / f"{split}.{ext}"), args.max_words)
        labelled = sample(labelled, words, args.seed + offset)
        write_conll(out / f"{split}.conll", labelled)
        sizes[split] = {"units": len(labelled), "words": sum(len(x.words) for x in labelled)}
    return sizes


def read_split(path: Path) -> tuple[list[list[str]], dict[str, list[list[str]]]]:
    """Words and gold labels (case, punct) of a written split."""
    words = [s.tokens for s in read_conll(path, tag_column=1)]
    gold = {
        "case": [s.tags for s in read_conll(path, tag_column=1)],
        "punct": [s.tags for s in read_conll(path, tag_column=2)],
    }
    return words, gold


def majority_predict(train_gold: dict, test_words: list[list[str]]) -> dict:
    out = {}
    for half in HALVES:
        top = Counter(x for row in train_gold[half] for x in row).most_common(1)[0][0]
        out[half] = [[top] * len(row) for row in test_words]
    return out


def word_majority_predict(train_words, train_gold: dict, test_words) -> dict:
    out = {}
    for half in HALVES:
        overall = Counter(x for row in train_gold[half] for x in row)
        per_word: dict[str, Counter] = defaultdict(Counter)
        for ws, ls in zip(train_words, train_gold[half], strict=True):
            for w, label in zip(ws, ls, strict=True):
                per_word[w][label] += 1
        best = {
            w: max(c.items(), key=lambda kv: (kv[1], overall[kv[0]]))[0]
            for w, c in per_word.items()
        }
        top = overall.most_common(1)[0][0]
        out[half] = [[best.get(w, top) for w in row] for row in test_words]
    return out


def tagger_predict(name: str, args: argparse.Namespace, data_dir: Path, run_dir: Path):
    """Train the tagger, then the joint tags of the test split split into case and punct."""
    overrides = [
        f"seed={args.seed}",
        f'task.train="{data_dir / "train.conll"}"',
        f'task.val="{data_dir / "valid.conll"}"',
        f'task.test="{data_dir / "test.conll"}"',
        'task.column="3"',
        'model.decoder="softmax"',
        "task.chars=false",
        f"model.bidirectional={'true' if name == 'bilstm' else 'false'}",
        f"model.word_dim={args.word_dim}",
        f"task.min_freq={args.min_freq}",
        f"model.hidden_size={args.hidden}",
        f"model.dropout={args.dropout}",
        f"trainer.epochs={args.epochs}",
        f"trainer.batch_size={args.batch_size}",
        f"trainer.lr={args.lr}",
        f"trainer.clip_norm={args.clip}",
        'trainer.log.progress="none"',
        "trainer.log.tensorboard=false",
    ]
    cfg = run.load_run_config("tagging", overrides=overrides)
    start = time.perf_counter()
    summary = run.train(cfg, run_dir)
    seconds = time.perf_counter() - start
    history = summary["history"]
    losses = [h["val_loss"] for h in history]
    best = min(range(len(losses)), key=lambda e: (losses[e], e))
    model = run.load(run_dir, "best")
    data = get_task("tagging").prepare(cfg.task_config, cfg.seed, model.codec)
    tags = model.tag_rows(data.test)
    pred = {
        "case": [[t.split("|")[0] for t in row] for row in tags],
        "punct": [[t.split("|")[1] for t in row] for row in tags],
    }
    info = {
        "train_seconds": seconds,
        "epochs": len(history),
        "best_epoch": best + 1,
        "val_loss_curve": losses,
        "joint_tags": len(data.vocab["tags"]),
        "vocab_words": len(data.vocab["words"]),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return pred, info


def score(gold: dict, pred: dict) -> dict:
    out = {}
    for half, labels in HALVES.items():
        s = label_scores(gold[half], pred[half], list(labels))
        flat = [
            (g, p)
            for gr, pr in zip(gold[half], pred[half], strict=True)
            for g, p in zip(gr, pr, strict=True)
        ]
        out[half] = {
            "per_class": {k: vars(v) for k, v in s.items()},
            "macro_f1_non_majority": macro_f1(s, exclude=(MAJORITY[half],)),
            "accuracy": sum(g == p for g, p in flat) / len(flat),
        }
    return out


def tables(results: list[dict]) -> str:
    lines = [
        "| model | case macro-F1 (cap, upper) | punct macro-F1 (, . ? ! ; :) | case acc. | "
        "punct acc. | params | best epoch | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s, i = r["scores"], r.get("info", {})
        lines.append(
            f"| {r['model']} | {s['case']['macro_f1_non_majority']:.4f} | "
            f"{s['punct']['macro_f1_non_majority']:.4f} | {s['case']['accuracy']:.4f} | "
            f"{s['punct']['accuracy']:.4f} | {i.get('parameters', '-')} | "
            + (f"{i['best_epoch']}/{i['epochs']} | {i['train_seconds']:.0f} |" if i else "- | - |")
        )
    for half, labels in HALVES.items():
        support = results[0]["scores"][half]["per_class"]
        lines += [
            "",
            f"{half}: precision / recall / F1 per class on the test plays "
            "(gold words in brackets):",
            "",
            "| model | " + " | ".join(f"`{c}` ({support[c]['support']})" for c in labels) + " |",
            "|---" * (len(labels) + 1) + "|",
        ]
        for r in results:
            cells = [PRF(**r["scores"][half]["per_class"][c]) for c in labels]
            lines.append(
                f"| {r['model']} | "
                + " | ".join(f"{c.precision:.2f} / {c.recall:.2f} / {c.f1:.2f}" for c in cells)
                + " |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default="shakespeare", choices=list(SOURCES))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--train-words", type=int, default=300_000)
    p.add_argument("--val-words", type=int, default=20_000)
    p.add_argument("--test-words", type=int, default=0, help="0: the whole test split")
    p.add_argument("--max-words", type=int, default=60, help="words per unit (sequence)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--hidden", type=int, default=128, help="LSTM size per direction")
    p.add_argument("--word-dim", type=int, default=100)
    p.add_argument("--min-freq", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="", help="write the results here")
    args = p.parse_args()
    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        sizes = build_data(args, data_dir)
        print("data:", json.dumps(sizes), flush=True)
        train_words, train_gold = read_split(data_dir / "train.conll")
        test_words, test_gold = read_split(data_dir / "test.conll")
        for name in args.models:
            info = {}
            if name == "majority":
                pred = majority_predict(train_gold, test_words)
            elif name == "word-majority":
                pred = word_majority_predict(train_words, train_gold, test_words)
            else:
                pred, info = tagger_predict(name, args, data_dir, Path(tmp) / name)
            r = {"model": name, "scores": score(test_gold, pred), "info": info}
            s = r["scores"]
            print(
                f"{name}: case macro-F1 {s['case']['macro_f1_non_majority']:.4f}, "
                f"punct macro-F1 {s['punct']['macro_f1_non_majority']:.4f}"
                + (f", {info['train_seconds']:.0f} s" if info else ""),
                flush=True,
            )
            results.append(r)
    print()
    print(tables(results))
    if args.json:
        config = {k: v for k, v in vars(args).items() if k != "json"}
        payload = {
            "config": config,
            "data": sizes,
            "torch_threads": torch.get_num_threads(),
            "results": results,
        }
        Path(args.json).write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
