"""Runs of a task: train, resume, evaluate and diagnose, each from a run directory.

A run is configured by a TOML file whose schema is :class:`RunConfig` plus the task's own
``[task]`` table, overridden by ``--set`` items::

    seed = 0
    [task]              # the task's config dataclass (AddingConfig, CopyConfig, ...)
    seq_len = 100
    [model]             # RecurrentModelConfig fields the task does not fix
    cell = "lstm"
    hidden_size = 64
    [trainer]           # TrainerConfig, with [trainer.optim], [trainer.schedule], ...
    epochs = 5
    lr = 0.001

The run directory holds ``config.json`` (everything needed to rebuild the run), the
checkpoints, the metrics log, TensorBoard events and, after ``diagnose``, PNG plots.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from rnnkit.config import apply_overrides, from_dict, load_toml, to_dict
from rnnkit.tasks.models import RecurrentModel, RecurrentModelConfig
from rnnkit.tasks.registry import TaskData, get_task
from rnnkit.training.batch import EpochBatches, SequenceBatch
from rnnkit.training.callbacks import Callback
from rnnkit.training.checkpoint import load_model, load_vocab, locate_checkpoint, write_atomic
from rnnkit.training.config import TrainerConfig
from rnnkit.training.distributed import init_distributed, seed_everything
from rnnkit.training.trainer import Trainer, evaluate_model


@dataclass(frozen=True)
class ModelSection:
    cell: Literal["rnn", "lstm", "gru"] = "lstm"  # Elman RNN, LSTM or GRU
    hidden_size: int = 64  # H
    num_layers: int = 1  # stacked layers
    nonlinearity: Literal["tanh", "relu"] = "tanh"  # Elman activation
    recurrent_scale: float = 0.0  # > 0: W_hh = scale * orthogonal (exploding-gradient runs)
    dropout: float = 0.0  # between stacked layers
    backend: Literal["auto", "torch", "loop"] = "auto"  # how the layer unrolls time


@dataclass(frozen=True)
class RunConfig:
    task: str  # registered task name
    task_config: Any  # the task's config dataclass instance
    seed: int = 0  # seeds data, initialization, shuffling and dropout
    model: ModelSection = field(default_factory=ModelSection)  # the model
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # the training loop

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "seed": self.seed,
            "task_config": to_dict(self.task_config),
            "model": to_dict(self.model),
            "trainer": to_dict(self.trainer),
        }


@dataclass(frozen=True)
class _Sections:
    seed: int = 0  # see RunConfig
    task: dict = field(default_factory=dict)  # validated against the task's config class
    model: ModelSection = field(default_factory=ModelSection)  # see RunConfig
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # see RunConfig


def load_run_config(
    task: str, path: str | Path | None = None, overrides: Sequence[str] = ()
) -> RunConfig:
    """The run configuration of ``task`` from an optional TOML file and ``key=value`` items."""
    spec = get_task(task)
    data = load_toml(path) if path is not None else {}
    data = apply_overrides(data, overrides)
    sections = from_dict(_Sections, data)
    task_config = from_dict(spec.config_cls, sections.task, prefix="task")
    return RunConfig(task, task_config, sections.seed, sections.model, sections.trainer)


def run_config_from_json(data: dict[str, Any]) -> RunConfig:
    spec = get_task(data["task"])
    return RunConfig(
        data["task"],
        from_dict(spec.config_cls, data["task_config"], "task"),
        int(data["seed"]),
        from_dict(ModelSection, data["model"], "model"),
        from_dict(TrainerConfig, data["trainer"], "trainer"),
    )


def read_run_config(run_dir: str | Path) -> RunConfig:
    f = Path(run_dir) / "config.json"
    if not f.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory: no config.json")
    return run_config_from_json(json.loads(f.read_text()))


def build_model(cfg: RunConfig, data: TaskData) -> torch.nn.Module:
    """The task's own model (``TaskSpec.build_model``) or a per-step :class:`RecurrentModel`."""
    spec = get_task(cfg.task)
    if spec.build_model is not None:
        return spec.build_model(cfg.model, data, cfg.seed)
    return RecurrentModel(RecurrentModelConfig(**to_dict(cfg.model), **data.model_shape))


