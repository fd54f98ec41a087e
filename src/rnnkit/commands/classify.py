"""`rnnkit predict`: a class per text (sentiment runs) or a tag per word (tagging runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def predict(
    run_dir: Path = typer.Argument(..., help="run directory of a sentiment or tagging run"),
    texts: list[str] = typer.Argument(None, help="texts to predict on (default: standard input)"),
    file: Path | None = typer.Option(None, "--file", "-f", help="classify each line of FILE"),
    which: str = typer.Option("best", help="best or latest checkpoint"),
) -> None:
    """Predict for each text, line of FILE or line of stdin.

    A sentiment run prints LABEL<TAB>PROBABILITY<TAB>TEXT per text; a tagging run prints every
    word with its tag, then the entity spans, with a blank line between texts.
    """
    from rnnkit.tasks import get_task, task_names
    from rnnkit.tasks.run import read_run_config

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
        task = read_run_config(run_dir).task
        predict_fn = get_task(task).predict
        if predict_fn is None:
            takes = " or ".join(n for n in task_names() if get_task(n).predict is not None)
            raise ValueError(
                f"{run_dir} is a {task!r} run; predict takes {takes} runs"
                + (" (use `rnnkit generate` for language models)" if task == "lm" else "")
            )
        output = predict_fn(str(run_dir), lines, which)
    except (FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(output)
