"""Padded-batch inference: rnnkit's torch backend (torch's packed path) against its loop
backend (the compiled kernels, which skip the padded rows of a length-sorted batch).

    python benchmarks/padded_inference.py
    python benchmarks/padded_inference.py --configs "LSTM 128 35 650 650"

The two run the same layer weights on the same batch (random lengths in 1..T, seed 0),
interleaved over rounds; prints the medians and loop's speed relative to torch's path. This
is what `backend="auto"` chooses between on a padded CPU batch (``Recurrent._use_fused``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import rnnkit as rk

CONFIGS = [
    "LSTM 32 100 128 256",
    "LSTM 64 50 256 512",
    "LSTM 128 35 650 650",
    "GRU 128 35 650 650",
]


def compare(kind: str, batch: int, steps: int, inputs: int, hidden: int, rounds: int) -> str:
    torch.manual_seed(0)
    x = torch.randn(batch, steps, inputs)
    lengths = torch.randint(1, steps + 1, (batch,))
    make = getattr(rk, kind)
    fused = make(inputs, hidden, batch_first=True, backend="torch")
    loop = make(inputs, hidden, batch_first=True, backend="loop")
    loop.load_state_dict(fused.state_dict())
    calls = {"torch": lambda: fused(x, lengths=lengths), "loop": lambda: loop(x, lengths=lengths)}
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.no_grad():
        for _ in range(rounds + 3):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    torch_s, loop_s = (statistics.median(times[n][3:]) for n in ("torch", "loop"))
    return (
        f"{kind} (B, T, I, H) = ({batch}, {steps}, {inputs}, {hidden}): torch path "
        f"{1e3 * torch_s:.1f} ms, loop {1e3 * loop_s:.1f} ms, loop speed {torch_s / loop_s:.2f}x"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--configs", nargs="+", default=CONFIGS, help='"KIND B T I H" each')
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for config in args.configs:
        kind, *sizes = config.split()
        print(compare(kind, *map(int, sizes), rounds=args.rounds), flush=True)


if __name__ == "__main__":
    main()
