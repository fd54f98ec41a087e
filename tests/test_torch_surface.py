"""torch.nn's own RNN tests, adapted to rnnkit's layers and cells (written from what
PyTorch's test/test_nn.py asserts; each test names its upstream test), and the rest of
torch.nn's module surface: constructor type checks, factory arguments, error classes.

Deliberate differences from torch.nn, each asserted here:
* messages name the argument (``state: expected ...``), not torch's wording;
* ``rk.RNN``/``rk.GRU`` have no ``proj_size`` argument: passing one is Python's TypeError,
  where torch.nn raises ValueError;
* ``bidirectional``, and a cell's ``bias``, must be bools (torch.nn accepts any value);
* cells refuse ``hidden_size=0`` (torch.nn's cells accept it);
* a cell returns ``(h_t, state_t)``, rnnkit's one-step contract, where torch.nn's return
  ``h_t`` or ``(h_t, c_t)``.
"""

import io
import warnings

import pytest
import torch
from torch import nn

import rnnkit as rk
from rnnkit.errors import DTypeError, ShapeError

MODES = {"RNN": rk.RNN, "GRU": rk.GRU, "LSTM": rk.LSTM}
BACKENDS = ("auto", "loop", "torch")


def _with(shape, dim, size):
    return tuple(size if i == dim else n for i, n in enumerate(shape))


# -- shapes and dtypes of the arguments (test_rnn_args_check and its kin) ---------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("tensor", "dim"),
    [("input", 1), ("hidden", 1), ("input", 2), ("hidden", 2), ("hidden", 0)],
    ids=["input batch", "hidden batch", "input size", "hidden size", "hidden layers"],
)
def test_rnn_args_check(mode, tensor, dim):
    """test_rnn_args_check: every wrong size raises RuntimeError (and ValueError)."""
    x_shape, h_shape = (6, 4, 3), (2, 4, 5)
    if tensor == "input":
        x_shape = _with(x_shape, dim, 7)
    else:
        h_shape = _with(h_shape, dim, 7)
    x, bad, good = torch.randn(x_shape), torch.randn(h_shape), torch.randn(2, 4, 5)
    model = MODES[mode](3, 5, 2)
    states = [(bad, good), (good, bad)] if mode == "LSTM" else [bad]
    for state in states:
        for caught in (RuntimeError, ValueError):
            with pytest.raises(caught, match=r"^(input|state): expected"):
                model(x, state)


@pytest.mark.parametrize(
    ("x_shape", "h_shape", "c_shape"),
    [
        ((6, 7, 3), (2, 4, 2), (2, 4, 5)),  # input batch
        ((6, 4, 3), (2, 7, 2), (2, 7, 5)),  # hidden batch
        ((6, 4, 7), (2, 4, 2), (2, 4, 5)),  # input size
        ((6, 4, 3), (2, 4, 7), (2, 4, 7)),  # hidden size
        ((6, 4, 3), (7, 4, 2), (7, 4, 5)),  # hidden layers
        ((6, 4, 3), (2, 4, 5), (2, 4, 5)),  # h of the cell's size, not proj_size
        ((6, 4, 3), (2, 4, 2), (2, 4, 2)),  # c of proj_size, not the cell's size
    ],
)
def test_projections_lstm_args_check(x_shape, h_shape, c_shape):
    """test_projections_lstm_args_check."""
    model = rk.LSTM(3, 5, 2, proj_size=2)
    with pytest.raises(RuntimeError, match=r"^(input|state): expected"):
        model(torch.randn(x_shape), (torch.randn(h_shape), torch.randn(c_shape)))


def test_cudnn_forward_exception():
    """test_cudnn_forward_exception: a wrong state or input size is a RuntimeError naming
    what it expected (torch's words are "Expected hidden size", "input.size(-1) must be")."""
    cases = [
        (rk.LSTM(10, 20, batch_first=True), (torch.zeros(1, 2, 19), torch.zeros(1, 2, 19))),
        (rk.LSTM(10, 20, batch_first=True, proj_size=10), (torch.zeros(1, 2, 19),) * 2),
        (rk.GRU(10, 20, batch_first=True), torch.zeros(1, 2, 19)),
        (rk.RNN(10, 20, batch_first=True), torch.zeros(1, 2, 19)),
    ]
    for rnn, hidden in cases:
        with pytest.raises(RuntimeError, match=r"^state: expected .* of shape .*, got"):
            rnn(torch.randn(2, 3, 10), hidden)
        with pytest.raises(RuntimeError, match=r"^input: expected last dimension input_size=10"):
            rnn(torch.randn(2, 3, 3))


