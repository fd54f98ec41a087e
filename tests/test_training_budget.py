"""The trainer's time budget (max_minutes): a clean stop, validation, a resumable checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from _training_helpers import small_trainer, weights
from rnnkit.training import ScheduleConfig, TrainerConfig, load_model, locate_checkpoint
from rnnkit.training.callbacks import Callback
from rnnkit.training.optim import LRSchedule

TINY = 1e-6  # minutes: spent by the first batch


def test_tiny_budget_stops_after_the_first_batch_validates_and_checkpoints(tmp_path):
    trainer = small_trainer(tmp_path, epochs=5, max_minutes=TINY)  # 8 batches per epoch
    history = trainer.fit()
    assert trainer.stop_reason == "max_minutes"
    assert (trainer.step, trainer.epoch, trainer.batch_in_epoch) == (1, 0, 1)
    assert history == []  # no whole epoch, but the partial one is validated:
    final = trainer.final_metrics
    assert final["step"] == 1 and final["epochs"] == pytest.approx(1 / 8)
    assert final["val_loss"] > 0 and final["train_loss"] > 0
    assert trainer.seconds > 0
    root = tmp_path / "checkpoints"
    best, latest = locate_checkpoint(root, "best"), locate_checkpoint(root, "latest")
    assert best == latest == root / "step-00000001"  # saved with its validation metric
    index = json.loads((root / "index.json").read_text())
    assert index["best_value"] == pytest.approx(final["val_loss"])
    state = json.loads((latest / "trainer.json").read_text())
    assert state["stop_reason"] == "max_minutes" and state["should_stop"] is False
    assert state["final_metrics"]["val_loss"] == pytest.approx(final["val_loss"])
    model = load_model(latest)  # the checkpoint rebuilds the model alone
    for k, v in weights(trainer.model).items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)


class Score(Callback):
    """Adds a task score to every validation, as ValidationScores does for a task."""

    def on_evaluation(self, trainer, metrics):
        metrics["val_score"] = 1.0 - metrics["val_loss"]


def test_budget_stop_validation_carries_the_task_scores(tmp_path):
    trainer = small_trainer(tmp_path, epochs=5, max_minutes=TINY, monitor="val_score", mode="max")
    trainer.callbacks.insert(0, Score())  # before the others, as run.py puts task scores
    trainer.fit()
    final = trainer.final_metrics
    assert trainer.stop_reason == "max_minutes"
    assert final["val_score"] == pytest.approx(1.0 - final["val_loss"])
    index = json.loads((tmp_path / "checkpoints" / "index.json").read_text())
    assert index["best_value"] == pytest.approx(final["val_score"])  # competes for best


def test_budget_stop_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    stopped = small_trainer(tmp_path / "a", epochs=2, max_minutes=TINY)
    stopped.fit()
    latest = locate_checkpoint(tmp_path / "a" / "checkpoints", "latest")
    resumed = small_trainer(tmp_path / "a", epochs=2)  # the same run without a budget
    resumed.resume(latest)
    assert (resumed.step, resumed.batch_in_epoch) == (1, 1)
    resumed.fit()
    assert resumed.stop_reason == "epochs" and len(resumed.history) == 2
    assert resumed.seconds >= stopped.seconds  # summed over the two sessions
    plain = small_trainer(tmp_path / "b", epochs=2)
    plain.fit()
    assert resumed.step == plain.step == 16
    for k, v in weights(plain.model).items():
        torch.testing.assert_close(weights(resumed.model)[k], v, rtol=0, atol=0)


def test_spent_budget_is_remembered_across_resume(tmp_path):
    small_trainer(tmp_path, epochs=3, max_minutes=TINY).fit()
    latest = locate_checkpoint(tmp_path / "checkpoints", "latest")
    again = small_trainer(tmp_path, epochs=3, max_minutes=TINY)
    again.resume(latest)
    again.fit()  # the budget is the run's, summed over resumes: nothing left
    assert again.stop_reason == "max_minutes" and again.step == 1


def test_generous_budget_changes_nothing(tmp_path):
    trainer = small_trainer(None, epochs=2, max_minutes=60.0)
    trainer.fit()
    assert trainer.stop_reason == "epochs" and len(trainer.history) == 2
    assert trainer.final_metrics["epochs"] == 2.0
    assert 0 < trainer.budget_fraction() < 1


def test_cosine_schedule_ends_with_the_budget():
    cfg = ScheduleConfig(name="cosine", min_lr=0.1)
    schedule = LRSchedule(cfg, 1.0, total_steps=1000, mode="min")
    assert schedule.lr_at(0, 0) == pytest.approx(1.0)
    assert schedule.lr_at(0, 0, time_frac=0.5) == pytest.approx(0.55)  # halfway by time
    assert schedule.lr_at(900, 0, time_frac=0.5) == schedule.lr_at(900, 0)  # steps lead
    assert schedule.lr_at(10, 0, time_frac=1.5) == pytest.approx(0.1)


def test_negative_budget_is_refused():
    with pytest.raises(ValueError, match="max_minutes must be >= 0"):
        TrainerConfig(max_minutes=-1.0)


def test_cli_train_reports_a_budget_stop_and_resume_keeps_it(tmp_path):
    from typer.testing import CliRunner

    from rnnkit.cli import app

    items = [
        "task.seq_len=8",
        "task.n_train=64",
        "task.n_val=32",
        "model.hidden_size=8",
        "trainer.epochs=3",
        "trainer.batch_size=16",
        f"trainer.max_minutes={TINY}",
        'trainer.log.progress="none"',
    ]
    sets = [a for item in items for a in ("--set", item)]
    out = tmp_path / "run"
    runner = CliRunner()
    r = runner.invoke(app, ["train", "adding", *sets, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "done: 0 epochs, 1 steps (stopped on the time budget). train_loss=" in r.output
    assert "val_loss=" in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "max_minutes" and summary["final"]["step"] == 1
    r = runner.invoke(app, ["resume", str(out)])  # the budget is spent: nothing more
    assert r.exit_code == 0 and "1 steps (stopped on the time budget)" in r.output
