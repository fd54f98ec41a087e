"""The `rnnkit` command line: thin typer wrappers over importable functions."""

from __future__ import annotations

import typer

from rnnkit.commands import train as train_commands

app = typer.Typer(help="rnnkit: recurrent neural networks toolkit.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print the rnnkit version."""
    from rnnkit import __version__

    typer.echo(__version__)


train_commands.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
