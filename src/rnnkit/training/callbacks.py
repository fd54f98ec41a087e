"""Trainer events and the plug-ins that listen to them: schedule, logs, progress, early stopping.

The trainer calls every callback's hooks in order::

    on_train_start(trainer)                 before the first batch (also after a resume)
    on_epoch_start(trainer, epoch)          before an epoch's first batch
    on_batch_start(trainer, batch_index)    before a batch's forward pass
    on_batch_end(trainer, batch_index, info)  after the batch's optimizer step(s)
    on_evaluation(trainer, metrics)         after validation (an epoch's end, or a time-budget stop)
    on_epoch_end(trainer, epoch, metrics)   with the epoch's train and validation metrics
    on_checkpoint(trainer, path)            after a checkpoint is written
    on_train_end(trainer)                   once, also when the run stops early

A callback with state (early stopping's patience counter) returns it from ``state_dict`` as
JSON-friendly data; the trainer saves it in each checkpoint under the callback's ``name``.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnkit.config import ConfigError

if TYPE_CHECKING:
    from rnnkit.training.trainer import BatchInfo, StepInfo, Trainer


class Callback:
    """Base class: every hook does nothing; override the ones you need."""

    name = "callback"

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_batch_start(self, trainer: Trainer, batch_index: int) -> None: ...

    def on_batch_end(self, trainer: Trainer, batch_index: int, info: BatchInfo) -> None: ...

    def on_step_end(self, trainer: Trainer, info: StepInfo) -> None:
        """After each optimizer step: once per batch, or once per chunk under truncated
        BPTT (one batch of long sequences may be hundreds of chunks)."""

    def on_evaluation(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None: ...

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any] | None:
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ScheduleCallback(Callback):
    """Sets the learning rate before each batch and feeds validation to "plateau"."""

    name = "schedule"

    def on_batch_start(self, trainer: Trainer, batch_index: int) -> None:
        trainer.lr = trainer.schedule.apply(
            trainer.optimizer, trainer.step, trainer.epoch, trainer.budget_fraction()
        )

    def on_step_end(self, trainer: Trainer, info: StepInfo) -> None:
        """Under truncated BPTT a batch holds many optimizer steps (an epoch can be one batch
        of long streams): each step gets the rate of its own number and time (``trainer.lr``,
        what the logs show, is the rate the last step used: the trainer reads it there)."""
        if trainer.config.tbptt > 0:
            trainer.schedule.apply(
                trainer.optimizer, trainer.step, trainer.epoch, trainer.budget_fraction(now=True)
            )

    def on_evaluation(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        monitor = trainer.config.monitor
        if monitor not in metrics:  # the best checkpoint, plateau and early stopping need it
            raise ConfigError(
                f"trainer.monitor={monitor!r} is not a metric of this task; "
                f"it reports: {', '.join(sorted(metrics))}"
            )
        trainer.schedule.observe(metrics[monitor])


class EarlyStopping(Callback):
    """Stops training after ``patience`` evaluations without improvement of ``monitor``."""

    name = "early_stopping"

    def __init__(self, monitor: str, mode: str, patience: int, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best: float | None = None
        self.bad = 0

    def on_train_start(self, trainer: Trainer) -> None:
        """A resumed run whose patience had run out stops again (the stop may have been
        saved as a max_steps or budget stop that fell on the same epoch end)."""
        if self.best is not None and self.bad >= self.patience:
            trainer.should_stop = True

    def on_evaluation(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.monitor not in metrics:
            raise KeyError(f"early stopping monitors {self.monitor!r}; metrics: {sorted(metrics)}")
        value = metrics[self.monitor]
        sign = 1.0 if self.mode == "min" else -1.0
        if self.best is None or sign * (self.best - value) > self.min_delta:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
            if self.bad >= self.patience:
                trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad = state["best"], int(state["bad"])


class MetricsLogger(Callback):
    """One row per epoch in ``RUN_DIR/metrics.csv`` or ``metrics.jsonl``.

    On a resume, rows of epochs at or after the resumed epoch (written after the checkpoint by
    the killed process) are dropped, so the file matches an uninterrupted run.
    """

    name = "metrics_logger"

    def __init__(self, run_dir: str | Path, fmt: str = "csv") -> None:
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"fmt must be 'csv' or 'jsonl', got {fmt!r}")
        self.path = Path(run_dir) / f"metrics.{fmt}"
        self.fmt = fmt

    def on_train_start(self, trainer: Trainer) -> None:
        if not self.path.exists():
            return
        lines = self.path.read_text().splitlines(keepends=True)
        if self.fmt == "csv":
            header, rows = lines[:1], lines[1:]
            kept = header + [r for r in rows if int(r.split(",", 1)[0]) < trainer.epoch]
        else:
            kept = [r for r in lines if r.strip() and json.loads(r)["epoch"] < trainer.epoch]
        self.path.write_text("".join(kept))

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        self._append({"epoch": epoch, "step": trainer.step, **metrics})

    def _append(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
            return
        new = not self.path.exists()
        fields = list(row) if new else _csv_header(self.path)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


def _csv_header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f))


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv or metrics.jsonl file as dicts of numbers (empty when absent)."""
    path = Path(path)
    if not path.exists():
        return []
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


