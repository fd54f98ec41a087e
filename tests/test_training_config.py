"""Run configuration: TOML schema, --set overrides, errors that name the key."""

from __future__ import annotations

import pytest

import _training_helpers  # noqa: F401  (one torch thread)
from rnnkit.config import ConfigError, apply_overrides, from_dict, parse_value
from rnnkit.tasks.adding import AddingConfig
from rnnkit.tasks.copy import CopyConfig
from rnnkit.tasks.run import load_run_config
from rnnkit.training.config import OptimConfig, TrainerConfig


def test_toml_and_overrides_build_typed_config(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text(
        "seed = 3\n[task]\nseq_len = 30\n[model]\ncell = 'gru'\n"
        "[trainer]\nepochs = 4\nlr = 0.01\n[trainer.optim]\nname = 'sgd'\n"
    )
    cfg = load_run_config("adding", f, ["trainer.lr=0.001", "trainer.optim.momentum=0.5"])
    assert cfg.seed == 3 and cfg.task_config == AddingConfig(seq_len=30)
    assert cfg.model == {"cell": "gru"}
    assert cfg.trainer.epochs == 4 and cfg.trainer.lr == 0.001
    assert cfg.trainer.optim == OptimConfig(name="sgd", momentum=0.5)
    copy = load_run_config("copy", None, ["task.delay=7"])
    assert copy.task_config == CopyConfig(delay=7)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.lrr=0.1", "trainer.lrr: unknown key"),
        ("trainer.lr=fast", "trainer.lr: expected float"),
        ("trainer.epochs=1.5", "trainer.epochs: expected int"),
        ("trainer.optim.name=lbfgs", "trainer.optim.name: expected one of"),
        ("trainer.optim.momentum=-1", "trainer.optim.momentum must be >= 0"),
        ("trainer.log.tensorboard=1", "trainer.log.tensorboard: expected true or false"),
        ("task.seq_len=1", "task.seq_len must be >= 2"),
        ("task.nope=1", "task.nope: unknown key"),
        ("model.cell=lstmm", "model.cell must be one of"),
        ("model.hidden_size=0", "model.hidden_size must be an integer >= 1"),
        ("model.nonlinearity=relu", "model.nonlinearity='relu' applies to the Elman cell"),
        ("model.vocab_size=3", "model.vocab_size: set by the task from its data"),
        ("model.bogus=1", "model.bogus: unknown key"),
        ("colour=1", "colour: unknown key"),
        ("trainer.lr.x=1", "trainer.lr: expected float, got {'x': 1}"),
        ("trainer.lr", "expected KEY=VALUE"),
    ],
)
def test_bad_keys_and_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        load_run_config("adding", None, [override])
    assert key in str(e.value)


def test_toml_syntax_error_names_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[trainer\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_run_config("adding", f)


def test_unknown_task_is_an_error():
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        load_run_config("nope")


def test_parse_value_and_nested_overrides():
    assert parse_value("true") is True and parse_value("3") == 3
    assert parse_value("adam") == "adam" and parse_value('"x y"') == "x y"
    assert apply_overrides({"a": {"b": 1}}, ["a.c=2", "d.e=[1, 2]"]) == {
        "a": {"b": 1, "c": 2},
        "d": {"e": [1, 2]},
    }
    with pytest.raises(ConfigError, match=r"a\.b\.c: .b. is a value"):
        apply_overrides({"a": {"b": 1}}, ["a.b.c=2"])
    assert from_dict(TrainerConfig, {"lr": 1}).lr == 1.0  # ints are accepted as floats


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    adding = load_run_config("adding", root / "adding.toml")
    assert adding.model["cell"] == "lstm" and adding.trainer.schedule.name == "constant"
    copy = load_run_config("copy", root / "copy.toml", ["trainer.tbptt=20"])
    assert copy.trainer.monitor == "val_accuracy" and copy.trainer.tbptt == 20


@pytest.mark.parametrize("task", ["classify", "tagging"])
def test_model_nonlinearity_reaches_the_model(task, tmp_path):
    """``--set model.nonlinearity='"relu"'`` used to be ignored by these tasks' models."""
    from rnnkit.cells import ElmanCell
    from rnnkit.tasks import get_task
    from rnnkit.tasks.run import build_model

    if task == "classify":
        data = tmp_path / "reviews.csv"
        data.write_text("text,label\n" + "".join(f"film {i},{i % 2}\n" for i in range(20)))
        files = [f'task.data="{data}"']
    else:
        data = tmp_path / "train.conll"
        data.write_text("Mary B-PER\nleft O\n\nJohn B-PER\nsat O\n")
        files = [f'task.train="{data}"', f'task.test="{data}"', "task.chars=false"]
    sets = [*files, "model.cell=rnn", "model.hidden_size=4"]
    # the shell's --set model.nonlinearity='"relu"' arrives as model.nonlinearity="relu"
    for value, want in (('"relu"', "relu"), ("relu", "relu"), (None, "tanh")):
        items = [*sets, f"model.nonlinearity={value}"] if value else sets
        cfg = load_run_config(task, None, items)
        assert cfg.model.get("nonlinearity", "tanh") == want
        model = build_model(cfg, get_task(task).prepare(cfg.task_config, 0, None))
        assert model.config.nonlinearity == want
        cells = list(model.rnn.cells)
        assert cells and all(isinstance(c, ElmanCell) for c in cells)
        assert [c.nonlinearity for c in cells] == [want] * len(cells)
