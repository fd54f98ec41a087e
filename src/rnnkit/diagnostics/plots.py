"""PNG plots of the diagnostics (matplotlib, Agg backend: no display needed).

Every function takes the data, writes one PNG at ``path`` and returns the path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from rnnkit.diagnostics.gates import GateStats, hidden_matrix
from rnnkit.layers import LayerTrace


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_gradient_norms(
    norms: Mapping[str, torch.Tensor],
    path: str | Path,
    title: str = "||dL/dh_t||",
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """One log-scale curve of ||dL/dh_t|| against t per label.

    ``styles`` maps a label to matplotlib line keywords, e.g. ``{"lstm init": {"ls": "--"}}``.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, values in norms.items():
        v = torch.as_tensor(values).double()
        v = torch.where(v > 0, v, torch.nan)  # an underflowed 0 has no place on a log axis
        style = dict((styles or {}).get(label, {}))
        ax.semilogy(range(1, len(v) + 1), v.numpy(), label=label, **style)
    ax.set_xlabel("time step t")
    ax.set_ylabel("mean ||dL/dh_t||")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_gates(stats: Mapping[str, GateStats], path: str | Path) -> Path:
    """Mean activation (top) and saturated fraction (bottom) of each gate over time."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.0), sharex=True)
    for name, s in stats.items():
        t = range(1, len(s.mean) + 1)
        top.plot(t, s.mean.numpy(), label=name)
        bottom.plot(t, s.saturation.numpy(), label=name)
    top.set_ylabel("mean activation")
    bottom.set_ylabel("saturated fraction")
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_xlabel("time step t")
    top.legend(fontsize=8)
    top.set_title("gate activations")
    return _save(fig, path)


def plot_hidden(trace: LayerTrace, path: str | Path, layer: int = -1, row: int = 0) -> Path:
    """Heat map of one sequence's hidden units (rows) over time (columns)."""
    h = hidden_matrix(trace, layer, row)  # (T, H)
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    lim = float(h.abs().max()) or 1.0  # tanh states stay in [-1, 1], ReLU ones need not
    im = ax.imshow(
        h.T.numpy(), aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest"
    )
    ax.set_xlabel("time step t")
    ax.set_ylabel("hidden unit")
    ax.set_title("hidden state h_t")
    fig.colorbar(im, ax=ax)
    return _save(fig, path)


MAX_FIGSIZE = (16.0, 12.0)  # inches: long sequences shrink their labels instead


def plot_attention(
    weights: Any,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    path: str | Path,
    title: str = "",
    image: Any = None,
) -> Path:
    """Heat map of attention weights: target steps (rows, y axis) over source steps (columns,
    x axis, labels rotated), one cell per (target, source) pair, with a colorbar; with
    ``image`` (H, S) (the source read column by column), the image above it, column over
    column.

    Args:
        weights: (U, S) weights, a tensor or array: row u is target step u's distribution
            over the S source steps (e.g. the ``weights`` of :class:`rnnkit.attention.Attention`
            stacked over decoder steps).
        source_tokens: S labels for the x axis. target_tokens: U labels for the y axis.
        path: The PNG to write. title: Drawn above the map.

    Raises:
        ValueError: ``weights`` is not (len(target_tokens), len(source_tokens)).
    """
    w = torch.as_tensor(weights).detach().cpu().double()
    expected = (len(target_tokens), len(source_tokens))
    if tuple(w.shape) != expected:
        raise ValueError(
            f"weights: expected shape (len(target_tokens), len(source_tokens)) = {expected}, "
            f"got {tuple(w.shape)}"
        )
    if 0 in expected:
        raise ValueError(f"weights: shape {expected} has no cells to draw")
    cell = 0.4  # inches per token, plus room for the labels and the colorbar
    width = min(MAX_FIGSIZE[0], max(4.0, 2.5 + cell * expected[1]))
    height = min(MAX_FIGSIZE[1], max(3.0, 1.8 + cell * expected[0]))
    fontsize = max(4.0, min(9.0, 9.0 * 40 / max(40, *expected)))
    top = None
    if image is not None:
        pixels = torch.as_tensor(image).detach().cpu().double()
        if pixels.dim() != 2 or pixels.shape[1] != expected[1]:
            raise ValueError(
                f"image: expected (H, {expected[1]}) (one column per source step), got "
                f"{tuple(pixels.shape)}"
            )
        ratio = [max(1.0, pixels.shape[0] / 4), max(1.0, expected[0])]
        fig, (top, ax) = plt.subplots(
            2,
            1,
            figsize=(width, height + 1.0),
            sharex=True,
            height_ratios=ratio,
            layout="constrained",
        )
        top.imshow(pixels.numpy(), aspect="auto", cmap="gray_r", interpolation="nearest")
        top.set_yticks([])
        top.set_title(title)
        title = ""
    else:
        fig, ax = plt.subplots(figsize=(width, height))
    im = ax.imshow(w.numpy(), aspect="auto", cmap="viridis", vmin=0.0, interpolation="nearest")
    ax.set_xticks(range(expected[1]))
    ax.set_xticklabels([str(t) for t in source_tokens], rotation=60, ha="right", fontsize=fontsize)
    ax.set_yticks(range(expected[0]))
    ax.set_yticklabels([str(t) for t in target_tokens], fontsize=fontsize)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    ax.set_title(title)
    axes = [top, ax] if image is not None else ax  # one width for both: columns align
    fig.colorbar(im, ax=axes, label="attention weight")
    return _save(fig, path)


