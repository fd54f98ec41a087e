"""The trainer's configuration: frozen dataclasses, one per concern, validated at construction.

In a TOML file they sit under ``[trainer]``, ``[trainer.optim]``, ``[trainer.schedule]``,
``[trainer.checkpoint]``, ``[trainer.log]`` and ``[trainer.early_stopping]``; every field can be
overridden with ``--set trainer.optim.name=sgd``.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass, field, fields
from typing import Literal

from rnnkit.config import is_set

PRECISIONS = ("32", "bf16", "16-mixed")  # float32, bfloat16 autocast, float16 autocast + scaling
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _check(cond: bool, name: str, value: object, want: str) -> None:
    if not cond:
        raise ValueError(f"{name} must be {want}, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    """A finite int or float (not a bool): nan and inf are refused."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int(name: str, value: object, low: int) -> None:
    _check(_is_int(value), name, value, "an integer")
    _check(value >= low, name, value, f">= {low}")  # type: ignore[operator]


def _number(name: str, value: object, want: str, ok: typing.Callable[[float], bool]) -> None:
    """``value`` must be a finite number for which ``ok`` holds (``want`` says which)."""
    _check(_is_number(value), name, value, "a finite number")
    _check(ok(value), name, value, want)  # type: ignore[arg-type]


def _read_by(obj: object, rules: dict[str, tuple[str, tuple[str, ...]]]) -> None:
    """Refuse a field set away from its default where the choice that reads it is not made:
    ``rules`` maps a field to (the choosing field, the values that read it)."""
    for name, (chooser, readers) in rules.items():
        value, choice = getattr(obj, name), getattr(obj, chooser)
        if is_set(obj, name) and choice not in readers:
            these = " or ".join(f"{chooser}={r!r}" for r in readers)
            raise ValueError(
                f"{name}={value!r} applies to {these}, not to {chooser}={choice!r}: remove it "
                "(it would be ignored)"
            )


