"""The `rnnkit` command line: thin typer wrappers over importable functions.

Every expected failure (a bad file, config key, run directory or task name; a full disk; a
non-finite loss) ends in one line ``error: ...`` on standard error and exit code 2 (bad input)
or 1 (a runtime fault); see :mod:`rnnkit.commands.errors`. ``--debug`` or ``RNNKIT_DEBUG=1``
shows the traceback instead.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from typer.core import TyperGroup

from rnnkit.commands import data as data_commands
from rnnkit.commands import demo as demo_command
from rnnkit.commands import errors, layers
from rnnkit.commands import export as export_command
from rnnkit.commands import predict as predict_commands
from rnnkit.commands import train as train_commands

DEBUG_ENV = "RNNKIT_DEBUG"


def debug_requested(ctx: Any = None) -> bool:
    """Whether ``--debug`` was given (on ``ctx``'s command line) or ``RNNKIT_DEBUG`` is set."""
    if ctx is not None and ctx.params.get("debug"):
        return True
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class _Rnnkit(TyperGroup):
    """The top-level group: turns an expected failure of any command into one sentence."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:  # typer.Exit and click's usage errors pass through
            found = errors.describe(exc)
            if found is None or debug_requested(ctx):
                raise
            code, message = found
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(code=code) from None


app = typer.Typer(
    help="rnnkit: recurrent neural networks toolkit.", no_args_is_help=True, cls=_Rnnkit
)


@app.callback()
def _options(
    debug: bool = typer.Option(
        False, "--debug", help=f"show the traceback of an error (or set {DEBUG_ENV}=1)"
    ),
) -> None:
    pass


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
app.command()(export_command.export)


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
