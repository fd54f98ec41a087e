"""What the packed-layout tests share (tests/test_packed_inference.py,
tests/test_packed_training.py): small layers of every built-in cell, a batch's unsorted
lengths, the masked kernels as the reference, and a call counter."""

from __future__ import annotations

import torch

import rnnkit as rk

I, H = 5, 6
LENGTHS = torch.tensor([3, 9, 1, 9, 5, 2, 7])  # unsorted, ties, one of length 1
KINDS = {
    "tanh": lambda **kw: rk.RNN(I, H, backend="loop", **kw),
    "relu": lambda **kw: rk.RNN(I, H, nonlinearity="relu", backend="loop", **kw),
    "lstm": lambda **kw: rk.LSTM(I, H, backend="loop", **kw),
    "gru": lambda **kw: rk.GRU(I, H, backend="loop", **kw),
}


def flat(state):
    """A state as a tuple of tensors."""
    return state if isinstance(state, tuple) else (state,)


def masked(layer, *args, **kwargs):
    """The layer's result through the masked kernels (the path before the packed one)."""
    layer._runs_packed = lambda x: False
    try:
        return layer(*args, **kwargs)
    finally:
        del layer._runs_packed


def count_calls(monkeypatch, module, name: str) -> list[int]:
    """Counts the calls of ``module.name`` (patched for the test); the count is [0]."""
    calls = [0]
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls
