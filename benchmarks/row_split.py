"""Whether the compiled kernels should cut a batch into one block of rows per thread: the
``loop`` backend with the split (each thread runs its rows through the whole sequence, its
per-step products single-threaded) and without it (one block, each step's product on all of
torch's threads), against torch.nn, on the layer benchmark's rows with B >= 32 (the split
needs 16 rows a thread).

    python benchmarks/row_split.py --threads 2
    python benchmarks/row_split.py --threads 2 --kinds rnn --modes infer --json split.json

Columns, torch.nn's median time over each one's (above 1: faster than torch.nn): ``split``
(the default, ``kSplitMinRows`` = 16 in csrc/fused.cpp; a split batch multiplies by a
oneDNN-packed weight of any size); ``split, mm`` (the rule before 2026-11-27: weights below
2^17 values multiplied with ``at::mm``, inside the parallel region;
``rnnkit.kernels.ext.PACK_SPLIT = False``); ``one block`` (the op ``set_split_min_rows(0)``,
its products packed as the split's);
``torch.nn again`` (the noise). Interleaved rounds, the same lengths and inputs as
``rnnkit bench layers``.
"""

from __future__ import annotations

import argparse
import json

import torch

from rnnkit.bench import interleaved, machine_line
from rnnkit.bench.layers import CONFIGS, _make_calls
from rnnkit.kernels import ext


def _with_split(call, rows: int, pack_split: bool = True):
    ops = ext.ops()

    def run():
        before = ops.set_split_min_rows(rows)
        ext.PACK_SPLIT = pack_split
        try:
            call()
        finally:
            ops.set_split_min_rows(before)
            ext.PACK_SPLIT = True

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kinds", nargs="+", default=["lstm", "gru", "rnn"])
    parser.add_argument("--modes", nargs="+", default=["train", "infer"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line())
    print(
        "\n| layer | mode | padded | (B, T, I, H) | split | split, mm | one block "
        "| torch.nn again |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for kind in args.kinds:
        for mode in args.modes:
            for padded in (False, True):
                for config in (c for c in CONFIGS if c[0] >= 32):
                    torch.manual_seed(0)
                    batch, steps = config[0], config[1]
                    lengths = torch.randint(1, steps + 1, (batch,)) if padded else None
                    if lengths is not None:
                        lengths[0] = steps
                    calls = _make_calls(kind, *config, lengths, mode)
                    timed = {
                        "torch.nn": calls["torch.nn"],
                        "split": _with_split(calls["loop"], 16),
                        "split, mm": _with_split(calls["loop"], 16, pack_split=False),
                        "one block": _with_split(calls["loop"], 0),
                        "torch.nn again": calls["torch.nn again"],
                    }
                    t = interleaved(timed, args.rounds)
                    ratio = {k: t["torch.nn"] / v for k, v in t.items()}
                    rows.append(
                        {
                            "kind": kind,
                            "mode": mode,
                            "padded": padded,
                            "config": config,
                            "ratio": ratio,
                        }
                    )
                    print(
                        f"| {kind} | {mode} | {'yes' if padded else 'no'} | {config} | "
                        f"{ratio['split']:.2f} | {ratio['split, mm']:.2f} | "
                        f"{ratio['one block']:.2f} | "
                        f"{ratio['torch.nn again']:.2f} |",
                        flush=True,
                    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_line(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
