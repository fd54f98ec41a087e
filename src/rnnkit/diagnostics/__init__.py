"""Diagnostics: gradient norms per time step, gates, hidden states, training curves as PNGs."""

from pathlib import Path

from rnnkit.diagnostics.gates import GateStats, gate_statistics, hidden_matrix
from rnnkit.diagnostics.gradients import decay_rate, hidden_gradients, step_gradient_norms
from rnnkit.diagnostics.plots import (
    plot_gates,
    plot_gradient_norms,
    plot_hidden,
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


__all__ = [
    "GateStats",
    "decay_rate",
    "gate_statistics",
    "hidden_gradients",
    "hidden_matrix",
    "plot_gates",
    "plot_gradient_norms",
    "plot_hidden",
    "plot_training_curves",
    "read_run_metrics",
    "step_gradient_norms",
]
