"""`Recurrent.step` with torch's fused cell steps, and `rnnkit.layers.stepping`, where the
weights are packed once (laid out for matrix-vector products at batch 1): equal to the
layer's forward on one-step sequences, repacked whenever a weight changes, gradients and
double backward through the plain path, and entered by the decoders."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit as rk
from rnnkit.cells_regularized import RegularizedLSTMCell
from rnnkit.decoding import beam_search, generate
from rnnkit.layers import PACKED_MAX_BATCH, stepping

I, H = 5, 7
KINDS = {
    "tanh": lambda **kw: rk.RNN(I, H, **kw),
    "relu": lambda **kw: rk.RNN(I, H, nonlinearity="relu", **kw),
    "lstm": lambda **kw: rk.LSTM(I, H, **kw),
    "gru": lambda **kw: rk.GRU(I, H, **kw),
    "lstm-proj": lambda **kw: rk.LSTM(I, H, proj_size=3, **kw),
}


def _walk(layer, x, state=None):
    """Step through x (B, T, I) one step at a time: outputs (B, T, P) and the last state."""
    outs = []
    for t in range(x.shape[1]):
        h, state = layer.step(x[:, t], state)
        outs.append(h)
    return torch.stack(outs, 1), state


def _flat(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [1, 4])
def test_steps_equal_forward_in_float64_inside_and_outside_stepping(kind, bias, batch):
    torch.manual_seed(0)
    layer = KINDS[kind](num_layers=2, bias=bias, batch_first=True).double().eval()
    x = torch.randn(batch, 6, I, dtype=torch.float64)
    want, want_state = layer(x)
    plain = _walk(layer, x)
    with torch.no_grad(), stepping(layer):
        packed = _walk(layer, x)
    for out, state in (plain, packed):
        torch.testing.assert_close(out, want, rtol=0, atol=1e-10)
        for s, w in zip(_flat(state), _flat(want_state), strict=True):
            torch.testing.assert_close(s, w, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["tanh", "lstm", "gru"])
def test_float32_packed_steps_equal_torch_nn_cells(kind):
    """Batch 1 reads the packed copies: the same function as torch.nn's cell, to 1e-5."""
    torch.manual_seed(1)
    layer = KINDS[kind](num_layers=1).eval()
    cell = {"tanh": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[kind](I, H)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).data.copy_(getattr(layer, name + "_l0"))
    x = torch.randn(1, 20, I)
    state = None
    with torch.no_grad(), stepping(layer):
        out, _ = _walk(layer, x)
        for t in range(20):
            state = cell(x[:, t], state)
            h = state[0] if isinstance(state, tuple) else state
            torch.testing.assert_close(out[:, t], h, rtol=1e-5, atol=1e-5)
    assert layer.__dict__.get("_packs") is None  # dropped when the context exits


def test_batch_one_reads_packed_copies_and_larger_batches_the_parameters():
    layer = rk.LSTM(I, H, num_layers=2).eval()
    with torch.no_grad(), stepping(layer):
        small = layer._step_packs(1)
        large = layer._step_packs(PACKED_MAX_BATCH + 1)
    assert all(p.packed for p in small) and not any(p.packed for p in large)
    assert small[0].w_ih.data_ptr() != layer.weight_ih_l0.data_ptr()
    torch.testing.assert_close(small[0].w_ih, layer.weight_ih_l0, rtol=0, atol=0)
    assert large[1].w_hh is layer.weight_hh_l1
    assert layer._step_packs(1)[0].w_ih is layer.weight_ih_l0  # outside: the parameters


def _one_step(layer, x):
    return layer(x.unsqueeze(1))[0][:, 0]


@pytest.mark.parametrize("kind", ["lstm", "gru", "tanh"])
def test_a_weight_changed_inside_the_context_is_repacked(kind):
    torch.manual_seed(2)
    layer = KINDS[kind](num_layers=2, batch_first=True).eval()
    x = torch.randn(1, I)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    with stepping(layer):
        with torch.no_grad():
            before = layer.step(x)[0]
        # an optimiser's step (in place, seen by the version counter)
        _one_step(layer, x).pow(2).sum().backward()
        optimizer.step()
        with torch.no_grad():
            after = layer.step(x)[0]
            torch.testing.assert_close(after, _one_step(layer, x), rtol=1e-5, atol=1e-6)
            assert not torch.allclose(after, before)
            layer.weight_hh_l1.fill_(0.01)  # in place under no_grad
            torch.testing.assert_close(layer.step(x)[0], _one_step(layer, x), rtol=1e-5, atol=1e-6)
            layer.weight_ih_l0 = nn.Parameter(torch.randn_like(layer.weight_ih_l0))  # replaced
            torch.testing.assert_close(layer.step(x)[0], _one_step(layer, x), rtol=1e-5, atol=1e-6)


