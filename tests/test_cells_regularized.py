"""Regularised cells and modules: float64 gradcheck, identity of the plain cells at rate 0,
LayerNorm cells against a step written by hand, masks shared as documented (per sequence,
per call, per step), deterministic evaluation, padding, stacks, and the registry's keys."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import _training_helpers  # noqa: F401  (one torch thread)
import rnnkit as rk
from rnnkit.cells_regularized import RATES, RegularizedGRUCell, RegularizedLSTMCell
from rnnkit.config import ConfigError
from rnnkit.models import CELLS, RecurrentConfig, RecurrentModel, RecurrentModelConfig
from rnnkit.models.encoder import build_encoder
from rnnkit.regularized import REGULARIZED_KINDS, EmbeddingDropout, LockedDropout
from rnnkit.tasks import run

F64 = torch.float64
B, I, H = 2, 3, 4
CLASSES = {"lstm": RegularizedLSTMCell, "gru": RegularizedGRUCell}
PLAIN = {"lstm": nn.LSTM, "gru": nn.GRU}
ALL_ON = {  # every switch on, for gradcheck and evaluation
    "lstm": {"layer_norm": True, **dict.fromkeys(RATES, 0.3)},
    "gru": {"layer_norm": True, **dict.fromkeys(RATES[:-1], 0.3)},
}
NONZERO = {  # each kind with rates that change its output
    "lstm-ln": {},
    "gru-ln": {},
    "lstm-variational": {"input_dropout": 0.3, "recurrent_dropout": 0.3},
    "gru-variational": {"input_dropout": 0.3, "recurrent_dropout": 0.3},
    "lstm-weightdrop": {"weight_drop": 0.4},
    "gru-weightdrop": {"weight_drop": 0.4},
    "lstm-zoneout": {"zoneout": 0.3, "zoneout_cell": 0.4},
    "gru-zoneout": {"zoneout": 0.3},
}


def _layer(kind: str, layers=2, bidirectional=True, **rates) -> rk.Recurrent:
    config = RecurrentModelConfig(
        cell=kind,
        input_size=I,
        hidden_size=H,
        num_layers=layers,
        bidirectional=bidirectional,
        **rates,
    )
    return build_encoder(I, config).double()  # batch first


def _perturb_norms(module: nn.Module) -> None:
    """Gains and shifts away from 1 and 0, so that a test sees them."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "ln_" in name:
                p.add_(0.3 * torch.randn_like(p))


def test_every_kind_is_registered_with_the_rates_it_reads():
    assert set(NONZERO) == set(REGULARIZED_KINDS)
    for name, kind in REGULARIZED_KINDS.items():
        assert CELLS[name].options == kind.options == tuple(NONZERO[name])
        layer = _layer(name)
        assert all(cell.layer_norm == name.endswith("-ln") for cell in layer.cells)
        for rate, default in kind.defaults:  # unset: the documented default reaches every cell
            assert {getattr(cell, rate) for cell in layer.cells} == {default} and default > 0


# ---- float64 gradcheck ------------------------------------------------------------------


@pytest.mark.parametrize("base", ["lstm", "gru"])
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_float64_with_every_switch_on(base, training):
    torch.manual_seed(0)
    cell = CLASSES[base](I, H, **ALL_ON[base], dtype=F64).train(training)
    _perturb_norms(cell)
    x = torch.randn(B, I, dtype=F64, requires_grad=True)
    state = tuple(torch.randn(B, H, dtype=F64, requires_grad=True) for _ in range(cell.state_size))
    names = [n for n, _ in cell.named_parameters()]

    def step(x, *args):  # the same masks at every evaluation: the seed is reset
        torch.manual_seed(1)
        parts, weights = args[: len(state)], args[len(state) :]
        params = dict(zip(names, weights, strict=True))
        h, new = torch.func.functional_call(
            cell, params, (x, parts if len(parts) > 1 else parts[0])
        )
        return (h, *new) if isinstance(new, tuple) else (h, new)

    weights = tuple(p.detach().clone().requires_grad_() for p in cell.parameters())
    assert torch.autograd.gradcheck(step, (x, *state, *weights))


@pytest.mark.parametrize("kind", ["lstm-zoneout", "gru-variational", "lstm-weightdrop"])
def test_gradcheck_float64_through_a_padded_bidirectional_stack(kind):
    torch.manual_seed(0)
    layer = _layer(kind, **NONZERO[kind]).train()
    x = torch.randn(3, 4, I, dtype=F64, requires_grad=True)
    lengths = torch.tensor([4, 2, 3])

    def run_layer(x):
        torch.manual_seed(1)
        out, state = layer(x, lengths=lengths)
        return (out, *state) if isinstance(state, tuple) else (out, state)

    assert torch.autograd.gradcheck(run_layer, (x,))


