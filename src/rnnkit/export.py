"""ONNX export of rnnkit layers and trained models, checked against onnxruntime.

A model names the graphs that make sense for it with ``onnx_graphs()`` (the protocol
:class:`Exporting`): a classifier its logits, a tagger its emission scores (the CRF's Viterbi
decoding stays in PyTorch: ``model.crf.decode(emissions, mask)``), a language model one
``step`` (a token and the state in, the logits and the next state out), an encoder-decoder
its encoder and one decoder step. Each :class:`OnnxGraph` says what it computes, its input
and output names, its dynamic axes and how to make inputs of any batch and time size, so
this module names no model::

    import rnnkit
    from rnnkit.export import to_onnx

    for g in to_onnx("runs/sentiment", "sentiment.onnx"):  # a model, a run or an rk layer
        print(g.path, g.max_abs_diff)  # onnxruntime vs PyTorch, batch 3 and time 7

The exporter is torch's TorchScript-based one (``torch.onnx.export(..., dynamo=False)``,
still in torch 2.13, deprecated there but offline and without onnxscript): it writes torch's
fused recurrent kernels as ONNX's ``LSTM``, ``GRU`` and ``RNN`` operators with a dynamic time
axis and turns ``lengths`` into their ``sequence_lens``. The torch.export-based exporter (the
default since torch 2.9; it needs onnxscript) fixed the time axis of these layers at the
example's length and could not trace ``lengths`` (data-dependent) when tried on torch 2.13
with onnxscript 0.7.2.

During the export every rnnkit layer runs ``backend="torch"`` (torch's fused kernels, equal
to the other backends; the compiled loop kernels have no ONNX form) in eval mode; the check
compares onnxruntime with the model run as it was given (its own backend), on inputs of
another batch and time size than the export's, so it also tests the dynamic axes.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.layers import Recurrent
from rnnkit.unroll import fused_kind

__all__ = [
    "CHECK_SIZE",
    "EXPORT_SIZE",
    "ExportedGraph",
    "Exporting",
    "OnnxExportError",
    "OnnxGraph",
    "example_lengths",
    "layer_graph",
    "max_abs_diff",
    "onnx_graphs",
    "onnx_ready",
    "onnx_session",
    "run_onnx",
    "to_onnx",
]

OPSET = 17  # ONNX opset of the written files (LSTM/GRU/RNN are opset 14 operators)
EXPORT_SIZE = (2, 5)  # (batch, time) of the example traced into the graph
CHECK_SIZE = (3, 7)  # (batch, time) of the check: other sizes than the export's
# C++ warnings of the TorchScript exporter about a packed sequence, which it handles
_HARMLESS = re.compile(r"shape inference of prim::(PackPadded|PadPacked) type is missing")


class OnnxExportError(RuntimeError):
    """An export that failed: onnxruntime missing, an operator ONNX lacks, or a graph whose
    results differ from PyTorch's; the message says which in one sentence."""


@dataclass(frozen=True)
class OnnxGraph:
    """One graph to export: ``forward(*inputs(batch, time))`` -> a tensor or a tuple.

    ``module`` owns the parameters ``forward`` reads (they become the graph's initializers
    under their names); ``dynamic_axes`` maps input and output names to ``{axis: label}``.
    """

    name: str  # the graph's name, and the file's suffix when a model has several
    module: nn.Module
    forward: Callable[..., Tensor | tuple[Tensor, ...]]
    inputs: Callable[[int, int], tuple[Tensor, ...]]  # example inputs for (batch, time)
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]


@runtime_checkable
class Exporting(Protocol):
    """A model that names its ONNX graphs."""

    def onnx_graphs(self) -> list[OnnxGraph]: ...


@dataclass(frozen=True)
class ExportedGraph:
    """What :func:`to_onnx` wrote: a graph's file and its largest difference from PyTorch."""

    name: str
    path: Path
    input_names: tuple[str, ...]  # as onnxruntime reads them (unused inputs are dropped)
    output_names: tuple[str, ...]
    max_abs_diff: float | None  # None when not checked


