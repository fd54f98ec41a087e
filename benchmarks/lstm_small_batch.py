"""Small-batch LSTM training: which kernel ``backend="auto"`` should take (torch's or the loop's).

For each batch size, a training step (forward and backward of the summed outputs) of
``torch.nn.LSTM``, ``rk.LSTM`` with ``backend="auto"``, ``"torch"`` (oneDNN's LSTM) and
``"loop"`` (the compiled loop kernels, which form the products of batches of at most
``rnnkit.kernels.ext.DIRECT_MAX_ROWS`` rows themselves), interleaved, medians in ms;
``--padded`` gives every row but the first a random length in [T/2, T]. The figures behind
the LSTM rule of ``rk.Recurrent._use_fused`` (docs/RESULTS.md).

    python benchmarks/lstm_small_batch.py --threads 1 2 --batch 1 2 4 8 [--padded]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import rnnkit as rk
from rnnkit.bench import cpu_name


def train_step(layer: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor | None) -> float:
    layer.zero_grad(set_to_none=True)
    start = time.perf_counter()
    out, _ = layer(x) if lengths is None else layer(x, lengths=lengths)
    out.sum().backward()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--steps", type=int, default=1000, help="T")
    ap.add_argument("--input", type=int, default=64, help="I")
    ap.add_argument("--hidden", type=int, default=128, help="H")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--padded", action="store_true", help="random lengths (rk layers only)")
    args = ap.parse_args()
    print(
        f"{cpu_name()}, torch {torch.__version__}, T={args.steps}, I={args.input}, "
        f"H={args.hidden}, training step, medians of {args.rounds} interleaved rounds, "
        f"{'padded' if args.padded else 'unpadded'}"
    )
    print(
        "| threads | B | torch.nn ms | auto ms | torch ms | loop ms | torch.nn / auto "
        "| loop / torch |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for batch in args.batch:
            torch.manual_seed(0)
            x = torch.randn(args.steps, batch, args.input)
            lengths = None
            if args.padded:
                lengths = torch.randint(args.steps // 2, args.steps + 1, (batch,))
                lengths[0] = args.steps
            layers = {
                "auto": rk.LSTM(args.input, args.hidden),
                "torch": rk.LSTM(args.input, args.hidden, backend="torch"),
                "loop": rk.LSTM(args.input, args.hidden, backend="loop"),
            }
            if not args.padded:
                layers["torch.nn"] = torch.nn.LSTM(args.input, args.hidden)
            for layer in layers.values():  # warm-up
                train_step(layer, x, lengths)
                train_step(layer, x, lengths)
            times: dict[str, list[float]] = {k: [] for k in layers}
            for _ in range(args.rounds):
                for name, layer in layers.items():
                    times[name].append(train_step(layer, x, lengths))
            ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            ref = ms.get("torch.nn")
            nn_ms = "-" if ref is None else f"{ref:.1f}"
            speed = "-" if ref is None else f"{ref / ms['auto']:.2f}"
            print(
                f"| {threads} | {batch} | {nn_ms} | {ms['auto']:.1f} | {ms['torch']:.1f} | "
                f"{ms['loop']:.1f} | {speed} | {ms['loop'] / ms['torch']:.2f} |"
            )


if __name__ == "__main__":
    main()
