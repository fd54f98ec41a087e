"""Validation perplexity of the PTB runs against training minutes, one curve per run.

Reads the epoch lines that ``rnnkit train`` prints (``progress = "lines"``:
``epoch 3/40 ... val_perplexity=125.8 ... elapsed=34.4s``) from the logs kept in
``docs/bench/ptb/``, draws them on a log-scaled time axis beside the Kneser-Ney 5-gram and
Zaremba et al.'s validation figures, prints the points and writes the PNG.

    python benchmarks/ptb_curves.py docs/figures/ptb_curves.png
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

RUNS = {
    "H100: 2 x 650 LSTM, tied (configs/ptb_gpu.toml)": "h100-train.log",
    "CPU, 1 thread: 2 x 300 LSTM, weight drop (compiled kernel)": "cpu-weightdrop-kernel-train.log",
    "CPU, 1 thread: 2 x 300 LSTM, weight drop (first run)": "cpu-weightdrop-train.log",
    "CPU, 1 thread: 2 x 300 LSTM (configs/ptb_lstm.toml)": "cpu-lstm-train.log",
}
LINES = {  # validation perplexities on the same split (docs/RESULTS.md)
    "Kneser-Ney 5-gram": 151.3,
    "Zaremba et al. small": 120.7,
    "Zaremba et al. medium": 86.2,
}
EPOCH = re.compile(r"^epoch \d+/\d+ .*val_perplexity=([\d.]+) .*elapsed=([\d.]+)s")


def points(log: Path) -> list[tuple[float, float]]:
    """(minutes, validation perplexity) at every epoch's end."""
    out = []
    for line in log.read_text().splitlines():
        m = EPOCH.match(line)
        if m:
            out.append((float(m.group(2)) / 60, float(m.group(1))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("png", type=Path)
    parser.add_argument("--logs", type=Path, default=Path("docs/bench/ptb"))
    args = parser.parse_args()
    fig, ax = plt.subplots(figsize=(9, 6))
    for label, name in RUNS.items():
        pts = points(args.logs / name)
        print(f"{label}: " + ", ".join(f"{m:.1f} min {p:.1f}" for m, p in pts))
        ax.plot([m for m, _ in pts], [p for _, p in pts], marker="o", markersize=3, label=label)
    for label, value in LINES.items():
        ax.axhline(value, linestyle="--", linewidth=0.8, color="grey")
        ax.text(190, value * 1.01, label, fontsize=8, color="grey", ha="right")
    ax.set_xscale("log")
    ax.set_xlim(right=200)
    ax.set_yscale("log")
    ax.set_xlabel("training minutes (with each epoch's validation)")
    ax.set_ylabel("validation perplexity")
    ax.set_title("Penn Treebank word-level language models")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    fig.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=120)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
