"""Layer behaviour: padding, packed input, custom cells, tracing, state_dict, errors."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit as rk
from rnnkit.cells import CellBase

I, H = 4, 6


class MinimalCell(CellBase):
    """A user's own cell: h_t = tanh(U x_t) * (1 - a) + a * h_{t-1}, a learned scalar gate."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.U = nn.Linear(input_size, hidden_size)
        self.a = nn.Parameter(torch.tensor(0.3))

    def forward(self, x, state):
        h = torch.tanh(self.U(x)) * (1 - self.a) + self.a * state
        return h, h


def layers_under_test(bidirectional=False, num_layers=2):
    """Every kind of layer on both backends, plus a custom cell, in float64."""
    kw = {"num_layers": num_layers, "bidirectional": bidirectional, "batch_first": True}
    made = [
        cls(I, H, backend=be, **kw) for cls in (rk.RNN, rk.LSTM, rk.GRU) for be in ("loop", "torch")
    ]
    made.append(rk.Recurrent(MinimalCell(I, H), **kw))
    return [m.double() for m in made]


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_batch_equals_each_sequence_alone(bidirectional):
    torch.manual_seed(0)
    lengths = torch.tensor([2, 7, 4, 1, 7])
    x = torch.randn(5, 7, I, dtype=torch.float64)
    for layer in layers_under_test(bidirectional):
        out, state = layer(x, lengths=lengths)
        states = state if isinstance(state, tuple) else (state,)
        for b, n in enumerate(lengths.tolist()):
            alone, alone_state = layer(x[b : b + 1, :n])
            torch.testing.assert_close(out[b, :n], alone[0], rtol=0, atol=1e-12)
            assert (out[b, n:] == 0).all(), "padded positions must output zeros"
            alone_states = alone_state if isinstance(alone_state, tuple) else (alone_state,)
            for s, a in zip(states, alone_states, strict=True):
                torch.testing.assert_close(s[:, b], a[:, 0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_one_length_for_all_runs_the_steps_before_it(bidirectional, monkeypatch):
    """Lengths all equal to L < T (B = 1 with a length, say): the layer runs the first L
    steps without padding, the same results as with a length-sorted mask; zeros after L."""
    torch.manual_seed(2)
    x = torch.randn(3, 7, I, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 4, 4])
    ragged = torch.tensor([4, 4, 7])  # the mask path; row 2 differs, rows 0-1 compare
    for layer in layers_under_test(bidirectional):
        steps = []

        def spy(n, z, real=layer._use_fused, steps=steps):
            steps.append(z.shape[0])
            return real(n, z)

        monkeypatch.setattr(layer, "_use_fused", spy)
        out, state = layer(x, lengths=lengths)
        want, want_state = layer(x, lengths=ragged)
        assert steps == [4, 7]
        torch.testing.assert_close(out[:2], want[:2], rtol=0, atol=1e-12)
        assert out.shape == want.shape and (out[:, 4:] == 0).all()
        states = state if isinstance(state, tuple) else (state,)
        want_states = want_state if isinstance(want_state, tuple) else (want_state,)
        for s, w in zip(states, want_states, strict=True):
            torch.testing.assert_close(s[:, :2], w[:, :2], rtol=0, atol=1e-12)
        g = torch.autograd.grad(out[:2].sum(), x)[0]
        g_want = torch.autograd.grad(want[:2].sum(), x)[0]
        torch.testing.assert_close(g, g_want, rtol=0, atol=1e-12)


def test_padding_content_is_ignored():
    torch.manual_seed(1)
    lengths = torch.tensor([3, 5])
    x = torch.randn(2, 5, I, dtype=torch.float64)
    y = x.clone()
    y[0, 3:] = 1e6  # garbage in the padding
    for layer in layers_under_test(bidirectional=True):
        a, _ = layer(x, lengths=lengths)
        b, _ = layer(y, lengths=lengths)
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_lengths_on_any_device_and_dtype():
    layer = rk.GRU(I, H, batch_first=True)
    x = torch.randn(3, 4, I)
    a, _ = layer(x, lengths=torch.tensor([4, 2, 3], dtype=torch.int32))
    b, _ = layer(x, lengths=[4, 2, 3])
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", ["loop", "torch"])
def test_packed_sequence_drop_in(backend):
    torch.manual_seed(2)
    ref = nn.LSTM(I, H, num_layers=2, bidirectional=True).double()
    layer = rk.LSTM(I, H, num_layers=2, bidirectional=True, backend=backend).double()
    layer.load_state_dict(ref.state_dict())
    x = torch.randn(6, 4, I, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor([2, 6, 6, 3]), enforce_sorted=False)
    h0 = (torch.randn(4, 4, H, dtype=torch.float64), torch.randn(4, 4, H, dtype=torch.float64))
    out, (h, c) = layer(packed, h0)
    ref_out, (rh, rc) = ref(packed, h0)
    torch.testing.assert_close(out.data, ref_out.data, rtol=0, atol=1e-12)
    assert torch.equal(out.batch_sizes, ref_out.batch_sizes)
    assert torch.equal(out.sorted_indices, ref_out.sorted_indices)
    torch.testing.assert_close(h, rh, rtol=0, atol=1e-12)
    torch.testing.assert_close(c, rc, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", ["loop", "torch"])
def test_unbatched_input(backend):
    ref = nn.GRU(I, H, num_layers=2).double()
    layer = rk.GRU(I, H, num_layers=2, backend=backend).double()
    layer.load_state_dict(ref.state_dict())
    x, h0 = torch.randn(5, I, dtype=torch.float64), torch.randn(2, H, dtype=torch.float64)
    out, h = layer(x, h0)
    ref_out, rh = ref(x, h0)
    assert out.shape == (5, H) and h.shape == (2, H)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, rh, rtol=0, atol=1e-12)


def test_custom_cell_equals_stepping_by_hand():
    torch.manual_seed(3)
    layer = rk.Recurrent(MinimalCell(I, H), batch_first=True).double()
    assert layer.backend == "auto"
    x = torch.randn(2, 5, I, dtype=torch.float64)
    out, h = layer(x)
    cell, state, steps = layer.cells[0], torch.zeros(2, H, dtype=torch.float64), []
    for t in range(5):
        y, state = cell(x[:, t], state)
        steps.append(y)
    torch.testing.assert_close(out, torch.stack(steps, 1), rtol=0, atol=1e-14)
    torch.testing.assert_close(h[0], state, rtol=0, atol=1e-14)


def test_custom_cell_stacks_and_has_torch_style_keys():
    layer = rk.Recurrent(MinimalCell(I, H), num_layers=2, bidirectional=True)
    assert layer.cells[2].input_size == 2 * H
    keys = set(layer.state_dict())
    assert {"U.weight_l0", "a_l0_reverse", "U.bias_l1"} <= keys
    again = rk.Recurrent(MinimalCell(I, H), num_layers=2, bidirectional=True)
    again.load_state_dict(layer.state_dict())
    x = torch.randn(3, 2, I)
    torch.testing.assert_close(again(x)[0], layer(x)[0])


def test_recurrent_of_builtin_cell_equals_named_layer():
    lstm = rk.LSTM(I, H, num_layers=2)
    generic = rk.Recurrent(rk.LSTMCell(I, H), num_layers=2)
    generic.load_state_dict(lstm.state_dict())
    assert generic._use_fused(), "auto must pick torch's kernel for built-in cells"
    x = torch.randn(4, 3, I)
    torch.testing.assert_close(generic(x)[0], lstm(x)[0])


def test_auto_takes_the_loop_kernels_for_training_on_padded_batches():
    layer = rk.LSTM(I, H)
    x, lengths = torch.randn(5, 3, I), torch.tensor([5, 2, 4])
    assert layer._use_fused(None, torch.randn(5, 8, I))  # unpadded training, B = 8: oneDNN's
    assert not layer._use_fused(lengths, x)  # training: the loop's kernels skip padding
    with torch.no_grad():
        assert layer._use_fused(lengths, x)  # inference at B = 3: torch's packed kernel
    assert not rk.LSTM(I, H, backend="loop")._use_fused(None, x)
    assert rk.LSTM(I, H, backend="torch")._use_fused(lengths, x)


def test_auto_takes_the_compiled_loop_for_inference_on_padded_batches(monkeypatch):
    from rnnkit.kernels import ext

    layer = rk.LSTM(I, H, bidirectional=True)
    reference = rk.LSTM(I, H, bidirectional=True, backend="torch")
    reference.load_state_dict(layer.state_dict())
    x, lengths = torch.randn(6, 8, I), torch.tensor([6, 2, 5, 1, 6, 3, 4, 6])
    with torch.no_grad():
        assert not ext.available() or not layer._use_fused(lengths, x)  # B = 8, padded
        assert layer._use_fused(torch.full((8,), 6), x)  # nothing to skip: torch's kernel
        out, (h, c) = layer(x, lengths=lengths)
        want, (h_want, c_want) = reference(x, lengths=lengths)
        torch.testing.assert_close(out, want)
        torch.testing.assert_close(h, h_want)
        torch.testing.assert_close(c, c_want)
        wide = rk.LSTM(I, 650)
        assert not ext.available() or not wide._use_fused(lengths, x)  # any H
        monkeypatch.setattr(ext, "available", lambda: False)
        assert layer._use_fused(lengths, x)  # the Python kernels: torch's packed path


@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_auto_takes_the_compiled_loop_for_gru_and_elman(kind, monkeypatch):
    """torch.nn steps these cells with ATen's loop on CPU; the compiled kernels are faster, so
    auto takes them, padded or not, in training and inference, with torch's results."""
    from rnnkit.kernels import ext

    if not ext.available():
        pytest.skip(f"compiled kernels unavailable: {ext.why_not()}")
    make = rk.GRU if kind == "gru" else rk.RNN
    layer = make(I, H, num_layers=2, bidirectional=True)
    reference = make(I, H, num_layers=2, bidirectional=True, backend="torch")
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(6, 3, I)
    for lengths in (None, torch.tensor([6, 2, 5])):
        assert not layer._use_fused(lengths, x)  # training
        with torch.no_grad():
            assert not layer._use_fused(lengths, x)
            got, expected = layer(x, lengths=lengths), reference(x, lengths=lengths)
            for a, b in zip(got, expected, strict=True):
                torch.testing.assert_close(a, b)  # inference: outputs, states
        out, h = layer(x, lengths=lengths)
        want, h_want = reference(x, lengths=lengths)
        torch.testing.assert_close(out, want)
        torch.testing.assert_close(h, h_want)
        grads = torch.autograd.grad((out.sum(), h.sum()), list(layer.parameters()))
        wants = torch.autograd.grad((want.sum(), h_want.sum()), list(reference.parameters()))
        for g, w in zip(grads, wants, strict=True):
            torch.testing.assert_close(g, w)
    wide = make(I, 650)
    assert not wide._use_fused(torch.tensor([6, 2, 5]), x)
    assert not wide._use_fused(None, x)
    monkeypatch.setattr(ext, "available", lambda: False)
    assert layer._use_fused(None, x)  # the Python kernels are slower than torch's


def test_state_dict_moves_both_ways():
    ours = rk.GRU(I, H, num_layers=3, bidirectional=True)
    theirs = nn.GRU(I, H, num_layers=3, bidirectional=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 2, I)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])