# ---- the identity of the plain cell at rate 0 ------------------------------------------


@pytest.mark.parametrize("kind", [k for k in NONZERO if not k.endswith("-ln")])
def test_rate_zero_is_the_plain_layer_outputs_and_gradients(kind):
    torch.manual_seed(0)
    base = kind.split("-")[0]
    theirs = PLAIN[base](I, H, num_layers=2, bidirectional=True, batch_first=True).double()
    ours = _layer(kind, **dict.fromkeys(NONZERO[kind], 0.0)).train()  # training mode
    assert ours.load_state_dict(theirs.state_dict()).missing_keys == []
    x = torch.randn(3, 5, I, dtype=F64)
    lengths = torch.tensor([5, 2, 4])
    results = []
    for layer in (theirs, ours):
        xi = x.clone().requires_grad_()
        packed = nn.utils.rnn.pack_padded_sequence(xi, lengths, True, enforce_sorted=False)
        if layer is ours:
            out, state = layer(xi, lengths=lengths)
        else:
            out, state = layer(packed)
            out = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=5)[0]
        parts = state if isinstance(state, tuple) else (state,)
        loss = out.pow(2).sum() + sum(p.pow(3).sum() for p in parts)
        grads = torch.autograd.grad(loss, [xi, *layer.parameters()])
        results.append((out, parts, grads))
    (o1, s1, g1), (o2, s2, g2) = results
    torch.testing.assert_close(o2, o1, rtol=0, atol=1e-12)
    for a, b in zip(s1, s2, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
    assert len(g1) == len(g2)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-12)


# ---- LayerNorm cells against a step by hand --------------------------------------------


def _ln(a, norm):
    """LN(a; alpha, beta) = alpha * (a - mean) / sqrt(var + eps) + beta over the last dim."""
    mu = a.mean(-1, keepdim=True)
    var = ((a - mu) ** 2).mean(-1, keepdim=True)
    return norm.weight * (a - mu) / torch.sqrt(var + 1e-5) + norm.bias


def _ln_lstm_step(cell, x, h, c):
    """Ba et al.'s LN-LSTM, one line per equation."""
    a = _ln(x @ cell.weight_ih.T, cell.ln_ih) + _ln(h @ cell.weight_hh.T, cell.ln_hh)
    a = a + cell.bias_ih + cell.bias_hh
    ai, af, ag, ao = a.chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(ai), torch.sigmoid(af), torch.tanh(ag), torch.sigmoid(ao)
    c = f * c + i * g
    h = o * torch.tanh(_ln(c, cell.ln_c))
    return h, c


