"""The `rnnkit` command line: thin typer wrappers over importable functions."""

from __future__ import annotations

from pathlib import Path

import typer

from rnnkit.commands import data as data_commands
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


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="folder for runs and plots"),
    minutes: float = typer.Option(
        9.0, min=0.05, help="time budget of the whole tour, data fetching included"
    ),
    threads: int = typer.Option(
        0, min=0, help="torch threads (0: all cores, fewer when other jobs keep them busy)"
    ),
    lm_set: list[str] = typer.Option(
        [], "--lm-set", help="override a language-model setting: model.hidden_size=128"
    ),
    sentiment_set: list[str] = typer.Option(
        [], "--sentiment-set", help="override a classifier setting: task.data=reviews.csv"
    ),
    length: int = typer.Option(400, min=1, help="characters of the generated passage"),
) -> None:
    """The main job: fetch data, train a Shakespeare LSTM and a sentiment classifier, report."""
    from rnnkit.data.fetching import FetchError
    from rnnkit.demo import run_demo
    from rnnkit.training.trainer import NonFiniteLossError

    try:
        run_demo(out, minutes, threads, lm_set, sentiment_set, length=length)
    except (ValueError, FetchError, NonFiniteLossError, FileExistsError, FileNotFoundError) as e:
        # ValueError covers ConfigError (a bad --lm-set/--sentiment-set) and DataFormatError
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
