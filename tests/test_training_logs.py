"""Progress without a terminal: plain, flushed lines on stdout; the log settings' checks."""

from __future__ import annotations

import re
import sys

import pytest
import torch

from _training_helpers import small_model, small_trainer
from rnnkit.data.synthetic import adding_problem
from rnnkit.training import (
    Callback,
    EpochBatches,
    LineLogger,
    LogConfig,
    ProgressBar,
    SequenceBatch,
    Trainer,
    TrainerConfig,
)

EPOCH = re.compile(  # no val_loss without validation batches
    r"epoch (\d+)/(\d+) step (\d+) train_loss=\S+( val_loss=\S+)? lr=\S+ elapsed=[\d.]+s"
)
STEP = re.compile(r"step (\d+) loss=\S+ targets/s=\d+ lr=\S+")


def _lines(capsys) -> list[str]:
    out, err = capsys.readouterr()
    assert "epoch" not in err  # nothing of it on stderr
    return out.splitlines()


def test_lines_print_one_line_per_epoch_and_per_print_every_steps(capsys):
    # 8 batches of 16 per epoch, one step each: step lines at 3, 6 | 9, 12, 15
    trainer = small_trainer(
        None, epochs=2, log=LogConfig(progress="lines", print_every=3, tensorboard=False)
    )
    trainer.fit()
    lines = _lines(capsys)
    epochs = [m for m in map(EPOCH.fullmatch, lines) if m]
    steps = [m for m in map(STEP.fullmatch, lines) if m]
    assert [(m[1], m[2], m[3]) for m in epochs] == [("1", "2", "8"), ("2", "2", "16")]
    assert [int(m[1]) for m in steps] == [3, 6, 9, 12, 15]
    assert len(lines) == 7  # nothing else
    assert lines.index(epochs[0][0]) == 2  # after steps 3 and 6, before step 9


def test_print_every_zero_gives_epoch_lines_only_with_every_validation_metric(capsys):
    class Scores(Callback):
        def on_evaluation(self, t, metrics):
            metrics["val_accuracy"] = 0.5

    trainer = small_trainer(None, epochs=1, log=LogConfig(progress="lines", print_every=0))
    trainer.callbacks.append(Scores())
    trainer.fit()
    (line,) = _lines(capsys)
    assert re.fullmatch(r"epoch 1/1 step 8 train_loss=\S+ val_loss=\S+ val_accuracy=0.5 .*", line)


def test_tbptt_chunks_are_steps_that_print_inside_a_batch(capsys):
    # a target at every step, 3 chunks (10 steps in chunks of 4) per batch, so 3 optimizer
    # steps per batch, 12 in the epoch: lines at steps 5 and 10, inside batches 2 and 4
    d = adding_problem(64, 10, seed=0)
    data = SequenceBatch(
        d.inputs, d.targets, torch.ones_like(d.mask), torch.full_like(d.lengths, 10)
    )
    cfg = TrainerConfig(
        epochs=1, batch_size=16, tbptt=4, log=LogConfig(progress="lines", print_every=5)
    )
    trainer = Trainer(small_model("gru"), cfg, EpochBatches(data, 16, seed=0))
    trainer.fit()
    lines = _lines(capsys)
    assert [int(m[1]) for m in map(STEP.fullmatch, lines) if m] == [5, 10]
    assert EPOCH.fullmatch(lines[-1]) and len(lines) == 3


def test_a_run_stopped_mid_epoch_says_where(capsys):
    trainer = small_trainer(None, epochs=2, max_steps=3, log=LogConfig(progress="lines"))
    trainer.fit()
    lines = _lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("stopped at step 3 (epoch 1, batch 3/8)")


def test_auto_picks_lines_when_stderr_is_not_a_terminal(monkeypatch):
    class Tty:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

        def write(self, text: str) -> int:
            return len(text)

        def flush(self) -> None: ...

    monkeypatch.setattr(sys, "stderr", Tty(False))
    kinds = [type(cb) for cb in small_trainer(None, log=LogConfig(progress="auto")).callbacks]
    assert LineLogger in kinds and ProgressBar not in kinds
    monkeypatch.setattr(sys, "stderr", Tty(True))
    kinds = [type(cb) for cb in small_trainer(None, log=LogConfig(progress="auto")).callbacks]
    assert ProgressBar in kinds and LineLogger not in kinds
    kinds = [type(cb) for cb in small_trainer(None, log=LogConfig(progress="none")).callbacks]
    assert LineLogger not in kinds and ProgressBar not in kinds


def test_lines_are_flushed(capsys, monkeypatch):
    flushed = []
    real = sys.stdout

    class Recorder:
        def write(self, text: str) -> int:
            return real.write(text)

        def flush(self) -> None:
            flushed.append(True)

    monkeypatch.setattr(sys, "stdout", Recorder())
    trainer = small_trainer(None, epochs=1, n=32, log=LogConfig(progress="lines", print_every=1))
    trainer.fit()
    assert len(flushed) >= 3  # steps 1 and 2, the epoch line


def test_log_defaults_and_checks():
    assert LogConfig().print_every == 100 and LogConfig().progress == "auto"
    with pytest.raises(ValueError, match="print_every must be >= 0, got -1"):
        LogConfig(print_every=-1)
    with pytest.raises(ValueError, match="every_steps must be >= 1, got 0"):
        LogConfig(every_steps=0)
    with pytest.raises(ValueError, match="print_every must be >= 0, got -2"):
        LineLogger(-2)
