"""minGRU and minLSTM: the scan (both methods) equals the cell stepped one token at a time and
a NumPy textbook loop, in float64 and (within a tolerance) float32 over thousands of steps;
float64 gradcheck; padded batches equal rows alone, through bidirectional stacks; generation
by ``step`` equals ``forward``; the registry, parameter names and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import _training_helpers  # noqa: F401  (one torch thread)
from rnnkit.cells_min import (
    MinGRU,
    MinGRUCell,
    MinLSTM,
    MinLSTMCell,
    chunked_scan,
    heinsen_scan,
)
from rnnkit.errors import DTypeError, ShapeError
from rnnkit.models import CELLS, LanguageModel, LanguageModelConfig, RecurrentModelConfig
from rnnkit.models.encoder import build_encoder

F64 = torch.float64
B, I, H = 2, 3, 4
CELL = {"mingru": MinGRUCell, "minlstm": MinLSTMCell}
LAYER = {"mingru": MinGRU, "minlstm": MinLSTM}
KINDS = [(kind, method) for kind in CELL for method in ("chunked", "log")]


# ---- the textbook: the paper's equations in float64 NumPy, one step at a time ----------------
def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _g(v):
    return np.where(v >= 0, v + 0.5, _sigmoid(v))


def textbook(kind: str, weight, bias, x, h0):
    """h (T, B, H) of the minGRU or minLSTM over x (T, B, I) from h0 (B, H), step by step."""
    h, out = h0, []
    for x_t in x:
        k = x_t @ weight.T + bias  # (B, G*H)
        if kind == "mingru":
            k_z, k_h = np.split(k, 2, axis=1)
            z, h_tilde = _sigmoid(k_z), _g(k_h)
            h = (1 - z) * h + z * h_tilde  # h_t = (1 - z_t) h_{t-1} + z_t h~_t
        else:
            k_f, k_i, k_h = np.split(k, 3, axis=1)
            f, i, h_tilde = _sigmoid(k_f), _sigmoid(k_i), _g(k_h)
            h = f / (f + i) * h + i / (f + i) * h_tilde  # h_t = f'_t h_{t-1} + i'_t h~_t
        out.append(h)
    return np.stack(out)


def _numpy(cell):
    bias = cell.bias_ih.detach().numpy()
    return cell.weight_ih.detach().numpy(), bias


def _stepped(cell, x, h0):
    """The cell's own one-step forward over x (T, B, I): h (T, B, H)."""
    h, out = h0, []
    for x_t in x.unbind(0):
        y, h = cell(x_t, h)
        out.append(y)
    return torch.stack(out)


@pytest.mark.parametrize("kind", list(CELL))
@pytest.mark.parametrize("steps", [1, 2, 5, 48, 49, 50, 3000])
def test_scan_equals_step_equals_textbook_in_float64(kind, steps):
    torch.manual_seed(steps)
    cell = CELL[kind](I, H, dtype=F64)
    x = 2 * torch.randn(steps, B, I, dtype=F64)  # pre-activations of both signs, some large
    h0 = torch.randn(B, H, dtype=F64)  # a carried state of either sign
    want = textbook(kind, *_numpy(cell), x.numpy(), h0.numpy())
    stepped = _stepped(cell, x, h0)
    np.testing.assert_allclose(stepped.detach().numpy(), want, rtol=0, atol=1e-13)
    for method in ("chunked", "log"):
        cell.scan_method = method
        out, last = cell.scan(x, h0)
        np.testing.assert_allclose(out.detach().numpy(), want, rtol=0, atol=1e-11)
        torch.testing.assert_close(last, out[-1], rtol=0, atol=0)


@pytest.mark.parametrize("kind", list(CELL))
def test_scan_in_float32_stays_close_over_thousands_of_steps(kind):
    torch.manual_seed(1)
    cell64 = CELL[kind](8, 16, dtype=F64)
    x = torch.randn(4000, B, 8, dtype=F64)
    h0 = torch.rand(B, 16, dtype=F64)
    want = textbook(kind, *_numpy(cell64), x.numpy(), h0.numpy())
    errors = {}
    for method in ("chunked", "log"):
        cell = CELL[kind](8, 16, scan_method=method)
        cell.load_state_dict({k: v.float() for k, v in cell64.state_dict().items()})
        with torch.no_grad():
            out, _ = cell.scan(x.float(), h0.float())
        errors[method] = float(np.abs(out.double().numpy() - want).max() / np.abs(want).max())
    # measured 1.6e-7 and 1.8e-7 (chunked), 2.3e-6 and 2.7e-6 (log scan, chunks of 64 steps)
    assert errors["chunked"] < 2e-6 and errors["log"] < 1e-4, errors


