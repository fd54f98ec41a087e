"""The cell registry and build_encoder: every RecurrentConfig field reaches the layer it
builds; a registered cell kind works in a model config; and every task's [model] table is
checked when the run configuration loads."""

from __future__ import annotations

import pytest
import torch

import _training_helpers  # noqa: F401  (one torch thread)
import rnnkit as rk
from rnnkit.config import ConfigError
from rnnkit.data.synthetic import adding_problem
from rnnkit.models import (
    CELLS,
    CellKind,
    RecurrentConfig,
    RecurrentModel,
    RecurrentModelConfig,
    build_encoder,
    register_cell,
)
from rnnkit.tasks import get_task, run

LAYERS = {"rnn": rk.RNN, "lstm": rk.LSTM, "gru": rk.GRU}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def config(**kw) -> RecurrentModelConfig:
    """A model config (it adds ``bidirectional`` to RecurrentConfig's fields)."""
    return RecurrentModelConfig(input_size=3, **kw)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_cell_sizes_layers_and_direction_reach_the_layer(cell, bidirectional):
    layer = build_encoder(
        3, config(cell=cell, hidden_size=5, num_layers=2, bidirectional=bidirectional)
    )
    assert type(layer) is LAYERS[cell] and layer.batch_first
    assert (layer.input_size, layer.hidden_size, layer.num_layers) == (3, 5, 2)
    assert layer.bidirectional is bidirectional
    d = 2 if bidirectional else 1
    assert len(layer.cells) == 2 * d
    assert [c.input_size for c in layer.cells] == [3] * d + [5 * d] * d  # layer 2 reads layer 1
    assert all(c.hidden_size == 5 for c in layer.cells)
    out, _ = layer(torch.randn(2, 7, 3))  # batch first: (B, T, D) -> (B, T, D * H)
    assert out.shape == (2, 7, 5 * d)


def test_relu_reaches_every_elman_cell():
    layer = build_encoder(
        3, config(cell="rnn", nonlinearity="relu", num_layers=2, bidirectional=True)
    )
    assert layer.nonlinearity == "relu"
    assert [c.nonlinearity for c in layer.cells] == ["relu"] * 4
    out, _ = layer(torch.randn(4, 6, 3))
    assert out.min() >= 0 and out.max() > 0  # ReLU units: never negative
    tanh = build_encoder(3, config(cell="rnn"))
    assert [c.nonlinearity for c in tanh.cells] == ["tanh"]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_relu_with_a_gated_cell_is_refused_naming_nonlinearity(cell):
    with pytest.raises(ValueError, match=rf"nonlinearity='relu' .*not to cell='{cell}'"):
        RecurrentConfig(cell=cell, nonlinearity="relu")


def test_dropout_sits_between_stacked_layers_only():
    stacked = build_encoder(3, config(cell="gru", num_layers=3, dropout=0.4))
    assert stacked.dropout == 0.4
    single = build_encoder(3, RecurrentConfig(cell="gru", num_layers=1, dropout=0.4))
    assert single.dropout == 0.0  # nothing between layers: the model applies its own
    x = torch.randn(4, 5, 3)
    stacked.train()
    torch.manual_seed(0)
    a, _ = stacked(x)
    b, _ = stacked(x)
    assert not torch.equal(a, b)  # dropped units differ from call to call
    stacked.eval()
    assert torch.equal(stacked(x)[0], stacked(x)[0])


def test_a_model_whose_dropout_would_act_nowhere_refuses_it():
    """The per-step model (adding, copy) has dropout between stacked layers only: with one
    layer the setting would be accepted and ignored, so it is refused by name."""
    with pytest.raises(ValueError, match=r"dropout=0\.2 acts between stacked layers only"):
        RecurrentModelConfig(num_layers=1, dropout=0.2)
    assert RecurrentModelConfig(num_layers=2, dropout=0.2).dropout == 0.2


@pytest.mark.parametrize("backend", ["auto", "torch", "loop"])
def test_backend_reaches_the_layer(backend):
    assert build_encoder(3, config(cell="lstm", backend=backend)).backend == backend


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_scale_gives_scaled_orthogonal_blocks(cell):
    scale, h = 0.7, 6
    layer = build_encoder(
        3, config(cell=cell, hidden_size=h, num_layers=2, bidirectional=True, recurrent_scale=scale)
    )
    blocks = [b for c in layer.cells for b in c.weight_hh.detach().split(h, dim=0)]
    assert len(blocks) == 4 * GATES[cell]  # every gate of every layer and direction
    for block in blocks:
        torch.testing.assert_close(block @ block.T, scale**2 * torch.eye(h), atol=1e-5, rtol=0)
    plain = build_encoder(3, config(cell=cell, hidden_size=h))
    block = plain.cells[0].weight_hh.detach()[:h]
    assert not torch.allclose(block @ block.T, (block @ block.T)[0, 0] * torch.eye(h), atol=1e-3)


def test_bad_recurrent_settings_name_the_field():
    for kw, match in [
        ({"cell": "nope"}, "cell must be one of"),
        ({"hidden_size": 0}, "hidden_size must be an integer >= 1"),
        ({"num_layers": 1.5}, "num_layers: expected int, got 1.5"),
        ({"hidden_size": "8"}, "hidden_size: expected int, got '8'"),
        ({"dropout": "0.1"}, "dropout: expected float, got '0.1'"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"recurrent_scale": float("nan")}, "recurrent_scale must be >= 0"),
        ({"backend": "cuda"}, r"backend: expected one of \['auto', 'torch', 'loop'\], got 'cuda'"),
    ]:
        with pytest.raises(ValueError, match=match):
            RecurrentConfig(**kw)


# ---- registering a cell kind --------------------------------------------------------------


