"""The `rnnkit` command line: thin typer wrappers over importable functions."""

from __future__ import annotations

import typer

from rnnkit.commands import classify, layers
from rnnkit.commands import data as data_commands
from rnnkit.commands import generate as generate_commands
from rnnkit.commands import tagging as tagging_commands
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
app.command()(generate_commands.generate)
app.command()(classify.predict)
tagging_commands.register(app)


@app.command()
def demo() -> None:
    """The main job: the layer parity report, then a short layer benchmark."""
    layers.parity(
        kind=["rnn_tanh", "rnn_relu", "lstm", "gru"],
        backend=["loop", "torch"],
        dtype=["float32", "float64"],
        show_all=False,
    )
    layers.bench_layers(
        kind=["lstm", "gru", "rnn"],
        quick=True,
        rounds=3,
        warmup=1,
        threads=0,
        json_path=None,
        markdown=None,
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
