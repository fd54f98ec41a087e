"""Diagnostics: gradient norms per time step, gates, hidden states, attention weights and
training curves as PNGs."""

import json
from pathlib import Path

from rnnkit.diagnostics.gates import GateStats, gate_statistics, hidden_matrix
from rnnkit.diagnostics.gradients import decay_rate, hidden_gradients, step_gradient_norms
from rnnkit.diagnostics.plots import (
    plot_attention,
    plot_confusion,
    plot_gates,
    plot_gradient_norms,
    plot_hidden,
    plot_learning_curve,
    plot_training_curves,
)
from rnnkit.training.callbacks import read_metrics


def read_run_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """The per-epoch metrics a run logged (metrics.csv or metrics.jsonl), or []."""
    for name in ("metrics.csv", "metrics.jsonl"):
        rows = read_metrics(Path(run_dir) / name)
        if rows:
            return rows
    return []


def read_step_scalars(run_dir: str | Path, tag: str = "train/loss") -> list[tuple[int, float]]:
    """(step, value) of a scalar the run logged to ``RUN_DIR/tensorboard`` ([] when none)."""
    folder = Path(run_dir) / "tensorboard"
    if not folder.is_dir():
        return []
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        return []
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def validation_points(run_dir: str | Path, key: str = "val_loss") -> list[tuple[int, float]]:
    """(step, value) of every validation of a run: one per epoch (metrics file), plus the
    final one of ``summary.json`` when the run stopped mid-epoch (on its time budget)."""
    points = {int(r["step"]): float(r[key]) for r in read_run_metrics(run_dir) if key in r}
    summary = Path(run_dir) / "summary.json"
    if summary.exists():
        final = json.loads(summary.read_text()).get("final") or {}
        if key in final:
            points[int(final["step"])] = float(final[key])
    return sorted(points.items())


def plot_run_curves(
    run_dir: str | Path, path: str | Path, title: str = "", ylabel: str = "loss", **kw
) -> Path:
    """The learning curve of a run: training loss per logged step (TensorBoard), validation
    loss, and validation accuracy in a second panel when the run has it."""
    accuracy = validation_points(run_dir, "val_accuracy")
    return plot_learning_curve(
        read_step_scalars(run_dir),
        validation_points(run_dir),
        path,
        ylabel=ylabel,
        title=title,
        scores={"validation accuracy": accuracy} if accuracy else None,
        **kw,
    )


__all__ = [
    "GateStats",
    "decay_rate",
    "gate_statistics",
    "hidden_gradients",
    "hidden_matrix",
    "plot_attention",
    "plot_confusion",
    "plot_gates",
    "plot_gradient_norms",
    "plot_hidden",
    "plot_learning_curve",
    "plot_run_curves",
    "plot_training_curves",
    "read_run_metrics",
    "read_step_scalars",
    "step_gradient_norms",
    "validation_points",
]
