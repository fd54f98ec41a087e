"""``rnnkit data``: list, describe and fetch the registered datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from rnnkit.data import registry
from rnnkit.data.fetching import data_home
from rnnkit.data.readers.check import FORMATS, check_file, format_of

app = typer.Typer(
    help="Datasets: list, info, fetch, and check your own files.", no_args_is_help=True
)


@app.command("list")
def list_() -> None:
    """List every dataset: name, source package, task, and its splits once fetched."""
    for name in registry.names():
        info = registry.get(name).info
        report = registry.load_report(name)
        state = (
            ", ".join(f"{k} {v:,}" for k, v in report.splits.items()) if report else "not fetched"
        )
        sources = "; ".join(a.spec for a in info.artifacts)
        typer.echo(f"{name:17} {sources}\n{'':17} {info.task}; {state}")
    typer.echo(f"cache: {data_home()}")


@app.command()
def info(name: str) -> None:
    """Print a dataset's source, size, license, citation, files and splits."""
    typer.echo(registry.describe(name))  # an unknown name: exit 2 (rnnkit.cli's handler)


@app.command()
def fetch(
    name: str,
    from_file: list[Path] = typer.Option(
        [],
        "--from",
        help="An artifact file you already have (as named by `info`), used "
        "instead of downloading; repeat for several.",
    ),
    force: bool = typer.Option(False, help="Rebuild even if already in the cache."),
) -> None:
    """Fetch NAME once into the cache, verify its SHA-256, convert it to plain files."""
    # an unknown name or a bad --from file: exit 2; a failed download: 1 (rnnkit.cli's handler)
    report = registry.fetch(name, from_files=from_file, force=force)
    splits = ", ".join(f"{k} {v:,}" for k, v in report.splits.items())
    typer.echo(
        f"{name}: {report.path} ({splits}; {report.bytes / 1e6:.1f} MB, "
        f"fetched in {report.seconds:.1f} s)"
    )


@app.command()
def check(
    path: Path,
    fmt: str = typer.Option(
        "", "--format", help=f"One of: {', '.join(FORMATS)} (default: from the file's suffix)."
    ),
    columns: str = typer.Option("text,label", help="Columns/fields for csv, tsv, jsonl."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip bad rows and count them."),
) -> None:
    """Read a local file in a supported format and report what a task would get from it."""
    fmt = fmt or format_of(path)
    count, skipped = check_file(path, fmt, columns.split(","), skip_bad=skip_bad)
    typer.echo(f"{path}: {count:,} records, {len(skipped):,} bad rows skipped")
    for error in skipped[:5]:
        typer.echo(f"  skipped {error}")