def test_the_scans_solve_any_linear_recurrence():
    torch.manual_seed(2)
    for steps in (1, 3, 16, 17, 130):
        a = torch.rand(steps, B, H, dtype=F64)
        b = torch.rand(steps, B, H, dtype=F64)  # positive, for the log scan
        h0 = torch.randn(B, H, dtype=F64)
        h, want = h0, []
        for t in range(steps):
            h = a[t] * h + b[t]
            want.append(h)
        want = torch.stack(want)
        torch.testing.assert_close(chunked_scan(a, b, h0), want, rtol=0, atol=1e-13)
        torch.testing.assert_close(heinsen_scan(a.log(), b.log(), h0), want, rtol=0, atol=1e-12)
        torch.testing.assert_close(heinsen_scan(a.log(), b.log(), h0, chunk=5), want)


# ---- gradients -----------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
def test_the_chunked_scan_gradient_and_its_gradient(reverse):
    torch.manual_seed(3)
    a = torch.rand(11, B, H, dtype=F64, requires_grad=True)
    b = torch.randn(11, B, H, dtype=F64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=F64, requires_grad=True)
    h, want = h0, [None] * 11
    for t in reversed(range(11)) if reverse else range(11):  # h_t = a_t h_{t+-1} + b_t
        h = want[t] = a[t] * h + b[t]
    torch.testing.assert_close(chunked_scan(a, b, h0, reverse), torch.stack(want))
    scan = lambda a, b, h0: chunked_scan(a, b, h0, reverse)  # noqa: E731
    assert torch.autograd.gradcheck(scan, (a, b, h0))
    assert torch.autograd.gradgradcheck(scan, (a, b, h0))


@pytest.mark.parametrize("kind,method", KINDS)
def test_gradcheck_float64_of_the_step_and_the_masked_scan(kind, method):
    torch.manual_seed(4)
    cell = CELL[kind](I, H, dtype=F64, scan_method=method)
    x = torch.randn(9, B, I, dtype=F64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=F64, requires_grad=True)
    mask = (torch.arange(9).unsqueeze(1) < torch.tensor([9, 4])).unsqueeze(2)  # (T, B, 1)
    params = tuple(cell.parameters())

    def scan(x, h0, *_):
        out, last = cell.scan(x, h0, mask)
        return out, last

    assert torch.autograd.gradcheck(scan, (x, h0, *params))
    assert torch.autograd.gradcheck(lambda x, h, *_: cell(x, h)[0], (x[0], h0, *params))


@pytest.mark.parametrize("kind,method", KINDS)
def test_gradcheck_float64_through_a_padded_bidirectional_stack(kind, method):
    torch.manual_seed(5)
    layer = LAYER[kind](
        I, H, 2, batch_first=True, bidirectional=True, dtype=F64, scan_method=method
    )
    x = torch.randn(3, 6, I, dtype=F64, requires_grad=True)
    h0 = torch.randn(4, 3, H, dtype=F64, requires_grad=True)
    lengths = torch.tensor([6, 2, 4])
    assert torch.autograd.gradcheck(
        lambda x, h: layer(x, h, lengths=lengths), (x, h0), fast_mode=True
    )


def test_the_log_scan_gradient_is_finite_past_a_short_row():
    """Chunks of padding only (the short row's steps 64..199) keep logcumsumexp finite."""
    torch.manual_seed(6)
    layer = MinGRU(I, H, batch_first=True, bidirectional=True, scan_method="log")
    x = torch.randn(2, 200, I, requires_grad=True)
    out, h = layer(x, lengths=torch.tensor([200, 3]))
    (out.sum() + h.sum()).backward()
    grads = [x.grad] + [p.grad for p in layer.parameters()]
    assert all(bool(torch.isfinite(g).all()) for g in grads)
    assert x.grad[1, 3:].abs().max() == 0 and x.grad[1, :3].abs().max() > 0


# ---- the layer: padding, directions, depth, generation --------------------------------------


