"""What a task is: a dataset bound to a model and its metrics, through a few hooks.

A task is one module under ``rnnkit.tasks`` that defines ``TASK = Task(...)``; it is found by
name (or alias) the first time it is asked for, so a task's own dependencies (seqeval,
sentencepiece, ...) load only when that task runs. Generic code (:mod:`rnnkit.tasks.run`, the
trainer, the CLI) calls the hooks and names no task::

    prepare(task_config, seed, codec) -> TaskData
        read or generate the splits; build the codec from the training split, or reuse
        ``codec`` (the one saved in a checkpoint) when given; say which model config fields
        the data fixes (vocabulary size, classes, tags)
    check(task_config, model_table)            optional: refuse [model] keys this task would
                                               not use, before any data is read
    init_model(model, data, task_config, seed) optional: pretrained vectors and the like
    score(model, batch, data) -> metrics       optional: task metrics beyond the model's loss
    read_file(task_config, path, codec) -> batch   optional: a labelled file for evaluate
    store_records(records, path) -> overrides  optional: write in-memory data (rnnkit.train)

The ``[task]`` table is ``config_cls``; the ``[model]`` table is ``model_cls.config_cls`` less
the fields the data fixes (``fixed``): an unknown or fixed key in it is an error naming it.
``eval_keys`` are the ``[task]`` keys that ``rnnkit evaluate --set`` may change (how a trained
run decodes and scores: ``beam``, ``metrics``, ...); the others fixed the run's data and
codec, so evaluate refuses them rather than ignore them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Task", "TaskData", "get_task", "register_task", "task_names"]


@dataclass(frozen=True)
class TaskData:
    train: Any  # training batch (SequenceBatch or PairBatch): all rows
    val: Any  # validation rows (best checkpoint, early stopping)
    test: Any  # held-out rows for `rnnkit evaluate`
    codec: Any  # raw input <-> ids; saved in every checkpoint (codec.json)
    fixed: dict[str, Any] = field(default_factory=dict)  # model config fields set by the data
    baseline: dict[str, float] = field(default_factory=dict)  # a trivial predictor's scores
    config: Any = None  # the [task] config the data was prepared from (for score hooks)
    references: dict[str, list[str]] = field(default_factory=dict)  # raw targets per split


@dataclass(frozen=True)
class Task:
    name: str  # registry key, the TASK argument of `rnnkit train`
    description: str  # one line for help texts
    config_cls: type  # frozen dataclass of the [task] table
    model_cls: type  # the model class; model_cls.config_cls is the [model] table
    prepare: Callable[[Any, int, Any], TaskData]  # (task config, seed, codec or None) -> data
    fixed: tuple[str, ...] = ()  # model config fields the data sets (not allowed in [model])
    aliases: tuple[str, ...] = ()  # other names that find this task
    check: Callable[[Any, dict[str, Any]], None] | None = None  # (task config, [model] table)
    init_model: Callable[[Any, TaskData, Any, int], None] | None = None
    score: Callable[[Any, Any, TaskData], dict[str, float]] | None = None
    read_file: Callable[[Any, str, Any], Any] | None = None  # (config, path, codec) -> batch
    store_records: Callable[[list, Any], list[str]] | None = None  # -> [task] overrides
    eval_keys: tuple[str, ...] = ()  # [task] keys `rnnkit evaluate --set` may change

    @property
    def model_config_cls(self) -> type:
        return self.model_cls.config_cls


_TASKS: dict[str, Task] = {}
_ALIASES: dict[str, str] = {}
_DISCOVERED = False


def register_task(task: Task) -> Task:
    """Add ``task`` (a second task of the same name is an error); returns it."""
    for name in (task.name, *task.aliases):
        if name in _TASKS or name in _ALIASES:
            raise ValueError(f"task {name!r} is already registered")
    _TASKS[task.name] = task
    _ALIASES.update({alias: task.name for alias in task.aliases})
    return task


def _discover() -> None:
    """Import every module of this package that defines ``TASK`` (once)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    import rnnkit.tasks as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name in ("base", "run"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        task = getattr(module, "TASK", None)
        if isinstance(task, Task) and task.name not in _TASKS:
            register_task(task)


def get_task(name: str) -> Task:
    """The task registered as ``name`` or under that alias."""
    _discover()
    name = _ALIASES.get(name, name)
    if name not in _TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")
    return _TASKS[name]


def task_names() -> list[str]:
    """Registered task names (aliases not included)."""
    _discover()
    return sorted(_TASKS)
