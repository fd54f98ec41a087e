"""Learning curve of a language-model run: training loss per step, validation loss.

    python benchmarks/lm_curve.py RUN_DIR docs/figures/shakespeare_char_curve.png [--val]

Reads the training loss logged every few steps (``RUN_DIR/tensorboard``) and the per-epoch
validation loss (``metrics.csv``). With ``--val`` it also evaluates every kept step
checkpoint on the whole validation split, so the curve has validation points inside the
epoch. Prints the points as a table and writes the PNG.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)

from rnnkit.diagnostics import read_run_metrics


def train_points(run_dir: Path) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars("train/loss")]


def val_points(run_dir: Path) -> list[tuple[int, float]]:
    """Validation loss of every kept checkpoint, evaluated on the whole validation split."""
    from rnnkit.tasks import get_task
    from rnnkit.tasks.run import read_run_config
    from rnnkit.training import EpochBatches
    from rnnkit.training.checkpoint import load_model
    from rnnkit.training.trainer import evaluate_model

    cfg = read_run_config(run_dir)
    data = get_task(cfg.task).build(cfg.task_config, cfg.seed)
    batches = EpochBatches(data.val, data.val.size, shuffle=False, drop_last=False)
    index = json.loads((run_dir / "checkpoints" / "index.json").read_text())
    out = []
    for name in index["kept"]:
        step = int(name.removeprefix("step-"))
        model = load_model(run_dir / "checkpoints" / name)
        out.append((step, evaluate_model(model, batches)["loss"]))
        print(f"step {step}: val_loss {out[-1][1]:.4f}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--val", action="store_true", help="evaluate every kept checkpoint")
    args = ap.parse_args()
    train = train_points(args.run_dir)
    val = val_points(args.run_dir) if args.val else []
    val_steps = {s for s, _ in val}
    for row in read_run_metrics(args.run_dir):  # per-epoch validation, at the epoch's last step
        if "val_loss" in row and int(row["step"]) not in val_steps:
            val.append((int(row["step"]), float(row["val_loss"])))
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    ax.plot(*zip(*train, strict=True), lw=1, label="training loss (chunk of 100 steps)")
    if val:
        ax.plot(*zip(*sorted(val), strict=True), marker="o", label="validation loss (unseen plays)")
    ax.axhline(1.55, color="grey", ls="--", lw=0.8, label="target 1.55")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("nats per character")
    ax.set_ylim(1.0, 3.5)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=120)
    print("| step | val loss |\n|---|---|")
    for s, v in sorted(val):
        print(f"| {s} | {v:.4f} |")
    print(f"last training loss {train[-1][1]:.4f} at step {train[-1][0]}; figure {args.png}")


if __name__ == "__main__":
    main()
