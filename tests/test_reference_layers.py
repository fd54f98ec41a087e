"""The hand-written BPTT of rnnkit.reference equals autograd through rnnkit's layers."""

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit as rk
from rnnkit import reference

T, I, H, V = 7, 3, 4, 5
LAYERS = {
    "rnn_tanh": lambda backend: rk.RNN(I, H, backend=backend),
    "rnn_relu": lambda backend: rk.RNN(I, H, nonlinearity="relu", backend=backend),
    "lstm": lambda backend: rk.LSTM(I, H, backend=backend),
    "gru": lambda backend: rk.GRU(I, H, backend=backend),
}


@pytest.mark.parametrize("backend", ["loop", "torch"])
@pytest.mark.parametrize("cell", LAYERS)
def test_layer_gradients_equal_hand_written_bptt(cell, backend):
    rng = np.random.default_rng(0)
    params = reference.init_params(cell, I, H, V, rng)
    xs, targets = rng.standard_normal((T, I)), rng.integers(0, V, T)
    state0 = rng.standard_normal(H) if cell != "lstm" else tuple(rng.standard_normal((2, H)))
    loss, grads = reference.loss_and_grads(cell, params, xs, targets, state0)

    layer = LAYERS[cell](backend).double()
    layer.load_state_dict(
        {
            f"{k}_l0": torch.from_numpy(params[k])
            for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        }
    )
    head = nn.Linear(H, V).double()
    head.weight.data, head.bias.data = (
        torch.from_numpy(params["W_y"]),
        torch.from_numpy(params["b_y"]),
    )
    x = torch.from_numpy(xs).requires_grad_()
    parts = state0 if isinstance(state0, tuple) else (state0,)
    s0 = [torch.from_numpy(np.asarray(s)).reshape(1, H).requires_grad_() for s in parts]
    out, _ = layer(x, tuple(s0) if len(s0) > 1 else s0[0])  # unbatched: (T, H)
    torch_loss = nn.functional.cross_entropy(head(out), torch.from_numpy(targets), reduction="sum")
    torch_loss.backward()

    assert torch_loss.item() == pytest.approx(loss, rel=1e-12)
    got = {
        f"{k}": getattr(layer, f"{k}_l0").grad  # torch.nn's name on the layer
        for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    }
    got.update(W_y=head.weight.grad, b_y=head.bias.grad, xs=x.grad, h0=s0[0].grad[0])
    if cell == "lstm":
        got["c0"] = s0[1].grad[0]
    assert got.keys() == grads.keys()
    for name, value in got.items():
        np.testing.assert_allclose(value.numpy(), grads[name], rtol=1e-10, atol=1e-10, err_msg=name)