def example_lengths(batch: int, steps: int) -> Tensor:
    """Lengths (B,) from ``steps`` down to 1 spread over the batch, out of order ([1, 5] for
    (2, 5), [1, 7, 4] for (3, 7)): a traced example needs lengths that differ and one below
    the time size, or the layer takes its path for equal lengths into the graph."""
    lengths = torch.linspace(steps, 1, batch).round().long() if batch > 1 else torch.tensor([steps])
    return lengths.roll(1)


# -- the export context ------------------------------------------------------------------------
def _refuse(layer: Recurrent, args: Any) -> None:
    cell = type(layer.cells[0]).__name__
    if layer.proj_size:
        why = "proj_size > 0: ONNX's LSTM operator has no projection (as for torch.nn.LSTM)"
    else:
        why = f"it runs {cell}, which ONNX has no recurrent operator for (only step() exports)"
    raise OnnxExportError(f"cannot export the forward of {type(layer).__name__}: {why}")


@contextlib.contextmanager
def onnx_ready(module: nn.Module) -> Iterator[nn.Module]:
    """Within: ``module`` in eval mode, and every rnnkit layer in it on ``backend="torch"``
    (its forward becomes an ONNX ``LSTM``, ``GRU`` or ``RNN``); a layer ONNX has no operator
    for (a regularised or user cell, a projected LSTM) refuses its forward with one sentence
    (its ``step``, plain tensor operations, still exports). Everything is restored after."""
    layers = [m for m in module.modules() if isinstance(m, Recurrent)]
    saved = [(m, m.backend) for m in layers]
    hooks = []
    was_training = module.training
    module.eval()
    try:
        for m in layers:
            if fused_kind(list(m.cells)) is None or m.proj_size:
                hooks.append(m.register_forward_pre_hook(_refuse))
            else:
                m.backend = "torch"
        yield module
    finally:
        for hook in hooks:
            hook.remove()
        for m, backend in saved:
            m.backend = backend
        module.train(was_training)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide what the TorchScript exporter says about code this module handles: its
    deprecation notice, tracer warnings about shape checks, and C++ warnings about packed
    sequences (written to file descriptor 2; other C++ lines pass through)."""
    with warnings.catch_warnings(), tempfile.TemporaryFile("w+b") as err:
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # the exporter's own
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # the check runs another batch size than the export's: that case is tested
        warnings.filterwarnings("ignore", message=r".*can cause an error when running the ONNX")
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            err.seek(0)
            kept = [
                line
                for line in err.read().decode("utf-8", "replace").splitlines(keepends=True)
                if not _HARMLESS.search(line)
            ]
            if kept:
                os.write(2, "".join(kept).encode())


class _Traced(nn.Module):
    """``graph.forward`` as a module that owns ``graph.module`` (so its parameters keep their
    names in the file), returning a tuple."""

    def __init__(self, graph: OnnxGraph):
        super().__init__()
        self.owner = graph.module
        self.graph = graph

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        out = self.graph.forward(*args)
        return out if isinstance(out, tuple) else (out,)


# -- graphs ------------------------------------------------------------------------------------
def layer_graph(layer: Recurrent, lengths: bool = True, state: bool = False) -> OnnxGraph:
    """An rnnkit layer's forward as a graph: ``x`` (and ``lengths`` (B,), and the initial
    state ``h0`` (and ``c0``) (L*D, B, H)) -> ``output`` and ``h_n`` (and ``c_n``)."""
    sizes = layer.cells[0].state_sizes  # (H,), (H, H) for the LSTM
    depth = layer.num_layers * layer.num_directions
    dtype = layer.cells[0].weight_ih.dtype if hasattr(layer.cells[0], "weight_ih") else None
    state_in = ("h0", "c0")[: len(sizes)] if state else ()
    state_out = ("h_n", "c_n")[: len(sizes)]

    def inputs(batch: int, steps: int) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(1000 * batch + steps)
        shape = (batch, steps) if layer.batch_first else (steps, batch)
        out = [torch.randn(*shape, layer.input_size, generator=g, dtype=dtype)]
        if lengths:
            out.append(example_lengths(batch, steps))
        out += [
            torch.randn(depth, batch, n, generator=g, dtype=dtype) for n in sizes[: len(state_in)]
        ]
        return tuple(out)

    def forward(x: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        n = rest[0] if lengths else None
        parts = rest[1:] if lengths else rest
        h0 = (parts if len(parts) > 1 else parts[0]) if parts else None
        out, final = layer(x, h0, lengths=n)
        return (out, *(final if isinstance(final, tuple) else (final,)))

    time, batch = (1, 0) if layer.batch_first else (0, 1)
    axes = {"x": {batch: "batch", time: "time"}, "output": {batch: "batch", time: "time"}}
    axes.update({name: {1: "batch"} for name in (*state_in, *state_out)})
    if lengths:
        axes["lengths"] = {0: "batch"}
    names = ("x", *(("lengths",) if lengths else ()), *state_in)
    outputs = ("output", *state_out)
    return OnnxGraph(type(layer).__name__.lower(), layer, forward, inputs, names, outputs, axes)


def onnx_graphs(model: Any) -> list[OnnxGraph]:
    """The graphs of a model with ``onnx_graphs()``, of an rnnkit layer (with lengths), or
    the graph or graphs given."""
    if isinstance(model, OnnxGraph):
        return [model]
    if isinstance(model, list | tuple) and all(isinstance(g, OnnxGraph) for g in model):
        return list(model)
    if isinstance(model, Exporting):
        return model.onnx_graphs()
    if isinstance(model, Recurrent):
        return [layer_graph(model)]
    from rnnkit.models.contract import ModelContractError, describe

    raise ModelContractError(
        f"the model is {describe(model)}: it names no ONNX graphs to export (onnx_graphs())"
    )


# -- export and check --------------------------------------------------------------------------
def _require(name: str, why: str) -> Any:
    """Import the package ``name`` or say in one sentence which extra installs it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise OnnxExportError(
            f"{name} is not installed: pip install 'rnnkit[onnx]' (or {name}) to {why}"
        ) from None


