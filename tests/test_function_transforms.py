"""torch.func transforms (grad, vmap, per-sample gradients) and forward-mode AD on rnnkit's
layers: the cells are stepped with autograd there, and every result equals torch.nn's (grad)
or the ordinary backward pass's, in float64. torch.nn's own layers have no vmap rule on the
CPU (and its LSTM no forward AD): rnnkit's do."""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwad
from torch import nn

import rnnkit as rk

# torch.func's own internals call the deprecated torch.jit.script (torch 2.13)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

PAIRS = {"gru": (rk.GRU, nn.GRU), "lstm": (rk.LSTM, nn.LSTM), "rnn": (rk.RNN, nn.RNN)}


def _pair(kind, backend):
    torch.manual_seed(0)
    ours_cls, theirs_cls = PAIRS[kind]
    ours = ours_cls(3, 5, num_layers=2, bidirectional=True, backend=backend).double()
    theirs = theirs_cls(3, 5, num_layers=2, bidirectional=True).double()
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ["auto", "loop"])
@pytest.mark.parametrize("kind", PAIRS)
def test_func_grad_equals_torch_nn(kind, backend):
    ours, theirs = _pair(kind, backend)
    x = torch.randn(6, 4, 3, dtype=torch.float64)

    def loss(module):
        return lambda p: torch.func.functional_call(module, p, (x,))[0].square().sum()

    got = torch.func.grad(loss(ours))(dict(ours.named_parameters()))
    expected = torch.func.grad(loss(theirs))(dict(theirs.named_parameters()))
    assert got.keys() == expected.keys()
    for name in expected:
        _close(got[name], expected[name])


@pytest.mark.parametrize("kind", PAIRS)
def test_per_sample_gradients_with_vmap_equal_one_backward_each(kind):
    """vmap(grad(...)) over the batch (DP-SGD's per-sample gradients), which torch.nn's layers
    cannot run ("Batching rule not implemented for aten::gru.input")."""
    ours, _ = _pair(kind, "auto")
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    params = {k: v.detach() for k, v in ours.named_parameters()}

    def loss(p, xi):  # one sequence (T, I), unbatched input as torch.nn takes it
        return torch.func.functional_call(ours, p, (xi,))[0].square().sum()

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 1))(params, x)
    for b in range(4):
        ours.zero_grad()
        ours(x[:, b])[0].square().sum().backward()
        for name, p in ours.named_parameters():
            _close(per_sample[name][b], p.grad)


@pytest.mark.parametrize("kind", PAIRS)
def test_forward_mode_ad_equals_the_backward_pass_jvp(kind):
    ours, _ = _pair(kind, "auto")
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    tangent = torch.randn_like(x)
    with fwad.dual_level():
        got = fwad.unpack_dual(ours(fwad.make_dual(x, tangent))[0]).tangent
    # the same product from reverse mode (the double-backward trick), on the ordinary path
    _, expected = torch.autograd.functional.jvp(lambda v: ours(v)[0], x, tangent)
    _close(got, expected)


def test_padded_batches_and_a_users_cell_under_func_grad():
    """lengths and a cell of one's own (nn.Linear products) take the same autograd steps."""

    class Elman(rk.CellBase):
        def __init__(self, input_size, hidden_size):
            super().__init__(input_size, hidden_size)
            self.ih, self.hh = (
                nn.Linear(input_size, hidden_size),
                nn.Linear(hidden_size, hidden_size),
            )

        def forward(self, x, h):
            h = torch.tanh(self.ih(x) + self.hh(h))
            return h, h

        def get_config(self):
            return {"input_size": self.input_size, "hidden_size": self.hidden_size}

    torch.manual_seed(0)
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4, 1])
    for layer in (rk.LSTM(3, 5, bidirectional=True).double(), rk.Recurrent(Elman(3, 5)).double()):
        params = dict(layer.named_parameters())
        got = torch.func.grad(
            lambda p, layer=layer: (
                torch.func.functional_call(layer, p, (x,), {"lengths": lengths})[0].square().sum()
            )
        )(params)
        layer.zero_grad()
        layer(x, lengths=lengths)[0].square().sum().backward()
        for name, p in layer.named_parameters():
            _close(got[name], p.grad)


def test_a_packed_sequence_under_func_grad_and_forward_ad_equals_the_ordinary_pass():
    """torch's pad_packed_sequence has no functorch rule (torch.nn's layer fails there):
    rnnkit pads and repacks by a mask, and its outputs, state and gradients are the ordinary
    pass's."""
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(0)
    layer = rk.LSTM(3, 5, num_layers=2, bidirectional=True).double()
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor([2, 6, 1, 4]), enforce_sorted=False)
    h0 = (torch.randn(4, 4, 5, dtype=torch.float64), torch.randn(4, 4, 5, dtype=torch.float64))

    def loss(p):
        out, (h, c) = torch.func.functional_call(layer, p, (packed, h0))
        return out.data.square().sum() + h.sum() + c[:, 1].sum()

    got = torch.func.grad(loss)(dict(layer.named_parameters()))
    layer.zero_grad()
    out, (h, c) = layer(packed, h0)
    (out.data.square().sum() + h.sum() + c[:, 1].sum()).backward()
    for name, p in layer.named_parameters():
        _close(got[name], p.grad)
    tangent = torch.randn_like(packed.data)
    with fwad.dual_level():
        dual = packed._replace(data=fwad.make_dual(packed.data, tangent))
        primal, got_tangent = fwad.unpack_dual(layer(dual, h0)[0].data)
    _close(primal, out.data)
    _, expected_tangent = torch.autograd.functional.jvp(
        lambda d: layer(packed._replace(data=d), h0)[0].data, packed.data, tangent
    )
    _close(got_tangent, expected_tangent)


