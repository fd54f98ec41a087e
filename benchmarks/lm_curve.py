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

from rnnkit.diagnostics import plot_learning_curve, read_step_scalars, validation_points


def val_points(run_dir: Path) -> list[tuple[int, float]]:
    """Validation loss of every kept checkpoint, evaluated on the whole validation split."""
    from rnnkit.tasks import get_task
    from rnnkit.tasks.run import load, read_run_config
    from rnnkit.training import EpochBatches
    from rnnkit.training.checkpoint import load_model
    from rnnkit.training.trainer import evaluate_model

    cfg = read_run_config(run_dir)
    data = get_task(cfg.task).prepare(cfg.task_config, cfg.seed, load(run_dir).codec)
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
    train = read_step_scalars(args.run_dir)
    val = val_points(args.run_dir) if args.val else []
    val_steps = {s for s, _ in val}
    # per-epoch validation at the epoch's last step (and at a stop on the time budget)
    val += [(s, v) for s, v in validation_points(args.run_dir) if s not in val_steps]
    plot_learning_curve(
        train,
        val,
        args.png,
        ylabel="nats per character",
        target=1.55,
        ylim=(1.0, 3.5),
        train_label="training loss (chunk of 100 steps)",
        val_label="validation loss (unseen plays)",
    )
    print("| step | val loss |\n|---|---|")
    for s, v in sorted(val):
        print(f"| {s} | {v:.4f} |")
    print(f"last training loss {train[-1][1]:.4f} at step {train[-1][0]}; figure {args.png}")


if __name__ == "__main__":
    main()