def test_nested_in_a_model_keeps_prefixed_keys():
    model = nn.Sequential(nn.Identity(), rk.LSTM(I, H))
    keys = list(model.state_dict())
    assert keys[0] == "1.weight_ih_l0"
    copy = nn.Sequential(nn.Identity(), rk.LSTM(I, H))
    copy.load_state_dict(model.state_dict())


def _grad_fn_names(t):
    seen, stack, names = set(), [t.grad_fn], []
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.append(type(fn).__name__)
        stack.extend(f for f, _ in fn.next_functions)
    return names


class SubclassedLSTMCell(rk.LSTMCell):
    """Not exactly an LSTMCell, so the loop steps it with autograd (the generic path)."""


def _loop_graph_names(cell, steps=50):
    layer = rk.Recurrent(cell, num_layers=2, bidirectional=True, backend="loop")
    x = torch.randn(steps, 2, I, requires_grad=True)
    out, _ = layer(x, lengths=torch.tensor([steps, 20]))
    return _grad_fn_names(out)


def _indexing(names):
    return [n for n in names if n.startswith(("SelectBackward", "IndexBackward"))]


def test_loop_never_indexes_a_tensor_per_step():
    """x[t] on a tensor that requires grad makes backward quadratic in T."""
    names = _loop_graph_names(rk.LSTMCell(I, H))  # one kernel per layer and direction
    assert names.count("_PackedRecurrenceBackward") == 4 and "UnbindBackward0" not in names
    # the packed layout gathers the valid positions once per call, not once a step
    assert _indexing(names) == _indexing(_loop_graph_names(rk.LSTMCell(I, H), 25))
    assert len(_indexing(names)) <= 1
    for cell in (SubclassedLSTMCell(I, H), MinimalCell(I, H)):  # stepped with autograd
        names = _loop_graph_names(cell)
        assert names.count("UnbindBackward0") == 4 and not _indexing(names)


