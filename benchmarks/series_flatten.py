"""Third protocol for the two missed sequence-classification targets: a positional readout.

Written on 2026-11-27 before any of its runs, with the first two protocols' test scores known
(``benchmarks/series_classification.py``: JapaneseVowels 0.973, StatLog DNA splice 0.933;
``benchmarks/series_ensemble.py``: 0.981 and 0.933; targets 0.985 and 0.950). What the
earlier tables suggest is that the splice signal sits at fixed positions, which a pooled
summary (mean, max, last state) does not single out while a linear model on one-hot
positions does (0.942). The new pooling "flatten" sets every position's output side by side
(Keras's ``Flatten`` after an RNN with ``return_sequences``, as DanQ reads DNA), so the head
sees where each feature sits.

The protocol: the first protocol's settings unchanged (bidirectional encoder, 64 units per
direction, dropout 0.2, Adam 0.003, gradient norm clipped at 1, batch 16 (32 above 1,000
training cases), the first protocol's epochs with early stopping after 15 epochs without a
lower validation loss, the best epoch by validation loss, the same 20% of the training split
held out, stratified with seed 0; DNA as one-hot nucleotides) with ``pooling = "flatten"``;
two candidates, LSTM and GRU; the one with the better validation accuracy (validation loss
breaks ties) is scored once on test, and reported whatever it reads, beside the earlier
protocols and the linear model on the same split.

    OMP_NUM_THREADS=1 python benchmarks/series_flatten.py --out runs_local/series_flatten

JapaneseVowels' first attempt stopped at its first validation evaluation, before any of its
scores was read: a validation utterance of 26 frames met P = 25 (the longest training one),
which "flatten" then refused. It now reads the first P steps of a longer sequence, and the
JapaneseVowels runs were started again from nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from series_classification import run_dataset
from series_ensemble import pooled_candidates

DATASETS = ("dna-splice", "japanese-vowels")


def flatten_candidates(kind: str) -> dict[str, list[str]]:
    """This protocol's candidates: LSTM and GRU with pooling "flatten"."""
    return pooled_candidates(kind, ("flatten",))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs_local/series_flatten", help="folder for the runs")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated names")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for d in args.datasets.split(","):
        result = run_dataset(d, Path(args.out), None, pool=flatten_candidates, dtw=False)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
