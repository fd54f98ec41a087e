"""`rnnkit parity` and `rnnkit bench layers`: the layer parity report and benchmark."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

console = Console()
bench_app = typer.Typer(help="Speed benchmarks, as ratios against torch.nn.", no_args_is_help=True)


def parity(
    kind: list[str] = typer.Option(["rnn_tanh", "rnn_relu", "lstm", "gru"], help="Cell kinds."),
    backend: list[str] = typer.Option(["loop", "torch"], help="Backends to check."),
    dtype: list[str] = typer.Option(["float32", "float64"], help="float32 and/or float64."),
    show_all: bool = typer.Option(False, "--all", help="Print every case, not a summary."),
) -> None:
    """Compare every layer configuration with torch.nn (outputs, states, all gradients)."""
    import torch

    from rnnkit.parity import TOLERANCE, grid, report

    dtypes = [getattr(torch, d) for d in dtype]
    cases = list(grid(backends=tuple(backend), dtypes=tuple(dtypes), kinds=tuple(kind)))
    rows = []
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("parity with torch.nn", total=len(cases))
        for case in cases:
            rows += report([case])
            bar.advance(task)
    table = Table(title="rnnkit vs torch.nn: largest absolute difference (outputs, states, grads)")
    for col in ("cell", "backend", "dtype", "cases", "passed", "max |diff|", "tolerance"):
        table.add_column(col, justify="right" if col not in ("cell", "backend") else "left")
    groups = Counter((r["kind"], r["backend"], r["dtype"]) for r in rows)
    for kind, be, dt in groups:
        sel = [r for r in rows if (r["kind"], r["backend"], r["dtype"]) == (kind, be, dt)]
        worst = max(r["max_abs_diff"] for r in sel)
        table.add_row(
            kind,
            be,
            dt,
            str(len(sel)),
            str(sum(r["passed"] for r in sel)),
            f"{worst:.1e}",
            f"{TOLERANCE[getattr(torch, dt)]:.0e}",
        )
    console.print(table)
    if show_all:
        for r in rows:
            console.print(r)
    failed = [r for r in rows if not r["passed"]]
    console.print(f"{len(rows) - len(failed)}/{len(rows)} configurations within tolerance")
    if failed:
        raise typer.Exit(1)


@bench_app.command("layers")
def bench_layers(
    kind: list[str] = typer.Option(["lstm", "gru", "rnn"], help="Cell kinds."),
    quick: bool = typer.Option(False, help="One small configuration, 3 rounds (a smoke run)."),
    mode: list[str] = typer.Option(["train", "infer"], help="Modes: train, infer."),
    lengths: list[str] = typer.Option(
        ["no", "yes"], help="Batches: no (unpadded), yes (random lengths)."
    ),
    rounds: int = typer.Option(5, min=1, help="Timed rounds per implementation."),
    warmup: int = typer.Option(1, min=0, help="Untimed rounds first."),
    threads: int = typer.Option(0, min=0, help="torch threads (0: torch's default)."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the figures here."),
    markdown: Path | None = typer.Option(None, help="Write a Markdown table here."),
) -> None:
    """Tokens/s of rnnkit's backends and torch.nn, interleaved in one run, with ratios."""
    import torch

    from rnnkit.bench import layers, machine_line

    for name, given, allowed in (
        ("--mode", mode, ("train", "infer")),
        ("--lengths", lengths, ("no", "yes")),
    ):
        wrong = [v for v in given if v not in allowed]
        if wrong:
            raise typer.BadParameter(
                f"{wrong[0]!r}: expected one of {', '.join(allowed)}", param_hint=name
            )
    if threads:
        torch.set_num_threads(threads)
    console.print(machine_line())
    configs = [(32, 50, 64, 128)] if quick else layers.CONFIGS
    if quick:
        rounds = min(rounds, 3)
    table = Table(
        title=f"layer throughput, median of {rounds} interleaved rounds "
        f"({torch.get_num_threads()} threads); ratio = torch.nn time / ours"
    )
    cols = ("auto", "torch", "loop", "torch.nn again")
    for col in ("cell", "B,T,I,H", "lengths", "mode", "torch.nn tok/s", *cols):
        table.add_column(col, justify="right")
    total = len(kind) * len(configs) * len(mode) * len(lengths)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("benchmark", total=total)

        def progress(r):
            table.add_row(
                r.kind,
                f"{r.B},{r.T},{r.I},{r.H}",
                "yes" if r.lengths else "no",
                r.mode,
                f"{r.tokens_per_s['torch.nn']:,.0f}",
                *(f"{r.ratio[k]:.2f}" for k in ("auto", "torch", "loop")),
            )
            bar.advance(task)

        rows = layers.run(
            kinds=tuple(kind),
            configs=configs,
            modes=tuple(mode),
            lengths=tuple(v == "yes" for v in lengths),
            rounds=rounds,
            warmup=warmup,
            json_path=json_path,
            progress=progress,
        )
    console.print(table)
    if markdown is not None:
        markdown.write_text(layers.markdown(rows) + "\n")
    for impl in cols:
        ratios = [r.ratio[impl] for r in rows]
        console.print(
            f"{impl}: min ratio {min(ratios):.2f}, median {statistics.median(ratios):.2f}"
        )
