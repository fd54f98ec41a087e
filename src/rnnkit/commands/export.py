"""`rnnkit export RUN --onnx FILE`: a run's model as ONNX, checked with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import typer

from rnnkit.commands.errors import BAD_INPUT, RUNTIME


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def export(
    run_dir: Path = typer.Argument(..., help="run directory of a trained model"),
    onnx: Path = typer.Option(..., "--onnx", help="the ONNX file to write"),
    which: str = typer.Option("best", help="best or latest checkpoint"),
    check: bool = typer.Option(
        True, "--check/--no-check", help="run the file with onnxruntime and compare (default)"
    ),
    tolerance: float = typer.Option(
        1e-5, "--tolerance", help="largest absolute difference from PyTorch accepted"
    ),
) -> None:
    """Export the run's model to ONNX and check it with onnxruntime against PyTorch.

    The model names its graphs (rnnkit.export): one is written to FILE; several (an
    encoder-decoder's encoder and decoder step) to FILE's stem + .NAME.onnx each. Batch and
    time are dynamic axes; the check runs another batch and time size than the export's and
    prints the largest absolute difference of each graph's outputs from PyTorch's.
    """
    from rnnkit.api import load
    from rnnkit.export import CHECK_SIZE, Exporting, OnnxExportError, to_onnx
    from rnnkit.models.contract import require

    if onnx.is_dir():
        _fail(f"--onnx {onnx}: is a folder; name the file to write (model.onnx)", BAD_INPUT)
    if not tolerance > 0:
        _fail(f"--tolerance must be > 0, got {tolerance}", BAD_INPUT)
    model = load(run_dir, which)  # a bad run or checkpoint: the top-level handler
    require(model, Exporting, str(run_dir), needs="ONNX graphs to export (onnx_graphs())")
    try:
        graphs = to_onnx(model, onnx, check=check, tolerance=tolerance)
    except OnnxExportError as e:
        _fail(f"{run_dir}: {e}", RUNTIME)
    batch, time = CHECK_SIZE
    for g in graphs:
        typer.echo(
            f"wrote {g.path} ({g.name}: {', '.join(g.input_names)} -> {', '.join(g.output_names)})"
        )
        if g.max_abs_diff is not None:
            typer.echo(
                f"  onnxruntime vs PyTorch at batch {batch}, time {time}: "
                f"max abs difference {g.max_abs_diff:.3g}"
            )
