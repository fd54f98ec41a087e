"""The sequence kernels: gradcheck of the hand-written BPTT, and equality with the cells
stepped by autograd (outputs, states, every gradient), with and without masks."""

import pytest
import torch

from rnnkit.cells import ElmanCell, GRUCell, LSTMCell
from rnnkit.kernels import elman_sequence, gru_sequence, lstm_sequence
from rnnkit.kernels.common import Linear
from rnnkit.unroll import DirectionTrace, run_loop

T, B, I, H = 5, 3, 4, 3
LENGTHS = torch.tensor([3, 5, 1])
SORTED = torch.tensor([4, 3, 1])  # longest first: the products skip padded rows; none at t=4
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def mask_of(lengths):
    """(T, B, 1) mask and first_masked, as the layers build them; (None, 0) without."""
    if lengths is None:
        return None, 0
    return (torch.arange(T).unsqueeze(1) < lengths).unsqueeze(2), int(lengths.min())


def leaf(*shape, dtype=torch.float64):
    return torch.randn(*shape, dtype=dtype, requires_grad=True)


@pytest.mark.parametrize("lengths", [None, LENGTHS, SORTED])
def test_lstm_gradcheck(lengths):
    torch.manual_seed(0)
    mask, first = mask_of(lengths)
    args = (leaf(T, B, 4 * H), leaf(B, H), leaf(B, H), leaf(4 * H, H))
    assert torch.autograd.gradcheck(lambda *a: lstm_sequence(*a, mask, first), args)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lengths", [None, LENGTHS, SORTED])
def test_gru_gradcheck(lengths, bias):
    torch.manual_seed(0)
    mask, first = mask_of(lengths)
    args = (leaf(T, B, 3 * H), leaf(B, H), leaf(3 * H, H), leaf(3 * H) if bias else None)
    assert torch.autograd.gradcheck(lambda *a: gru_sequence(*a, mask, first), args)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("lengths", [None, LENGTHS, SORTED])
def test_elman_gradcheck(lengths, nonlinearity):
    torch.manual_seed(0)
    mask, first = mask_of(lengths)
    args = (leaf(T, B, H), leaf(B, H), leaf(H, H))
    assert torch.autograd.gradcheck(lambda *a: elman_sequence(*a, nonlinearity, mask, first), args)


CELLS = {
    "rnn_tanh": lambda bias: ElmanCell(I, H, bias, "tanh"),
    "rnn_relu": lambda bias: ElmanCell(I, H, bias, "relu"),
    "lstm": lambda bias: LSTMCell(I, H, bias),
    "gru": lambda bias: GRUCell(I, H, bias),
}


def state_of(cell, dtype):
    state = tuple(leaf(B, H, dtype=dtype) for _ in range(cell.state_size))
    return state if len(state) > 1 else state[0]


def run_and_grad(cell, x, state, mask, first, by_autograd):
    """Outputs, final state and the gradients of a random loss w.r.t. x, state, params."""
    trace = DirectionTrace() if by_autograd else None  # a trace forces per-step autograd
    out, final = run_loop(cell, x, state, mask, first, trace)
    final = final if isinstance(final, tuple) else (final,)
    gen = torch.Generator().manual_seed(1)
    parts = (out, *final)
    loss = sum((p * torch.randn(p.shape, generator=gen, dtype=p.dtype)).sum() for p in parts)
    inputs = [x, *(state if isinstance(state, tuple) else (state,)), *cell.parameters()]
    return [p.detach() for p in parts], torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("lengths", [None, LENGTHS, SORTED])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", list(CELLS))
def test_kernel_equals_cell_stepped_by_autograd(kind, bias, lengths, dtype):
    torch.manual_seed(0)
    cell = CELLS[kind](bias).to(dtype)
    mask, first = mask_of(lengths)
    x, state = leaf(T, B, I, dtype=dtype), state_of(cell, dtype)
    ours = run_and_grad(cell, x, state, mask, first, by_autograd=False)
    ref = run_and_grad(cell, x, state, mask, first, by_autograd=True)
    for a, b in zip([*ours[0], *ours[1]], [*ref[0], *ref[1]], strict=True):
        torch.testing.assert_close(a, b, rtol=TOL[dtype], atol=TOL[dtype])
    with torch.no_grad():  # the forward-only paths (SORTED: valid rows first at every step)
        out, last = run_loop(cell, x, state, mask, first)
    last = last if isinstance(last, tuple) else (last,)
    assert len(ref[0]) == 1 + len(last)  # outputs, h_T (and c_T)
    for a, b in zip([out, *last], ref[0], strict=True):
        torch.testing.assert_close(a, b, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_float32_without_onednn_equals_with_it(kind, monkeypatch):
    torch.manual_seed(0)
    cell = CELLS[kind](True)
    x, state = leaf(T, B, I, dtype=torch.float32), state_of(cell, torch.float32)
    mask, first = mask_of(LENGTHS)
    fast = run_and_grad(cell, x, state, mask, first, by_autograd=False)
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    assert Linear(cell.weight_hh, B).packed is None
    plain = run_and_grad(cell, x, state, mask, first, by_autograd=False)
    for a, b in zip([*fast[0], *fast[1]], [*plain[0], *plain[1]], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("grad", [True, False], ids=["autograd", "no_grad"])
@pytest.mark.parametrize("cell_type", [ElmanCell, LSTMCell, GRUCell])
def test_project_with_a_mask_projects_only_the_valid_positions(cell_type, grad, monkeypatch):
    """project(cell, x, mask): the valid positions as without the mask, zeros elsewhere, the
    same gradients; and the product sees only the valid rows."""
    from rnnkit.kernels import common

    torch.manual_seed(0)
    cell = cell_type(I, H).double()
    x = leaf(T, B, I)
    mask, _ = mask_of(LENGTHS)  # 9 of 15 valid
    seen = []
    real = cell.project_input
    monkeypatch.setattr(cell, "project_input", lambda z: seen.append(z.shape) or real(z))
    with torch.set_grad_enabled(grad):
        full = common.project(cell, x)
        part = common.project(cell, x, mask)
    assert part.shape == full.shape
    torch.testing.assert_close(part, full * mask, rtol=0, atol=1e-15)
    if grad:
        assert seen == [(T, B, I), (1, int(LENGTHS.sum()), I)]
        g = torch.randn_like(full) * mask
        grads = [torch.autograd.grad((y * g).sum(), (x, cell.weight_ih)) for y in (full, part)]
        for a, b in zip(*grads, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    monkeypatch.setattr(common, "PROJECT_VALID_MAX_SHARE", 0.5)  # 9/15 valid: all projected
    with torch.set_grad_enabled(grad):
        torch.testing.assert_close(common.project(cell, x, mask), full, rtol=0, atol=0)
