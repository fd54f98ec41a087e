"""Tasks by name: each binds a data generator, a model shape and its metric.

A task registers a frozen config dataclass (its ``[task]`` table in the TOML file) and a
``build(config, seed) -> TaskData`` function. The adding problem and copy memory are built in::

    spec = get_task("adding")
    data = spec.build(spec.config_cls(seq_len=20, n_train=64, n_val=32, n_test=32), seed=0)
    data.train.inputs.shape   # (64, 20, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rnnkit.tasks.synthetic import ADDING_BASELINE_MSE, adding_problem, copy_baseline, copy_memory
from rnnkit.training.batch import SequenceBatch


@dataclass(frozen=True)
class TaskData:
    train: SequenceBatch  # training sequences
    val: SequenceBatch  # validation sequences (best checkpoint, early stopping)
    test: SequenceBatch  # held-out sequences for `rnnkit evaluate`
    model_shape: dict[str, Any]  # model config fields the task fixes (sizes, objective)
    baseline: dict[str, float] = field(default_factory=dict)  # a trivial predictor's scores
    vocab: dict[str, Any] | None = None  # token ids -> symbols, saved with checkpoints


@dataclass(frozen=True)
class TaskSpec:
    name: str  # registry key, the TASK argument of `rnnkit train`
    config_cls: type  # frozen dataclass of the task's [task] table
    build: Callable[[Any, int], TaskData]  # (config, seed) -> data
    description: str = ""  # one line for help texts
    # (model section, data, seed) -> model; None: the per-step RecurrentModel of adding/copy
    build_model: Callable[[Any, TaskData, int], Any] | None = None
    # (model, split, data) -> extra metrics for `rnnkit evaluate` (span F1 for taggers)
    score: Callable[[Any, SequenceBatch, TaskData], dict[str, float]] | None = None
    # (run dir, texts, which checkpoint) -> what `rnnkit predict` prints; None: not offered
    predict: Callable[[str, list[str], str], str] | None = None


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to the registry; a second task of the same name is an error."""
    if spec.name in _TASKS:
        raise ValueError(f"task {spec.name!r} is already registered")
    _TASKS[spec.name] = spec
    return spec


def get_task(name: str) -> TaskSpec:
    if name not in _TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(_TASKS))}")
    return _TASKS[name]


def task_names() -> list[str]:
    return sorted(_TASKS)


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(obj, name)}")


@dataclass(frozen=True)
class AddingConfig:
    seq_len: int = 50  # T, steps per sequence
    n_train: int = 10_000  # training sequences
    n_val: int = 1_000  # validation sequences
    n_test: int = 1_000  # test sequences

    def __post_init__(self) -> None:
        _positive(self, "n_train", "n_val", "n_test")
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be >= 2, got {self.seq_len}")


def build_adding(cfg: AddingConfig, seed: int) -> TaskData:
    return TaskData(
        train=adding_problem(cfg.n_train, cfg.seq_len, seed),
        val=adding_problem(cfg.n_val, cfg.seq_len, seed + 1),
        test=adding_problem(cfg.n_test, cfg.seq_len, seed + 2),
        model_shape={"input_size": 2, "vocab_size": 0, "output_size": 1, "objective": "mse"},
        baseline={"loss": ADDING_BASELINE_MSE},
    )


@dataclass(frozen=True)
class CopyConfig:
    delay: int = 50  # T, blank steps between the symbols and the recall delimiter
    n_symbols: int = 8  # alphabet size of the symbols to copy
    copy_len: int = 10  # symbols to remember
    n_train: int = 10_000  # training sequences
    n_val: int = 1_000  # validation sequences
    n_test: int = 1_000  # test sequences

    def __post_init__(self) -> None:
        _positive(self, "delay", "copy_len", "n_train", "n_val", "n_test")
        if self.n_symbols < 2:
            raise ValueError(f"n_symbols must be >= 2, got {self.n_symbols}")


def build_copy(cfg: CopyConfig, seed: int) -> TaskData:
    args = (cfg.delay,)
    kw = {"n_symbols": cfg.n_symbols, "copy_len": cfg.copy_len}
    return TaskData(
        train=copy_memory(cfg.n_train, *args, seed=seed, **kw),
        val=copy_memory(cfg.n_val, *args, seed=seed + 1, **kw),
        test=copy_memory(cfg.n_test, *args, seed=seed + 2, **kw),
        model_shape={
            "input_size": 1,
            "vocab_size": cfg.n_symbols + 2,
            "output_size": cfg.n_symbols + 1,
            "objective": "xent",
        },
        baseline=copy_baseline(cfg.n_symbols),
        vocab={"tokens": ["<blank>", *map(str, range(1, cfg.n_symbols + 1)), "<recall>"]},
    )


register_task(TaskSpec("adding", AddingConfig, build_adding, "the adding problem (regression)"))
register_task(TaskSpec("copy", CopyConfig, build_copy, "copy memory (classification)"))
