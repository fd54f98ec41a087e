"""Cells: float64 gradcheck, parity with torch.nn's cells, the W[h, x] form, configs."""

import pytest
import torch
from torch import nn

import rnnkit as rk

B, I, H = 3, 4, 5

# name: (our cell class, torch.nn's cell class, extra arguments)
CELLS = {
    "elman_tanh": (rk.ElmanCell, nn.RNNCell, {}),
    "elman_relu": (rk.ElmanCell, nn.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (rk.LSTMCell, nn.LSTMCell, {}),
    "gru": (rk.GRUCell, nn.GRUCell, {}),
}


def _pair(name, bias=True):
    ours, theirs, kwargs = CELLS[name]
    return ours(I, H, bias=bias, **kwargs).double(), theirs(I, H, bias=bias, **kwargs).double()


def _state(cell, dtype=torch.float64, requires_grad=False):
    parts = [
        torch.randn(B, H, dtype=dtype, requires_grad=requires_grad) for _ in range(cell.state_size)
    ]
    return parts[0] if len(parts) == 1 else tuple(parts)


@pytest.mark.parametrize("name", CELLS)
def test_gradcheck_float64(name):
    torch.manual_seed(0)
    cell = _pair(name)[0]
    x = torch.randn(B, I, dtype=torch.float64, requires_grad=True)
    state = _state(cell, requires_grad=True)
    parts = state if isinstance(state, tuple) else (state,)

    def step(x, *parts):
        h, new = cell(x, parts if len(parts) > 1 else parts[0])
        return (h, *new) if isinstance(new, tuple) else (h, new)

    assert torch.autograd.gradcheck(step, (x, *parts))
    # parameters too: a function of the weights with the inputs fixed
    names = [n for n, _ in cell.named_parameters()]

    def of_weights(*weights):
        params = dict(zip(names, weights, strict=True))
        h, _ = torch.func.functional_call(cell, params, (x.detach(), state))
        return h

    weights = tuple(p.detach().clone().requires_grad_() for p in cell.parameters())
    assert torch.autograd.gradcheck(of_weights, weights)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("bias", [True, False])
def test_equals_torch_cell(name, bias):
    torch.manual_seed(1)
    cell, ref = _pair(name, bias)
    cell.load_state_dict(ref.state_dict())
    x = torch.randn(B, I, dtype=torch.float64)
    state = _state(cell)
    h, new = cell(x, state)
    expected = ref(x, state)
    expected_h = expected[0] if isinstance(expected, tuple) else expected
    torch.testing.assert_close(h, expected_h, rtol=0, atol=1e-12)
    if isinstance(new, tuple):
        torch.testing.assert_close(new[1], expected[1], rtol=0, atol=1e-12)
    # and back: torch.nn's cell accepts ours
    ref.load_state_dict(cell.state_dict())


def test_concatenated_form_matches_seeds():
    """h_t = tanh(W [h_{t-1}, x_t] + b) with W = [W_hh | W_ih], b = b_ih + b_hh."""
    torch.manual_seed(2)
    cell = rk.ElmanCell(I, H).double()
    x, h = torch.randn(B, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    W = cell.concatenated_weight()
    assert W.shape == (H, H + I)
    expected = torch.tanh(torch.cat([h, x], dim=1) @ W.T + cell.bias_ih + cell.bias_hh)
    torch.testing.assert_close(cell(x, h)[0], expected, rtol=0, atol=1e-12)


def test_gates_are_named_and_bounded():
    cell = rk.LSTMCell(I, H)
    gates = cell.gates(torch.randn(B, I), cell.init_state(B))
    assert list(gates) == ["i", "f", "g", "o"]
    for name in "ifo":
        assert ((gates[name] > 0) & (gates[name] < 1)).all()
    assert list(rk.GRUCell(I, H).gates(torch.randn(B, I), torch.zeros(B, H))) == ["r", "z", "n"]


@pytest.mark.parametrize("name", CELLS)
def test_config_round_trip_and_clone(name):
    cell = _pair(name)[0]
    again = type(cell)(**cell.get_config())
    assert again.get_config() == cell.get_config()
    wider = cell.clone(input_size=11)
    assert wider.input_size == 11 and wider.hidden_size == H
    assert not torch.equal(wider.weight_hh, cell.weight_hh)


@pytest.mark.parametrize(
    ("make", "arg"),
    [
        (lambda: rk.LSTMCell(0, 4), "input_size"),
        (lambda: rk.GRUCell(3, -1), "hidden_size"),
        (lambda: rk.ElmanCell(3, 4, nonlinearity="sigmoid"), "nonlinearity"),
    ],
)
def test_bad_arguments_name_the_argument(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()
