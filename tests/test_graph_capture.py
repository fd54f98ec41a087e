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


def test_eager_mode_still_runs_the_sequence_kernels(monkeypatch):
    """Graph capture takes its own route; eager calls keep the compiled kernels."""
    import rnnkit.layers as layers

    calls = []
    real = layers.run_loop

    def spy(*args, **kw):
        calls.append(args[-1] if len(args) > 6 else kw.get("kernels", True))
        return real(*args, **kw)

    monkeypatch.setattr(layers, "run_loop", spy)
    layer = _layer("GRU", "loop")
    x, lengths = _inputs()
    layer(x, lengths=lengths)
    assert calls and all(calls)
    calls.clear()
    torch.compile(_Wrapped(layer), fullgraph=True, backend="eager")(x, lengths)
    assert calls and not any(calls)
