"""Dense products through oneDNN vs ATen's BLAS call: single products and whole training steps.

``rnnkit.kernels.dense.linear`` sends large float32 CPU products to oneDNN's inner product
where this machine runs them faster (measured once per process). This script times, with the
path forced off (``F.linear``: ATen's BLAS, MKL in torch's CPU wheels) and on, interleaved,
medians:

1. one product forward and backward, for shapes of rnnkit's models (output layers,
   attention, the encoder-decoder's combination layer);
2. with ``--config``, whole training steps of a task's model on its real data: rounds of
   ``rnnkit train`` (its trainer, loaders and optimizer) of a few steps each.

    python benchmarks/dense_linear.py --threads 1 2
    python benchmarks/dense_linear.py --threads 1 2 --task translate \
        --config configs/cmudict_large.toml
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from rnnkit.bench import cpu_name
from rnnkit.kernels import dense
from rnnkit.tasks.run import load_run_config, train
from rnnkit.training import Callback

SHAPES = [  # (rows M, in K, out N) and where rnnkit's models have them
    (1152, 1024, 512, "seq2seq combination W_c [c; s] (B 128 x 9 steps)"),
    (1152, 512, 48, "seq2seq output layer, 48 phonemes"),
    (640, 200, 10000, "word LM output layer, PTB 10k words (B 32 x 20 steps)"),
    (3200, 256, 98, "character LM output layer (B 32 x 100 steps)"),
    (2048, 512, 512, "attention W_a keys (B 64 x 32 steps)"),
    (32, 200, 2, "classifier head (below MIN_MACS: F.linear either way)"),
]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def products(threads: int, rounds: int) -> None:
    torch.set_num_threads(threads)
    print(f"\none product, forward and backward, {threads} thread(s), medians of {rounds}")
    print("| M x K x N | where | F.linear ms | oneDNN ms | speed-up |")
    print("|---|---|---|---|---|")
    for m, k, n, where in SHAPES:
        x = torch.randn(m, k, requires_grad=True)
        w = torch.randn(n, k, requires_grad=True)
        b = torch.randn(n, requires_grad=True)

        def step(x=x, w=w, b=b):
            y = dense.linear(x, w, b)
            y.backward(torch.ones_like(y))

        times = {False: [], True: []}
        for forced in (False, True, False, True):  # warm-up
            dense._faster = forced
            step()
        for _ in range(rounds):
            for forced in (False, True):
                dense._faster = forced
                times[forced].append(timed(step))
        off, on = (statistics.median(times[f]) * 1e3 for f in (False, True))
        print(f"| {m} x {k} x {n} | {where} | {off:.2f} | {on:.2f} | {off / on:.2f} |")


class StepClock(Callback):
    """The wall time of each optimizer step the trainer takes (from its batch's start)."""

    name = "step_clock"

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last = 0.0

    def on_batch_start(self, trainer, batch_index: int) -> None:
        self._last = time.perf_counter()

    def on_step_end(self, trainer, info) -> None:
        now = time.perf_counter()
        self.times.append(now - self._last)
        self._last = now


def training(task: str, config: str, threads: int, rounds: int, steps: int) -> None:
    """Rounds of ``rnnkit train`` (the library's trainer, the configuration's optimizer) for
    ``steps`` + 1 steps each, oneDNN off and on in turn; a round's figure is the median of
    its steps after the first."""
    torch.set_num_threads(threads)
    items = [f"trainer.max_steps={steps + 1}", "trainer.log.tensorboard=false"]
    cfg = load_run_config(task, config, [*items, 'trainer.log.progress="none"'])

    def run() -> float:
        clock = StepClock()
        with tempfile.TemporaryDirectory() as tmp:
            train(cfg, Path(tmp) / "run", callbacks=[clock])
        return statistics.median(clock.times[1:])

    times = {False: [], True: []}
    for _ in range(rounds):
        for forced in (False, True):
            dense._faster = forced
            times[forced].append(run())
    off, on = (statistics.median(times[f]) * 1e3 for f in (False, True))
    print(
        f"\n{task} {config}, {threads} thread(s): a training step {off:.1f} ms with F.linear, "
        f"{on:.1f} ms with oneDNN's products ({off / on:.2f}x; medians of {steps} steps a "
        f"round, then of {rounds} interleaved rounds)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--task", default="", help="also time training steps of this task")
    ap.add_argument("--config", default=None, help="the task's TOML configuration")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per round")
    args = ap.parse_args()
    chosen = dense.onednn_faster()
    print(
        f"{cpu_name()}, torch {torch.__version__}; this process would take oneDNN's "
        f"products: {chosen} (MIN_MACS = {dense.MIN_MACS:,})"
    )
    for threads in args.threads:
        products(threads, args.rounds)
    if args.task:
        for threads in args.threads:
            training(args.task, args.config, threads, args.rounds, args.steps)


if __name__ == "__main__":
    main()
