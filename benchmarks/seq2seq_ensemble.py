"""Encoder-decoder runs alone and as ensembles: every subset of the given runs (each run
alone, every pair, ..., all of them) on each split with each beam width, through
``rnnkit.tasks.run.evaluate`` (what ``rnnkit evaluate RUN --ensemble OTHER --set
task.beam=K`` prints), one line per result and a JSON file of all of them.

The runs must be of one task and codec (``rnnkit.load_ensemble`` checks it); the first run
of a subset supplies the settings and data. Each step of an ensemble averages its members'
log-probabilities, renormalised (``rnnkit.models.Seq2SeqEnsemble``).

    python benchmarks/seq2seq_ensemble.py runs/g2p_epyc runs/g2p_s1 runs/g2p_s2 \
        --splits val test --beams 1 5 --json docs/bench/g2p_ensemble.json

``--sizes 1 3`` keeps subsets of those sizes only (the runs alone and all three, say).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories of one task and codec")
    p.add_argument("--splits", nargs="+", default=["val", "test"], choices=["val", "test"])
    p.add_argument("--beams", nargs="+", type=int, default=[1, 5], help="beam widths (1: greedy)")
    p.add_argument("--sizes", nargs="+", type=int, help="subset sizes (default: all)")
    p.add_argument("--json", type=Path, help="write every result here")
    args = p.parse_args(argv)

    from rnnkit.tasks import run

    sizes = args.sizes or list(range(1, len(args.runs) + 1))
    bad = [k for k in sizes if not 1 <= k <= len(args.runs)]
    if bad or any(b < 1 for b in args.beams):
        p.error(f"--sizes in 1..{len(args.runs)} and --beams >= 1, got {bad or args.beams}")
    results = []
    for size in sizes:
        for members in itertools.combinations(args.runs, size):
            for split in args.splits:
                for beam in args.beams:
                    start = time.perf_counter()
                    metrics = run.evaluate(
                        members[0], split, overrides=[f"task.beam={beam}"], ensemble=members[1:]
                    )
                    seconds = time.perf_counter() - start
                    row = {
                        "runs": [str(m) for m in members],
                        "split": split,
                        "beam": beam,
                        "seconds": round(seconds, 1),
                        **{k: v for k, v in metrics.items() if not k.startswith("baseline_")},
                    }
                    results.append(row)
                    shown = " ".join(
                        f"{k}={v:.4f}" for k, v in metrics.items() if k in ("wer", "per", "bleu")
                    )
                    names = " + ".join(m.name for m in members)
                    print(f"{names:40s} {split:4s} beam {beam}: {shown} ({seconds:.0f} s)")
                    sys.stdout.flush()
                    if args.json is not None:
                        args.json.parent.mkdir(parents=True, exist_ok=True)
                        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
