"""Training throughput of a task, this checkout against another commit, in the same run.

Each round trains one epoch of the same task configuration with each checkout's own code
(a subprocess with that checkout's ``src`` first on the path and its own kernel cache, one
torch thread, the same seed), interleaved after an untimed warm-up of each; the figure is
real tokens (sum of the sequence lengths) trained per second between the epoch's first batch
and its last optimizer step, validation excluded.
The configuration is each checkout's own ``configs/<config>.toml`` (the same settings, in the
keys each version reads) with ``--set`` items added::

    git worktree add /tmp/rnnkit-before 13e98b3
    python benchmarks/task_throughput.py --before /tmp/rnnkit-before --rounds 3
    python benchmarks/task_throughput.py --before /tmp/rnnkit-before --task sentiment \\
        --config sentiment --set trainer.epochs=1

Prints each round and the medians, and the ratio after / before (> 1: this checkout is
faster); ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
from rnnkit.tasks import run
from rnnkit.training.callbacks import Callback

# the time from the first batch to the last step, and the real tokens (padding excluded) of
# the batches the trainer is served, counted by wrapping this trainer's own epochs
class Clock(Callback):
    name = "clock"
    def __init__(self):
        self.tokens, self.start, self.end = 0, None, None
    def on_train_start(self, trainer):
        batches = trainer.train_batches
        served = batches.epoch
        def epoch(e, start=0):
            for b in served(e, start):
                self.tokens += int(b.lengths.sum())
                yield b
        batches.epoch = epoch  # this run's batches only: no class of rnnkit's is changed
    def on_batch_start(self, trainer, index):
        if self.start is None:
            self.start = time.perf_counter()
    def on_batch_end(self, trainer, index, info):
        self.end = time.perf_counter()

task, config, out, *items = sys.argv[1:]
cfg = run.load_run_config(task, config, items)
clock = Clock()
run.train(cfg, out, callbacks=[clock])
print(json.dumps({"tokens": clock.tokens, "seconds": clock.end - clock.start}))
"""


def one(src: Path, checkout: Path, task: str, config: str, items: list[str]) -> dict:
    # each checkout its own kernel cache: torch rebuilds an extension whose source path changed
    tag = hashlib.sha256(str(checkout).encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"rnnkit-throughput-{tag}"
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1", RNNKIT_CACHE=str(cache))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", CHILD, task, str(checkout / "configs" / f"{config}.toml")]
        cmd += [str(Path(tmp) / "run"), *items]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: training failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["tokens_per_s"] = result["tokens"] / result["seconds"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="checkout of the other commit")
    ap.add_argument("--task", default="sentiment", help="task name, as both versions call it")
    ap.add_argument("--config", default="sentiment", help="configs/<NAME>.toml of each checkout")
    ap.add_argument("--set", dest="items", action="append", default=[], help="KEY=VALUE")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    items = ["trainer.epochs=1", "trainer.log.tensorboard=false", *args.items]
    sides = {"before": args.before.resolve(), "after": HERE}
    rows: dict[str, list[dict]] = {k: [] for k in sides}
    for checkout in sides.values():  # untimed: builds each checkout's compiled kernels
        one(checkout / "src", checkout, args.task, args.config, [*items, "trainer.max_steps=2"])
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            res = one(sides[name] / "src", sides[name], args.task, args.config, items)
            rows[name].append(res)
            print(
                f"round {r + 1} {name:>6}: {res['tokens']:,} tokens in {res['seconds']:.1f} s = "
                f"{res['tokens_per_s']:,.0f} tokens/s",
                flush=True,
            )
    med = {k: statistics.median(x["tokens_per_s"] for x in v) for k, v in rows.items()}
    ratio = med["after"] / med["before"]
    print(
        f"median tokens/s: before {med['before']:,.0f}, after {med['after']:,.0f}; "
        f"after / before = {ratio:.2f}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"before": str(args.before), "json": str(args.json)},
                    "rounds": rows,
                    "median": med,
                    "ratio": ratio,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
