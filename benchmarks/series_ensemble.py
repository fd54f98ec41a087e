"""Sequence classification, second protocol: seed ensembles chosen by their mean validation
accuracy (`classify-series`, rnnkit's own trainer), for the two sets where the first
protocol (``benchmarks/series_classification.py``) missed its target: JapaneseVowels and
StatLog DNA splice.

The protocol, written down before any of its test scores was seen:

* the first protocol's settings and candidates (its ``common`` settings, cells x poolings),
  except that DNA keeps its three GRU candidates only: the LSTM ones scored 0.70-0.84 on
  validation in the first protocol, against 0.91-0.94 for the GRU ones;
* every candidate is trained with seeds 0..K-1 (K = 5). The seed draws the initial weights
  and the 20% of the training split set aside for validation (stratified), so each member
  trains on its own 80% and stops early on its own 20%;
* the candidate with the best mean validation accuracy over its members (mean validation
  loss breaks ties) is chosen; its K members are scored once on the test split as an
  ensemble, averaging their class probabilities (each member reads the raw cases with its
  own codec: standardisation fitted on its own training cases).

The first protocol's single models used 216 of JapaneseVowels' 270 training utterances; an
ensemble of K members, each on its own 80%, sees all of them.

    python benchmarks/series_ensemble.py --out runs_local/series_ensemble

Fourth protocol (``--pooling flatten``), written on 2026-11-27 after the third protocol's
DNA test score (0.948 with a single GRU and pooling "flatten", ``benchmarks/series_flatten.py``)
was seen and before any run of this one: the same seed ensembles, K = 5, with the candidates
LSTM and GRU with pooling "flatten" for both sets (no candidate dropped), chosen by their mean
validation accuracy, the chosen candidate's five members scored once on test as an ensemble.

    OMP_NUM_THREADS=1 python benchmarks/series_ensemble.py --pooling flatten \
        --out runs_local/series_ensemble_flatten

Fifth protocol (``--pooling all``), for JapaneseVowels alone, written on 2026-11-27 after the
fourth protocol's scores (JapaneseVowels 0.976, DNA 0.970) were seen and before any run of
this one: the same seed ensembles, K = 5, over every pooling the task offers for frames but
"flatten" (mean, max, last, attention; the first protocol tried mean and last only) with
LSTM and GRU cells, eight candidates, the one with the best mean validation accuracy (mean
validation loss breaks ties) scored once on test as an ensemble.

    OMP_NUM_THREADS=1 python benchmarks/series_ensemble.py --pooling all \
        --datasets japanese-vowels --out runs_local/series_ensemble_all

Sixth protocol (``--pooling all --wide``), for JapaneseVowels alone, written on 2026-11-28
after the fifth protocol's score (0.976) was seen and before any run of this one. What led to
it is on validation data only: the linear baseline on summary statistics scores a mean
validation accuracy of 0.989 on the five seeds' validation splits (0.981, 1.000, 0.981,
0.981, 1.000), above every recurrent candidate of the fifth protocol (best mean 0.978), so
the model gets that linear model as a wide part beside the RNN (``model.wide_summary``:
per-feature mean, standard deviation, minimum, maximum, first and last frame and the log
length, standardised with the training split's statistics, a zero-initialised linear map to
the logits, trained jointly). The fifth protocol's settings otherwise: the same seed
ensembles, K = 5, LSTM and GRU with the poolings mean, max, last and attention, each with
the wide part (eight candidates), the one with the best mean validation accuracy (mean
validation loss breaks ties) scored once on test as an ensemble. This is the last protocol
for JapaneseVowels: its score is reported whatever it is, and no other is run after it.

    OMP_NUM_THREADS=1 python benchmarks/series_ensemble.py --pooling all --wide \
        --datasets japanese-vowels --out runs_local/series_ensemble_wide
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import rnnkit
from rnnkit.tasks import run as runs
from rnnkit.tasks.series import SeriesConfig, read_splits

sys.path.insert(0, str(Path(__file__).parent))
from series_classification import EXTRA, candidates, common

DATASETS = ("japanese-vowels", "dna-splice")
KEEP = {"dna-splice": ("gru-mean", "gru-max", "gru-last")}


def ensemble_probs(folders: list[Path], items: list) -> tuple[list[str], torch.Tensor]:
    """The members' mean class probabilities (N, C) on raw ``items``, labels in the first
    member's order."""
    total, labels = None, None
    for folder in folders:
        model = rnnkit.load(folder).eval()
        probs = []
        with torch.no_grad():
            for start in range(0, len(items), 256):
                ids, lengths = model.codec.batch(items[start : start + 256])
                probs.append(model.classify(ids, lengths)[1])
        p = torch.cat(probs)
        if labels is None:
            labels = list(model.codec.labels)
        else:  # the same classes, possibly in another order
            p = p[:, [list(model.codec.labels).index(name) for name in labels]]
        total = p if total is None else total + p
    return labels, total / len(folders)