@pytest.mark.parametrize("kind,method", KINDS)
def test_a_padded_batch_equals_each_row_alone(kind, method):
    torch.manual_seed(7)
    layer = LAYER[kind](
        I, H, 2, batch_first=True, bidirectional=True, dtype=F64, scan_method=method
    )
    x = torch.randn(4, 70, I, dtype=F64)
    lengths = torch.tensor([3, 70, 1, 66])
    out, state = layer(x, lengths=lengths)
    assert out.shape == (4, 70, 2 * H) and state.shape == (4, 4, H)
    for b, n in enumerate(lengths.tolist()):
        alone, s = layer(x[b : b + 1, :n])
        torch.testing.assert_close(out[b, :n], alone[0], rtol=0, atol=1e-12)
        assert not out[b, n:].any()
        torch.testing.assert_close(state[:, b], s[:, 0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind,method", KINDS)
def test_forward_scans_and_trace_steps_to_the_same_numbers(kind, method):
    torch.manual_seed(8)
    layer = LAYER[kind](I, H, 2, bidirectional=True, dtype=F64, scan_method=method)
    x = torch.randn(40, 3, I, dtype=F64)  # time-major
    lengths = torch.tensor([40, 17, 30])
    out, state = layer(x, lengths=lengths)
    traced = layer.trace(x, lengths=lengths)  # the cell's forward at every step
    torch.testing.assert_close(out, traced.output, rtol=0, atol=1e-12)
    torch.testing.assert_close(state, traced.state, rtol=0, atol=1e-12)
    assert len(traced.hidden[0]) == 40


@pytest.mark.parametrize("kind", list(CELL))
def test_generation_by_step_equals_forward(kind):
    torch.manual_seed(9)
    cfg = LanguageModelConfig(vocab_size=11, embedding_size=5, cell=kind, hidden_size=H)
    model = LanguageModel(cfg).double().eval()
    tokens = torch.randint(0, 11, (B, 300))
    logits, state = model(tokens)  # the scan
    h, stepped = None, []
    for t in range(300):  # one token at a time, the state carried
        z, h = model.step(tokens[:, t], h)
        stepped.append(z)
    torch.testing.assert_close(torch.stack(stepped, 1), logits, rtol=0, atol=1e-11)
    torch.testing.assert_close(h, state, rtol=0, atol=1e-12)


def test_a_carried_state_continues_the_sequence():
    torch.manual_seed(10)
    layer = MinLSTM(I, H, 2, batch_first=True, dtype=F64)
    x = torch.randn(B, 90, I, dtype=F64)
    whole, end = layer(x)
    first, mid = layer(x[:, :50])
    second, end2 = layer(x[:, 50:], mid)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=0, atol=1e-12)
    torch.testing.assert_close(end2, end, rtol=0, atol=1e-12)


# ---- registry, names, refusals --------------------------------------------------------------


@pytest.mark.parametrize("kind", list(CELL))
def test_registered_kinds_build_from_the_config_with_torch_names(kind):
    assert CELLS[kind].options == ()
    cfg = RecurrentModelConfig(
        cell=kind, input_size=I, hidden_size=H, num_layers=2, bidirectional=True
    )
    layer = build_encoder(I, cfg)
    assert all(type(cell) is CELL[kind] for cell in layer.cells)
    g = CELL[kind].num_gates
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert shapes == {
        "weight_ih_l0": (g * H, I), "bias_ih_l0": (g * H,),
        "weight_ih_l0_reverse": (g * H, I), "bias_ih_l0_reverse": (g * H,),
        "weight_ih_l1": (g * H, 2 * H), "bias_ih_l1": (g * H,),
        "weight_ih_l1_reverse": (g * H, 2 * H), "bias_ih_l1_reverse": (g * H,),
    }  # fmt: skip
    twin = build_encoder(I, cfg)
    twin.load_state_dict(layer.state_dict())
    x = torch.randn(B, 5, I)
    torch.testing.assert_close(twin(x)[0], layer(x)[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"recurrent_scale=0.5 sets W_hh, and Min\w+Cell has none"):
        build_encoder(I, RecurrentModelConfig(cell=kind, input_size=I, recurrent_scale=0.5))


@pytest.mark.parametrize("kind", list(CELL))
def test_a_model_with_a_min_cell_learns_the_adding_problem(kind):
    from rnnkit.data.synthetic import adding_problem
    from rnnkit.models import RecurrentModel

    torch.manual_seed(11)
    model = RecurrentModel(RecurrentModelConfig(cell=kind, input_size=2, hidden_size=16))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for step in range(250):
        loss, _ = model.loss(adding_problem(32, 10, seed=100 + step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mse = float(model.loss(adding_problem(256, 10, seed=1))[0])
    # predicting the mean sum (1.0) scores 1/6; measured 0.020 (mingru) and 0.005 (minlstm)
    assert mse < 0.05, mse


def test_bad_arguments_are_refused_naming_them():
    cell = MinGRUCell(I, H)
    with pytest.raises(ShapeError, match=r"x: expected \(batch, input_size=3\)"):
        cell(torch.randn(B, I + 1))
    with pytest.raises(ShapeError, match=r"state: expected a tensor of shape \(2, 4\)"):
        cell(torch.randn(B, I), torch.randn(B + 1, H))
    with pytest.raises(DTypeError, match=r"x: expected dtype torch\.float32"):
        cell(torch.randn(B, I, dtype=F64))
    with pytest.raises(ValueError, match=r"scan_method: expected one of \('chunked', 'log'\)"):
        MinLSTMCell(I, H, scan_method="fast")
    with pytest.raises(ValueError, match="backend: expected 'loop' or 'auto'"):
        MinGRU(I, H, backend="torch")
    h, s = cell(torch.randn(I))  # unbatched, as torch.nn's cells
    assert h.shape == s.shape == (H,)
    assert cell.clone(input_size=7).get_config() == {**cell.get_config(), "input_size": 7}
    bare = MinLSTMCell(I, H, bias=False)
    assert [n for n, _ in bare.named_parameters()] == ["weight_ih"]
