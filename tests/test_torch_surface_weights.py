"""torch.nn's weight names on rnnkit's layers are real parameters that every backend reads:
initialisers, ``.data`` writes, tying, ``functional_call``, ``prune``, ``weight_norm`` and
parametrisations by those names change the output (to torch.nn's output for the changed
weights), a pruned layer trains, and state_dicts with the old internal keys still load."""

import importlib
import re
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize, prune
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit as rk
from rnnkit.cells import CellBase

I, H = 3, 4
KINDS = {"lstm": (rk.LSTM, nn.LSTM), "gru": (rk.GRU, nn.GRU), "rnn": (rk.RNN, nn.RNN)}
BACKENDS = ("auto", "loop", "torch")
LENGTHS = torch.tensor([5, 2, 4])


def _pair(kind, backend="auto", **kw):
    """(rnnkit layer, torch.nn layer with the same weights), 2 layers, bidirectional, float64."""
    ours_cls, ref_cls = KINDS[kind]
    kw = {"num_layers": 2, "bidirectional": True, **kw}
    ours = ours_cls(I, H, backend=backend, **kw).double()
    ref = ref_cls(I, H, **kw).double()
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def _run(layer, x, lengths=None):
    """Output and final state of ``layer`` on x (T, B, I); torch.nn's through a packed batch."""
    if isinstance(layer, rk.Recurrent):
        return layer(x, lengths=lengths)
    if lengths is None:
        return layer(x)
    out, state = layer(pack_padded_sequence(x, lengths, enforce_sorted=False))
    return pad_packed_sequence(out, total_length=x.shape[0])[0], state


def _assert_same(ours, ref, x):
    """ours(x) equals ref(x), without and with lengths (the fused and the loop kernels)."""
    for lengths in (None, LENGTHS):
        got, want = _run(ours, x, lengths), _run(ref, x, lengths)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def _x():
    return torch.randn(5, 3, I, dtype=torch.float64)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kw", [{}, {"bias": False}, {"num_layers": 3, "bidirectional": False}])
def test_names_and_order_are_torch_nns(kind, kw):
    ours, ref = _pair(kind, **kw)
    names = [n for n, _ in ref.named_parameters()]
    assert [n for n, _ in ours.named_parameters()] == names
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert ours._flat_weights_names == ref._flat_weights_names
    assert ours._all_weights == ref._all_weights
    assert [[tuple(w.shape) for w in ws] for ws in ours.all_weights] == [
        [tuple(w.shape) for w in ws] for ws in ref.all_weights
    ]
    assert ours.weight_hh_l1 is ours.cells[2 if ours.bidirectional else 1].weight_hh
    assert all(isinstance(w, nn.Parameter) for w in ours._flat_weights)
    assert ours.flatten_parameters() is None  # a no-op, as torch.nn's on CPU


def _orthogonal(layer):
    nn.init.orthogonal_(layer.weight_hh_l0)


def _fill(layer):
    layer.weight_hh_l1_reverse.data.fill_(0.05)


def _assign(layer):
    layer.weight_ih_l0 = nn.Parameter(torch.randn_like(layer.weight_ih_l0))


def _tie(layer):
    layer.bias_ih_l0_reverse = layer.bias_ih_l0  # as torch.nn's cuDNN weight-tying test


@pytest.mark.parametrize("edit", [_orthogonal, _fill, _assign, _tie])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_edits_by_torch_name_change_every_backend(kind, backend, edit):
    torch.manual_seed(0)
    ours, ref = _pair(kind, backend)
    x = _x()
    before = ours(x)[0]
    with torch.no_grad():
        edit(ours)
    assert not torch.allclose(ours(x)[0], before)
    edit(ref)  # the same edit on torch.nn's layer (same values where it draws: copy them)
    ref.load_state_dict(ours.state_dict())
    _assert_same(ours, ref, x)
    assert len(list(ours.parameters())) == len(list(ref.parameters()))


def test_weights_set_through_a_cell_land_on_the_layer():
    layer = rk.GRU(I, H)
    new = nn.Parameter(torch.zeros(3 * H, H))
    layer.cells[0].weight_hh = new
    assert layer.weight_hh_l0 is new and "weight_hh" not in layer.cells[0]._parameters
    with pytest.raises(ValueError, match="cell: its weights already belong to a layer"):
        rk.Recurrent(layer.cells[0])


