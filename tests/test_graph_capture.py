"""torch.compile(fullgraph=True), torch.export and torch.jit.trace on every layer kind and
backend, with and without lengths: the captured graph computes what eager mode computes
(outputs, final states and gradients), and nothing in it depends on the values it was
captured with (other lengths give the eager results too)."""

from __future__ import annotations

import warnings

import pytest
import torch

import rnnkit as rk

I, H = 4, 6
KINDS = ("LSTM", "GRU", "RNN")
BACKENDS = ("auto", "loop", "torch")


def _layer(kind, backend, **kw):
    torch.manual_seed(0)
    kw.setdefault("bidirectional", True)
    return getattr(rk, kind)(I, H, num_layers=2, batch_first=True, backend=backend, **kw)


class _Wrapped(torch.nn.Module):
    """The layer with lengths as a second input, outputs and final state flattened."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, lengths):
        out, state = self.layer(x, lengths=lengths)
        return (out, *(state if isinstance(state, tuple) else (state,)))


def _inputs(batch=3, steps=5):
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, steps, I, generator=g), torch.tensor([5, 3, 2][:batch])


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # oneDNN and tracer notes
        yield
    torch._dynamo.reset()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_lengths", [True, False])
def test_compile_fullgraph_equals_eager_in_training(kind, backend, with_lengths):
    model = _Wrapped(_layer(kind, backend))
    x, lengths = _inputs()
    lengths = lengths if with_lengths else None
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    got = compiled(x.requires_grad_(), lengths)
    grads = torch.autograd.grad(sum(t.pow(2).sum() for t in got), [x, *model.parameters()])
    want = model(x, lengths)
    want_grads = torch.autograd.grad(sum(t.pow(2).sum() for t in want), [x, *model.parameters()])
    for a, b in zip((*got, *grads), (*want, *want_grads), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # float32: sums in another order


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_export_and_jit_trace_equal_eager_for_other_lengths_too(kind, backend):
    model = _Wrapped(_layer(kind, backend)).eval()
    x, lengths = _inputs()
    exported = torch.export.export(model, (x, lengths)).module()
    traced = torch.jit.trace(model, (x, lengths))
    other = torch.tensor([2, 5, 4])  # unsorted, and not the lengths captured
    with torch.no_grad():
        for n in (lengths, other):
            want = model(x, n)
            for graph in (exported, traced):
                for a, b in zip(graph(x, n), want, strict=True):
                    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_inductor_compiles_a_padded_gru_for_inference():
    """The default backend (inductor) as well: one case, it compiles C++."""
    model = _Wrapped(_layer("GRU", "auto", bidirectional=False)).eval()
    x, lengths = _inputs()
    with torch.no_grad():
        got = torch.compile(model, fullgraph=True)(x, lengths)
        for a, b in zip(got, model(x, lengths), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_eager_mode_runs_the_kernels_and_compile_their_custom_ops(monkeypatch):
    """Eager calls run the kernels' autograd Functions (a padded batch in the packed layout);
    a compiled graph their custom ops."""
    import rnnkit.layers as layers
    from rnnkit.kernels import packed

    calls = []
    real, real_packed = layers.run_loop, packed.run_cell

    def spy(*args, **kw):
        calls.append(args[-1] if len(args) > 6 else kw.get("kernels", True))
        return real(*args, **kw)

    def spy_packed(*args, **kw):
        calls.append(True)
        return real_packed(*args, **kw)

    monkeypatch.setattr(layers, "run_loop", spy)
    monkeypatch.setattr(packed, "run_cell", spy_packed)
    layer = _layer("GRU", "loop")
    x, lengths = _inputs()
    layer(x, lengths=lengths)
    assert calls and all(c is True for c in calls)
    calls.clear()
    torch.compile(_Wrapped(layer), fullgraph=True, backend="eager")(x, lengths)
    assert calls and all(c == "ops" for c in calls)


# ---- the custom ops (rnnkit.kernels.library) ---------------------------------------------
needs_ext = pytest.mark.skipif(
    not __import__("rnnkit.kernels.ext", fromlist=["available"]).available(),
    reason="the compiled kernels are not built here",
)


def _op_args(kind, masked, dtype=torch.float64):
    g = torch.Generator().manual_seed(2)
    steps, batch, gates = 5, 3, {"lstm": 4, "gru": 3, "elman": 1}[kind]

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_()

    xp, h0, w = rand(steps, batch, gates * H), rand(batch, H), rand(gates * H, H)
    mask = None
    if masked:  # unsorted lengths 5, 2, 4
        mask = (torch.arange(steps).unsqueeze(1) < torch.tensor([5, 2, 4])).unsqueeze(2)
    if kind == "lstm":
        return (xp, h0, rand(batch, H), w, mask)
    if kind == "gru":
        return (xp, h0, w, rand(gates * H), mask)
    return (xp, h0, w, False, mask)


@needs_ext
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("kind", ["lstm", "gru", "elman"])
def test_custom_ops_pass_opcheck_and_equal_the_eager_kernels(kind, masked):
    """torch.library.opcheck: schema, fake (meta) implementation against the real one,
    registered autograd, AOT dispatch; then the op's outputs and gradients against the eager
    kernels (float64, 1e-10)."""
    from rnnkit.kernels import elman_sequence, gru_sequence, library, lstm_sequence

    args = _op_args(kind, masked)
    torch.library.opcheck(getattr(torch.ops.rnnkit, f"{kind}_train").default, args)
    plain = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
    torch.library.opcheck(getattr(torch.ops.rnnkit, f"{kind}_infer").default, plain)
    fn = {"lstm": library.lstm, "gru": library.gru, "elman": library.elman}[kind]
    eager = {"lstm": lstm_sequence, "gru": gru_sequence, "elman": elman_sequence}[kind]
    tensors = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    mask = args[-1]
    if kind == "elman":
        got = fn(*args[:3], "tanh", mask, True)
        want = eager(*args[:3], "tanh", mask)
    else:
        got = fn(*args, True)
        want = eager(*args)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    weights = [torch.randn_like(t) for t in got]
    g1 = torch.autograd.grad(got, tensors, weights)
    g2 = torch.autograd.grad(want, tensors, weights)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def _graph_ops(model, *inputs, training=True):
    """The rnnkit ops in the forward and backward graphs torch.compile makes of ``model``."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    seen = set()

    def record(gm, _):
        seen.update(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return make_boxed_func(gm.forward)

    backend = aot_autograd(fw_compiler=record, bw_compiler=record)
    out = torch.compile(model, fullgraph=True, backend=backend)(*inputs)
    if training:
        sum(t.sum() for t in out).backward()
    return {s.split(".")[1] for s in seen if s.startswith("rnnkit.")}


@needs_ext
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("with_lengths", [True, False])
def test_compiled_graphs_call_rnnkit_kernels_forward_and_backward(kind, with_lengths):
    op = {"LSTM": "lstm", "GRU": "gru", "RNN": "elman"}[kind]
    x, lengths = _inputs()
    lengths = lengths if with_lengths else None
    found = _graph_ops(_Wrapped(_layer(kind, "loop")), x.requires_grad_(), lengths)
    assert found == {f"{op}_train", f"{op}_grad"}
    with torch.no_grad():
        torch._dynamo.reset()
        found = _graph_ops(_Wrapped(_layer(kind, "auto")).eval(), x, lengths, training=False)
    # "auto" as in eager: torch's kernel for an unpadded LSTM at B > 4, rnnkit's otherwise
    assert found == (set() if kind == "LSTM" and not with_lengths else {f"{op}_infer"})


@needs_ext
def test_exported_graphs_hold_only_aten_operations():
    """torch.export (and through it the ONNX exporter) keeps the portable route."""
    x, lengths = _inputs()
    program = torch.export.export(_Wrapped(_layer("GRU", "loop")).eval(), (x, lengths))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert targets and not any("rnnkit" in t for t in targets)


@needs_ext
def test_a_compiled_layer_follows_new_sizes_with_the_custom_ops():
    """Other T and B after the first call: dynamo recompiles with symbolic sizes, which the
    fake implementations follow; results and gradients equal eager mode."""
    layer = _layer("GRU", "auto")
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    g = torch.Generator().manual_seed(3)
    for steps, batch in ((5, 3), (7, 3), (9, 5), (11, 2)):
        x = torch.randn(batch, steps, I, generator=g, requires_grad=True)
        lengths = torch.randint(1, steps + 1, (batch,), generator=g)
        lengths[0] = steps
        runs = []
        for module in (compiled, layer):
            out, _ = module(x, lengths=lengths)
            runs.append((out, *torch.autograd.grad(out.pow(2).sum(), [x, layer.weight_hh_l0])))
        for a, b in zip(*runs, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
