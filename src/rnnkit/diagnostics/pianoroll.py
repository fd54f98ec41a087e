"""A piano roll as a PNG: pitch up, time (in quarter notes) to the right."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from rnnkit.diagnostics.plots import _save

_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def note_name(midi: int) -> str:
    """``60`` -> ``"C4"`` (scientific pitch notation, middle C = C4)."""
    return f"{_NAMES[midi % 12]}{midi // 12 - 1}"


def plot_pianoroll(
    roll: torch.Tensor, low: int, frame: float, path: str | Path, title: str = ""
) -> Path:
    """Draw a roll (T, P), bool or probabilities in [0, 1], whose column k is MIDI pitch
    ``low + k`` and row t starts at quarter ``t * frame``; C of every octave is labelled.

    >>> plot_pianoroll(torch.eye(4, dtype=torch.bool), 60, 0.5, "roll.png")  # C4 D-flat4 ...
    """
    r = torch.as_tensor(roll).float()
    if r.dim() != 2:
        raise ValueError(f"roll: expected (T, P), got shape {tuple(r.shape)}")
    t, p = r.shape
    width = min(max(6.4, 0.05 * t * frame * 4), 16.0)
    fig, ax = plt.subplots(figsize=(width, 4.0))
    ax.imshow(
        r.T.numpy(),
        origin="lower",
        aspect="auto",
        cmap="Greys",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        extent=(0.0, t * frame, low - 0.5, low + p - 0.5),
    )
    cs = [m for m in range(low, low + p) if m % 12 == 0]
    ax.set_yticks(cs, [note_name(m) for m in cs])
    ax.set_xlabel("time (quarter notes)")
    ax.set_ylabel("pitch")
    ax.grid(True, axis="y", alpha=0.2)
    if title:
        ax.set_title(title)
    return _save(fig, path)
