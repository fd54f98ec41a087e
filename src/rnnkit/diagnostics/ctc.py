"""The CTC posteriors of one input over time: the spikes of a CTC recognizer.

A trained CTC model puts almost all of each frame's probability on the blank and emits each
label as a narrow spike, one or two frames wide, somewhere inside the stretch of input that
carries it. :func:`plot_ctc_posteriors` draws y_s(k) over the frames s, one curve per label
k that reaches ``min_peak`` somewhere (the blank dashed, in grey), with the input above it
(MFCC frames (D, S) or an image (H, W), column over column) and the reference and output
transcripts in the title. A run's test string: :func:`rnnkit.tasks.recognize.plot_posteriors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rnnkit.diagnostics.plots import _save, plt

__all__ = ["plot_ctc_posteriors"]


def plot_ctc_posteriors(
    posteriors: Any,
    classes: Sequence[str],
    path: str | Path,
    source: Any = None,
    reference: str = "",
    output: str = "",
    blank: int = 0,
    min_peak: float = 0.05,
    source_label: str = "feature",
) -> Path:
    """Write the posteriors y_s(k) of one input as a PNG at ``path``.

    Args:
        posteriors: (S, V) class probabilities per frame (``model.posteriors(batch)[b, :S]``).
        classes: V names, ``classes[k]`` the token of class k (the vocabulary's tokens; the
            blank's own name is replaced by "blank").
        path: the PNG to write.
        source: (D, S) frames (features as rows) or (H, S) an image, drawn above, column over
            column; None draws the posteriors alone.
        reference, output: the transcripts named in the title.
        blank: the blank's class id.
        min_peak: a label is drawn when its probability reaches this on some frame.
        source_label: the y label of the source panel ("feature", "row" for an image).

    Raises:
        ValueError: ``posteriors`` is not (S, V) with V = len(classes), or ``source`` has not
            S columns.
    """
    y = torch.as_tensor(posteriors).detach().cpu().double()
    if y.dim() != 2 or y.shape[1] != len(classes) or y.shape[0] < 1:
        raise ValueError(
            f"posteriors: expected (S, {len(classes)}) (one column per class), got {tuple(y.shape)}"
        )
    s = y.shape[0]
    title = "  ".join(
        part
        for part in (
            f"reference: {reference}" if reference else "",
            f"output: {output}" if output else "",
        )
        if part
    )
    if source is not None:
        x = torch.as_tensor(source).detach().cpu().double()
        if x.dim() != 2 or x.shape[1] != s:
            raise ValueError(
                f"source: expected (D, {s}) (one column per frame), got {tuple(x.shape)}"
            )
        fig, (top, ax) = plt.subplots(
            2, 1, figsize=(9.0, 5.0), sharex=True, height_ratios=[1.0, 1.6], layout="constrained"
        )
        top.imshow(
            x.numpy(),
            aspect="auto",
            origin="lower",
            cmap="magma",
            interpolation="nearest",
            extent=(-0.5, s - 0.5, -0.5, x.shape[0] - 0.5),
        )
        top.set_ylabel(source_label)
        top.set_title(title)
    else:
        fig, ax = plt.subplots(figsize=(9.0, 3.6), layout="constrained")
        ax.set_title(title)
    frames = range(s)
    ax.plot(frames, y[:, blank].numpy(), color="0.6", ls="--", lw=1.0, label="blank")
    colors = plt.get_cmap("tab10")
    drawn = 0
    for k, name in enumerate(classes):
        peak = float(y[:, k].max())
        if k == blank or peak < min_peak:
            continue
        color = colors(drawn % 10)
        ax.plot(frames, y[:, k].numpy(), color=color, lw=1.4, label=name)
        top_frame = int(y[:, k].argmax())
        ax.annotate(
            name,
            (top_frame, peak),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=8,
            color=color,
        )
        drawn += 1
    ax.set_xlim(-0.5, s - 0.5)
    ax.set_ylim(0.0, 1.08)
    ax.set_xlabel("frame s")
    ax.set_ylabel("y_s(k)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _save(fig, path)