class TensorBoardLogger(Callback):
    """Step and epoch scalars as TensorBoard event files in ``RUN_DIR/tensorboard``."""

    name = "tensorboard"

    def __init__(self, run_dir: str | Path, every_steps: int = 10) -> None:
        self.dir = Path(run_dir) / "tensorboard"
        self.every = max(1, every_steps)
        self.writer: Any = None

    def on_train_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # a resume drops the events a killed process wrote after its checkpoint; the
        # checkpoint's own step was logged before it was saved, so it stays
        self.writer = SummaryWriter(
            str(self.dir), purge_step=trainer.step + 1 if trainer.step else None
        )

    def on_step_end(self, trainer: Trainer, info: StepInfo) -> None:
        if trainer.step % self.every == 0 and math.isfinite(info.loss):
            self.writer.add_scalar("train/loss", info.loss, trainer.step)
            self.writer.add_scalar("train/grad_norm", info.grad_norm, trainer.step)
            self.writer.add_scalar("train/lr", trainer.lr, trainer.step)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(f"epoch/{key}", value, trainer.step)
        self.writer.flush()

    def on_train_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()


class ProgressBar(Callback):
    """A per-epoch progress bar (tqdm or rich) showing loss, sequences per second and ETA."""

    name = "progress"

    def __init__(self, kind: str = "tqdm") -> None:
        if kind not in ("tqdm", "rich"):
            raise ValueError(f"kind must be 'tqdm' or 'rich', got {kind!r}")
        self.kind = kind
        self.bar: Any = None
        self.task: Any = None
        self.seen = 0
        self.t0 = 0.0
        self.shown = 0.0  # when on_step_end last changed the bar's text

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        total, done = len(trainer.train_batches), trainer.batch_in_epoch
        self.seen, self.t0 = 0, time.perf_counter()
        desc = f"epoch {epoch + 1}/{trainer.config.epochs}"
        if trainer.config.max_minutes:
            left = max(trainer.config.max_minutes - trainer.seconds / 60.0, 0.0)
            desc += f" ({left:.1f} of {trainer.config.max_minutes:.1f} min left)"
        if self.kind == "tqdm":
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc=desc, file=sys.stderr, leave=False)
        else:
            from rich.console import Console
            from rich.progress import Progress, TimeRemainingColumn

            self.bar = Progress(
                *Progress.get_default_columns()[:-1],
                TimeRemainingColumn(),
                "{task.fields[info]}",
                transient=True,
                console=Console(file=sys.stderr),  # as tqdm: stdout stays the results'
            )
            self.bar.start()
            self.task = self.bar.add_task(desc, total=total, completed=done, info="")

    def on_batch_end(self, trainer: Trainer, batch_index: int, info: BatchInfo) -> None:
        self.seen += info.sequences
        rate = self.seen / max(time.perf_counter() - self.t0, 1e-9)
        text = f"loss={info.loss:.4g} {rate:.0f} seq/s"
        if self.kind == "tqdm":
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
        else:
            self.bar.update(self.task, advance=1, info=text)

    def on_step_end(self, trainer: Trainer, info: StepInfo) -> None:
        """Under truncated BPTT a batch is many steps: the bar's text follows them (at most
        once a second), so a long batch (hundreds of chunks) shows progress."""
        if trainer.config.tbptt == 0 or self.bar is None:
            return
        now = time.perf_counter()
        if now - self.shown < 1.0:
            return
        self.shown = now
        text = f"step {trainer.step} loss={info.loss:.4g}"
        if self.kind == "tqdm":
            self.bar.set_postfix_str(text, refresh=True)
        else:
            self.bar.update(self.task, info=text)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        self._close()
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        print(f"epoch {epoch + 1}: {shown}", file=sys.stderr)

    def on_train_end(self, trainer: Trainer) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close() if self.kind == "tqdm" else self.bar.stop()
            self.bar = None


