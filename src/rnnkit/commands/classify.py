"""`rnnkit predict`: labels and probabilities for raw text from a text-classification run."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def predict(
    run_dir: Path = typer.Argument(..., help="run directory of a sentiment run"),
    texts: list[str] = typer.Argument(None, help="texts to classify (default: standard input)"),
    file: Path | None = typer.Option(None, "--file", "-f", help="classify each line of FILE"),
    which: str = typer.Option("best", help="best or latest checkpoint"),
) -> None:
    """Print LABEL<TAB>PROBABILITY<TAB>TEXT for each text, line of FILE or line of stdin."""
    from rnnkit.tasks.run import load_text_classifier

    if file is not None:
        try:
            lines = file.read_text("utf-8").splitlines()
        except OSError as e:
            typer.echo(f"error: cannot read {file}: {e.strerror}", err=True)
            raise typer.Exit(code=1) from None
    else:
        lines = list(texts) if texts else sys.stdin.read().splitlines()
    lines = [t for t in lines if t.strip()]
    if not lines:
        typer.echo("error: no text to classify (give TEXT, --file or standard input)", err=True)
        raise typer.Exit(code=1)
    try:
        clf = load_text_classifier(run_dir, which)
    except (FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from None
    for text, (label, prob) in zip(lines, clf.predict(lines), strict=True):
        typer.echo(f"{label}\t{prob:.4f}\t{text}")