def _choices(obj: object) -> None:
    """Every ``Literal`` field of dataclass ``obj`` must hold one of its choices."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):  # type: ignore[arg-type]
        tp = hints[f.name]
        if typing.get_origin(tp) is Literal:
            value, options = getattr(obj, f.name), typing.get_args(tp)
            _check(value in options, f.name, value, f"one of {list(options)}")


def check_device_name(name: object) -> None:
    """Refuse anything but "auto", "cpu", "cuda" and "cuda:N" (naming ``device`` and it)."""
    ok = isinstance(name, str) and _DEVICE.fullmatch(name) is not None
    _check(ok, "device", name, "'auto', 'cpu', 'cuda' or 'cuda:N'")


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["sgd", "rmsprop", "adam", "adamw"] = "adam"  # optimizer
    momentum: float = 0.9  # SGD and RMSprop momentum
    weight_decay: float = 0.0  # L2 penalty (decoupled for AdamW)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam/AdamW moment decay rates
    eps: float = 1e-8  # Adam/AdamW/RMSprop denominator epsilon
    alpha: float = 0.99  # RMSprop squared-gradient decay

    def __post_init__(self) -> None:
        _choices(self)
        _number("momentum", self.momentum, ">= 0", lambda v: v >= 0)
        _number("weight_decay", self.weight_decay, ">= 0", lambda v: v >= 0)
        pair = isinstance(self.betas, tuple | list) and len(self.betas) == 2
        _check(pair, "betas", self.betas, "two numbers")
        _check(
            all(_is_number(b) and 0 <= b < 1 for b in self.betas), "betas", self.betas, "in [0, 1)"
        )
        _number("eps", self.eps, "> 0", lambda v: v > 0)
        _number("alpha", self.alpha, "in [0, 1)", lambda v: 0 <= v < 1)
        _read_by(
            self,
            {
                "momentum": ("name", ("sgd", "rmsprop")),
                "betas": ("name", ("adam", "adamw")),
                "eps": ("name", ("adam", "adamw", "rmsprop")),
                "alpha": ("name", ("rmsprop",)),
            },
        )


@dataclass(frozen=True)
class ScheduleConfig:
    name: Literal["constant", "step", "cosine", "plateau"] = "constant"  # decay rule
    warmup_steps: int = 0  # linear warm-up from lr/warmup_steps to lr over these steps
    step_size: int = 10  # "step": epochs between decays
    gamma: float = 0.5  # "step": decay factor per step_size epochs
    min_lr: float = 0.0  # "cosine" floor and "plateau" floor (cosine ends with max_minutes too)
    factor: float = 0.5  # "plateau": lr multiplier when the monitored metric stalls
    patience: int = 2  # "plateau": epochs without improvement before decaying

    def __post_init__(self) -> None:
        _choices(self)
        _int("warmup_steps", self.warmup_steps, 0)
        _int("step_size", self.step_size, 1)
        _number("gamma", self.gamma, "in (0, 1]", lambda v: 0 < v <= 1)
        _number("min_lr", self.min_lr, ">= 0", lambda v: v >= 0)
        _number("factor", self.factor, "in (0, 1]", lambda v: 0 < v <= 1)
        _int("patience", self.patience, 0)
        _read_by(
            self,
            {
                "step_size": ("name", ("step",)),
                "gamma": ("name", ("step",)),
                "min_lr": ("name", ("cosine", "plateau")),
                "factor": ("name", ("plateau",)),
                "patience": ("name", ("plateau",)),
            },
        )


@dataclass(frozen=True)
class CheckpointConfig:
    every_steps: int = 0  # also checkpoint every this many optimizer steps (0: epoch ends only)
    keep_last: int = 2  # most recent checkpoints kept (also the best, and the one before the
    # latest until a later finite loss shows the latest is sound)

    def __post_init__(self) -> None:
        _int("every_steps", self.every_steps, 0)
        _int("keep_last", self.keep_last, 1)


@dataclass(frozen=True)
class LogConfig:
    format: Literal["csv", "jsonl"] = "csv"  # per-epoch metrics file: metrics.csv/.jsonl
    tensorboard: bool = True  # write TensorBoard event files under RUN_DIR/tensorboard
    # progress display: "auto" is tqdm when stderr is a terminal and "lines" otherwise;
    # "lines" prints plain, flushed lines on stdout (notebooks, nohup, CI logs)
    progress: Literal["auto", "rich", "tqdm", "lines", "none"] = "auto"
    every_steps: int = 10  # TensorBoard step-scalar interval
    print_every: int = 100  # "lines": also a line every this many optimizer steps (0: epochs only)

    def __post_init__(self) -> None:
        _choices(self)
        _check(isinstance(self.tensorboard, bool), "tensorboard", self.tensorboard, "true or false")
        _int("every_steps", self.every_steps, 1)
        _int("print_every", self.print_every, 0)
        _read_by(
            self,
            {
                "every_steps": ("tensorboard", (True,)),
                "print_every": ("progress", ("auto", "lines")),  # auto: lines off a terminal
            },
        )


@dataclass(frozen=True)
class EarlyStoppingConfig:
    patience: int = 0  # epochs without improvement before stopping (0: never stop early)
    min_delta: float = 0.0  # improvement smaller than this does not count

    def __post_init__(self) -> None:
        _int("patience", self.patience, 0)
        _number("min_delta", self.min_delta, ">= 0", lambda v: v >= 0)
        if self.min_delta and not self.patience:
            raise ValueError(
                f"min_delta={self.min_delta!r} applies to early stopping, which patience=0 "
                "turns off: set patience > 0 or remove min_delta"
            )


@dataclass(frozen=True)
class TrainerConfig:
    epochs: int = 10  # passes over the training data
    batch_size: int = 32  # sequences per optimizer step (global, over all processes)
    bucket: bool = True  # batch sequences of similar length together (less padding)
    lr: float = 1e-3  # peak learning rate
    tbptt: int = 0  # truncated BPTT chunk length in steps (0: full BPTT)
    clip_norm: float = 0.0  # clip the global gradient L2 norm to this (0: off)
    clip_value: float = 0.0  # clamp each gradient entry to [-v, v] (0: off)
    max_steps: int = 0  # stop after this many optimizer steps (0: no limit)
    # stop after the batch (in one process, the truncated-BPTT step) that passes this much
    # training time (0: none)
    max_minutes: float = 0.0
    monitor: str = "val_loss"  # metric for best checkpoint, plateau and early stopping
    mode: Literal["min", "max"] = "min"  # whether the monitored metric should go down or up
    deterministic: bool = True  # torch.use_deterministic_algorithms for exact resume
    device: str = "auto"  # "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N"
    precision: str | int = "32"  # "32", "bf16" or "16-mixed" (CUDA only); 32 is read as "32"
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimizer
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)  # learning-rate schedule
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)  # checkpointing
    log: LogConfig = field(default_factory=LogConfig)  # logs and progress bars
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)

    def __post_init__(self) -> None:
        _choices(self)
        _int("epochs", self.epochs, 1)
        _int("batch_size", self.batch_size, 1)
        _check(isinstance(self.bucket, bool), "bucket", self.bucket, "true or false")
        _number("lr", self.lr, "> 0", lambda v: v > 0)
        _int("tbptt", self.tbptt, 0)
        _number("clip_norm", self.clip_norm, ">= 0", lambda v: v >= 0)
        _number("clip_value", self.clip_value, ">= 0", lambda v: v >= 0)
        _int("max_steps", self.max_steps, 0)
        _number("max_minutes", self.max_minutes, ">= 0", lambda v: v >= 0)
        ok = isinstance(self.monitor, str) and self.monitor.strip() != ""
        _check(ok, "monitor", self.monitor, "a metric name such as 'val_loss'")
        det = self.deterministic
        _check(isinstance(det, bool), "deterministic", det, "true or false")
        check_device_name(self.device)
        if isinstance(self.precision, int) and not isinstance(self.precision, bool):
            object.__setattr__(self, "precision", str(self.precision))  # --set precision=32
        _check(self.precision in PRECISIONS, "precision", self.precision, f"one of {PRECISIONS}")
        if self.precision == "16-mixed" and self.device == "cpu":
            raise ValueError("precision='16-mixed' needs CUDA, not device='cpu'; use 'bf16'")
        if self.schedule.name in ("cosine", "plateau") and self.schedule.min_lr >= self.lr:
            raise ValueError(
                f"schedule.min_lr={self.schedule.min_lr!r} must be below lr={self.lr!r}: the "
                f"{self.schedule.name} schedule decays from lr down to min_lr"
            )
