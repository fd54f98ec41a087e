"""Exact resume and truthful logs in the corners an audit found: early stopping that fires at
a max_steps stop, a budget stop's partial validation, cosine with max_steps, the logged rate
under truncated BPTT, TensorBoard events across a resume, seconds over resumes, and settings
the chosen options would ignore."""

from __future__ import annotations

import json

import pytest
import torch

import _training_helpers  # noqa: F401  (one torch thread)
from rnnkit.config import ConfigError
from rnnkit.tasks import run
from rnnkit.training.checkpoint import load_model, locate_checkpoint
from rnnkit.training.config import (
    EarlyStoppingConfig,
    LogConfig,
    OptimConfig,
    ScheduleConfig,
    TrainerConfig,
)

BASE = [
    "task.n_train=64",
    "task.n_val=16",
    "task.n_test=16",
    "task.seq_len=6",
    "trainer.epochs=2",
    "trainer.batch_size=8",
    'trainer.log.progress="none"',
    "trainer.log.tensorboard=false",
]


def _train(folder, items):
    return run.train(run.load_run_config("adding", None, [*BASE, *items]), folder)


def _edit(folder, **trainer):
    """Change [trainer] keys of a run's config.json, as a user would before `rnnkit resume`."""
    config = json.loads((folder / "config.json").read_text())
    config["trainer"].update(trainer)
    (folder / "config.json").write_text(json.dumps(config))


def _same_weights(a, b) -> bool:
    wa = load_model(locate_checkpoint(a, "latest")).state_dict()
    wb = load_model(locate_checkpoint(b, "latest")).state_dict()
    return all(torch.equal(wa[k], wb[k]) for k in wa)


def test_early_stopping_at_a_max_steps_stop_holds_after_resume(tmp_path):
    stop = ["trainer.early_stopping.patience=1", "trainer.epochs=6", "trainer.lr=0.5"]
    whole = _train(tmp_path / "a", stop)
    assert whole["stop_reason"] == "early_stopping" and whole["epochs"] < 6
    part = _train(tmp_path / "b", [*stop, f"trainer.max_steps={whole['step']}"])
    assert part["stop_reason"] == "max_steps"
    _edit(tmp_path / "b", max_steps=0)
    resumed = run.resume(tmp_path / "b")
    assert resumed["stop_reason"] == "early_stopping" and resumed["step"] == whole["step"]
    assert resumed["history"] == whole["history"]
    assert _same_weights(tmp_path / "a", tmp_path / "b")


def test_a_budget_stops_partial_validation_moves_no_schedule(tmp_path):
    plateau = [
        'trainer.schedule.name="plateau"',
        "trainer.schedule.patience=0",
        'trainer.mode="max"',
        "trainer.epochs=3",
    ]
    whole = _train(tmp_path / "a", plateau)
    part = _train(tmp_path / "b", [*plateau, "trainer.max_minutes=0.000001"])
    assert part["stop_reason"] == "max_minutes" and part["step"] < whole["step"]
    _edit(tmp_path / "b", max_minutes=0.0)
    resumed = run.resume(tmp_path / "b")
    assert [h["lr"] for h in resumed["history"]] == [h["lr"] for h in whole["history"]]
    assert _same_weights(tmp_path / "a", tmp_path / "b")


def test_cosine_reaches_min_lr_at_max_steps():
    from _training_helpers import small_trainer

    trainer = small_trainer(
        epochs=5, lr=0.01, max_steps=4, schedule=ScheduleConfig(name="cosine", min_lr=1e-4)
    )
    assert trainer.schedule.total_steps == 4  # not epochs x steps per epoch
    assert trainer.schedule.lr_at(4, 0) == pytest.approx(1e-4)


def test_the_logged_rate_is_the_one_the_last_step_used_also_under_tbptt(tmp_path):
    cosine = ['trainer.schedule.name="cosine"', "trainer.lr=0.01"]
    full = _train(tmp_path / "a", cosine)
    chunked = _train(tmp_path / "b", [*cosine, "trainer.tbptt=6"])  # seq_len 6: one chunk
    assert [h["lr"] for h in chunked["history"]] == [h["lr"] for h in full["history"]]
    assert all(h["lr"] > 0 for h in chunked["history"])
    assert _same_weights(tmp_path / "a", tmp_path / "b")


def test_resume_keeps_the_tensorboard_events_of_the_checkpoints_step(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def steps(folder):
        events = EventAccumulator(str(folder / "tensorboard"))
        events.Reload()
        # (sorted: event files written within one second may load in either order)
        tags = ("train/loss", "epoch/val_loss")
        return {t: sorted(e.step for e in events.Scalars(t)) for t in tags}

    logged = ["trainer.log.tensorboard=true", "trainer.log.every_steps=1"]
    _train(tmp_path / "a", logged)
    _train(tmp_path / "b", [*logged, "trainer.max_steps=8"])
    _edit(tmp_path / "b", max_steps=0)
    run.resume(tmp_path / "b")
    run.resume(tmp_path / "a")  # a finished run resumed with nothing changed
    assert steps(tmp_path / "b") == steps(tmp_path / "a")
    assert steps(tmp_path / "a")["train/loss"] == list(range(1, 17))
    assert steps(tmp_path / "a")["epoch/val_loss"] == [8, 16]


def test_seconds_grow_over_a_resume(tmp_path):
    first = _train(tmp_path / "a", ["trainer.epochs=1", "task.n_val=2000"])
    _edit(tmp_path / "a", epochs=2)
    second = run.resume(tmp_path / "a")
    assert second["seconds"] > first["seconds"]


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: OptimConfig(momentum=0.5), "momentum=0.5 applies to name='sgd' or name='rmsprop'"),
        (lambda: OptimConfig(name="sgd", betas=(0.8, 0.9)), "betas=(0.8, 0.9) applies to"),
        (lambda: OptimConfig(alpha=0.9), "alpha=0.9 applies to name='rmsprop', not to"),
        (lambda: ScheduleConfig(name="cosine", gamma=0.1), "gamma=0.1 applies to name='step'"),
        (lambda: ScheduleConfig(step_size=3), "step_size=3 applies to name='step'"),
        (lambda: ScheduleConfig(name="step", min_lr=0.1), "min_lr=0.1 applies to name='cosine'"),
        (lambda: ScheduleConfig(name="cosine", factor=0.1), "factor=0.1 applies to name='plat"),
        (lambda: EarlyStoppingConfig(min_delta=0.1), "min_delta=0.1 applies to early stopping"),
        (lambda: LogConfig(tensorboard=False, every_steps=5), "every_steps=5 applies to tens"),
        (lambda: LogConfig(progress="none", print_every=5), "print_every=5 applies to"),
        (
            lambda: TrainerConfig(lr=0.001, schedule=ScheduleConfig(name="plateau", min_lr=0.1)),
            "schedule.min_lr=0.1 must be below lr=0.001",
        ),
    ],
)
def test_settings_the_chosen_options_would_ignore_are_refused(build, needle):
    with pytest.raises(ValueError) as info:
        build()
    assert needle in str(info.value)


def test_an_ignored_setting_is_named_with_its_table_from_toml_overrides():
    with pytest.raises(ConfigError, match=r"^trainer\.schedule\.gamma=0\.1 applies to"):
        run.load_run_config(
            "adding", None, ['trainer.schedule.name="cosine"', "trainer.schedule.gamma=0.1"]
        )
    fine = run.load_run_config(
        "adding", None, ['trainer.optim.name="sgd"', "trainer.optim.momentum=0.5"]
    )
    assert fine.trainer.optim.momentum == 0.5