def _onnxruntime() -> Any:
    return _require("onnxruntime", "check the export (or pass check=False, --no-check)")


def max_abs_diff(got: Sequence[np.ndarray], want: Sequence[Tensor]) -> float:
    """The largest |a - b| over paired outputs (equal infinities count 0; a NaN, inf)."""
    worst = 0.0
    for a, b in zip(got, want, strict=True):
        b = b.detach().cpu().numpy()
        if a.shape != b.shape:
            return float("inf")
        a, b = a.astype(np.float64), b.astype(np.float64)
        with np.errstate(invalid="ignore"):  # inf - inf where both are -inf
            diff = np.where(a == b, 0.0, np.abs(a - b))  # equal infinities: never-emitted tokens
        worst = max(worst, float(np.where(np.isnan(diff), np.inf, diff).max(initial=0.0)))
    return worst


def onnx_session(path: str | Path, threads: int = 0) -> Any:
    """An onnxruntime CPU session of ``path`` on ``threads`` threads (0: torch's count)."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(path: str | Path, inputs: dict[str, Tensor], threads: int = 0) -> list[np.ndarray]:
    """Run an exported file with onnxruntime on the named inputs it reads (those the graph
    does not use are left out); ``threads`` 0: torch's thread count."""
    session = onnx_session(path, threads)
    names = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v.numpy() for k, v in inputs.items() if k in names})


def _paths(path: Path, graphs: list[OnnxGraph]) -> list[Path]:
    """FILE for one graph; FILE's stem + .NAME + suffix for each of several."""
    if len(graphs) == 1:
        return [path]
    return [path.with_name(f"{path.stem}.{g.name}{path.suffix or '.onnx'}") for g in graphs]