@pytest.fixture
def registered():
    """Names registered by a test, removed again afterwards (CELLS is process-wide)."""
    names: list[str] = []
    yield names
    for name in names:
        CELLS.pop(name, None)


def test_a_registered_cell_kind_builds_models(registered):
    register_cell(
        "test_loop_gru", CellKind(lambda i, h, **kw: rk.Recurrent(rk.GRUCell(i, h), **kw))
    )
    registered.append("test_loop_gru")
    cfg = RecurrentModelConfig(cell="test_loop_gru", input_size=2, hidden_size=4, num_layers=2)
    model = RecurrentModel(cfg)
    assert type(model.rnn) is rk.Recurrent
    assert [type(c) for c in model.rnn.cells] == [rk.GRUCell] * 2
    batch = adding_problem(4, 6, seed=0)
    loss, _ = model.loss(batch)
    loss.backward()
    assert model.rnn.cells[0].weight_hh.grad is not None
    # the same kind by name from a run configuration
    run_cfg = run.load_run_config(
        "adding", overrides=["model.cell=test_loop_gru", "task.n_train=8", "task.seq_len=4"]
    )
    data = get_task("adding").prepare(run_cfg.task_config, 0, None)
    built = run.build_model(run_cfg, data)
    assert type(built.rnn) is rk.Recurrent and isinstance(built.rnn.cells[0], rk.GRUCell)


def test_a_registered_kind_receives_the_options_it_names(registered):
    def elman(i, h, nonlinearity, **kw):
        return rk.Recurrent(rk.ElmanCell(i, h, nonlinearity=nonlinearity), **kw)

    register_cell("test_elman", CellKind(elman, options=("nonlinearity",)))
    registered.append("test_elman")
    layer = build_encoder(3, config(cell="test_elman", nonlinearity="relu", num_layers=2))
    assert [c.nonlinearity for c in layer.cells] == ["relu", "relu"]


def test_a_taken_name_is_refused():
    before = dict(CELLS)
    for name in ("lstm", "rnn"):
        with pytest.raises(ValueError, match=f"cell '{name}' is already registered"):
            register_cell(name, CellKind(rk.GRU))
    assert before == CELLS


# ---- every task's [model] table is checked at load ------------------------------------------

CONLL = "Mary B-PER\nleft O\n\nJohn B-PER\nsat O\n"


def task_overrides(task: str, root) -> list[str]:
    """[task] settings naming tiny data files (load_run_config reads none of them)."""
    if task == "classify":
        (root / "reviews.csv").write_text("text,label\ngood film,pos\ndull film,neg\n")
        return [f'task.data="{root / "reviews.csv"}"']
    if task == "lm":
        for name in ("train.txt", "valid.txt"):
            (root / name).write_text("to be or not to be\n")
        return [
            f'task.train_files=["{root / "train.txt"}"]',
            f'task.val_files=["{root / "valid.txt"}"]',
        ]
    if task == "tagging":
        (root / "train.conll").write_text(CONLL)
        return [f'task.train="{root / "train.conll"}"', f'task.test="{root / "train.conll"}"']
    return []


TASKS = ["adding", "copy", "classify", "lm", "tagging"]


def _error(task: str, overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as e:
        run.load_run_config(task, overrides=overrides)
    return str(e.value)


@pytest.mark.parametrize("task", TASKS)
def test_unknown_model_key_is_refused_naming_it(task, tmp_path):
    base = task_overrides(task, tmp_path)
    assert run.load_run_config(task, overrides=base).model == {}
    message = _error(task, [*base, "model.bogus=1"])
    assert message.startswith("model.bogus: unknown key (known: ")
    assert "hidden_size" in message and "cell" in message


@pytest.mark.parametrize("task", TASKS)
def test_every_key_the_data_fixes_is_refused_naming_it(task, tmp_path):
    base = task_overrides(task, tmp_path)
    fixed = get_task(task).fixed
    assert fixed
    for key in fixed:
        message = _error(task, [*base, f"model.{key}=1"])
        assert message == f"model.{key}: set by the task from its data; remove it"
    known = _error(task, [*base, "model.bogus=1"])
    assert not any(f" {key}," in known or f" {key})" in known for key in fixed)


@pytest.mark.parametrize("task", TASKS)
def test_unknown_task_key_is_refused_naming_it(task, tmp_path):
    base = task_overrides(task, tmp_path)
    assert _error(task, [*base, "task.bogus=1"]).startswith("task.bogus: unknown key (known: ")


@pytest.mark.parametrize("task", TASKS)
def test_a_bad_recurrent_setting_is_refused_at_load(task, tmp_path):
    base = task_overrides(task, tmp_path)
    assert "model.cell must be one of" in _error(task, [*base, "model.cell=lstmm"])
    assert "model.nonlinearity='relu'" in _error(
        task, [*base, "model.cell=gru", "model.nonlinearity=relu"]
    )
    relu = run.load_run_config(task, overrides=[*base, "model.cell=rnn", "model.nonlinearity=relu"])
    assert relu.model == {"cell": "rnn", "nonlinearity": "relu"}


def test_load_run_config_reads_no_data(tmp_path):
    missing = tmp_path / "absent"
    for task, overrides in [
        ("classify", [f'task.data="{missing}.csv"']),
        ("lm", [f'task.train_files=["{missing}.txt"]', f'task.val_files=["{missing}.txt"]']),
        ("tagging", [f'task.train="{missing}.conll"', f'task.test="{missing}.conll"']),
    ]:
        cfg = run.load_run_config(task, overrides=overrides)
        with pytest.raises((FileNotFoundError, ValueError), match="absent"):  # when prepared
            get_task(task).prepare(cfg.task_config, 0, None)