def pooled_candidates(
    kind: str, poolings: tuple[str, ...], wide: bool = False
) -> dict[str, list[str]]:
    """The fourth to sixth protocols' candidates: LSTM and GRU with these poolings, with the
    wide part over summary statistics where ``wide`` (frames only)."""
    extra = ["model.embedding_dim=0"] if kind == "symbols" else []  # one-hot nucleotides
    if wide:
        if kind != "frames":
            raise SystemExit("--wide: the summary-statistics part is for frames of numbers")
        extra.append("model.wide_summary=true")
    tag = "-wide" if wide else ""
    return {
        f"{cell}-{pooling}{tag}": [f'model.cell="{cell}"', f'model.pooling="{pooling}"', *extra]
        for cell in ("lstm", "gru")
        for pooling in poolings
    }


POOLINGS = {"flatten": ("flatten",), "all": ("mean", "max", "last", "attention")}


def run_dataset(dataset: str, out: Path, seeds: int, pooling: str = "", wide: bool = False) -> dict:
    splits = read_splits(SeriesConfig(data=dataset), 0)
    kind, n_train = splits["train"].kind, len(splits["train"])
    rows = {}
    if wide and not pooling:
        raise SystemExit("--wide goes with --pooling (the sixth protocol: --pooling all --wide)")
    pool = pooled_candidates(kind, POOLINGS[pooling], wide) if pooling else candidates(kind)
    for name, settings in pool.items():
        if not pooling and dataset in KEEP and name not in KEEP[dataset]:
            continue
        members = []
        for seed in range(seeds):
            folder = out / dataset / name / f"seed{seed}"
            start = time.perf_counter()
            if not (folder / "config.json").exists():
                overrides = [*common(dataset, n_train), *EXTRA.get(dataset, []), *settings]
                rnnkit.train("classify-series", folder, overrides=[*overrides, f"seed={seed}"])
            val = runs.evaluate(folder, "val")
            members.append({"val_accuracy": val["accuracy"], "val_loss": val["loss"]})
            print(
                f"  {dataset} {name} seed {seed}: val accuracy {val['accuracy']:.4f} "
                f"({(time.perf_counter() - start) / 60:.1f} min)",
                flush=True,
            )
        rows[name] = {
            "members": members,
            "val_accuracy": statistics.mean(m["val_accuracy"] for m in members),
            "val_loss": statistics.mean(m["val_loss"] for m in members),
        }
    chosen = max(rows, key=lambda k: (rows[k]["val_accuracy"], -rows[k]["val_loss"]))
    folders = [out / dataset / chosen / f"seed{s}" for s in range(seeds)]
    test = splits["test"]
    labels, probs = ensemble_probs(folders, list(test.items))
    truth = torch.tensor([labels.index(y) for y in test.labels])
    accuracy = float((probs.argmax(1) == truth).double().mean())
    singles = [runs.evaluate(f, "test")["accuracy"] for f in folders]
    result = {
        "dataset": dataset,
        "chosen": chosen,
        "candidates": rows,
        "ensemble_test_accuracy": accuracy,
        "member_test_accuracies": singles,
        "n_test": len(test),
    }
    (out / dataset / "result.json").write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs_local/series_ensemble", help="folder for the runs")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated names")
    parser.add_argument("--seeds", type=int, default=5, help="members per candidate (K)")
    parser.add_argument(
        "--pooling", choices=list(POOLINGS), help="the fourth or fifth protocol (docstring)"
    )
    parser.add_argument(
        "--wide", action="store_true", help="with --pooling all: the sixth protocol (docstring)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = [
        run_dataset(d, Path(args.out), args.seeds, args.pooling or "", args.wide)
        for d in args.datasets.split(",")
    ]
    print("\n| dataset | chosen (mean val acc) | ensemble test accuracy | members' test accuracy |")
    print("|---|---|---|---|")
    for r in results:
        s = r["member_test_accuracies"]
        val = r["candidates"][r["chosen"]]["val_accuracy"]
        spread = f"{statistics.mean(s):.4f} +- {statistics.pstdev(s):.4f}"
        print(
            f"| {r['dataset']} | {r['chosen']} ({val:.4f}) | **{r['ensemble_test_accuracy']:.4f}**"
            f" | {spread} (min {min(s):.4f}, max {max(s):.4f}) |"
        )


if __name__ == "__main__":
    main()
