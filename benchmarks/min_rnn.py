"""minGRU and minLSTM (parallel scan) against rk.GRU: training-step throughput.

    python benchmarks/min_rnn.py [--lengths 256 1024 4096] [--hidden 256] [--batch 16]
                                 [--repeats 3] [--threads 1] [--json min_rnn.json]

A training step is forward and backward of ``out.square().mean()`` for a one-layer,
batch-first layer of H units reading (B, T, H) inputs, with fresh gradients each time (no
optimizer). Layers: ``rk.GRU`` (its default backend, the compiled loop kernels where they
load), ``MinGRU`` and ``MinLSTM`` with the default chunked scan, and both with the log-space
(Heinsen) scan. Per length, every repeat times each layer once, interleaved, after one
warm-up step each; the table gives median tokens/s (B * T / seconds) and the ratio to rk.GRU
in the same run, and the JSON keeps every time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import rnnkit as rk
from rnnkit.cells_min import MinGRU, MinLSTM

LAYERS = {
    "rk.GRU": lambda h: rk.GRU(h, h, batch_first=True),
    "mingru": lambda h: MinGRU(h, h, batch_first=True),
    "minlstm": lambda h: MinLSTM(h, h, batch_first=True),
    "mingru (log scan)": lambda h: MinGRU(h, h, batch_first=True, scan_method="log"),
    "minlstm (log scan)": lambda h: MinLSTM(h, h, batch_first=True, scan_method="log"),
}


def train_step(layer: torch.nn.Module, x: torch.Tensor) -> float:
    """Seconds for forward + backward of one batch x (B, T, H)."""
    layer.zero_grad(set_to_none=True)
    start = time.perf_counter()
    out, _ = layer(x)  # (B, T, H)
    out.square().mean().backward()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096])
    ap.add_argument("--hidden", type=int, default=256, help="H, also the input size")
    ap.add_argument("--batch", type=int, default=16, help="B")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats (median)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--layers", nargs="+", default=list(LAYERS), choices=list(LAYERS))
    ap.add_argument("--json", default="min_rnn.json", help="output JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layers = {name: LAYERS[name](args.hidden) for name in args.layers}
    times: dict[int, dict[str, list[float]]] = {}
    for steps in args.lengths:
        x = torch.randn(args.batch, steps, args.hidden)  # (B, T, H)
        times[steps] = {name: [] for name in layers}
        for layer in layers.values():  # warm-up
            train_step(layer, x)
        for _ in range(args.repeats):
            for name, layer in layers.items():
                times[steps][name].append(train_step(layer, x))
    base = "rk.GRU" if "rk.GRU" in layers else next(iter(layers))
    print(
        f"train step, B={args.batch}, H={args.hidden}, {args.threads} thread(s), "
        f"median of {args.repeats}: tokens/s (ratio to {base})"
    )
    print("| layer | " + " | ".join(f"T = {t}" for t in args.lengths) + " |")
    print("|---|" + "---|" * len(args.lengths))
    rates = {}
    for name in layers:
        cells = []
        for steps in args.lengths:
            rate = args.batch * steps / statistics.median(times[steps][name])
            rates.setdefault(name, {})[steps] = rate
            ratio = rate / (args.batch * steps / statistics.median(times[steps][base]))
            cells.append(f"{rate:,.0f} ({ratio:.2f}x)")
        print(f"| {name} | " + " | ".join(cells) + " |")
    result = {"batch": args.batch, "hidden": args.hidden, "threads": args.threads}
    result.update({"repeats": args.repeats, "tokens_per_s": rates, "seconds": times})
    Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
