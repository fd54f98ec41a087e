"""Layers equal torch.nn: outputs, final states and every gradient, for both backends,
over cell x layers x direction x batch_first x lengths x bias, in float32 and float64."""

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit as rk

B, T, I, H = 3, 5, 4, 3
LENGTHS = torch.tensor([3, 5, 1])  # unsorted, one full, one of a single step
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}

KINDS = {
    "rnn_tanh": (rk.RNN, nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (rk.RNN, nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (rk.LSTM, nn.LSTM, {}),
    "gru": (rk.GRU, nn.GRU, {}),
}


def make_pair(kind, backend, dtype, **kwargs):
    """Our layer and torch.nn's with the same weights."""
    ours, theirs, extra = KINDS[kind]
    ref = theirs(I, H, **extra, **kwargs).to(dtype)
    layer = ours(I, H, **extra, **kwargs, backend=backend).to(dtype)
    layer.load_state_dict(ref.state_dict())
    return layer, ref


def run_torch(ref, x, state, lengths, batch_first):
    if lengths is None:
        return ref(x, state)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out, state = ref(packed, state)
    out, _ = pad_packed_sequence(
        out, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0]
    )
    return out, state


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def loss_of(out, state, weights):
    """A loss touching every output and every final state with random weights."""
    parts = (out, *as_tuple(state))
    return sum((p * w).sum() for p, w in zip(parts, weights, strict=True))


def grads_of(module, x, state0, loss):
    params = dict(module.named_parameters())
    keys = [k for k in module.state_dict()]  # torch.nn key order, same for both modules
    named = {k: v for k, v in zip(keys, module.state_dict(keep_vars=True).values(), strict=True)}
    assert len(named) == len(params)
    inputs = [x, *as_tuple(state0), *named.values()]
    grads = torch.autograd.grad(loss, inputs)
    return dict(
        zip(["x", *(f"state{i}" for i in range(len(as_tuple(state0)))), *named], grads, strict=True)
    )


GRID = list(
    itertools.product(KINDS, (1, 2, 3), (False, True), (False, True), (False, True), (True, False))
)


@pytest.mark.parametrize("backend", ["loop", "torch"])
@pytest.mark.parametrize(("kind", "layers", "bidir", "batch_first", "with_lengths", "bias"), GRID)
def test_equals_torch_nn(kind, layers, bidir, batch_first, with_lengths, bias, backend):
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(0)
        layer, ref = make_pair(
            kind,
            backend,
            dtype,
            num_layers=layers,
            bidirectional=bidir,
            batch_first=batch_first,
            bias=bias,
        )
        shape = (B, T, I) if batch_first else (T, B, I)
        x = torch.randn(*shape, dtype=dtype, requires_grad=True)
        D = 2 if bidir else 1
        n_state = 2 if kind == "lstm" else 1
        state0 = tuple(
            torch.randn(layers * D, B, H, dtype=dtype, requires_grad=True) for _ in range(n_state)
        )
        state0 = state0 if n_state > 1 else state0[0]
        lengths = LENGTHS if with_lengths else None

        out, state = layer(x, state0, lengths=lengths)
        ref_out, ref_state = run_torch(ref, x, state0, lengths, batch_first)
        tol = TOL[dtype]
        torch.testing.assert_close(out, ref_out, rtol=tol, atol=tol)
        for a, b in zip(as_tuple(state), as_tuple(ref_state), strict=True):
            torch.testing.assert_close(a, b, rtol=tol, atol=tol)

        weights = [torch.randn_like(p) for p in (out, *as_tuple(state))]
        ours = grads_of(layer, x, state0, loss_of(out, state, weights))
        theirs = grads_of(ref, x, state0, loss_of(ref_out, ref_state, weights))
        assert ours.keys() == theirs.keys()
        for name in ours:
            torch.testing.assert_close(ours[name], theirs[name], rtol=tol, atol=tol, msg=name)
