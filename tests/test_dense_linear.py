"""rnnkit.kernels.dense: nn.Linear whose large float32 CPU products may run on oneDNN.

With the oneDNN path forced on, every output and gradient (first and second order) equals
``torch.nn.functional.linear``'s to float32 rounding; small products, other dtypes, autocast
and graphs being traced or exported take ``F.linear`` itself."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit as rk
from rnnkit.kernels import dense

pytestmark = pytest.mark.skipif(
    dense._LINEAR is None or not torch.backends.mkldnn.is_available(),
    reason="this torch build has no oneDNN inner product",
)


@pytest.fixture
def calls(monkeypatch):
    """Forces the oneDNN path on and counts its calls."""
    count = {"n": 0}
    real = dense._LINEAR

    def spy(*args):
        count["n"] += 1
        return real(*args)

    monkeypatch.setattr(dense, "_LINEAR", spy)
    monkeypatch.setattr(dense, "_faster", True)
    return count


def close(a, b, tol=2e-6):
    """Equal to float32 rounding, relative to b's largest entry."""
    assert a.shape == b.shape
    assert float((a - b).abs().max()) <= tol * max(float(b.abs().max()), 1.0)


@pytest.mark.parametrize("shape", [(640, 96), (8, 80, 96), (80, 8, 96)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("out", [512, 48])  # dL/dW formed both ways round (N > K, N <= K)
def test_outputs_and_gradients_equal_f_linear(calls, shape, bias, out):
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    if len(shape) == 3 and shape[0] == 80:
        x = x.transpose(0, 1)  # a strided (batch-first view of time-major) input
    w = torch.randn(out, 96, requires_grad=True)
    b = torch.randn(out, requires_grad=True) if bias else None
    y, want = dense.linear(x, w, b), nn.functional.linear(x, w, b)
    assert calls["n"] == 1  # the forward product ran on oneDNN
    close(y, want)
    inputs = [x, w] + ([b] if bias else [])
    g = torch.randn_like(want)
    got = torch.autograd.grad(y, inputs, g)
    expected = torch.autograd.grad(want, inputs, g)
    assert calls["n"] == 3  # and both gradient products
    for a, e in zip(got, expected, strict=True):
        close(a, e)


def test_second_derivatives_equal_f_linear(calls):
    torch.manual_seed(1)
    x = torch.randn(48, 80, requires_grad=True)
    w = torch.randn(600, 80, requires_grad=True)
    b = torch.randn(600, requires_grad=True)

    def penalty(fn):
        y = fn(x, w, b)
        gx, gw = torch.autograd.grad(y.tanh().sum(), (x, w), create_graph=True)
        return torch.autograd.grad(gx.square().sum() + gw.square().sum(), (x, w, b))

    got, expected = penalty(dense.linear), penalty(nn.functional.linear)
    assert calls["n"] > 3  # the backward's products ran on oneDNN, recorded for the second
    for a, e in zip(got, expected, strict=True):
        close(a, e, 1e-5)


def test_an_expanded_gradient_is_read_as_a_matrix(calls):
    x = torch.randn(64, 128, requires_grad=True)
    w = torch.randn(256, 128, requires_grad=True)
    dense.linear(x, w).sum().backward()  # dL/dy: ones with stride 0
    close(x.grad, torch.ones(64, 256) @ w.detach())
    close(w.grad, torch.ones(256, 64) @ x.detach())


def test_small_products_other_dtypes_and_autocast_take_f_linear(calls):
    w = torch.randn(16, 8)
    dense.linear(torch.randn(4, 8), w)  # 512 multiply-adds
    dense.linear(torch.randn(2048, 128, dtype=torch.float64), torch.randn(512, 128).double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = dense.linear(torch.randn(2048, 128), torch.randn(512, 128))
    assert y.dtype == torch.bfloat16  # autocast's product, as F.linear gives
    dense.linear(torch.randn(128), torch.randn(512, 128))  # one vector
    assert calls["n"] == 0


def test_forced_off_takes_f_linear(monkeypatch, calls):
    monkeypatch.setattr(dense, "_faster", False)
    x, w = torch.randn(256, 128), torch.randn(512, 128)
    assert torch.equal(dense.linear(x, w), nn.functional.linear(x, w))
    assert calls["n"] == 0


def test_the_environment_variable_decides_and_a_bad_value_is_named(monkeypatch):
    for value, want in (("1", True), ("0", False)):
        monkeypatch.setattr(dense, "_faster", None)
        monkeypatch.setenv("RNNKIT_ONEDNN_LINEAR", value)
        assert dense.onednn_faster() is want
    monkeypatch.setattr(dense, "_faster", None)
    monkeypatch.setenv("RNNKIT_ONEDNN_LINEAR", "yes")
    with pytest.raises(ValueError, match="RNNKIT_ONEDNN_LINEAR: expected 0 or 1, got 'yes'"):
        dense.onednn_faster()
    monkeypatch.setattr(dense, "_faster", None)
    monkeypatch.delenv("RNNKIT_ONEDNN_LINEAR")
    assert isinstance(dense.onednn_faster(), bool)  # measured on this machine


def test_linear_module_is_nn_linear_with_its_state_dict(calls):
    torch.manual_seed(2)
    ours, theirs = dense.Linear(96, 512), nn.Linear(96, 512)
    assert isinstance(ours, nn.Linear)
    assert rk.Linear is dense.Linear  # the public name
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 50, 96)
    close(ours(x), theirs(x))
    assert calls["n"] == 1


def test_traced_and_exported_graphs_hold_atens_linear(calls):
    layer = dense.Linear(96, 512).eval()
    x = torch.randn(64, 96)
    traced = torch.jit.trace(layer, (x,), check_trace=False)
    assert "mkldnn" not in str(traced.graph)
    exported = torch.export.export(layer, (x,))
    assert "mkldnn" not in str(exported.graph)
    close(exported.module()(x), nn.functional.linear(x, layer.weight, layer.bias))
    assert calls["n"] == 0


def test_a_seq2seq_model_trains_the_same_either_way(monkeypatch):
    """The encoder-decoder (attention, bridge, combination and head: all dense.Linear) gives
    the same loss and gradients with the products on oneDNN as on F.linear."""
    from rnnkit.data.batches import PairBatch
    from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig

    torch.manual_seed(3)
    config = Seq2SeqConfig(
        target_vocab_size=40, source_vocab_size=30, embedding_size=32, hidden_size=128,
        attention="general", input_feed=False,
    )  # fmt: skip
    model = Seq2Seq(config)
    batch = PairBatch(
        source=torch.randint(4, 30, (32, 12)),
        source_lengths=torch.randint(6, 13, (32,)),
        target=torch.randint(4, 40, (32, 10)),
        target_lengths=torch.randint(5, 11, (32,)),
    )
    results = []
    for forced in (False, True):
        monkeypatch.setattr(dense, "_faster", forced)
        model.zero_grad()
        loss, _ = model.loss(batch)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    close(loss_b, loss_a, 1e-6)
    for a, b in zip(grads_b, grads_a, strict=True):
        close(a, b, 1e-5)


class PlainCell(rk.CellBase):
    """A user's Elman cell written with nn.Linear, as in a PyTorch tutorial."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.ih = nn.Linear(input_size, hidden_size)
        self.hh = nn.Linear(hidden_size, hidden_size)

    def forward(self, x, h):  # the state of a one-part cell is h itself
        h = torch.tanh(self.ih(x) + self.hh(h))
        return h, h

    def get_config(self):
        return {"input_size": self.input_size, "hidden_size": self.hidden_size}


def test_the_loop_runs_a_users_nn_linear_products_through_onednn(calls):
    """A cell of one's own made of nn.Linear layers: inside rk.Recurrent its large products take
    dense.linear's path (counted), and outputs, state and gradients equal the same cell stepped
    by hand with F.linear, to float32 rounding, padded batches included."""
    torch.manual_seed(0)
    layer = rk.Recurrent(PlainCell(256, 256), bidirectional=True)  # 64 x 256 x 256 >= MIN_MACS
    x = torch.randn(7, 64, 256, requires_grad=True)
    lengths = torch.randint(1, 8, (64,))
    out, state = layer(x, lengths=lengths)
    assert calls["n"] > 0
    assert not [m for m in layer.modules() if "forward" in m.__dict__]  # as they were
    (out.square().sum() + state.sum()).backward()  # state: (directions, B, H), as nn.RNN's
    got = [x.grad.clone()] + [p.grad.clone() for p in layer.parameters()]
    for t in [x, *layer.parameters()]:
        t.grad = None
    n = calls["n"]
    by_hand, finals = [], []
    for cell, steps in ((layer.cells[0], range(7)), (layer.cells[1], range(6, -1, -1))):
        h, outs = torch.zeros(64, 256), [None] * 7
        for t in steps:
            new = cell(x[t], h)[0]
            valid = (t < lengths).unsqueeze(1)
            h = torch.where(valid, new, h)
            outs[t] = torch.where(valid, new, torch.zeros_like(new))
        by_hand.append(torch.stack(outs))
        finals.append(h)
    assert calls["n"] == n  # the cell called directly: F.linear itself
    expected = torch.cat(by_hand, dim=2)
    close(out, expected)
    close(state, torch.stack(finals))
    (expected.square().sum() + torch.stack(finals).sum()).backward()
    for a, b in zip(got, [x.grad] + [p.grad for p in layer.parameters()], strict=True):
        close(a, b, tol=1e-5)


def test_the_loop_leaves_small_float64_and_moded_products_to_f_linear(calls):
    torch.manual_seed(0)
    small = rk.Recurrent(PlainCell(8, 16))
    small(torch.randn(5, 4, 8))  # 4 x 16 x 24 multiply-adds: far under MIN_MACS
    wide = rk.Recurrent(PlainCell(256, 256)).double()
    wide(torch.randn(3, 64, 256, dtype=torch.float64))
    seen = []

    class Mine(torch.overrides.TorchFunctionMode):  # the user's own mode sees every call
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    with Mine():
        rk.Recurrent(PlainCell(256, 256))(torch.randn(3, 64, 256))
    assert calls["n"] == 0 and torch.nn.functional.linear in seen
    assert rk.Recurrent(PlainCell(256, 256))(torch.randn(3, 64, 256))[0].shape == (3, 64, 256)
    assert calls["n"] > 0


def test_the_cells_layers_are_restored_when_a_step_fails(calls):
    class Failing(PlainCell):
        def forward(self, x, state):
            super().forward(x, state)  # its products first
            raise RuntimeError("step failed")

    layer = rk.Recurrent(Failing(256, 256))
    mine = layer.cells[0].hh.forward = lambda h: h  # a forward of the user's own: kept
    with pytest.raises(RuntimeError, match="step failed"):
        layer(torch.randn(2, 64, 256))
    assert calls["n"] == 1  # ih took oneDNN; hh kept the user's forward
    assert "forward" not in layer.cells[0].ih.__dict__
    assert layer.cells[0].hh.forward is mine


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # torch.func's own
def test_function_transforms_and_forward_mode_take_f_linear(calls):
    """torch.func's transforms (per-sample gradients, Jacobians) and forward-mode AD need
    what an autograd.Function without setup_context/jvp cannot give: F.linear serves them."""
    import torch.autograd.forward_ad as fwad

    torch.manual_seed(0)
    layer = rk.Linear(512, 512)
    x = torch.randn(4, 300, 512)
    expected = torch.nn.functional.linear(x, layer.weight, layer.bias).detach()
    close(torch.func.vmap(layer)(x).detach(), expected)
    grad = torch.func.grad(lambda w: dense.linear(x[0], w).square().sum())(layer.weight)
    close(grad, (2 * torch.nn.functional.linear(x[0], layer.weight).t() @ x[0]).detach(), 1e-5)
    tangent = torch.randn_like(x)
    with fwad.dual_level():
        out = layer(fwad.make_dual(x, tangent))
        tangent_out = torch.nn.functional.linear(tangent, layer.weight).detach()
        close(fwad.unpack_dual(out).tangent.detach(), tangent_out)
    assert calls["n"] == 0
    layer(x)
    assert calls["n"] > 0  # outside them, oneDNN as before


def test_hooks_and_parametrisations_of_a_users_linear_still_act_in_the_loop(calls):
    """The swapped forward runs inside nn.Linear's __call__: its hooks fire, and a
    parametrised weight is what the product reads."""
    torch.manual_seed(0)
    layer = rk.Recurrent(PlainCell(256, 256))
    cell = layer.cells[0]
    seen = []
    cell.ih.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    nn.utils.parametrize.register_parametrization(cell.hh, "weight", _Halved())
    x = torch.randn(3, 64, 256)
    out, _ = layer(x)
    assert calls["n"] > 0 and seen == [(64, 256)] * 3
    h, expected = torch.zeros(64, 256), []
    for t in range(3):
        h = torch.tanh(cell.ih(x[t]) + torch.nn.functional.linear(h, cell.hh.weight, cell.hh.bias))
        expected.append(h)
    close(out, torch.stack(expected))
    assert cell.hh.weight.data_ptr() != cell.hh.parametrizations.weight.original.data_ptr()


class _Halved(nn.Module):
    def forward(self, w):
        return w / 2