def test_trace_exposes_per_step_states_and_gradients():
    torch.manual_seed(4)
    layer = rk.LSTM(I, H, num_layers=2, batch_first=True).double()
    x = torch.randn(2, 6, I, dtype=torch.float64)
    tr = layer.trace(x)
    out, (h, _) = layer(x)
    torch.testing.assert_close(tr.output, out, rtol=0, atol=1e-12)
    assert len(tr.hidden) == 2 and len(tr.hidden[0]) == 6
    assert list(tr.gates[1][0]) == ["i", "f", "g", "o"]
    torch.testing.assert_close(tr.hidden[1][-1], h[1], rtol=0, atol=1e-12)
    for step in tr.hidden[0]:
        step.retain_grad()
    tr.output[:, -1].sum().backward()
    norms = [step.grad.norm().item() for step in tr.hidden[0]]
    assert all(n > 0 for n in norms)


def test_dropout_only_between_layers_and_only_in_training():
    layer = rk.GRU(I, H, num_layers=2, dropout=0.5, backend="loop")
    x = torch.randn(5, 3, I)
    layer.eval()
    a, b = layer(x)[0], layer(x)[0]
    torch.testing.assert_close(a, b)
    layer.train()
    assert not torch.allclose(layer(x)[0], a)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: rk.LSTM(I, H, dropout=1.5), "dropout"),
        (lambda: rk.LSTM(I, H, dropout=-0.1), "dropout"),
        (lambda: rk.GRU(I, H, num_layers=0), "num_layers"),
        (lambda: rk.RNN(I, H, nonlinearity="gelu"), "nonlinearity"),
        (lambda: rk.GRU(I, H, backend="cuda"), "backend"),
        (lambda: rk.Recurrent(MinimalCell(I, H), backend="torch"), "backend"),
        (lambda: rk.Recurrent(nn.Linear(I, H)), "cell"),
        (lambda: rk.LSTM(I, H)(torch.randn(5, 3, I + 1)), "input"),
        (lambda: rk.LSTM(I, H)(torch.randn(2, 5, 3, I)), "input"),
        (lambda: rk.LSTM(I, H)(torch.randn(5, 3, I), lengths=torch.tensor([5, 5])), "lengths"),
        (lambda: rk.LSTM(I, H)(torch.randn(5, 3, I), lengths=torch.tensor([5, 0, 1])), "lengths"),
        (lambda: rk.LSTM(I, H)(torch.randn(5, 3, I), lengths=torch.tensor([5, 6, 1])), "lengths"),
        (lambda: rk.LSTM(I, H)(torch.randn(5, 3, I), lengths=torch.ones(3)), "lengths"),
        (lambda: rk.GRU(I, H)(torch.randn(5, 3, I), torch.zeros(1, 2, H)), "state"),
        (lambda: rk.LSTM(I, H)(torch.randn(5, 3, I), torch.zeros(1, 3, H)), "state"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call, argument):
    with pytest.raises(ValueError, match=rf"^{argument}: expected"):
        call()


