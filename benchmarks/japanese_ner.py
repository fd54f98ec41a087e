"""Japanese NER (IOB2): BiLSTM-softmax against BiLSTM-CRF, with and without character features.

Data: the registry dataset ``japanese-ner`` (hironsancorpus, 500 sentences, its fixed
400 / 50 / 50 train / valid / test split; ``rnnkit data fetch japanese-ner``). Every variant is
the ``tagging`` task trained by ``rnnkit.tasks.run.train`` (the same code as
``rnnkit train tagging --set task.dataset='"japanese-ner"'``), differing only in
``model.decoder`` (softmax / crf) and ``task.chars`` (character BiLSTM features or not).

Model selection: after every epoch the span F1 of the validation split is computed
(``score_val=True``) and the checkpoint of the best validation F1 is kept
(``trainer.monitor = "val_f1_overall"``); the test split is read once, by that checkpoint.
Scores: entity precision, recall and F1 by the conlleval definition (exact type and
boundaries, micro-averaged over types; ``rnnkit.tagging.span_scores``, seqeval), per type
and overall, and token accuracy. Training time is the wall time of ``train`` (including the
per-epoch validation), on one torch thread.

    rnnkit data fetch japanese-ner
    OMP_NUM_THREADS=1 python benchmarks/japanese_ner.py --json ner.json
    python benchmarks/japanese_ner.py --epochs 1 --variants bilstm-crf   # smoke test
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from rnnkit.data.readers import read_conll
from rnnkit.data.registry import dataset_dir, fetch
from rnnkit.tagging import spans
from rnnkit.tasks import run

# name -> (decoder, chars)
VARIANTS = {
    "bilstm-softmax": ("softmax", False),
    "bilstm-softmax+chars": ("softmax", True),
    "bilstm-crf": ("crf", False),
    "bilstm-crf+chars": ("crf", True),
}


def test_support() -> Counter:
    """Gold entities per type in the test split."""
    root = dataset_dir("japanese-ner")
    if not (root / "test.conll").exists():
        fetch("japanese-ner")
    sentences = read_conll(root / "test.conll", tag_column=-1)
    return Counter(kind for s in sentences for kind, _, _ in spans(s.tags))


def run_variant(name: str, args: argparse.Namespace, out_dir: Path) -> dict:
    decoder, chars = VARIANTS[name]
    overrides = [
        f"seed={args.seed}",
        'task.dataset="japanese-ner"',
        f'model.decoder="{decoder}"',
        f"task.chars={str(chars).lower()}",
        f"model.word_dim={args.word_dim}",
        f"model.hidden_size={args.hidden}",
        f"model.dropout={args.dropout}",
        f"trainer.epochs={args.epochs}",
        f"trainer.batch_size={args.batch_size}",
        f"trainer.lr={args.lr}",
        f"trainer.clip_norm={args.clip}",
        'trainer.monitor="val_f1_overall"',
        'trainer.mode="max"',
        'trainer.log.progress="none"',
        "trainer.log.tensorboard=false",
    ]
    cfg = run.load_run_config("tagging", overrides=overrides)
    run_dir = out_dir / name
    start = time.perf_counter()
    summary = run.train(cfg, run_dir, score_val=True)
    seconds = time.perf_counter() - start
    history = summary["history"]
    val_f1 = [h["val_f1_overall"] for h in history]
    best_epoch = max(range(len(val_f1)), key=lambda e: (val_f1[e], -e))
    test = run.evaluate(run_dir, split="test", which="best")
    return {
        "variant": name,
        "decoder": decoder,
        "chars": chars,
        "train_seconds": seconds,
        "epochs": len(history),
        "best_epoch": best_epoch + 1,
        "val_f1_best": val_f1[best_epoch],
        "val_f1_curve": val_f1,
        "test": {k: v for k, v in test.items() if not k.startswith("baseline_")},
    }


def tables(results: list[dict], support: Counter) -> str:
    head = (
        "| model | decoder | chars | test F1 | precision | recall | token acc. | "
        "best epoch (val F1) | train s |\n|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for r in results:
        t = r["test"]
        rows.append(
            f"| {r['variant']} | {r['decoder']} | {'yes' if r['chars'] else 'no'} | "
            f"{t['f1_overall']:.4f} | {t['precision_overall']:.4f} | "
            f"{t['recall_overall']:.4f} | {t['token_accuracy']:.4f} | "
            f"{r['best_epoch']}/{r['epochs']} ({r['val_f1_best']:.4f}) | "
            f"{r['train_seconds']:.0f} |"
        )
    types = sorted(support)
    per = [
        "",
        "Test F1 per entity type (gold entities in the test split in brackets):",
        "",
        "| model | " + " | ".join(f"{k} ({support[k]})" for k in types) + " | overall |",
        "|---" * (len(types) + 2) + "|",
    ]
    for r in results:
        t = r["test"]
        cells = [f"{t.get(f'f1_{k}', 0.0):.3f}" for k in types]
        per.append(f"| {r['variant']} | " + " | ".join(cells) + f" | {t['f1_overall']:.3f} |")
    return "\n".join(rows + per)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--hidden", type=int, default=100, help="word LSTM size per direction")
    p.add_argument("--word-dim", type=int, default=100)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default="", help="keep the run directories here (default: temp)")
    p.add_argument("--json", default="", help="write the results here")
    args = p.parse_args()
    torch.set_num_threads(1)
    support = test_support()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.runs or tmp)
        for name in args.variants:
            r = run_variant(name, args, out_dir)
            t = r["test"]
            print(
                f"{name}: test F1 {t['f1_overall']:.4f}, best epoch {r['best_epoch']} "
                f"(val F1 {r['val_f1_best']:.4f}), {r['train_seconds']:.0f} s",
                flush=True,
            )
            results.append(r)
    print()
    print(tables(results, support))
    if args.json:
        config = {k: v for k, v in vars(args).items() if k not in ("json", "runs")}
        payload = {
            "config": config,
            "test_support": dict(support),
            "torch_threads": torch.get_num_threads(),
            "results": results,
        }
        Path(args.json).write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
