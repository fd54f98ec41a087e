"""The Python API in two calls: ``rnnkit.train`` a task into a run directory, ``rnnkit.load``
it back with its codec.

    import rnnkit
    model = rnnkit.train("classify", "runs/mine", records=zip(texts, labels),
                         overrides=["trainer.epochs=5"])
    model.predict(["a witty, moving film"])          # [Prediction(label='pos', ...)]
    rnnkit.load("runs/mine").predict("dull")         # the same model, read from disk

The run directory is the one ``rnnkit train`` writes, so every command reads it
(``rnnkit evaluate runs/mine``, ``rnnkit predict runs/mine TEXT``, ``rnnkit diagnose``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["load", "load_ensemble", "train"]


def load(run_dir: str | Path, which: str = "best", device: str = "cpu") -> torch.nn.Module:
    """The trained model of ``run_dir`` (its ``which`` checkpoint: best or latest) on
    ``device``, in eval mode, with the task's codec as ``model.codec``."""
    from rnnkit.tasks.run import load as load_run

    return load_run(run_dir, which, device)


def load_ensemble(
    run_dirs: Sequence[str | Path], which: str = "best", device: str = "cpu"
) -> torch.nn.Module:
    """The models of several runs of one task and codec decoding as one (encoder-decoders:
    their log-probabilities averaged at every step), with the first run's codec::

        rnnkit.load_ensemble(["runs/g2p_a", "runs/g2p_b"]).translate(["RNNKIT"], beam=5)
    """
    from rnnkit.tasks.run import load_ensemble as load_runs

    return load_runs(run_dirs, which, device)


def train(
    task: str,
    out: str | Path,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    records: Iterable[Any] | None = None,
) -> torch.nn.Module:
    """Train ``task`` into the new run directory ``out``; returns the best model, loaded.

    Args:
        task: a registered task name (``rnnkit.tasks.task_names()``), e.g. "classify".
        out: the run directory to create.
        config: a TOML file of the run (as ``rnnkit train --config``).
        overrides: ``key=value`` items (as ``--set``), e.g. ``"model.cell='gru'"``.
        records: in-memory training data for tasks that store it (``classify``: (text, label)
            pairs): written to ``out/data.jsonl``, and the task reads that file.
    """
    from rnnkit.tasks import get_task
    from rnnkit.tasks import run as runs

    out = Path(out)
    if isinstance(overrides, str):
        raise TypeError(
            f"overrides: expected a list of KEY=VALUE strings, got the string {overrides!r}; "
            f"write overrides=[{overrides!r}]"
        )
    items = list(overrides)
    if records is not None:
        spec = get_task(task)
        if spec.store_records is None:
            raise ValueError(f"records: task {spec.name!r} reads its data from files; give them")
        out.mkdir(parents=True, exist_ok=True)
        items += spec.store_records(list(records), out / "data.jsonl")
    runs.train(runs.load_run_config(task, config, items), out)
    return load(out)