def test_error_says_what_came():
    with pytest.raises(ValueError, match=r"expected values in 1\.\.5, got min 0, max 5"):
        rk.GRU(I, H)(torch.randn(5, 2, I), lengths=torch.tensor([5, 0]))


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_step_equals_forward_one_step_at_a_time(kind):
    """Recurrent.step (the cells stepped directly, for decoding) gives forward's outputs and
    states, carried over a whole sequence, in float64; refuses a bidirectional layer."""
    import rnnkit as rk

    cls = {"lstm": rk.LSTM, "gru": rk.GRU, "rnn": rk.RNN}[kind]
    torch.manual_seed(0)
    layer = cls(5, 7, num_layers=3, batch_first=True).double()
    x = torch.randn(4, 6, 5, dtype=torch.float64)
    out, final = layer(x)
    state, outs = None, []
    for t in range(6):
        h, state = layer.step(x[:, t], state)
        outs.append(h)
    torch.testing.assert_close(torch.stack(outs, 1), out, rtol=0, atol=1e-12)
    pairs = zip(state, final, strict=True) if kind == "lstm" else [(state, final)]
    for got, want in pairs:
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="bidirectional"):
        cls(5, 7, bidirectional=True).step(x[:, 0])


def test_auto_trains_unpadded_lstm_on_the_loop_kernels_only_at_batch_one_on_threads(
    monkeypatch,
):
    """Unpadded LSTM: torch's kernel (oneDNN's LSTM), except in training at B = 1 with more
    than one thread, where the compiled loop's own per-step products run (oneDNN's threads
    cost more than a one-row step)."""
    from rnnkit.kernels import ext

    layer = rk.LSTM(I, H)
    for threads in (1, 2):
        monkeypatch.setattr(torch, "get_num_threads", lambda threads=threads: threads)
        for batch in (1, 2, ext.DIRECT_MAX_ROWS, 64):
            x = torch.randn(5, batch, I)
            loop = batch == 1 and threads > 1 and ext.available()
            assert layer._use_fused(None, x) == (not loop), (threads, batch)
            assert layer._use_fused(torch.full((batch,), 5), x) == (not loop)  # pads nothing
            if batch == 1:  # one padded row: the same rule
                assert layer._use_fused(torch.tensor([3]), x) == (not loop)
            with torch.no_grad():
                assert layer._use_fused(None, x)
    assert not rk.LSTM(I, H, backend="loop")._use_fused(None, torch.randn(5, 1, I))