@pytest.mark.parametrize("mode", MODES)
def test_error_RNN_seq_len_zero(mode):
    """test_error_RNN_seq_len_zero: an empty sequence is a RuntimeError."""
    for bidirectional in (True, False):
        with pytest.raises(RuntimeError, match="input: expected at least one time step, got 0"):
            MODES[mode](5, 6, bidirectional=bidirectional)(torch.ones(0, 10, 5))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_RNN_input_size_zero(mode, backend):
    """test_RNN_input_size_zero: a batch of none runs forward and backward."""
    x = torch.zeros(5, 0, 3, requires_grad=True)
    out = MODES[mode](3, 4, backend=backend)(x)[0]
    assert out.shape == (5, 0, 4)
    out.sum().backward()
    # with (empty) lengths too: nothing to mask, nothing read
    layer = MODES[mode](3, 4, backend=backend, batch_first=True, bidirectional=True)
    out, _ = layer(torch.zeros(0, 5, 3), lengths=torch.zeros(0, dtype=torch.long))
    assert out.shape == (0, 5, 8)


def test_error_classes_are_caught_as_torch_nn_and_python_errors():
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, RuntimeError)
    assert all(issubclass(DTypeError, e) for e in (TypeError, ValueError, RuntimeError))
    lstm = rk.LSTM(4, 6)
    with pytest.raises(DTypeError, match=r"^input: expected dtype torch.float32 \(the weights'\)"):
        lstm(torch.randn(5, 3, 4, dtype=torch.float64))  # torch.nn: ValueError
    h = torch.zeros(1, 3, 6)
    with pytest.raises(DTypeError, match=r"^state: expected dtype torch.float32 \(the input's\)"):
        lstm(torch.randn(5, 3, 4), (h.double(), h))
    with pytest.raises(DTypeError, match=r"^lengths: expected an integer tensor"):
        lstm(torch.randn(5, 3, 4), lengths=torch.ones(3))
    with pytest.raises(DTypeError, match=r"^x: expected dtype torch.float32"):
        rk.GRUCell(4, 6)(torch.randn(3, 4, dtype=torch.float64))
    with pytest.raises(ShapeError, match=r"^x: expected \(batch, input_size=4\)"):
        lstm.step(torch.randn(3, 5))


