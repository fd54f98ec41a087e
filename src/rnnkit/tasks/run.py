"""Runs of any task: train, resume, evaluate, predict, generate and diagnose a run directory.

A run is configured by a TOML file whose schema is :class:`RunConfig`: the task's own
``[task]`` table, the model's ``[model]`` table (its config class, less the fields the data
fixes) and ``[trainer]``, overridden by ``--set`` items::

    seed = 0
    score_val = false   # also score the validation split with the task's metrics each epoch
    [task]              # the task's config dataclass (AddingConfig, ClassifyConfig, ...)
    seq_len = 100
    [model]             # the task's model config (RecurrentModelConfig, ClassifierConfig...)
    cell = "lstm"
    hidden_size = 64
    [trainer]           # TrainerConfig, with [trainer.optim], [trainer.schedule], ...
    epochs = 5

An unknown key, or a key the task's data fixes, is an error naming it. The run directory
holds ``config.json`` (everything needed to rebuild the run), the checkpoints (each with the
model, its config and the task's codec), the metrics log, TensorBoard events and, after
``diagnose``, PNG plots. Nothing here names a task: every task-specific step is a hook of
:class:`rnnkit.tasks.base.Task`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rnnkit.config import ConfigError, apply_overrides, check_table, from_dict, load_toml, to_dict
from rnnkit.data.batches import EpochBatches, trimmed
from rnnkit.models.contract import Attending, Classifying, Ensembling, Traceable, require
from rnnkit.models.encoder import RecurrentConfig
from rnnkit.tasks.base import Task, TaskData, get_task
from rnnkit.training.callbacks import Callback
from rnnkit.training.checkpoint import (
    load_codec,
    load_model,
    locate_checkpoint,
    refuse_unverifiable,
    write_atomic,
)
from rnnkit.training.config import TrainerConfig
from rnnkit.training.device import move_batch, resolve_device
from rnnkit.training.distributed import init_distributed, seed_everything
from rnnkit.training.trainer import Trainer, evaluate_model


@dataclass(frozen=True)
class RunConfig:
    task: str  # registered task name
    task_config: Any  # the task's config dataclass instance
    model: dict[str, Any] = field(default_factory=dict)  # the [model] table, checked
    seed: int = 0  # seeds data, initialization, shuffling and dropout
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # the training loop
    score_val: bool = False  # the task's scores on the validation split at every validation

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "seed": self.seed,
            "score_val": self.score_val,
            "task_config": to_dict(self.task_config),
            "model": dict(self.model),
            "trainer": to_dict(self.trainer),
        }


@dataclass(frozen=True)
class _Sections:
    seed: int = 0  # see RunConfig
    task: dict = field(default_factory=dict)  # checked against the task's config class
    model: dict = field(default_factory=dict)  # checked against the task's model config
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # see RunConfig
    score_val: bool = False  # see RunConfig


def _checked(
    spec: Task, task_table: dict, model_table: dict, seed: int, trainer, score_val: bool = False
) -> RunConfig:
    task_config = from_dict(spec.config_cls, task_table, prefix="task")
    model = check_table(spec.model_config_cls, model_table, "model", spec.fixed)
    _check_recurrent(spec.model_config_cls, model)
    if spec.check is not None:
        spec.check(task_config, model)
    if score_val and spec.score is None:
        raise ConfigError(f"score_val: task {spec.name!r} has no scores beyond its loss")
    return RunConfig(spec.name, task_config, model, seed, trainer, score_val)


def _check_recurrent(cls: type, model: dict[str, Any]) -> None:
    """Check the recurrent stack's ``[model]`` keys (cell, sizes, nonlinearity, dropout...)
    now, with the model's defaults for the rest: they depend on no data, so a bad cell name
    is refused before any data is read rather than after."""
    if not (isinstance(cls, type) and issubclass(cls, RecurrentConfig)):
        return
    names = {f.name for f in dataclasses.fields(RecurrentConfig)}
    stack = {
        f.name: model.get(f.name, f.default)
        for f in dataclasses.fields(cls)
        if f.name in names and (f.name in model or f.default is not dataclasses.MISSING)
    }
    from_dict(RecurrentConfig, stack, prefix="model")


def load_run_config(
    task: str, path: str | Path | None = None, overrides: Sequence[str] = ()
) -> RunConfig:
    """The run configuration of ``task`` from an optional TOML file and ``key=value`` items."""
    spec = get_task(task)
    data = load_toml(path) if path is not None else {}
    sections = from_dict(_Sections, apply_overrides(data, overrides))
    return _checked(
        spec, sections.task, sections.model, sections.seed, sections.trainer, sections.score_val
    )


def run_config_from_json(data: dict[str, Any]) -> RunConfig:
    spec = get_task(data["task"])
    trainer = from_dict(TrainerConfig, data["trainer"], "trainer")
    return _checked(
        spec,
        data["task_config"],
        data["model"],
        int(data["seed"]),
        trainer,
        bool(data.get("score_val", False)),
    )


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The configuration of the task run in ``run_dir``."""
    f = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it does not exist")
    if not f.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory: no config.json")
    try:
        data = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{f}: not a run configuration (invalid JSON: {e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{f}: not a run configuration (a JSON {type(data).__name__})")
    if not data.get("task"):
        raise ValueError(
            f"{run_dir} was trained from Python without a task, so rnnkit cannot rebuild its "
            "data: predict and generate read it; train with rnnkit.train(TASK, ...) for the rest"
        )
    try:
        return run_config_from_json(data)
    except KeyError as e:
        raise ValueError(f"{f}: not a run configuration (no {e.args[0]!r})") from None
    except ConfigError as e:
        raise ConfigError(f"{f}: {e}") from None


def build_model(cfg: RunConfig, data: TaskData) -> torch.nn.Module:
    """The task's model from the ``[model]`` table and the fields the data fixes."""
    spec = get_task(cfg.task)
    config = from_dict(spec.model_config_cls, {**cfg.model, **data.fixed}, prefix="model")
    model = spec.model_cls(config, data.codec)
    if spec.init_model is not None:
        spec.init_model(model, data, cfg.task_config, cfg.seed)
    return model


class ValidationScores(Callback):
    """Adds the task's own scores on the validation split to every epoch's metrics.

    ``score(model, data.val, data)`` (``Task.score``: span F1 for taggers) runs after the
    validation loss, before any other callback sees the metrics, with the names prefixed
    ``val_``: ``trainer.monitor = "val_f1_overall"`` with ``mode = "max"`` then keeps the
    checkpoint of the best validation F1 (and early stopping and the plateau schedule follow
    it too). The model's train/eval mode is restored afterwards.
    """

    name = "validation_scores"

    def __init__(self, score: Callable[[Any, Any, TaskData], dict], data: TaskData):
        self.score, self.data = score, data

    def on_evaluation(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        was_training = trainer.model.training
        with torch.no_grad():
            scores = self.score(trainer.model, move_batch(self.data.val, trainer.device), self.data)
        trainer.model.train(was_training)
        metrics.update({f"val_{k}": float(v) for k, v in scores.items()})


def _setup(
    cfg: RunConfig,
    run_dir: Path | None,
    callbacks: Sequence[Callback] = (),
    score_val: bool = False,
    codec: Any = None,
) -> tuple[Trainer, TaskData]:
    dist_ctx = init_distributed(cfg.trainer.device)
    seed_everything(cfg.seed)
    spec = get_task(cfg.task)
    if score_val and spec.score is None:
        raise ValueError(f"score_val: task {cfg.task!r} has no scores beyond its loss")
    data = spec.prepare(cfg.task_config, cfg.seed, codec)
    model = build_model(cfg, data)
    t = cfg.trainer
    train = EpochBatches(data.train, t.batch_size, shuffle=True, seed=cfg.seed, bucket=t.bucket)
    val = EpochBatches(data.val, t.batch_size, shuffle=False, drop_last=False, bucket=t.bucket)
    trainer = Trainer(
        model, t, train, val, run_dir, callbacks, dist_ctx, codec=data.codec, task=cfg.task
    )
    if score_val:
        trainer.callbacks.insert(0, ValidationScores(spec.score, data))  # before the others
    return trainer, data


def _finish(trainer: Trainer, run_dir: Path) -> dict[str, Any]:
    summary = {
        "step": trainer.step,
        "epochs": trainer.epoch,
        "world_size": trainer.dist.world,
        "rank0_sequences": trainer.local_sequences,
        "history": trainer.history,
        "stop_reason": trainer.stop_reason,  # epochs, max_steps, max_minutes or early_stopping
        "seconds": round(trainer.seconds, 3),  # training wall-clock time, summed over resumes
        "final": trainer.final_metrics,  # the last validation, with its step and epochs done
    }
    if trainer.dist.is_writer:
        write_atomic(run_dir / "summary.json", json.dumps(summary, indent=1).encode())
    return summary


def train(
    cfg: RunConfig,
    run_dir: str | Path,
    callbacks: Sequence[Callback] = (),
    score_val: bool = False,
) -> dict[str, Any]:
    """Train a fresh run into ``run_dir`` (which must not hold a run already).

    ``score_val``: add the task's scores on the validation split to each epoch's metrics
    (:class:`ValidationScores`), so that ``trainer.monitor`` can name one (``val_f1_overall``).
    """
    run_dir = Path(run_dir)
    if (run_dir / "config.json").exists():
        raise FileExistsError(f"{run_dir} already holds a run; use `rnnkit resume {run_dir}`")
    score_val = score_val or cfg.score_val
    trainer, _ = _setup(cfg, run_dir, callbacks, score_val)
    if trainer.dist.is_writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        config = {**cfg.to_json(), "score_val": score_val}
        write_atomic(run_dir / "config.json", json.dumps(config, indent=1).encode())
    try:
        trainer.fit()
    except ConfigError:  # a setting found wrong in training (trainer.monitor): no run was made,
        # so the same directory takes the corrected command (not only `rnnkit resume`)
        if trainer.dist.is_writer and locate_checkpoint(run_dir, "latest") is None:
            (run_dir / "config.json").unlink(missing_ok=True)
        raise
    return _finish(trainer, run_dir)


def resume(run_dir: str | Path, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Continue the run in ``run_dir`` from its latest checkpoint (or from scratch), with the
    codec that checkpoint holds."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    score_val = cfg.score_val
    refuse_unverifiable(run_dir)  # every checkpoint corrupt: refuse, do not start afresh
    latest = locate_checkpoint(run_dir, "latest")
    codec = load_codec(latest) if latest is not None else None
    trainer, _ = _setup(cfg, run_dir, callbacks, score_val, codec)
    if latest is not None:
        trainer.resume(latest)
    trainer.fit()
    return _finish(trainer, run_dir)


def checkpoint_path(run_dir: str | Path, which: str = "best") -> Path:
    """The ``best`` or ``latest`` checkpoint of a run directory (a corrupt one is an error
    naming its file)."""
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it does not exist")
    refuse_unverifiable(Path(run_dir), which)
    path = locate_checkpoint(Path(run_dir), which)
    if path is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint yet")
    return path


def load(run_dir: str | Path, which: str = "best", device: str = "cpu") -> torch.nn.Module:
    """The trained model of a run directory with its codec (``model.codec``), in eval mode.

    ``rnnkit.load("runs/x").predict(["a witty film"])`` for classifiers and taggers,
    ``.generate("ROMEO:", 200)`` for language models. ``device``: "cpu", "cuda", "cuda:N"
    or "auto" (a ValueError names a device that is not one or is not there).
    """
    device = str(resolve_device(device))
    path = checkpoint_path(run_dir, which)
    model = load_model(path, map_location=device)
    model.codec = load_codec(path)
    return model.eval()


def load_ensemble(
    run_dirs: Sequence[str | Path], which: str = "best", device: str = "cpu"
) -> torch.nn.Module:
    """The ``which`` models of several runs of one task and codec combined into one model
    (:class:`~rnnkit.models.contract.Ensembling`: encoder-decoders), with the first run's
    codec, in eval mode."""
    if len(run_dirs) < 2:
        raise ValueError(f"run_dirs: an ensemble needs at least 2 runs, got {len(run_dirs)}")
    first = run_dirs[0]
    task = read_run_config(first).task
    model = load(first, which, device)
    require(model, Ensembling, str(first))
    mine = json.dumps(model.codec.to_json(), sort_keys=True)
    seen, members = {Path(first).resolve()}, []
    for other in run_dirs[1:]:
        if Path(other).resolve() in seen:
            raise ValueError(f"{other}: this run is already in the ensemble")
        seen.add(Path(other).resolve())
        theirs = read_run_config(other).task
        if theirs != task:
            raise ValueError(
                f"{other}: is a {theirs!r} run and {first} a {task!r} run: ensembled runs "
                "must be of one task"
            )
        member = load(other, which, device)
        if json.dumps(member.codec.to_json(), sort_keys=True) != mine:
            raise ValueError(
                f"{other}: its codec (vocabularies, tokenizers) differs from {first}'s: "
                "ensembled runs must read and write the same tokens"
            )
        members.append(member)
    return model.ensemble(members).eval()


def _split(data: TaskData, split: str) -> Any:
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    return getattr(data, split)


def evaluate(
    run_dir: str | Path,
    split: str = "test",
    which: str = "best",
    data_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    confusion_plot: str | Path | None = None,
    ensemble: Sequence[str | Path] = (),
) -> dict[str, float]:
    """Loss and metrics of the run's ``which`` checkpoint on ``split``, with the baseline.

    With ``data_file``, evaluate on that labelled file instead (tasks that read files), encoded
    with the checkpoint's codec. ``overrides`` (``task.beam=5``) change ``[task]`` settings
    for this evaluation only: how it decodes and scores, say; the data is the run's own.
    ``confusion_plot``: a PNG path for the confusion matrix of what was evaluated (a model
    with one class per sequence). ``ensemble``: other run directories of the same task and
    codec whose ``which`` checkpoints join this one's model (:class:`Ensembling`); the
    settings, data and baseline are this run's.
    """
    cfg = read_run_config(run_dir)
    if overrides:
        cfg = _with_task_overrides(cfg, overrides)
    spec = get_task(cfg.task)
    model = load_ensemble([run_dir, *ensemble], which) if ensemble else load(run_dir, which)
    if confusion_plot is not None:
        require(model, Classifying, str(run_dir))
    batch_size = cfg.trainer.batch_size
    if data_file is not None:
        if spec.read_file is None:
            raise ValueError(f"--data: {run_dir} is a {cfg.task!r} run, which reads no files")
        try:
            batch = spec.read_file(cfg.task_config, str(data_file), model.codec)
        except ValueError as e:  # readers name the file and line; other checks may not
            if Path(data_file).name in str(e):
                raise
            raise ValueError(f"--data {data_file}: {e}") from None
        if not batch.size:
            raise ValueError(f"--data {data_file}: holds no rows to evaluate")
        batches = EpochBatches(batch, batch_size, False, drop_last=False, bucket=True)
        try:  # what the model cannot read (another image height, say): name the file
            out = {"n": float(batch.size), **evaluate_model(model, batches)}
            if spec.score is not None:
                with torch.no_grad():
                    data = TaskData(None, None, batch, model.codec, config=cfg.task_config)
                    out.update(spec.score(model, batch, data))
        except ValueError as e:
            raise ValueError(f"--data {data_file}: {e}") from None
        if confusion_plot is not None:
            plot_confusion_of(model, batch, batch_size, confusion_plot, Path(data_file).name)
        return out
    data = spec.prepare(cfg.task_config, cfg.seed, model.codec)
    rows = _split(data, split)
    out = evaluate_model(model, EpochBatches(rows, batch_size, False, drop_last=False, bucket=True))
    if spec.score is not None:
        with torch.no_grad():
            out.update(spec.score(model, rows, data))
    out.update({f"baseline_{k}": v for k, v in data.baseline.items()})
    if confusion_plot is not None:
        plot_confusion_of(model, rows, batch_size, confusion_plot, f"{cfg.task}, {split}")
    return out


def plot_confusion_of(
    model: Any, rows: Any, batch_size: int, path: str | Path, title: str = ""
) -> Path:
    """The confusion matrix of ``model`` (:class:`Classifying`) on ``rows``, as a PNG."""
    from rnnkit.diagnostics import plot_confusion

    was_training = model.training
    model.eval()
    counts = None
    try:
        for batch in EpochBatches(rows, batch_size, False, drop_last=False, bucket=True).epoch(0):
            part = model.confusion(move_batch(batch, _device_of(model)))
            counts = part if counts is None else counts + part
    finally:
        model.train(was_training)
    return plot_confusion(counts, model.class_names(), path, title)


def _device_of(model: Any) -> torch.device:
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


def _with_task_overrides(cfg: RunConfig, overrides: Sequence[str]) -> RunConfig:
    """``cfg`` with ``task.KEY=VALUE`` items applied (other sections are refused: a trained
    run's model and trainer are what they were)."""
    allowed = get_task(cfg.task).eval_keys
    for item in overrides:
        if not item.strip().startswith("task."):
            raise ConfigError(
                f"--set {item}: evaluate changes [task] settings only (task.beam=5, say)"
            )
        key = item.strip()[len("task.") :].split("=", 1)[0].strip()
        known = {f.name for f in dataclasses.fields(get_task(cfg.task).config_cls)}
        if key not in known:
            raise ConfigError(
                f"--set {item}: task.{key}: unknown key of the {cfg.task!r} task (known: "
                f"{', '.join(sorted(known))})"
            )
        if key not in allowed:
            may = (
                f"evaluate may change how a {cfg.task!r} run decodes and scores: "
                + ", ".join(f"task.{k}" for k in allowed)
                if allowed
                else f"a {cfg.task!r} run has no [task] setting evaluate may change"
            )
            raise ConfigError(
                f"--set {item}: task.{key} is fixed by the trained run (its data and codec); {may}"
            )
    data = apply_overrides(
        cfg.to_json(), [i.strip().replace("task.", "task_config.", 1) for i in overrides]
    )
    return run_config_from_json(data)


def diagnose(run_dir: str | Path, out_dir: str | Path | None = None, n: int = 32) -> list[Path]:
    """Plots of a trained run: gradient norms per step (init and trained), gates and hidden
    states for a model with a trace; attention heatmaps of three validation rows for a model
    that explains its outputs with attention; the validation split's confusion matrix for a
    model with one class per sequence; and the training curves."""
    from rnnkit import diagnostics as dg

    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "diagnostics"
    cfg = read_run_config(run_dir)
    trained = load(run_dir, "best")
    if not isinstance(trained, Attending):
        require(trained, Traceable, str(run_dir))
    data = get_task(cfg.task).prepare(cfg.task_config, cfg.seed, trained.codec)
    batch = trimmed(data.val.rows(slice(0, n)))
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if isinstance(trained, Traceable):
        seed_everything(cfg.seed)
        initial = build_model(cfg, data)
        norms = {
            "initialization": dg.step_gradient_norms(initial, batch),
            "trained": dg.step_gradient_norms(trained, batch),
        }
        _, tr = trained.trace(batch)
        paths += [
            dg.plot_gradient_norms(
                norms,
                out / "grad_norms.png",
                title=f"{cfg.task}: ||dL/dh_t||",
                styles={"initialization": {"ls": "--"}},
            ),
            dg.plot_gates(dg.gate_statistics(tr), out / "gates.png"),
            dg.plot_hidden(tr, out / "hidden.png"),
        ]
    if isinstance(trained, Attending):
        for i, e in enumerate(trained.explain(batch, 3)):
            path = out / f"attention_{i}.png"
            title = f"validation row {i}"
            paths.append(dg.plot_attention(e.weights, e.source, e.target, path, title, e.image))
    if isinstance(trained, Classifying):
        size = cfg.trainer.batch_size
        paths.append(
            plot_confusion_of(trained, data.val, size, out / "confusion.png", "validation")
        )
    rows = dg.read_run_metrics(run_dir)
    if rows:
        paths.append(dg.plot_training_curves(rows, out / "curves.png"))
    return paths


__all__ = [
    "ConfigError",
    "RunConfig",
    "build_model",
    "checkpoint_path",
    "diagnose",
    "evaluate",
    "load",
    "load_ensemble",
    "load_run_config",
    "read_run_config",
    "resume",
    "train",
]