class Half(nn.Module):
    def forward(self, w):
        return 0.5 * w


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_parametrisation_by_torch_name_reaches_forward_and_backward(kind, backend):
    torch.manual_seed(1)
    ours, ref = _pair(kind, backend)
    parametrize.register_parametrization(ours, "weight_hh_l0", Half())
    with torch.no_grad():
        ref.weight_hh_l0.mul_(0.5)
    x = _x()
    _assert_same(ours, ref, x)
    original = ours.parametrizations.weight_hh_l0.original
    for lengths in (None, LENGTHS):
        (g,) = torch.autograd.grad(_run(ours, x, lengths)[0].sum(), original)
        (want,) = torch.autograd.grad(_run(ref, x, lengths)[0].sum(), ref.weight_hh_l0)
        torch.testing.assert_close(g, 0.5 * want, rtol=0, atol=1e-12)  # chain rule


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_pruned_layer_computes_with_the_mask_and_trains(kind, backend):
    torch.manual_seed(2)
    ours, ref = _pair(kind, backend)
    prune.l1_unstructured(ours, "weight_hh_l0", 0.5)
    # as torch.nn (test_rnn_pruning): the pruned weight is a tensor, the others parameters
    assert sum(isinstance(p, nn.Parameter) for p in ours._flat_weights) == 15
    x, target = _x(), torch.randn(5, 3, 2 * H, dtype=torch.float64)
    ref.load_state_dict({name: getattr(ours, name).detach() for name in ref.state_dict()})
    _assert_same(ours, ref, x)
    optimizer = torch.optim.SGD(ours.parameters(), lr=0.1)
    losses = []
    for _ in range(3):  # a stale pruned weight would fail the second backward
        optimizer.zero_grad()
        loss = (ours(x, lengths=LENGTHS)[0] - target).pow(2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert (ours.weight_hh_l0[ours.weight_hh_l0_mask == 0] == 0).all()
    prune.remove(ours, "weight_hh_l0")
    assert sum(isinstance(p, nn.Parameter) for p in ours._flat_weights) == 16
    assert "weight_hh_l0" in dict(ours.named_parameters())
    assert "weight_hh_l0_orig" not in dict(ours.named_parameters())


@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_norm_by_torch_name_and_step_sees_the_update(backend):
    """Hook-based weight_norm recomputes the weight before forward, and before step and
    trace too (called directly, they run the layer's reparametrisation hooks)."""
    torch.manual_seed(3)
    layer = rk.LSTM(I, H, num_layers=2, backend=backend).double()
    x = torch.randn(1, 3, I, dtype=torch.float64)
    before = layer(x)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch prefers the parametrisation
        nn.utils.weight_norm(layer, "weight_ih_l1")
    assert sum(isinstance(p, nn.Parameter) for p in layer._flat_weights) == 7
    torch.testing.assert_close(layer(x)[0], before, rtol=0, atol=1e-12)
    with torch.no_grad():
        layer.weight_ih_l1_g.mul_(3.0)  # as an optimiser step would, between two forwards
    stepped, _ = layer.step(x[0])
    assert not torch.allclose(stepped, before[0])
    torch.testing.assert_close(stepped, layer(x)[0][0], rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.trace(x).output, layer(x)[0], rtol=0, atol=1e-12)
    nn.utils.remove_weight_norm(layer, "weight_ih_l1")
    assert sum(isinstance(p, nn.Parameter) for p in layer._flat_weights) == 8


@pytest.mark.parametrize("kind", KINDS)
def test_parametrised_weight_norm_and_functional_call(kind):
    torch.manual_seed(4)
    ours, ref = _pair(kind)
    x = _x()
    before = ours(x)[0]
    nn.utils.parametrizations.weight_norm(ours, "weight_ih_l1")
    torch.testing.assert_close(ours(x)[0], before, rtol=0, atol=1e-12)
    with torch.no_grad():
        ours.parametrizations.weight_ih_l1.original0.mul_(2.0)  # g: doubles the weight
        ref.weight_ih_l1.mul_(2.0)
    _assert_same(ours, ref, x)
    plain, _ = _pair(kind)
    weights = {n: torch.randn_like(p) for n, p in plain.named_parameters()}
    got = torch.func.functional_call(plain, weights, (x,))[0]
    ref.load_state_dict(weights)
    torch.testing.assert_close(got, ref(x)[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_state_dicts_with_the_old_internal_keys_load(kind):
    """Checkpoints saved when the cells held the weights (``cells.3.weight_hh``) load."""
    ours, ref = _pair(kind)
    fresh = _pair(kind)[0]
    old = {}
    for name, value in ours.state_dict().items():  # weight_hh_l1_reverse -> cells.3.weight_hh
        match = re.fullmatch(r"(\w+?)_l(\d+)(_reverse)?", name)
        old[f"1.cells.{2 * int(match[2]) + bool(match[3])}.{match[1]}"] = value
    model = nn.Sequential(nn.Identity(), fresh)
    assert not model.load_state_dict(old).missing_keys
    _assert_same(fresh, ref, _x())


def test_load_errors_name_torch_nns_keys():
    layer = rk.LSTM(I, H, num_layers=2)
    state = layer.state_dict()
    del state["weight_hh_l1"]
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "weight_hh_l1"'):
        layer.load_state_dict(state)
    state = rk.LSTM(I + 1, H, num_layers=2).state_dict()
    with pytest.raises(RuntimeError, match="size mismatch for weight_ih_l0"):
        layer.load_state_dict(state)


class MinimalCell(CellBase):
    """A user's own cell: its weights stay in the cell (no torch.nn names to take)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.U = nn.Linear(input_size, hidden_size)

    def forward(self, x, state):
        h = torch.tanh(self.U(x)) + 0.5 * state
        return h, h


def test_custom_cells_keep_their_keys_and_errors_name_them_so():
    layer = rk.Recurrent(MinimalCell(I, H), num_layers=2, bidirectional=True)
    assert list(layer.state_dict())[:2] == ["U.weight_l0", "U.bias_l0"]
    assert layer._flat_weights_names == [] and layer.all_weights == [[], [], [], []]
    state = layer.state_dict()
    del state["U.bias_l1_reverse"]
    result = layer.load_state_dict(state, strict=False)
    assert result.missing_keys == ["U.bias_l1_reverse"]
    cells = enumerate(layer.cells)
    old = {f"cells.{k}.{n}": v for k, cell in cells for n, v in cell.state_dict().items()}
    assert not layer.load_state_dict(old).missing_keys  # the cells' own keys load too


def test_pickled_and_copied_layers_read_their_own_weights():
    import copy
    import io

    layer = rk.GRU(I, H, num_layers=2)
    for again in (copy.deepcopy(layer), torch.load(_saved(layer, io), weights_only=False)):
        assert again.cells[0].weight_hh is again.weight_hh_l0
        assert again.weight_hh_l0 is not layer.weight_hh_l0
        x = torch.randn(4, 2, I)
        torch.testing.assert_close(again(x)[0], layer(x)[0])
        with torch.no_grad():
            again.weight_hh_l0.add_(1.0)
        assert not torch.allclose(again(x)[0], layer(x)[0])


def _saved(layer, io):
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("backend", BACKENDS)
def test_data_parallel_replica_reads_the_replicas_weights(backend, monkeypatch):
    """DataParallel's replicate() copies the layer and its cells apart and gives the copy
    the broadcast weights: the copied cells must read those (here: the weights doubled)."""
    rep = importlib.import_module("torch.nn.parallel.replicate")  # the module, not the function

    def broadcast(tensors, devices, detach=False):
        return [[2 * t for t in tensors] for _ in devices]

    monkeypatch.setattr(rep, "_broadcast_coalesced_reshape", broadcast)
    torch.manual_seed(5)
    ours, ref = _pair("lstm", backend)
    (replica,) = rep.replicate(ours, [0])
    with torch.no_grad():
        for p in ref.parameters():
            p.mul_(2)
    x = _x()
    _assert_same(replica, ref, x)
    assert ours.cells[0].weight_hh is ours.weight_hh_l0  # the original reads its own
    assert not torch.allclose(ours(x)[0], replica(x)[0])
