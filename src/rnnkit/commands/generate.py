"""`rnnkit generate`: a thin wrapper over :func:`rnnkit.tasks.language.generate_text`."""

from __future__ import annotations

from pathlib import Path

import typer


def generate(
    run_dir: Path = typer.Argument(..., help="run directory of a language model (task lm)"),
    prime: str = typer.Option("\n", "--prime", "-p", help="text to start from"),
    length: int = typer.Option(500, "--length", "-n", help="new tokens to generate"),
    temperature: float = typer.Option(1.0, "--temperature", "-t", help="0 for greedy"),
    top_k: int | None = typer.Option(None, "--top-k", help="sample from the k likeliest"),
    top_p: float | None = typer.Option(None, "--top-p", help="nucleus sampling mass"),
    seed: int | None = typer.Option(None, "--seed", help="seed for repeatable samples"),
    which: str = typer.Option("best", help="best or latest checkpoint"),
) -> None:
    """Generate text from a language model run, streaming it as it is drawn."""
    from rnnkit.tasks.language import generate_text

    typer.echo(prime, nl=False)
    try:
        generate_text(
            run_dir,
            prime,
            length,
            temperature,
            top_k,
            top_p,
            seed,
            which,
            on_text=lambda piece: typer.echo(piece, nl=False),
        )
    except (FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from e
    typer.echo("")
