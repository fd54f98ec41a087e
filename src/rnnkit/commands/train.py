"""`rnnkit train | resume | evaluate | diagnose`: thin wrappers over :mod:`rnnkit.tasks.run`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import typer

from rnnkit.commands.errors import BAD_INPUT, RUNTIME

# Failures (a bad task, key, file or run directory: exit 2; a non-finite loss, a full disk:
# exit 1) propagate to the top-level handler in :mod:`rnnkit.cli`, which prints one line.


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def train(
    task: str = typer.Argument(..., help="a registered task (`rnnkit tasks` lists them)"),
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML configuration file"),
    overrides: list[str] = typer.Option([], "--set", help="override a key: trainer.lr=0.001"),
    out: Path = typer.Option(..., "--out", "-o", help="run directory to create"),
    seed: int | None = typer.Option(None, "--seed", help="seed (overrides the file's seed)"),
) -> None:
    """Train TASK into a new run directory."""
    from rnnkit.tasks import run

    items = [*overrides, *([f"seed={seed}"] if seed is not None else [])]
    if out.exists() and not out.is_dir():
        _fail(f"--out {out}: is a file; name a new folder for the run", BAD_INPUT)
    cfg = run.load_run_config(task, config, items)
    summary = run.train(cfg, out)
    _report(summary)


def resume(run_dir: Path = typer.Argument(..., help="run directory to continue")) -> None:
    """Continue a run from its latest checkpoint."""
    from rnnkit.tasks import run

    summary = run.resume(run_dir)
    _report(summary)


def evaluate(
    run_dir: Path = typer.Argument(..., help="run directory"),
    split: str | None = typer.Option(None, help="train, val or test [default: test]"),
    which: str = typer.Option("best", help="best or latest checkpoint"),
    data: Path | None = typer.Option(
        None, "--data", help="a labelled file in the run's format instead of a split"
    ),
    overrides: list[str] = typer.Option(
        [], "--set", help="a [task] setting for this evaluation: task.beam=5"
    ),
    confusion: Path | None = typer.Option(
        None, "--confusion", help="write the confusion matrix as this PNG (classifiers)"
    ),
    ensemble: list[Path] = typer.Option(
        [],
        "--ensemble",
        help="another run of the same task and codec to decode with this one, their "
        "log-probabilities averaged at every step (encoder-decoders); repeat for more",
    ),
) -> None:
    """Evaluate a run's checkpoint on a split or a labelled file; prints JSON metrics."""
    from rnnkit.tasks import run

    if confusion is not None and confusion.is_dir():
        _fail(f"--confusion {confusion}: is a folder; name a .png file", BAD_INPUT)
    if confusion is not None and confusion.suffix.lower() != ".png":
        _fail(f"--confusion {confusion}: name a .png file (the plot is a PNG)", BAD_INPUT)
    if split is not None and data is not None:
        _fail(
            f"--split {split} and --data {data}: give one (a split of the run's data, or a file)",
            BAD_INPUT,
        )
    metrics = run.evaluate(run_dir, split or "test", which, data, overrides, confusion, ensemble)
    # valid JSON: a value that is not finite (NaN, inf) is written as null
    shown = {
        k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in metrics.items()
    }
    typer.echo(json.dumps(shown, indent=1, allow_nan=False))
    loss = metrics.get("loss")
    if isinstance(loss, float) and not math.isfinite(loss):
        _fail(
            f"the loss on {data or split} is {loss}, not a finite number "
            "(the checkpoint's weights or the data hold NaN or inf)",
            RUNTIME,
        )


def diagnose(
    run_dir: Path = typer.Argument(..., help="run directory"),
    out: Path | None = typer.Option(None, "--out", help="folder for PNGs (RUN_DIR/diagnostics)"),
) -> None:
    """Plot gradient norms per time step, gates, hidden states and training curves."""
    from rnnkit.tasks import run

    paths = run.diagnose(run_dir, out)
    for p in paths:
        typer.echo(str(p))


def _report(summary: dict) -> None:
    if os.environ.get("RANK", "0") != "0":  # under torchrun the first process reports
        return
    budget = summary.get("stop_reason") == "max_minutes"
    last = summary["history"][-1] if summary["history"] else {}
    if budget and summary.get("final"):  # the validation at the stop, perhaps mid-epoch
        last = {k: v for k, v in summary["final"].items() if k not in ("epochs", "step")}
    shown = " ".join(f"{k}={v:.4g}" for k, v in last.items())
    stopped = " (stopped on the time budget)" if budget else ""
    typer.echo(f"done: {summary['epochs']} epochs, {summary['step']} steps{stopped}. {shown}")


def register(app: typer.Typer) -> None:
    """Add the training commands to ``app``."""
    for fn in (train, resume, evaluate, diagnose):
        app.command()(fn)
