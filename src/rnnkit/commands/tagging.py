"""`rnnkit tag RUN_DIR TEXT`: a thin wrapper over :func:`rnnkit.tagging.task.tag_text`."""

from __future__ import annotations

from pathlib import Path

import typer


def tag(
    run_dir: Path = typer.Argument(..., help="run directory of a `tagging` run"),
    text: str = typer.Argument(..., help="text to tag; split into words and punctuation"),
    which: str = typer.Option("best", help="best or latest checkpoint"),
) -> None:
    """Print every word with its predicted tag, then the entity spans."""
    from rnnkit.tagging.task import format_tagged, tag_text

    try:
        tagged = tag_text(str(run_dir), text, which)
    except (FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from e
    typer.echo(format_tagged(tagged))


def register(app: typer.Typer) -> None:
    """Add the tagging commands to ``app``."""
    app.command()(tag)