class ValidationScores(Callback):
    """Adds the task's own scores on the validation split to every epoch's metrics.

    ``score(model, data.val, data)`` (``TaskSpec.score``: span F1 for taggers) runs after the
    validation loss, before any other callback sees the metrics, with the names prefixed
    ``val_``: ``trainer.monitor = "val_f1_overall"`` with ``mode = "max"`` then keeps the
    checkpoint of the best validation F1 (and early stopping and the plateau schedule follow
    it too). The model's train/eval mode is restored afterwards.
    """

    name = "validation_scores"

    def __init__(self, score: Callable[[Any, SequenceBatch, TaskData], dict], data: TaskData):
        self.score, self.data = score, data

    def on_evaluation(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        was_training = trainer.model.training
        with torch.no_grad():
            scores = self.score(trainer.model, self.data.val, self.data)
        trainer.model.train(was_training)
        metrics.update({f"val_{k}": float(v) for k, v in scores.items()})


def _setup(
    cfg: RunConfig,
    run_dir: Path | None,
    callbacks: Sequence[Callback] = (),
    score_val: bool = False,
) -> tuple[Trainer, TaskData]:
    dist_ctx = init_distributed()
    seed_everything(cfg.seed)
    spec = get_task(cfg.task)
    if score_val and spec.score is None:
        raise ValueError(f"score_val: task {cfg.task!r} has no score function")
    data = spec.build(cfg.task_config, cfg.seed)
    model = build_model(cfg, data)
    t = cfg.trainer
    train = EpochBatches(data.train, t.batch_size, shuffle=True, seed=cfg.seed)
    val = EpochBatches(data.val, t.batch_size, shuffle=False, drop_last=False)
    trainer = Trainer(model, t, train, val, run_dir, callbacks, dist_ctx, data.vocab)
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
    trainer, _ = _setup(cfg, run_dir, callbacks, score_val)
    if trainer.dist.is_writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(run_dir / "config.json", json.dumps(cfg.to_json(), indent=1).encode())
    trainer.fit()
    return _finish(trainer, run_dir)


def resume(
    run_dir: str | Path, callbacks: Sequence[Callback] = (), score_val: bool = False
) -> dict[str, Any]:
    """Continue the run in ``run_dir`` from its latest checkpoint (or from scratch).

    ``score_val`` as the run was started with (see :func:`train`).
    """
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    trainer, _ = _setup(cfg, run_dir, callbacks, score_val)
    latest = locate_checkpoint(run_dir / "checkpoints", "latest")
    if latest is not None:
        trainer.resume(latest)
    trainer.fit()
    return _finish(trainer, run_dir)


def checkpoint_path(run_dir: str | Path, which: str = "best") -> Path:
    path = locate_checkpoint(Path(run_dir) / "checkpoints", which)
    if path is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint yet")
    return path


def _split(data: TaskData, split: str) -> SequenceBatch:
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    return getattr(data, split)


def evaluate(
    run_dir: str | Path,
    split: str = "test",
    which: str = "best",
    data_file: str | Path | None = None,
) -> dict[str, float]:
    """Loss and metrics of the run's ``which`` checkpoint on ``split``, with the baseline.

    With ``data_file`` (text classification runs only), evaluate on that labelled file instead,
    read with the run's text and label columns and encoded with the checkpoint's vocabulary.
    """
    cfg = read_run_config(run_dir)
    if data_file is not None and cfg.task != "sentiment":
        raise ValueError(
            f"--data: {run_dir} is a {cfg.task!r} run; files are read for sentiment runs"
        )
    path = checkpoint_path(run_dir, which)
    model = load_model(path)
    if data_file is not None:
        from rnnkit.tasks.sentiment import TextClassifier, read_labelled

        clf = TextClassifier(model, load_vocab(path))
        task = cfg.task_config  # the run's text and label column names
        texts, labels = read_labelled(data_file, task.text_column, task.label_column)
        batch = clf.batch(texts, labels, str(data_file))
        batches = EpochBatches(batch, cfg.trainer.batch_size, False, drop_last=False)
        return {"n": float(batch.size), **evaluate_model(model, batches)}
    data = get_task(cfg.task).build(cfg.task_config, cfg.seed)
    batches = EpochBatches(_split(data, split), cfg.trainer.batch_size, False, drop_last=False)
    out = evaluate_model(model, batches)
    score = get_task(cfg.task).score
    if score is not None:
        out.update(score(model, _split(data, split), data))
    out.update({f"baseline_{k}": v for k, v in data.baseline.items()})
    return out


def load_text_classifier(run_dir: str | Path, which: str = "best") -> Any:
    """A :class:`~rnnkit.tasks.sentiment.TextClassifier` from a text-classification run."""
    from rnnkit.tasks.sentiment import TextClassifier

    path = checkpoint_path(run_dir, which)
    return TextClassifier(load_model(path), load_vocab(path))


def diagnose(run_dir: str | Path, out_dir: str | Path | None = None, n: int = 32) -> list[Path]:
    """Gradient norms per step (init and trained), gates, hidden states and training curves."""
    from rnnkit import diagnostics as dg

    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "diagnostics"
    out.mkdir(parents=True, exist_ok=True)
    cfg = read_run_config(run_dir)
    data = get_task(cfg.task).build(cfg.task_config, cfg.seed)
    batch = data.val.rows(slice(0, n))
    trained = load_model(checkpoint_path(run_dir, "best"))
    seed_everything(cfg.seed)
    initial = build_model(cfg, data)
    norms = {
        "initialization": dg.step_gradient_norms(initial, batch),
        "trained": dg.step_gradient_norms(trained, batch),
    }
    _, tr = trained.trace(batch)
    paths = [
        dg.plot_gradient_norms(
            norms,
            out / "grad_norms.png",
            title=f"{cfg.task}: ||dL/dh_t||",
            styles={"initialization": {"ls": "--"}},
        ),
        dg.plot_gates(dg.gate_statistics(tr), out / "gates.png"),
        dg.plot_hidden(tr, out / "hidden.png"),
    ]
    rows = dg.read_run_metrics(run_dir)
    if rows:
        paths.append(dg.plot_training_curves(rows, out / "curves.png"))
    return paths