def test_gradients_and_double_backward_through_steps_inside_the_context():
    """With gradients wanted the step takes the parameters themselves (nothing cached):
    the same gradients as torch's own layer, and a gradient penalty works."""
    torch.manual_seed(3)
    for kind in ("lstm", "gru", "tanh"):
        layer = KINDS[kind](num_layers=2, batch_first=True, backend="torch").double()
        x = torch.randn(1, 4, I, dtype=torch.float64, requires_grad=True)
        with stepping(layer):
            out, _ = _walk(layer, x)
        want, _ = layer(x)
        params = [x, *layer.parameters()]
        got = torch.autograd.grad(out.pow(2).sum(), params, create_graph=True)
        ref = torch.autograd.grad(want.pow(2).sum(), params, create_graph=True)
        for g, r in zip(got, ref, strict=True):
            torch.testing.assert_close(g, r, rtol=0, atol=1e-10)
        penalty = torch.autograd.grad(got[0].pow(2).sum(), layer.weight_hh_l0)[0]
        penalty_ref = torch.autograd.grad(ref[0].pow(2).sum(), layer.weight_hh_l0)[0]
        torch.testing.assert_close(penalty, penalty_ref, rtol=0, atol=1e-10)


def test_reparametrised_weights_are_read_afresh_inside_the_context():
    torch.manual_seed(4)
    layer = rk.LSTM(I, H, num_layers=2, batch_first=True).double().eval()
    nn.utils.parametrizations.orthogonal(layer, "weight_hh_l1")
    x = torch.randn(1, I, dtype=torch.float64)
    with torch.no_grad(), stepping(layer):
        torch.testing.assert_close(layer.step(x)[0], _one_step(layer, x), rtol=0, atol=1e-10)
    pruned = rk.GRU(I, H, batch_first=True).double().eval()
    nn.utils.prune.random_unstructured(pruned, "weight_hh_l0", amount=0.5)
    with torch.no_grad(), stepping(pruned):
        torch.testing.assert_close(pruned.step(x)[0], _one_step(pruned, x), rtol=0, atol=1e-10)
        pruned.weight_hh_l0_mask.zero_()  # the mask changes: the next step reads it
        torch.testing.assert_close(pruned.step(x)[0], _one_step(pruned, x), rtol=0, atol=1e-10)


def test_other_cells_step_as_their_forward_inside_the_context():
    torch.manual_seed(5)
    layer = rk.Recurrent(RegularizedLSTMCell(I, H, layer_norm=True), num_layers=2, batch_first=True)
    layer = layer.double().eval()
    x = torch.randn(2, 5, I, dtype=torch.float64)
    with torch.no_grad(), stepping(layer):
        out, _ = _walk(layer, x)
    torch.testing.assert_close(out, layer(x)[0], rtol=0, atol=1e-10)


def test_nested_contexts_keep_the_packs_until_the_outermost_exits():
    layer = rk.GRU(I, H).eval()
    with torch.no_grad(), stepping(layer):
        layer.step(torch.randn(1, I))
        packs = layer.__dict__["_packs"]["packs"]
        with stepping(layer):
            layer.step(torch.randn(1, I))
        assert layer.__dict__["_packs"]["packs"] is packs
    assert "_packs" not in layer.__dict__
    with stepping(object()):  # not a module: nothing to pack
        pass


class _TinyLM(nn.Module):
    """A model with the stepping protocol, recording whether its layer steps packed."""

    def __init__(self, vocab=11):
        super().__init__()
        self.embedding = nn.Embedding(vocab, I)
        self.rnn = rk.LSTM(I, H, num_layers=2)
        self.head = nn.Linear(H, vocab)
        self.packed: list[bool] = []

    def step(self, tokens, state=None):
        self.packed.append(self.rnn.__dict__.get("_packs") is not None)
        h, state = self.rnn.step(self.embedding(tokens), state)
        return self.head(h), state


def test_the_decoders_step_with_packed_weights_and_the_same_results():
    torch.manual_seed(6)
    model = _TinyLM().eval()
    prime = torch.tensor([[1, 2, 3]])
    out = generate(model, prime, 8, temperature=0)
    assert model.packed and all(model.packed)
    # the same tokens as stepping by hand outside the context
    tokens, state = prime, None
    with torch.no_grad():
        for t in range(3):
            logits, state = model.rnn.step(model.embedding(prime[:, t]), state)
            logits = model.head(logits)
        for _ in range(8):
            nxt = logits.argmax(-1)
            tokens = torch.cat([tokens, nxt[:, None]], 1)
            h, state = model.rnn.step(model.embedding(nxt), state)
            logits = model.head(h)
    assert torch.equal(out, tokens)
    model.packed.clear()
    beam_search(model, torch.tensor([1, 2]), beam_size=3, max_length=5)
    assert model.packed and all(model.packed)
    assert "_packs" not in model.rnn.__dict__