def _ln_gru_step(cell, x, h):
    ax = _ln(x @ cell.weight_ih.T, cell.ln_ih) + cell.bias_ih
    ah = _ln(h @ cell.weight_hh.T, cell.ln_hh) + cell.bias_hh
    (xr, xz, xn), (hr, hz, hn) = ax.chunk(3, dim=1), ah.chunk(3, dim=1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h


@pytest.mark.parametrize("base", ["lstm", "gru"])
def test_layer_norm_cell_equals_the_step_by_hand(base):
    torch.manual_seed(0)
    cell = CLASSES[base](I, H, layer_norm=True, dtype=F64).train()
    _perturb_norms(cell)
    x, h, c = (torch.randn(B, n, dtype=F64) for n in (I, H, H))
    if base == "lstm":
        got, want = cell(x, (h, c))[1], _ln_lstm_step(cell, x, h, c)
    else:
        got, want = (cell(x, h)[1],), (_ln_gru_step(cell, x, h),)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_layer_norm_layer_equals_the_step_by_hand_over_time():
    torch.manual_seed(0)
    layer = _layer("lstm-ln", layers=1, bidirectional=False)
    _perturb_norms(layer)
    x = torch.randn(B, 6, I, dtype=F64)
    out, (hn, cn) = layer(x)
    h = c = torch.zeros(B, H, dtype=F64)
    for t in range(6):
        h, c = _ln_lstm_step(layer.cells[0], x[:, t], h, c)
        torch.testing.assert_close(out[:, t], h, rtol=0, atol=1e-12)
    torch.testing.assert_close(hn[0], h, rtol=0, atol=1e-12)
    torch.testing.assert_close(cn[0], c, rtol=0, atol=1e-12)


# ---- the masks: per sequence, per call, per step ----------------------------------------


def _grads(layer, x):
    out, _ = layer(x)
    out.pow(2).sum().backward()
    return layer.weight_ih_l0.grad, layer.weight_hh_l0.grad


@pytest.mark.parametrize("base", ["lstm", "gru"])
def test_variational_masks_are_shared_by_every_step(base):
    """With one sequence (B = 1), a unit of x or h dropped at every step leaves its column
    of W_ih or W_hh without gradient; masks drawn per step would almost never do that."""
    torch.manual_seed(0)
    rates = {"input_dropout": 0.5, "recurrent_dropout": 0.5}
    layer = rk.Recurrent(CLASSES[base](16, 32, **rates, dtype=F64), batch_first=True).train()
    d_ih, d_hh = _grads(layer, torch.randn(1, 12, 16, dtype=F64))
    for grad in (d_ih, d_hh):
        dead = (grad == 0).all(dim=0)  # columns without gradient: the dropped units
        assert ((grad == 0) == dead.expand_as(grad)).all()  # nothing else is zero
        assert 0.2 < dead.double().mean() < 0.8


@pytest.mark.parametrize("base", ["lstm", "gru"])
def test_weight_drop_is_one_mask_on_w_hh_per_call(base):
    torch.manual_seed(0)
    layer = rk.Recurrent(CLASSES[base](6, 16, weight_drop=0.5, dtype=F64), batch_first=True)
    _, d_hh = _grads(layer.train(), torch.randn(4, 10, 6, dtype=F64))
    zero = (d_hh == 0).double().mean()
    assert 0.35 < zero < 0.65  # the dropped entries, the same at all 10 steps and 4 rows
    assert not (d_hh == 0).all(dim=0).any()  # entries, not whole units
    layer.zero_grad()
    _, again = _grads(layer, torch.randn(4, 10, 6, dtype=F64))
    assert not torch.equal(again == 0, d_hh == 0)  # a new mask at the next call


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("base", ["lstm", "gru"])
def test_weight_drop_runs_the_compiled_kernel_with_the_steps_numbers(base, padded):
    """A weight-dropped call is the plain recurrence with W~_hh = W_hh ⊙ M: the compiled
    kernel runs it (hand-written BPTT) and equals the cell stepped with autograd, outputs and
    gradients, with the same mask (float64 to 1e-10)."""
    from rnnkit import unroll

    layer = _layer(f"{base}-weightdrop", weight_drop=0.4).train()
    assert all(unroll.kernel_base(c) is not None for c in layer.cells)
    x = torch.randn(3, 7, I, dtype=F64, requires_grad=True)
    lengths = torch.tensor([7, 4, 2]) if padded else None
    runs = []
    for kernels in (True, False):
        torch.manual_seed(1)  # the same masks
        layer.zero_grad()
        x.grad = None
        hx = layer._prepare(x, None, lengths)[1]
        out, _ = layer._loop(x.transpose(0, 1), hx, lengths, traces=None, kernels=kernels)
        out.pow(2).sum().backward()
        runs.append([out, x.grad, *(p.grad for p in layer.parameters())])
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    spy = {}
    original = unroll._run_kernel
    unroll._run_kernel = lambda *a: spy.setdefault("base", a[0]) and original(*a)
    try:
        layer(x.detach(), lengths=lengths)
    finally:
        unroll._run_kernel = original
    assert spy["base"] is CLASSES[base].__mro__[2]  # the plain cell's kernel ran


@pytest.mark.parametrize("kind", ["lstm-ln", "lstm-variational", "gru-zoneout"])
def test_cells_beyond_the_plain_recurrence_are_stepped(kind):
    from rnnkit import unroll

    layer = _layer(kind, **NONZERO[kind]).train()
    assert all(unroll.kernel_base(c) is None for c in layer.cells)
    # in evaluation variational dropout is the plain recurrence; layer norm and zoneout are not
    assert all(
        (unroll.kernel_base(c) is None) != (kind == "lstm-variational") for c in layer.eval().cells
    )


@pytest.mark.parametrize("base", ["lstm", "gru"])
def test_zoneout_draws_a_mask_at_every_step(base):
    torch.manual_seed(0)
    layer = rk.Recurrent(CLASSES[base](3, 64, zoneout=0.5, dtype=F64), batch_first=True)
    with torch.no_grad():
        hidden = layer.train().trace(torch.randn(4, 8, 3, dtype=F64)).hidden[0]
    kept = [hidden[t] == hidden[t - 1] for t in range(1, 8)]  # units that kept their value
    assert all(0.35 < k.double().mean() < 0.65 for k in kept)
    assert not torch.equal(kept[0], kept[1])


def test_zoneout_in_evaluation_is_the_expectation():
    torch.manual_seed(0)
    cell = RegularizedLSTMCell(I, H, zoneout=0.3, zoneout_cell=0.6, dtype=F64).eval()
    plain = rk.LSTMCell(I, H, dtype=F64)
    plain.load_state_dict(cell.state_dict())
    x, h0, c0 = (torch.randn(B, n, dtype=F64) for n in (I, H, H))
    h_new, (_, c_new) = plain(x, (h0, c0))
    h, (_, c) = cell(x, (h0, c0))
    torch.testing.assert_close(c, 0.6 * c0 + 0.4 * c_new, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, 0.3 * h0 + 0.7 * h_new, rtol=0, atol=1e-12)


# ---- evaluation, padding, stacks, one step ----------------------------------------------


@pytest.mark.parametrize("kind", list(NONZERO))
def test_evaluation_is_deterministic_and_training_is_not(kind):
    torch.manual_seed(0)
    layer = _layer(kind, **NONZERO[kind])
    x = torch.randn(3, 6, I, dtype=F64)
    layer.eval()
    assert torch.equal(layer(x)[0], layer(x)[0])
    if kind.endswith("-ln"):
        return
    layer.train()
    assert not torch.equal(layer(x)[0], layer(x)[0])
    with torch.no_grad():
        layer.eval()
        plain = _layer(kind, **dict.fromkeys(NONZERO[kind], 0.0)).eval()
        plain.load_state_dict(layer.state_dict())
        same = torch.equal(layer(x)[0], plain(x)[0])
    assert same != kind.endswith("zoneout")  # dropout: the plain weights in evaluation


@pytest.mark.parametrize("kind", list(NONZERO))
def test_a_padded_batch_equals_each_row_alone(kind):
    torch.manual_seed(0)
    layer = _layer(kind, **NONZERO[kind]).eval()
    _perturb_norms(layer)
    x = torch.randn(3, 5, I, dtype=F64)
    lengths = torch.tensor([2, 5, 3])
    out, state = layer(x, lengths=lengths)
    parts = state if isinstance(state, tuple) else (state,)
    for b, n in enumerate(lengths.tolist()):
        alone, s = layer(x[b : b + 1, :n])
        torch.testing.assert_close(out[b, :n], alone[0], rtol=0, atol=1e-12)
        assert not out[b, n:].any()
        for p, q in zip(parts, s if isinstance(s, tuple) else (s,), strict=True):
            torch.testing.assert_close(p[:, b], q[:, 0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm-ln", "gru-zoneout", "lstm-zoneout"])
def test_one_step_equals_forward_in_evaluation(kind):
    torch.manual_seed(0)
    layer = _layer(kind, bidirectional=False, **NONZERO[kind]).eval()
    x = torch.randn(B, 1, I, dtype=F64)
    out, state = layer(x)
    h, new = layer.step(x[:, 0])
    torch.testing.assert_close(h, out[:, 0], rtol=0, atol=1e-12)
    for a, b in zip(
        new if isinstance(new, tuple) else (new,),
        state if isinstance(state, tuple) else (state,),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_state_dict_clone_and_copy_keep_the_cell():
    torch.manual_seed(0)
    layer = _layer("lstm-ln")
    _perturb_norms(layer)
    assert "ln_c.weight_l1_reverse" in layer.state_dict()
    twin = _layer("lstm-ln")
    twin.load_state_dict(layer.state_dict())
    x = torch.randn(B, 4, I, dtype=F64)
    torch.testing.assert_close(twin(x)[0], layer(x)[0], rtol=0, atol=0)
    cell = RegularizedGRUCell(I, H, **ALL_ON["gru"])
    assert cell.clone(input_size=7).get_config() == {**cell.get_config(), "input_size": 7}
    drop = _layer("lstm-weightdrop", **NONZERO["lstm-weightdrop"]).train()
    drop(x)  # leaves this call's dropped W_hh behind
    copied = copy.deepcopy(drop)
    assert copied.cells[0].__dict__["_noise"] is None


# ---- configuration ----------------------------------------------------------------------


def test_a_rate_the_kind_does_not_read_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"zoneout=0.1 applies to cell='lstm-zoneout' or"):
        RecurrentConfig(cell="lstm", zoneout=0.1)
    with pytest.raises(ValueError, match=r"zoneout_cell=0.2 applies to cell='lstm-zoneout', not"):
        RecurrentConfig(cell="gru-zoneout", zoneout_cell=0.2)
    with pytest.raises(ValueError, match=r"weight_drop=0.3 .*not to 'lstm-ln'"):
        RecurrentConfig(cell="lstm-ln", weight_drop=0.3)
    with pytest.raises(ValueError, match=r"recurrent_dropout must be in \[0, 1\), got 1.0"):
        RecurrentConfig(cell="gru-variational", recurrent_dropout=1.0)
    with pytest.raises(ValueError, match="zoneout_cell: this cell kind reads zoneout; remove"):
        REGULARIZED_KINDS["gru-zoneout"](I, H, zoneout_cell=0.1)
    with pytest.raises(ValueError, match=r"weight_drop: expected a number in \[0, 1\), got 1"):
        RegularizedLSTMCell(I, H, weight_drop=1)
    with pytest.raises(
        ConfigError, match=r"model.weight_drop=0.3 applies to cell='lstm-weightdrop'"
    ):
        run.load_run_config("adding", overrides=['model.cell="lstm-ln"', "model.weight_drop=0.3"])
    ok = run.load_run_config("adding", overrides=['model.cell="lstm-zoneout"', "model.zoneout=0.2"])
    assert ok.model == {"cell": "lstm-zoneout", "zoneout": 0.2}


def test_a_model_with_a_regularised_cell_trains_a_step():
    from rnnkit.data.synthetic import adding_problem

    torch.manual_seed(0)
    cfg = RecurrentModelConfig(cell="gru-zoneout", input_size=2, hidden_size=8, zoneout=0.2)
    model = RecurrentModel(cfg)
    loss, _ = model.loss(adding_problem(4, 6, seed=0))
    loss.backward()
    assert model.rnn.weight_hh_l0.grad is not None and model.rnn.cells[0].zoneout == 0.2
    again = RecurrentModel.from_config(model.get_config())
    again.load_state_dict(model.state_dict())


# ---- locked and embedding dropout -------------------------------------------------------


@pytest.mark.parametrize("batch_first", [True, False])
def test_locked_dropout_shares_one_mask_over_time(batch_first):
    torch.manual_seed(0)
    drop = LockedDropout(0.5, batch_first=batch_first)
    x = torch.randn(4, 7, 16, dtype=F64, requires_grad=True)
    y = drop(x)
    zero = y == 0
    time = 1 if batch_first else 0
    assert (zero == zero.select(time, 0).unsqueeze(time)).all()  # the same units at every step
    assert 0.3 < zero.double().mean() < 0.7
    torch.testing.assert_close(y[~zero], 2 * x[~zero])
    small = x[:2, :3, :4].detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: (torch.manual_seed(1), drop(x))[1], (small,))
    assert drop.eval()(x) is x and LockedDropout(0.0).train()(x) is x
    with pytest.raises(ValueError, match=r"p: expected a number in \[0, 1\), got 1"):
        LockedDropout(1)


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    embed = EmbeddingDropout(20, 6, p=0.5, dtype=F64)
    ids = torch.randint(0, 20, (8, 30))
    e = embed(ids)
    dropped = (e == 0).all(-1)  # (8, 30) positions whose word was dropped
    for word in ids.unique():
        at = ids == word
        assert dropped[at].all() or not dropped[at].any()  # everywhere or nowhere
    assert 0.2 < dropped.double().mean() < 0.8
    kept = ~dropped
    torch.testing.assert_close(e[kept], 2 * embed.weight[ids[kept]])
    embed.eval()
    torch.testing.assert_close(embed(ids), embed.weight[ids], rtol=0, atol=0)
    plain = nn.Embedding(20, 6, dtype=F64)
    plain.load_state_dict(embed.state_dict())  # nn.Embedding's parameters
    zero = EmbeddingDropout(20, 6, p=0.0, dtype=F64).train()
    zero.load_state_dict(plain.state_dict())
    torch.testing.assert_close(zero(ids), plain(ids), rtol=0, atol=0)
    w = embed.weight.detach().clone().requires_grad_()

    def of_weight(w):
        torch.manual_seed(2)
        return torch.func.functional_call(embed.train(), {"weight": w}, (ids[:2, :5],))

    assert torch.autograd.gradcheck(of_weight, (w,))