# -- constructor arguments as torch.nn's -------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_first": "False"}, TypeError, r"^batch_first: expected a bool, got 'False'"),
        ({"bias": 0}, TypeError, r"^bias: expected a bool, got 0 \(int\)"),
        ({"bias": 1}, TypeError, r"^bias: expected a bool"),
        ({"bias": "True"}, TypeError, r"^bias: expected a bool"),
        ({"bidirectional": "yes"}, TypeError, r"^bidirectional: expected a bool"),
        ({"input_size": 4.0}, TypeError, r"^input_size: expected an integer, got 4.0"),
        ({"hidden_size": "8"}, TypeError, r"^hidden_size: expected an integer"),
        ({"num_layers": 1.5}, TypeError, r"^num_layers: expected an integer"),
        ({"num_layers": 0}, ValueError, r"^num_layers: expected a positive integer, got 0"),
        ({"dropout": 1.1}, ValueError, r"^dropout: expected a number in \[0, 1\], got 1.1"),
        ({"dropout": -0.1}, ValueError, r"^dropout: expected a number in \[0, 1\]"),
        ({"dropout": True}, ValueError, r"^dropout: expected a number in \[0, 1\]"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_argument_types_are_checked_as_torch_nn(mode, kwargs, error, match):
    args = {"input_size": 4, "hidden_size": 8, **kwargs}
    with pytest.raises(error, match=match):
        MODES[mode](**args)


def test_dropout_in_closed_unit_interval_and_warns_as_torch_nn():
    for p in (0, 0.5, 1, 1.0):
        assert rk.GRU(4, 8, num_layers=2, dropout=p).dropout == float(p)
    with pytest.warns(UserWarning, match="dropout=0.5 acts between stacked layers only"):
        rk.LSTM(4, 8, dropout=0.5)


def test_RNN_nonlinearity():
    """test_RNN_nonlinearity and test_RNN_nonlinearity_passed_as_arg."""
    assert rk.RNN(1, 10).nonlinearity == "tanh" and rk.RNN(1, 10).mode == "RNN_TANH"
    assert rk.RNN(1, 10, nonlinearity="relu").nonlinearity == "relu"
    assert rk.RNN(2, 3, 1, "relu").nonlinearity == "relu"
    with pytest.raises(ValueError, match=r"^nonlinearity: expected 'tanh' or 'relu'"):
        rk.RNN(1, 10, nonlinearity="garbage")


@pytest.mark.parametrize("mode", ["RNN", "GRU"])
def test_projections_errors_on_gru_and_rnn(mode):
    """test_projections_errors_on_gru_and_rnn (deliberate difference: TypeError)."""
    with pytest.raises(TypeError, match="proj_size"):
        MODES[mode](30, 20, 2, proj_size=10)


@pytest.mark.parametrize("mode", MODES)
def test_factory_kwargs_and_deferred_init(mode):
    """device= and dtype= create the weights there; a layer made on "meta" gets real
    weights from to_empty() and reset_parameters(), torch.nn's deferred initialisation."""
    layer = MODES[mode](3, 4, 2, bidirectional=True, dtype=torch.float64)
    assert {p.dtype for p in layer.parameters()} == {torch.float64}
    layer(torch.randn(5, 2, 3, dtype=torch.float64))
    meta = MODES[mode](3, 4, 2, bidirectional=True, device="meta")
    assert {p.device.type for p in meta.parameters()} == {"meta"}
    meta.to_empty(device="cpu")
    meta.reset_parameters()
    assert all(p.abs().max() <= 0.5 for p in meta.parameters())  # 1/sqrt(H)
    assert meta(torch.randn(5, 2, 3))[0].isfinite().all()
    cell = rk.GRUCell(3, 4, dtype=torch.float64)
    stacked = rk.Recurrent(cell, num_layers=2)
    assert {p.dtype for p in stacked.parameters()} == {torch.float64}


@pytest.mark.parametrize("future", ["overwrite", "swap"])
def test_module_conversion_keeps_cells_on_the_layers_weights(future):
    """Module.to() under torch's conversion modes (new parameter objects, or swapped ones)."""
    setter = getattr(torch.__future__, f"set_{future}_module_params_on_conversion")
    getter = getattr(torch.__future__, f"get_{future}_module_params_on_conversion")
    before = getter()
    setter(True)
    try:
        layer = rk.LSTM(3, 4, 2).double()
        assert layer.cells[1].weight_hh is layer.weight_hh_l1
        assert layer.weight_hh_l1.dtype == torch.float64
        layer.load_state_dict(layer.state_dict())  # (torch.nn.LSTM's weakrefs refuse a swap)
    finally:
        setter(before)
    ref = nn.LSTM(3, 4, 2).double()
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(layer(x), ref(x), rtol=0, atol=1e-12)


# -- the layer's behaviour ---------------------------------------------------------------------
@pytest.mark.parametrize("proj_size", [0, 10])
@pytest.mark.parametrize("mode", MODES)
def test_rnn_initial_hidden_state(mode, proj_size):
    """test_rnn_initial_hidden_state and test_projections_lstm_initial_hidden_state."""
    if proj_size and mode != "LSTM":
        pytest.skip("projections are the LSTM's")
    for bidirectional in (False, True):
        extra = {"proj_size": proj_size} if proj_size else {}
        rnn = MODES[mode](30, 20, 2, bidirectional=bidirectional, **extra)
        d = 2 if bidirectional else 1
        h0 = torch.zeros(2 * d, 32, proj_size or 20)
        hidden = (h0, torch.zeros(2 * d, 32, 20)) if mode == "LSTM" else h0
        x = torch.randn(10, 32, 30)
        torch.testing.assert_close(rnn(x, hidden), rnn(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_RNN_dropout(backend):
    """test_RNN_dropout: dropout between layers, scaled by 1/(1-p), none in eval."""
    for p in (0, 0.276, 0.731, 1):
        for train in (True, False):
            rnn = rk.RNN(10, 1000, 2, bias=False, dropout=p, nonlinearity="relu", backend=backend)
            rnn.double().train(train)
            with torch.no_grad():
                for name in ("weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"):
                    getattr(rnn, name).data.fill_(1)
            x = torch.ones(1, 1, 10, dtype=torch.float64)
            output, hy = rnn(x, torch.zeros(2, 1, 1000, dtype=torch.float64))
            assert output.min() == output.max()
            value = output[0, 0, 0].item()
            if p == 0 or not train:
                assert value == 10000
            elif p == 1:
                assert value == 0
            else:
                assert 8000 < value < 12000
                kept = value * (1 - p) % 10  # 10 per kept unit
                assert min(kept, 10 - kept) < 1e-2
            assert hy[0].min() == hy[0].max() and hy[1].min() == hy[1].max()
            assert hy[0, 0, 0] == 10 and hy[1, 0, 0] == value


def test_RNN_dropout_state():
    """test_RNN_dropout_state: results survive torch.save/torch.load + flatten_parameters."""
    for p in (0, 0.1234):
        for train in (True, False):
            rnn = rk.RNN(100, 100, 2, bias=False, dropout=p, nonlinearity="relu").train(train)
            x, hx = torch.rand(1, 1, 100), torch.rand(2, 1, 100)
            (out1, hy1), (out2, hy2) = rnn(x, hx), rnn(x, hx)
            buffer = io.BytesIO()
            torch.save(rnn, buffer)
            buffer.seek(0)
            rnn2 = torch.load(buffer, weights_only=False)
            rnn2.flatten_parameters()
            out3, hy3 = rnn2(x, hx)
            same = p == 0 or not train
            for a, b in ((out1, out2), (out1, out3), (hy1, hy2), (hy1, hy3)):
                assert torch.equal(a, b) == same


def test_RNN_change_dropout():
    """test_RNN_change_dropout: ``rnn.dropout = p`` between calls takes effect."""
    for train in (True, False):
        rnn = rk.RNN(100, 100, 2, dropout=0, nonlinearity="relu").double().train(train)
        x = torch.rand(3, 2, 100, dtype=torch.float64)
        previous = None
        for p in (0, 0.5, 0, 0.7, 0.2, 1, 0.2, 0):
            rnn.dropout = p
            (out1, hy1), (out2, hy2) = rnn(x), rnn(x)
            deterministic = p in (0, 1) or not train
            assert torch.equal(out1, out2) == deterministic
            assert torch.equal(hy1, hy2) == deterministic
            if previous is not None:
                assert torch.equal(out1, previous) == (not train)
                assert torch.equal(out2, previous) == (not train)
            previous = out1


def test_partial_flat_weights():
    """test_partial_flat_weights: a deleted weight, a conversion, the weight set back."""
    m = rk.LSTM(10, 6, 2)
    x = torch.randn(3, 2, 10)
    expected = m(x)[0]
    weight = m.weight_hh_l0
    del m.weight_hh_l0
    assert not hasattr(m, "weight_hh_l0") and m._flat_weights[1] is None
    m.double()
    m.weight_hh_l0 = weight.detach().double()  # a plain tensor, as torch.nn allows
    torch.testing.assert_close(m(x.double())[0], expected.double(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("proj", [False, True])
def test_rnn_weight_norm(proj):
    """test_rnn_weight_norm: weight_norm by torch.nn's name and its removal."""
    layer = rk.LSTM(32, 32, proj_size=16 if proj else 0)
    name, count = ("weight_hr_l0", 5) if proj else ("weight_ih_l0", 4)
    with pytest.warns(FutureWarning):
        layer = nn.utils.weight_norm(layer, name=name)
    assert sum(isinstance(p, nn.Parameter) for p in layer._flat_weights) == count - 1
    layer = nn.utils.remove_weight_norm(layer, name=name)
    assert sum(isinstance(p, nn.Parameter) for p in layer._flat_weights) == count
    assert layer._parameters[name] is not None and name + "_g" not in layer._parameters
    params = dict(layer.named_parameters())
    assert name in params and name + "_v" not in params


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_rnn_retain_variables(mode, backend):
    """test_rnn_retain_variables: backward through one graph several times, equal grads."""
    rnn = MODES[mode](10, 20, num_layers=2, backend=backend).double()
    x = torch.randn(5, 6, 10, dtype=torch.float64, requires_grad=True)
    output = rnn(x)[0]
    output.sum().backward(retain_graph=True)
    grads = [x.grad.clone()] + [p.grad.clone() for p in rnn.parameters()]
    for _ in range(3):
        rnn.zero_grad()
        x.grad.zero_()
        output.sum().backward(retain_graph=True)
        torch.testing.assert_close([x.grad] + [p.grad for p in rnn.parameters()], grads)


# -- cells -------------------------------------------------------------------------------------
CELLS = {
    "rnn": (rk.ElmanCell, nn.RNNCell),
    "gru": (rk.GRUCell, nn.GRUCell),
    "lstm": (rk.LSTMCell, nn.LSTMCell),
}


@pytest.mark.parametrize("kind", CELLS)
def test_RNN_cell(kind):
    """test_RNN_cell and test_LSTM_cell: six steps and a backward, with and without bias."""
    for bias in (True, False):
        cell = CELLS[kind][0](10, 20, bias=bias)
        x = torch.randn(3, 10)
        state = cell.init_state(3)
        for _ in range(6):
            _, state = cell(x, state)
        sum(s.sum() for s in (state if isinstance(state, tuple) else (state,))).backward()


@pytest.mark.parametrize("kind", CELLS)
def test_RNN_cell_no_broadcasting(kind):
    """test_RNN_cell_no_broadcasting, test_LSTM_cell_forward_input_size and _hidden_size:
    a batch, hidden or input size of 1 raises instead of broadcasting."""
    cell = CELLS[kind][0](10, 20)
    x, good = torch.randn(3, 10), torch.randn(3, 20)
    for bad_x, bad_h in (
        (x, torch.randn(1, 20)),
        (x, torch.randn(3, 1)),
        (torch.randn(3, 1), good),
    ):
        states = [(bad_h, good), (good, bad_h)] if kind == "lstm" else [bad_h]
        for state in states:
            with pytest.raises(RuntimeError, match=r"^(x|state): expected"):
                cell(bad_x, state)
    with pytest.raises(ValueError, match=r"^x: expected"):
        cell(torch.randn(3, 11), (good, good) if kind == "lstm" else good)


@pytest.mark.parametrize("kind", CELLS)
def test_unbatched_cell_equals_torch_nn(kind):
    torch.manual_seed(0)
    ours_cls, ref_cls = CELLS[kind]
    cell, ref = ours_cls(4, 5).double(), ref_cls(4, 5).double()
    ref.load_state_dict(cell.state_dict())
    x = torch.randn(4, dtype=torch.float64)
    for state in (None, cell.init_state(1, dtype=torch.float64)):
        if state is not None:  # an unbatched state: (H,) tensors
            state = tuple(s[0] + 1 for s in state) if kind == "lstm" else state[0] + 1
        h, new = cell(x, state)
        want = ref(x, state)
        assert h.shape == (5,)
        torch.testing.assert_close(new, want, rtol=0, atol=1e-12)
    with pytest.raises(RuntimeError, match=r"^state: expected"):
        cell(x, cell.init_state(1, dtype=torch.float64))  # a batched state for an unbatched x


def test_lstmcell_backward_only_one_output_grad():
    """test_lstmcell_backward_only_one_output_grad."""
    cell = rk.LSTMCell(2, 3).double()
    s = torch.randn(1, 2, dtype=torch.float64, requires_grad=True)
    for i in range(2):
        cell(s)[1][i].sum().backward()
        assert s.grad is not None and s.grad.abs().sum() > 0


def test_RNN_cell_forward_zero_hidden_size():
    """test_RNN_cell_forward_zero_hidden_size (deliberate difference: refused)."""
    for make in (lambda: rk.ElmanCell(10, 0), lambda: rk.GRUCell(10, 0)):
        with pytest.raises(ValueError, match=r"^hidden_size: expected a positive integer"):
            make()
    with pytest.raises(TypeError, match=r"^bias: expected a bool"):
        rk.LSTMCell(10, 20, bias=1)


# -- one weight buffer for cuDNN (flatten_parameters) -------------------------------------------
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
FLAT_CASES = {
    "lstm": (rk.LSTM, nn.LSTM, {}),
    "lstm-proj": (rk.LSTM, nn.LSTM, {"proj_size": 3}),
    "gru": (rk.GRU, nn.GRU, {}),
    "relu-nobias": (rk.RNN, nn.RNN, {"nonlinearity": "relu", "bias": False}),
}


def _storages(layer) -> set[int]:
    return {w.untyped_storage().data_ptr() for w in layer._flat_weights}


def test_flatten_parameters_is_a_no_op_on_the_cpu():
    """On the CPU each weight keeps its own storage through construction, moves and calls."""
    torch.manual_seed(0)
    layer = rk.LSTM(4, 5, num_layers=2, bidirectional=True)
    x = torch.randn(3, 2, 4)
    before = [w.detach().clone() for w in layer._flat_weights]
    expected = layer(x)[0]
    layer.flatten_parameters()
    layer.double().float()
    assert len(_storages(layer)) == len(before)
    assert all(torch.equal(a, b) for a, b in zip(before, layer._flat_weights, strict=True))
    torch.testing.assert_close(layer(x)[0], expected, rtol=0, atol=0)


@needs_cuda
@pytest.mark.parametrize("case", FLAT_CASES)
def test_flat_weights_on_cuda_are_one_buffer_equal_to_torch_nn_through_training(case):
    """test_cudnn_weight_format: after .cuda() (and when built there) the weights are views of
    one buffer, cuDNN reads them without the "not part of single contiguous chunk" warning,
    and the layer equals torch.nn's in float64 through a forward, backward and Adam step."""
    ours_cls, theirs_cls, kw = FLAT_CASES[case]
    torch.manual_seed(0)
    ours = ours_cls(4, 6, num_layers=2, bidirectional=True, **kw)
    theirs = theirs_cls(4, 6, num_layers=2, bidirectional=True, **kw)
    theirs.load_state_dict(ours.state_dict())
    ours, theirs = ours.cuda().double(), theirs.cuda().double()
    assert len(_storages(ours)) == 1
    assert len(_storages(ours_cls(4, 6, num_layers=2, device="cuda", **kw))) == 1
    x = torch.randn(5, 3, 4, device="cuda", dtype=torch.float64)
    optims = [torch.optim.Adam(m.parameters(), lr=0.1) for m in (ours, theirs)]
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out_ours = ours(x)[0]
        assert not [w for w in caught if "contiguous chunk" in str(w.message)]
        out_theirs = theirs(x)[0]
        torch.testing.assert_close(out_ours, out_theirs)
        for out, opt in zip((out_ours, out_theirs), optims, strict=True):
            opt.zero_grad()
            out.square().sum().backward()
            opt.step()
    assert len(_storages(ours)) == 1
    expected = theirs.state_dict()
    assert ours.state_dict().keys() == expected.keys()
    for name, weight in ours.state_dict().items():
        torch.testing.assert_close(weight, expected[name], msg=name)
    back = ours_cls(4, 6, num_layers=2, bidirectional=True, **kw).double()
    back.load_state_dict({k: v.cpu() for k, v in ours.state_dict().items()})
    torch.testing.assert_close(back(x.cpu())[0], ours(x)[0].cpu())


@needs_cuda
def test_a_deep_copy_on_cuda_is_one_buffer_too():
    """As torch.nn's __setstate__: a deep copy (an EMA or best-model snapshot) is flat again."""
    import copy

    layer = rk.GRU(4, 6, num_layers=2, bidirectional=True).cuda()
    twin = copy.deepcopy(layer)
    assert len(_storages(twin)) == 1 and _storages(twin) != _storages(layer)
    x = torch.randn(5, 3, 4, device="cuda")
    torch.testing.assert_close(twin(x)[0], layer(x)[0], rtol=0, atol=0)


@needs_cuda
def test_reparametrised_or_tied_weights_stay_apart_on_cuda():
    """A parametrised weight or one tied to another is left alone (cuDNN copies, as torch.nn),
    and the layer still computes what the CPU does."""
    torch.manual_seed(0)
    layer = rk.LSTM(4, 4, num_layers=2).double()
    nn.utils.parametrize.register_parametrization(layer, "weight_hh_l0", nn.Identity())
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    expected = layer(x)[0]
    layer.cuda()
    torch.testing.assert_close(layer(x.cuda())[0].cpu(), expected)
    tied = rk.GRU(4, 4, num_layers=2).double()
    tied.weight_hh_l1 = tied.weight_hh_l0
    tied.cuda()
    assert tied.weight_hh_l1 is tied.weight_hh_l0
    assert tied.weight_hh_l0.data_ptr() == tied.weight_hh_l1.data_ptr()
    tied(x.cuda())