class LineLogger(Callback):
    """Plain progress lines on stdout, each flushed: for logs without a terminal.

    One line per epoch, and with ``print_every`` > 0 one every ``print_every`` optimizer
    steps (truncated BPTT's chunks included), with the mean step loss and the targets per
    second on this process since the previous step line::

        step 100 loss=0.1523 targets/s=4210 lr=0.001
        epoch 2/10 step 128 train_loss=0.1498 val_loss=0.1377 lr=0.001 elapsed=12.3s

    A run stopped inside an epoch (``max_steps``, ``max_minutes``) ends with a ``stopped`` line.
    """

    name = "lines"

    def __init__(self, print_every: int = 100) -> None:
        if print_every < 0:
            raise ValueError(f"print_every must be >= 0, got {print_every}")
        self.every = print_every
        self.losses: list[float] = []  # step losses since the previous step line
        self.seen = 0  # targets since the previous step line
        self.t0 = 0.0

    def on_train_start(self, trainer: Trainer) -> None:
        self._reset()

    def _reset(self) -> None:
        self.losses, self.seen, self.t0 = [], 0, time.perf_counter()

    def on_step_end(self, trainer: Trainer, info: StepInfo) -> None:
        self.losses.append(info.loss)
        self.seen += info.targets
        if not self.every or trainer.step % self.every:
            return
        rate = self.seen / max(time.perf_counter() - self.t0, 1e-9)
        loss = sum(self.losses) / len(self.losses)
        _say(f"step {trainer.step} loss={loss:.4g} targets/s={rate:.0f} lr={trainer.lr:.4g}")
        self._reset()

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        shown = [f"train_loss={metrics['train_loss']:.4g}"] if "train_loss" in metrics else []
        shown += [f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith("val_")]
        _say(
            f"epoch {epoch + 1}/{trainer.config.epochs} step {trainer.step} {' '.join(shown)} "
            f"lr={trainer.lr:.4g} elapsed={trainer.elapsed():.1f}s"
        )

    def on_train_end(self, trainer: Trainer) -> None:
        if trainer.batch_in_epoch:
            done = f"{trainer.batch_in_epoch}/{len(trainer.train_batches)}"
            _say(
                f"stopped at step {trainer.step} (epoch {trainer.epoch + 1}, batch {done}) "
                f"elapsed={trainer.elapsed():.1f}s"
            )


def _say(line: str) -> None:
    """Print one line to the current stdout and flush it (seen at once in a piped log)."""
    print(line, file=sys.stdout, flush=True)
