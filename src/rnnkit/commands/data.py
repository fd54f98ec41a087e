"""``rnnkit data``: list, describe and fetch the registered datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from rnnkit.data import registry
from rnnkit.data.errors import DataFormatError
from rnnkit.data.fetching import FetchError, data_home

app = typer.Typer(help="Datasets: list, info, fetch.", no_args_is_help=True)


@app.command("list")
def list_() -> None:
    """List every dataset: name, task, source package, and whether it is fetched."""
    for name in registry.names():
        info = registry.get(name).info
        report = registry.load_report(name)
        state = (", ".join(f"{k} {v:,}" for k, v in report.splits.items())
                 if report else "not fetched")
        sources = "; ".join(a.spec for a in info.artifacts)
        typer.echo(f"{name:17} {info.task:45} {sources:42} {state}")
    typer.echo(f"cache: {data_home()}")


@app.command()
def info(name: str) -> None:
    """Print a dataset's source, size, license, citation, files and splits."""
    try:
        typer.echo(registry.describe(name))
    except KeyError as exc:
        typer.echo(exc.args[0], err=True)
        raise typer.Exit(2) from None


@app.command()
def fetch(
    name: str,
    from_file: list[Path] = typer.Option(
        [], "--from", help="An artifact file you already have (as named by `info`), used "
                           "instead of downloading; repeat for several."),
    force: bool = typer.Option(False, help="Rebuild even if already in the cache."),
) -> None:
    """Fetch NAME once into the cache, verify its SHA-256, convert it to plain files."""
    try:
        report = registry.fetch(name, from_files=from_file, force=force)
    except KeyError as exc:
        typer.echo(exc.args[0], err=True)
        raise typer.Exit(2) from None
    except (FetchError, DataFormatError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    splits = ", ".join(f"{k} {v:,}" for k, v in report.splits.items())
    typer.echo(f"{name}: {report.path} ({splits}; {report.bytes / 1e6:.1f} MB, "
               f"fetched in {report.seconds:.1f} s)")