@pytest.mark.parametrize("scan", ["chunked", "log"])
@pytest.mark.parametrize("layer_cls", [rk.MinGRU, rk.MinLSTM])
def test_parallel_scan_layers_under_func_grad_and_vmap(layer_cls, scan):
    torch.manual_seed(0)
    layer = layer_cls(3, 5, scan_method=scan).double()
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    got = torch.func.grad(lambda p: torch.func.functional_call(layer, p, (x,))[0].square().sum())(
        dict(layer.named_parameters())
    )
    layer.zero_grad()
    layer(x)[0].square().sum().backward()
    for name, p in layer.named_parameters():
        _close(got[name], p.grad)
    batched = torch.func.vmap(lambda xi: layer(xi.unsqueeze(1))[0].squeeze(1))(x.transpose(0, 1))
    _close(batched.transpose(0, 1), layer(x)[0])


def test_per_sample_gradients_of_a_classifier_at_one_length():
    """A whole model (embedding, BiLSTM, mean pooling, oneDNN-sized output layer) under
    vmap(grad): sequences of one length, shared by every row."""
    from rnnkit.models.classifier import ClassifierConfig, SequenceClassifier

    torch.manual_seed(0)
    config = ClassifierConfig(
        vocab_size=50,
        num_classes=3,
        embedding_dim=16,
        hidden_size=32,
        pooling="mean",
        bidirectional=True,
    )
    model = SequenceClassifier(config).double().eval()
    ids, lengths = torch.randint(1, 50, (4, 7)), torch.tensor([7])
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, row):
        return torch.func.functional_call(model, p, (row.unsqueeze(0), lengths)).logsumexp(-1).sum()

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(params, ids)
    for b in range(4):
        model.zero_grad()
        model(ids[b : b + 1], lengths).logsumexp(-1).sum().backward()
        for name, p in model.named_parameters():
            _close(per_sample[name][b], p.grad)


@pytest.mark.parametrize("inputs", ["ids", "frames"])
def test_per_sample_gradients_of_a_classifier_with_per_sample_lengths(inputs):
    """A whole model under vmap(grad) over sequences and their own lengths (DP-SGD's
    per-example gradients): the model reads no length by value there, and each row's gradient
    equals that of its sequence alone, unpadded. Token ids with a BiLSTM and mean pooling;
    frames with a GRU, last-state pooling and the wide part over summary statistics."""
    from rnnkit.models.classifier import ClassifierConfig, SequenceClassifier

    torch.manual_seed(0)
    if inputs == "ids":
        kw = dict(vocab_size=50, embedding_dim=16, pooling="mean", bidirectional=True)
        x = torch.randint(1, 50, (4, 7))
    else:
        kw = dict(input_features=3, cell="gru", pooling="last", wide_summary=True)
        x = torch.randn(4, 7, 3, dtype=torch.float64)
    model = SequenceClassifier(ClassifierConfig(num_classes=3, hidden_size=8, **kw))
    model = model.double().eval()
    if model.wide_stats is not None:
        with torch.no_grad():
            model.wide_stats.weight.normal_()
    lengths = torch.tensor([7, 3, 5, 1])
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, row, n):
        logits = torch.func.functional_call(model, p, (row.unsqueeze(0), n.unsqueeze(0)))
        return logits.logsumexp(-1).sum()

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(params, x, lengths)
    for b, n in enumerate(lengths.tolist()):
        model.zero_grad()
        model(x[b : b + 1, :n], torch.tensor([n])).logsumexp(-1).sum().backward()
        for name, p in model.named_parameters():
            _close(per_sample[name][b], p.grad)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_per_sample_gradients_with_per_sample_lengths(kind):
    """vmap over sequences and their lengths: the layer reads no length by value there (as
    while a graph is captured), and each row's gradient equals its unpadded sequence's."""
    ours, _ = _pair(kind, "auto")
    x = torch.randn(4, 6, 3, dtype=torch.float64)  # (B, T, I): vmap takes the rows
    lengths = torch.tensor([6, 2, 4, 1])
    params = {k: v.detach() for k, v in ours.named_parameters()}

    def loss(p, row, n):
        out, state = torch.func.functional_call(
            ours, p, (row.unsqueeze(1),), {"lengths": n.unsqueeze(0)}
        )
        h = state[0] if isinstance(state, tuple) else state
        return out.square().sum() + h.sum()

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(params, x, lengths)
    for b in range(4):
        ours.zero_grad()
        out, state = ours(x[b, : lengths[b]].unsqueeze(1))
        h = state[0] if isinstance(state, tuple) else state
        (out.square().sum() + h.sum()).backward()
        for name, p in ours.named_parameters():
            _close(per_sample[name][b], p.grad)
