"""Diagnostics: per-step gradient norms, gate statistics and the PNG plots."""

from __future__ import annotations

import pytest
import torch

from _training_helpers import small_model
from rnnkit import diagnostics as dg
from rnnkit.data.synthetic import adding_problem

PNG = b"\x89PNG\r\n\x1a\n"


def test_hidden_gradients_match_autograd_by_hand():
    model = small_model("rnn")
    batch = adding_problem(3, 6, seed=0)
    loss, trace = model.trace(batch)
    grads = dg.hidden_gradients(loss, trace.hidden)[0]  # (T, B, H)
    # the loss reads only h_T: dL/dh_T = 2 (y - target) W_o / B for the mean squared error
    y = model.head(trace.hidden[0][-1]).squeeze(-1).detach()  # (B,)
    expected = 2 * (y - batch.targets[:, -1]).unsqueeze(1) * model.head.weight.detach() / 3
    torch.testing.assert_close(grads[-1], expected)
    # one step back through h_T = tanh(W_ih x_T + b + W_hh h_{T-1}): J^T (1 - h_T^2) dL/dh_T
    h_t = trace.hidden[0][-1].detach()
    w_hh = model.rnn.state_dict()["weight_hh_l0"]
    torch.testing.assert_close(grads[-2], (expected * (1 - h_t**2)) @ w_hh)


def test_vanishing_and_exploding_norms():
    batch = adding_problem(8, 40, seed=0)
    small = dg.step_gradient_norms(small_model("rnn", recurrent_scale=0.5), batch)
    large = dg.step_gradient_norms(
        small_model("rnn", recurrent_scale=2.0, nonlinearity="relu"), batch
    )
    assert small.shape == (40,)
    assert dg.decay_rate(small) < 0.7  # shrinks going back in time
    assert dg.decay_rate(large) > 1.3  # grows going back in time
    assert float(small[0]) < 1e-4 * float(small[-1])


def test_gate_statistics_and_saturation():
    model = small_model("lstm")
    _, trace = model.trace(adding_problem(4, 7, seed=0))
    stats = dg.gate_statistics(trace)
    assert set(stats) == {"i", "f", "g", "o"}
    for s in stats.values():
        assert s.mean.shape == (7,) and ((s.saturation >= 0) & (s.saturation <= 1)).all()
    with torch.no_grad():
        model.rnn.cells[0].bias_hh[8:12].fill_(50.0)  # gates i, f, g, o: half of f
    _, trace = model.trace(adding_problem(4, 7, seed=0))
    sat = dg.gate_statistics(trace)["f"].saturation
    assert float(sat.min()) >= 0.5  # half of H=8 forget units pinned near 1


def test_plots_write_pngs(tmp_path):
    model = small_model("gru")
    batch = adding_problem(4, 9, seed=0)
    norms = {"init": dg.step_gradient_norms(model, batch)}
    _, trace = model.trace(batch)
    rows = [
        {"epoch": 0, "train_loss": 0.2, "val_loss": 0.3, "grad_norm_mean": 1.0, "clip_rate": 0.5},
        {"epoch": 1, "train_loss": 0.1, "val_loss": 0.2, "grad_norm_mean": 0.5, "clip_rate": 0.0},
    ]
    paths = [
        dg.plot_gradient_norms(norms, tmp_path / "g.png"),
        dg.plot_gates(dg.gate_statistics(trace), tmp_path / "gates.png"),
        dg.plot_hidden(trace, tmp_path / "h.png"),
        dg.plot_training_curves(rows, tmp_path / "sub" / "c.png"),
    ]
    for p in paths:
        assert p.read_bytes()[:8] == PNG and p.stat().st_size > 2000


def test_plot_attention_writes_a_png_and_checks_the_shape(tmp_path):
    source = ["A", "B", "O", "U", "T", "</s>"]
    target = ["AH0", "B", "AW1", "T"]
    weights = torch.softmax(torch.randn(4, 6), dim=1)  # (U, S)
    path = dg.plot_attention(weights, source, target, tmp_path / "sub" / "a.png", title="about")
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 2000
    from PIL import Image

    small = Image.open(path).size
    assert small == (round((2.5 + 0.4 * 6) * 110), round((1.8 + 0.4 * 4) * 110))  # 110 dpi
    many = dg.plot_attention(torch.rand(30, 40).numpy(), ["x"] * 40, ["y"] * 30, tmp_path / "m.png")
    assert all(a > b for a, b in zip(Image.open(many).size, small, strict=True))  # scaled up
    big = dg.plot_attention(torch.rand(50, 60), ["x"] * 60, ["y"] * 50, tmp_path / "b.png")
    assert Image.open(big).size == (16 * 110, 12 * 110)  # MAX_FIGSIZE, 16 x 12 inches
    with pytest.raises(ValueError, match=r"weights: expected shape .* = \(4, 6\), got \(6, 4\)"):
        dg.plot_attention(weights.T, source, target, tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"weights: .*got \(24,\)"):
        dg.plot_attention(weights.flatten(), source, target, tmp_path / "d.png")
    with pytest.raises(ValueError, match=r"weights: shape \(4, 0\) has no cells"):
        dg.plot_attention(torch.zeros(4, 0), [], target, tmp_path / "e.png")
    assert not (tmp_path / "c.png").exists()


def test_decay_rate_of_geometric_sequence():
    assert dg.decay_rate(torch.tensor([0.125, 0.25, 0.5, 1.0])) == pytest.approx(0.5)


def test_float64_keeps_vanishing_norms_that_float32_flushes_to_zero():
    model = small_model("rnn", recurrent_scale=0.3)
    batch = adding_problem(4, 120, seed=0)
    fine = dg.step_gradient_norms(model, batch)  # float64 copy
    coarse = dg.step_gradient_norms(model, batch, dtype=None)  # the float32 model itself
    assert fine.dtype == torch.float64 and float(fine[0]) > 0
    assert float(coarse[0]) == 0.0  # below float32's smallest subnormal
    torch.testing.assert_close(fine[-1].float(), coarse[-1], rtol=1e-4, atol=0)
    assert next(model.parameters()).dtype == torch.float32  # the model is left as it was


def test_plot_attention_draws_an_image_above_its_columns(tmp_path):
    from rnnkit.diagnostics import plot_attention

    weights = torch.softmax(torch.randn(3, 6), 1)
    path = plot_attention(
        weights,
        [str(i) for i in range(6)],
        ["a", "b", "<eos>"],
        tmp_path / "a.png",
        image=torch.rand(4, 6),
    )
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="image: expected"):
        plot_attention(
            weights, list("abcdef"), ["a", "b", "c"], tmp_path / "b.png", image=torch.rand(4, 5)
        )
