"""rnnkit.reference against torch autograd (to 1e-10) and central finite differences."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit import reference as ref

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
I, H, V = 3, 4, 5  # input, hidden and output sizes


def make_problem(cell, T, seed):
    """Random parameters, inputs (T, I), targets (T,) and initial state for ``cell``."""
    rng = np.random.default_rng(seed)
    params = ref.init_params(cell, I, H, V, rng)
    # Scale up the recurrent weights a little so gates saturate unevenly and bugs show.
    params["weight_hh"] *= 2.0
    xs = rng.standard_normal((T, I))
    targets = rng.integers(0, V, size=T)
    h0 = rng.standard_normal(H) * 0.5
    state0 = (h0, rng.standard_normal(H) * 0.5) if cell == "lstm" else h0
    return params, xs, targets, state0


def torch_cell(cell, params):
    """The torch.nn cell of ``cell``'s kind in float64, holding ``params``' weights."""
    if cell in ("rnn_tanh", "rnn_relu"):
        module = torch.nn.RNNCell(I, H, nonlinearity=cell[4:], dtype=torch.float64)
    elif cell == "lstm":
        module = torch.nn.LSTMCell(I, H, dtype=torch.float64)
    else:
        module = torch.nn.GRUCell(I, H, dtype=torch.float64)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    module.load_state_dict({name: torch.from_numpy(params[name]) for name in names})
    return module


def torch_loss_and_grads(cell, params, xs, targets, state0):
    """The same loss built from torch.nn cells, differentiated by autograd."""
    module = torch_cell(cell, params)
    W_y = torch.tensor(params["W_y"], requires_grad=True)
    b_y = torch.tensor(params["b_y"], requires_grad=True)
    x = torch.tensor(xs, requires_grad=True)
    h0 = torch.tensor(state0[0] if cell == "lstm" else state0, requires_grad=True)
    c0 = torch.tensor(state0[1], requires_grad=True) if cell == "lstm" else None
    state = (h0, c0) if cell == "lstm" else h0
    logits = []
    for t in range(len(xs)):
        state = module(x[t], state)
        h = state[0] if cell == "lstm" else state
        logits.append(h @ W_y.T + b_y)
    loss = F.cross_entropy(torch.stack(logits), torch.from_numpy(targets), reduction="sum")
    loss.backward()
    grads = {name: param.grad.numpy() for name, param in module.named_parameters()}
    grads.update(W_y=W_y.grad.numpy(), b_y=b_y.grad.numpy(), xs=x.grad.numpy(), h0=h0.grad.numpy())
    if cell == "lstm":
        grads["c0"] = c0.grad.numpy()
    return loss.item(), grads


@pytest.mark.parametrize("T", [1, 7])
@pytest.mark.parametrize("cell", CELLS)
def test_loss_and_grads_equal_torch_autograd(cell, T):
    params, xs, targets, state0 = make_problem(cell, T, seed=T)
    loss, grads = ref.loss_and_grads(cell, params, xs, targets, state0)
    loss_t, grads_t = torch_loss_and_grads(cell, params, xs, targets, state0)
    expected = {*params, "xs", "h0"} | ({"c0"} if cell == "lstm" else set())
    assert set(grads) == set(grads_t) == expected
    assert abs(loss - loss_t) < 1e-10
    for name in expected:
        assert grads[name].shape == grads_t[name].shape, name
        np.testing.assert_allclose(grads[name], grads_t[name], rtol=1e-10, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_equals_torch_nn_layer(cell):
    params, xs, _, state0 = make_problem(cell, 6, seed=3)
    hs, state = ref.forward(cell, params, xs, state0)
    layer_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(cell, torch.nn.RNN)
    kwargs = {"nonlinearity": cell[4:]} if cell.startswith("rnn") else {}
    layer = layer_cls(I, H, **kwargs, dtype=torch.float64)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    layer.load_state_dict({f"{name}_l0": torch.from_numpy(params[name]) for name in names})
    # (H,) -> (1, H): one layer, unbatched
    state0_t = tuple(torch.from_numpy(s)[None] for s in (state0 if cell == "lstm" else [state0]))
    state0_t = state0_t if cell == "lstm" else state0_t[0]
    with torch.no_grad():
        out, state_t = layer(torch.from_numpy(xs), state0_t)
    assert hs.shape == (6, H)
    np.testing.assert_allclose(hs, out.numpy(), rtol=1e-12, atol=1e-12)
    if cell == "lstm":
        np.testing.assert_allclose(state[0], state_t[0][0].numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(state[1], state_t[1][0].numpy(), rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_allclose(state, state_t[0].numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_grads_equal_central_finite_differences(cell):
    params, xs, targets, state0 = make_problem(cell, 5, seed=11)
    h0, c0 = state0 if cell == "lstm" else (state0, None)
    _, grads = ref.loss_and_grads(cell, params, xs, targets, state0)
    # Everything the loss depends on, by the name its gradient carries (arrays perturbed in place).
    inputs = {**params, "xs": xs, "h0": h0} | ({"c0": c0} if cell == "lstm" else {})
    state = (h0, c0) if cell == "lstm" else h0
    rng = np.random.default_rng(0)
    eps = 1e-5
    for name, array in inputs.items():
        for _ in range(3):
            idx = tuple(int(rng.integers(n)) for n in array.shape)
            old = array[idx]
            array[idx] = old + eps
            plus, _ = ref.loss_and_grads(cell, params, xs, targets, state)
            array[idx] = old - eps
            minus, _ = ref.loss_and_grads(cell, params, xs, targets, state)
            array[idx] = old
            numeric = (plus - minus) / (2 * eps)
            analytic = grads[name][idx]
            rel = abs(numeric - analytic) / max(abs(numeric) + abs(analytic), 1e-3)
            assert rel < 1e-6, (name, idx, numeric, analytic)


def test_unknown_cell_and_bad_input_raise_value_error():
    params, xs, targets, h0 = make_problem("gru", 3, seed=0)
    with pytest.raises(ValueError, match=r"cell must be one of .* got 'GRU'"):
        ref.loss_and_grads("GRU", params, xs, targets, h0)
    with pytest.raises(ValueError, match=r"xs must have shape \(T, 3\), got \(3, 4\)"):
        ref.forward("gru", params, np.zeros((3, 4)), h0)