def plot_training_curves(rows: Sequence[Mapping[str, float]], path: str | Path) -> Path:
    """Per-epoch losses (log scale); mean gradient norm and clip-fire rate; and, when the run
    logged them, validation scores on [0, 1] (accuracy, F1, ...). Every panel has a legend."""
    epochs = [int(r["epoch"]) + 1 for r in rows]
    scores = sorted(
        k
        for k in (rows[0] if rows else {})
        if k.startswith("val_") and k != "val_loss" and all(0 <= r.get(k, -1) <= 1 for r in rows)
    )
    panels = 3 if scores else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.6))
    ax1, ax2 = axes[0], axes[1]
    for key in ("train_loss", "val_loss"):
        if all(key in r for r in rows):
            ax1.semilogy(epochs, [r[key] for r in rows], marker="o", label=key)
    ax1.set_xlabel("epoch")
    ax1.set_title("loss")
    ax1.legend(fontsize=8)
    if all("grad_norm_mean" in r for r in rows):
        ax2.semilogy(
            epochs,
            [max(r["grad_norm_mean"], 1e-30) for r in rows],
            marker="o",
            label="mean grad norm",
        )
    ax2.set_xlabel("epoch")
    handles, labels = ax2.get_legend_handles_labels()
    if all("clip_rate" in r for r in rows):
        twin = ax2.twinx()
        twin.plot(
            epochs, [r["clip_rate"] for r in rows], color="tab:red", marker="x", label="clip rate"
        )
        twin.set_ylim(-0.05, 1.05)
        twin.set_ylabel("clip-fire rate")
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax2.set_title("gradients")
    ax2.legend(handles, labels, fontsize=8, loc="upper left")
    if scores:
        ax3 = axes[2]
        for key in scores:
            ax3.plot(epochs, [r[key] for r in rows], marker="o", label=key)
        ax3.set_xlabel("epoch")
        ax3.set_ylim(-0.02, 1.02)
        ax3.set_title("validation scores")
        ax3.legend(fontsize=8)
    return _save(fig, path)


def plot_learning_curve(
    train: Sequence[tuple[float, float]],
    val: Sequence[tuple[float, float]],
    path: str | Path,
    *,
    ylabel: str = "loss",
    title: str = "",
    target: float | None = None,
    ylim: tuple[float, float] | None = None,
    train_label: str = "training loss",
    val_label: str = "validation loss",
    scores: Mapping[str, Sequence[tuple[float, float]]] | None = None,
) -> Path:
    """Training loss per optimizer step (a line) and validation loss (points) against the step.

    ``target`` draws a dashed horizontal line; ``scores`` (label -> (step, value) points, e.g.
    validation accuracy) adds a second panel on [0, 1].
    """
    panels = 2 if scores else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.0 * panels, 3.6), squeeze=False)
    ax = axes[0][0]
    if train:
        ax.plot(*zip(*train, strict=True), lw=1, label=train_label)
    if val:
        ax.plot(*zip(*sorted(val), strict=True), marker="o", label=val_label)
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=0.8, label=f"target {target:g}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if scores:
        right = axes[0][1]
        for label, points in scores.items():
            if points:
                right.plot(*zip(*sorted(points), strict=True), marker="o", label=label)
        right.set_xlabel("optimizer step")
        right.set_ylim(0.0, 1.0)
        right.set_title(", ".join(scores))
        right.grid(True, alpha=0.3)
        right.legend(fontsize=8)
    return _save(fig, path)


def plot_confusion(counts: Any, labels: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Confusion matrix: true classes (rows) over predicted classes (columns), each cell
    shaded by the fraction of its row and printed with its count; the title gains the
    accuracy (the trace over the total).

    Args:
        counts: (K, K) counts, a tensor or array: ``counts[i, j]`` cases of class i predicted j.
        labels: the K class names. path: the PNG to write. title: drawn above, before the
            accuracy.

    Raises:
        ValueError: ``counts`` is not (K, K) with K = len(labels), or holds no case.
    """
    c = torch.as_tensor(counts).detach().cpu().double()
    k = len(labels)
    if tuple(c.shape) != (k, k) or k == 0:
        raise ValueError(
            f"counts: expected shape ({k}, {k}) (one row per label), got {tuple(c.shape)}"
        )
    total = float(c.sum())
    if total <= 0:
        raise ValueError("counts: no case to draw (all counts are zero)")
    rows = c / c.sum(1, keepdim=True).clamp_min(1)  # fraction of each true class
    size = min(MAX_FIGSIZE[0], max(4.0, 1.5 + 0.55 * k))
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(rows.numpy(), cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fontsize = max(5.0, min(9.0, 90 / k))
    for i in range(k):
        for j in range(k):
            n = int(c[i, j])
            if n:
                color = "white" if rows[i, j] > 0.5 else "black"
                ax.text(j, i, str(n), ha="center", va="center", fontsize=fontsize, color=color)
    ax.set_xticks(range(k))
    ax.set_xticklabels([str(x) for x in labels], rotation=45, ha="right", fontsize=fontsize)
    ax.set_yticks(range(k))
    ax.set_yticklabels([str(x) for x in labels], fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = float(c.diagonal().sum()) / total
    ax.set_title(f"{title + ': ' if title else ''}accuracy {accuracy:.3f} ({int(total)} cases)")
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    return _save(fig, path)
