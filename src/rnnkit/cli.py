"""The `rnnkit` command line: thin typer wrappers over importable functions."""

from __future__ import annotations

import typer

from rnnkit.commands import data as data_commands
from rnnkit.commands import demo as demo_command
from rnnkit.commands import layers
from rnnkit.commands import predict as predict_commands
from rnnkit.commands import train as train_commands

app = typer.Typer(help="rnnkit: recurrent neural networks toolkit.", no_args_is_help=True)
app.command()(layers.parity)
app.add_typer(layers.bench_app, name="bench")
app.add_typer(data_commands.app, name="data")


@app.command()
def version() -> None:
    """Print the rnnkit version."""
    from rnnkit import __version__

    typer.echo(__version__)


train_commands.register(app)
predict_commands.register(app)
app.command()(demo_command.demo)


@app.command()
def tasks() -> None:
    """List the registered tasks (the TASK argument of `rnnkit train`)."""
    from rnnkit.tasks import get_task, task_names

    for name in task_names():
        spec = get_task(name)
        aliases = f" (alias: {', '.join(spec.aliases)})" if spec.aliases else ""
        typer.echo(f"{name:<10} {spec.description}{aliases}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
