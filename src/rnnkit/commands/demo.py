"""`rnnkit demo`: the tour of `make demo` (a thin wrapper over :func:`rnnkit.demo.run_demo`)."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="folder for runs and plots"),
    minutes: float = typer.Option(
        9.0, min=0.05, help="time budget of the whole tour, data fetching included"
    ),
    threads: int = typer.Option(
        0, min=0, help="torch threads (0: all cores, fewer when other jobs keep them busy)"
    ),
    lm_set: list[str] = typer.Option(
        [], "--lm-set", help="override a language-model setting: model.hidden_size=128"
    ),
    sentiment_set: list[str] = typer.Option(
        [], "--sentiment-set", help="override a classifier setting: task.data=reviews.csv"
    ),
    length: int = typer.Option(400, min=1, help="characters of the generated passage"),
) -> None:
    """The main job: fetch data, train a Shakespeare LSTM and a sentiment classifier, report."""
    from rnnkit.demo import run_demo

    # a bad --lm-set/--sentiment-set or data file exits 2, a failed fetch or a non-finite loss
    # 1: the top-level handler in rnnkit.cli prints the one line
    run_demo(out, minutes, threads, lm_set, sentiment_set, length=length)
