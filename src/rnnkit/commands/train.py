"""`rnnkit train | resume | evaluate | diagnose`: thin wrappers over :mod:`rnnkit.tasks.run`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from rnnkit.commands.errors import BAD_INPUT, RUNTIME, os_error_text


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def _message(e: Exception) -> str:
    return os_error_text(e) if isinstance(e, OSError) else str(e)


def train(
    task: str = typer.Argument(..., help="a registered task (`rnnkit tasks` lists them)"),
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML configuration file"),
    overrides: list[str] = typer.Option([], "--set", help="override a key: trainer.lr=0.001"),
    out: Path = typer.Option(..., "--out", "-o", help="run directory to create"),
    seed: int | None = typer.Option(None, "--seed", help="seed (overrides the file's seed)"),
) -> None:
    """Train TASK into a new run directory."""
    from rnnkit.tasks import run
    from rnnkit.training.trainer import NonFiniteLossError

    items = [*overrides, *([f"seed={seed}"] if seed is not None else [])]
    if out.exists() and not out.is_dir():
        _fail(f"--out {out}: is a file; name a new folder for the run", BAD_INPUT)
    try:
        cfg = run.load_run_config(task, config, items)
        summary = run.train(cfg, out)
    except KeyError as e:
        _fail(str(e.args[0]))
    except (ValueError, TypeError, FileExistsError, FileNotFoundError, NonFiniteLossError) as e:
        _fail(_message(e))  # ValueError: ConfigError, DataFormatError; TypeError: model contract
    _report(summary)


def resume(run_dir: Path = typer.Argument(..., help="run directory to continue")) -> None:
    """Continue a run from its latest checkpoint."""
    from rnnkit.tasks import run
    from rnnkit.training.trainer import NonFiniteLossError

    try:
        summary = run.resume(run_dir)
    except (FileNotFoundError, ValueError, TypeError, NonFiniteLossError) as e:
        _fail(_message(e))
    _report(summary)


def evaluate(
    run_dir: Path = typer.Argument(..., help="run directory"),
    split: str = typer.Option("test", help="train, val or test"),
    which: str = typer.Option("best", help="best or latest checkpoint"),
    data: Path | None = typer.Option(
        None, "--data", help="a labelled file in the run's format instead of a split"
    ),
) -> None:
    """Evaluate a run's checkpoint on a split or a labelled file; prints JSON metrics."""
    from rnnkit.tasks import run

    try:
        metrics = run.evaluate(run_dir, split, which, data)
    except (FileNotFoundError, ValueError) as e:  # DataFormatError is a ValueError
        _fail(_message(e))
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

    try:
        paths = run.diagnose(run_dir, out)
    except (FileNotFoundError, ValueError, TypeError) as e:
        _fail(_message(e))
    for p in paths:
        typer.echo(str(p))


def _report(summary: dict) -> None:
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
