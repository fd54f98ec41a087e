"""The `rnnkit` command line: thin typer wrappers over importable functions."""

from __future__ import annotations

import typer

from rnnkit.commands import data as data_commands

app = typer.Typer(help="rnnkit: recurrent neural networks toolkit.", no_args_is_help=True)
app.add_typer(data_commands.app, name="data")


@app.command()
def version() -> None:
    """Print the rnnkit version."""
    from rnnkit import __version__

    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