def _export_one(graph: OnnxGraph, path: Path, opset: int) -> None:
    example = graph.inputs(*EXPORT_SIZE)
    try:
        with _quiet_exporter():
            torch.onnx.export(
                _Traced(graph),
                example,
                str(path),
                dynamo=False,
                input_names=list(graph.input_names),
                output_names=list(graph.output_names),
                dynamic_axes=graph.dynamic_axes,
                opset_version=opset,
            )
    except OnnxExportError:
        raise
    except torch.onnx.OnnxExporterError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxExportError(f"graph {graph.name!r}: torch.onnx.export failed: {first}") from e


def to_onnx(
    model: Any,
    path: str | Path,
    *,
    check: bool = True,
    tolerance: float = 1e-5,
    opset: int = OPSET,
) -> list[ExportedGraph]:
    """Export ``model`` (a model with ``onnx_graphs()``, as :func:`rnnkit.load` returns one;
    an rnnkit layer; or :class:`OnnxGraph` objects) to ONNX at ``path`` (one graph) or at
    ``path``'s stem + ``.NAME.onnx`` (each of several).

    With ``check``, run every file with onnxruntime on inputs of batch and time
    :data:`CHECK_SIZE` (another size than the export's :data:`EXPORT_SIZE`) and compare it
    with PyTorch: :class:`OnnxExportError` when the largest absolute difference exceeds
    ``tolerance`` or onnxruntime is missing. The model must be on the CPU.
    """
    if isinstance(model, str | Path):  # loading a run belongs to the layers above this one
        raise TypeError(
            f"model: expected a model, got the path {str(model)!r}; pass "
            f"rnnkit.load({str(model)!r}) (or run `rnnkit export RUN --onnx FILE`)"
        )
    _require("onnx", "write ONNX files (torch.onnx.export needs it)")
    if check:
        _onnxruntime()
    graphs = onnx_graphs(model)
    for graph in graphs:
        if any(p.device.type != "cpu" for p in graph.module.parameters()):
            raise OnnxExportError("the model is not on the CPU: export it from model.cpu()")
        dtypes = {p.dtype for p in graph.module.parameters() if p.is_floating_point()}
        if dtypes - {torch.float32}:
            raise OnnxExportError(
                f"the model's parameters are {sorted(str(d) for d in dtypes)}: the exported "
                "recurrent operators run in float32 (onnxruntime has no float64 LSTM or GRU); "
                "export model.float()"
            )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = []
    for graph, file in zip(graphs, _paths(path, graphs), strict=True):
        with onnx_ready(graph.module):
            _export_one(graph, file, opset)
        diff, names = None, graph.input_names
        if check:
            names, diff = _check(graph, file)
            if not diff <= tolerance:
                raise OnnxExportError(
                    f"{file}: onnxruntime differs from PyTorch by {diff:.3g} (tolerance "
                    f"{tolerance:g}) on graph {graph.name!r} at batch {CHECK_SIZE[0]}, "
                    f"time {CHECK_SIZE[1]}"
                )
        done.append(ExportedGraph(graph.name, file, names, graph.output_names, diff))
    return done


def _check(graph: OnnxGraph, file: Path) -> tuple[tuple[str, ...], float]:
    """The inputs onnxruntime reads from ``file``, and the largest difference of its outputs
    from PyTorch's (the model in eval mode on its own backend) at :data:`CHECK_SIZE`."""
    model = graph.module
    was_training = model.training
    model.eval()
    try:
        inputs = graph.inputs(*CHECK_SIZE)
        with torch.no_grad():
            want = _Traced(graph)(*inputs)
    finally:
        model.train(was_training)
    session = onnx_session(file)
    names = tuple(i.name for i in session.get_inputs())
    feeds = dict(zip(graph.input_names, inputs, strict=True))
    got = session.run(None, {k: feeds[k].numpy() for k in names})
    return names, max_abs_diff(got, want)
