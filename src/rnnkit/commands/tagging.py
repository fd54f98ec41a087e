"""`rnnkit tag RUN_DIR TEXT`: a thin wrapper over :func:`rnnkit.tagging.task.tag_text`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rnnkit.tagging.task import Tagged


def tag(
    run_dir: Path = typer.Argument(..., help="run directory of a `tagging` run"),
    text: str = typer.Argument(..., help="text to tag; split into words and punctuation"),
    which: str = typer.Option("best", help="best or latest checkpoint"),
) -> None:
    """Print every word with its predicted tag, then the entity spans."""
    from rnnkit.tagging.task import tag_text

    try:
        tagged = tag_text(str(run_dir), text, which)
    except (FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from e
    print_tagged(tagged)


def print_tagged(tagged: Tagged) -> None:
    """One ``token  TAG`` line per word, a blank line, then ``TYPE<TAB>start-end<TAB>words``."""
    width = max(len(t) for t in tagged.tokens)
    for token, label in zip(tagged.tokens, tagged.tags, strict=True):
        typer.echo(f"{token:<{width}}  {label}")
    if tagged.spans:
        typer.echo("")
    for kind, start, end in tagged.spans:
        typer.echo(f"{kind}\t{start}-{end}\t{' '.join(tagged.tokens[start:end])}")


def register(app: typer.Typer) -> None:
    """Add the tagging commands to ``app``."""
    app.command()(tag)
