"""Self-describing checkpoints: a directory per checkpoint, written atomically, no pickles.

A checkpoint directory holds::

    model.safetensors      the model's state_dict
    model.json             {"class": "rnnkit....Model", "config": {...}}: rebuilds the model alone
    codec.json             the task's codec (tokenizer, vocabulary, labels), when it has one
    optimizer.safetensors  every tensor of the optimizer state ("state.<param>.<key>")
    rng.safetensors        torch's CPU generator state (and the CUDA one of the training GPU)
    trainer.json           everything else: optimizer scalars and param groups, schedule, step,
                           epoch, batch position, Python and NumPy RNG states, callback states

Loading reads safetensors and JSON only: no ``torch.load``, no unpickling, and the model class
is imported only from the ``rnnkit`` package. Tensors are saved from the CPU, so a checkpoint
written on a GPU loads anywhere: :func:`load_model` maps the weights to ``map_location`` and an
optimizer takes its state to its parameters' device. Each file is written and fsynced inside a
temporary directory which is then renamed into place, so a process killed at any moment leaves
either the whole checkpoint or none. :class:`CheckpointManager` keeps the last k checkpoints
and the best one, recorded in ``index.json`` (itself replaced atomically).
"""

from __future__ import annotations

import importlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

FORMAT_VERSION = 1


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync, rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True).encode()


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state_dict into tensors (for safetensors) and JSON scalars."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    groups = [
        {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
        for g in sd["param_groups"]
    ]
    return tensors, {"scalars": scalars, "param_groups": groups}


def optimizer_from_flat(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    """Load what :func:`optimizer_to_flat` produced into ``opt``.

    ``Optimizer.load_state_dict`` moves each state tensor to its parameter's device (keeping
    Adam's ``step`` counters on the CPU, where the non-fused optimizers want them).
    """
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, st in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(st)
    groups = []
    for saved, current in zip(meta["param_groups"], opt.param_groups, strict=True):
        groups.append(
            {k: tuple(v) if isinstance(current.get(k), tuple) else v for k, v in saved.items()}
        )
    opt.load_state_dict({"state": state, "param_groups": groups})


def rng_state(
    device: torch.device | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Torch's CPU generator (and ``device``'s when it is a GPU) as tensors, Python's and
    NumPy's generators as JSON."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    tensors = {"torch_cpu": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        tensors["torch_cuda"] = torch.cuda.get_rng_state(device)
    return tensors, {
        "numpy": [np_state[0], np_state[1].tolist(), *[_num(x) for x in np_state[2:]]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def set_rng_state(
    tensors: dict[str, torch.Tensor], meta: dict[str, Any], device: torch.device | None = None
) -> None:
    """Restore what :func:`rng_state` saved; the CUDA generator only into a CUDA ``device``."""
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = "torch_cuda" in tensors and device is not None and device.type == "cuda"
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["torch_cuda"], device)
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))
    p = meta["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def _num(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    trainer_state: dict[str, Any] | None = None,
    codec: Any = None,
    device: torch.device | None = None,
) -> Path:
    """Write a checkpoint directory at ``path`` atomically (temporary directory + rename).

    ``codec``: the task's codec (an object with ``to_json()``, or its JSON dict).
    ``device``: the training device; a GPU's random generator is saved with the CPU's.
    """
    path = Path(path)
    if not hasattr(model, "get_config"):
        raise TypeError(f"{type(model).__name__} has no get_config(): cannot rebuild it")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _write_file(tmp / "model.safetensors", st_save(weights))
    cls = type(model)
    model_meta = {
        "format": FORMAT_VERSION,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "config": model.get_config(),
    }
    _write_file(tmp / "model.json", _json_bytes(model_meta))
    if codec is not None:
        data = codec.to_json() if hasattr(codec, "to_json") else codec
        _write_file(tmp / "codec.json", _json_bytes(data))
    if optimizer is not None or trainer_state is not None:
        state = dict(trainer_state or {})
        if optimizer is not None:
            tensors, state["optimizer"] = optimizer_to_flat(optimizer)
            _write_file(tmp / "optimizer.safetensors", st_save(tensors))
        rng_tensors, state["rng"] = rng_state(device)
        _write_file(tmp / "rng.safetensors", st_save(rng_tensors))
        _write_file(tmp / "trainer.json", _json_bytes(state))
    fsync_dir(tmp)
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():  # rewriting the same step: move the old one aside, then drop it
        os.rename(path, old)
    os.rename(tmp, path)
    fsync_dir(path.parent)
    if old.exists():
        shutil.rmtree(old)
    return path


MOVED = {"rnnkit.tasks.models.RecurrentModel": "rnnkit.models.recurrent.RecurrentModel"}


def _import_class(qualname: str) -> type:
    qualname = MOVED.get(qualname, qualname)
    module, _, name = qualname.rpartition(".")
    if not (module == "rnnkit" or module.startswith("rnnkit.")):
        raise ValueError(f"model class {qualname!r} is outside the rnnkit package; refusing it")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise ValueError(
            f"model class {qualname!r} is not in this rnnkit (a checkpoint of another version?)"
        ) from None


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the model of checkpoint ``path`` from its JSON config and load its weights."""
    path = Path(path)
    meta = json.loads((path / "model.json").read_text())
    cls = _import_class(meta["class"])
    model = cls.from_config(meta["config"])
    weights = st_load((path / "model.safetensors").read_bytes())
    model.load_state_dict({k: v.to(map_location) for k, v in weights.items()})
    return model


def load_codec(path: str | Path) -> Any:
    """The checkpoint's codec (:func:`rnnkit.data.codec.codec_from_json`), or None."""
    from rnnkit.data.codec import codec_from_json

    f = Path(path) / "codec.json"
    return codec_from_json(json.loads(f.read_text())) if f.exists() else None


def load_trainer_state(
    path: str | Path,
    optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = True,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Read trainer.json; load the optimizer state into ``optimizer`` and restore RNG states.

    ``device``: the training device; a saved CUDA generator state is restored into it when it
    is a GPU (a run resumed on the CPU leaves the CUDA generators alone).
    """
    path = Path(path)
    state = json.loads((path / "trainer.json").read_text())
    if optimizer is not None:
        tensors = st_load((path / "optimizer.safetensors").read_bytes())
        optimizer_from_flat(optimizer, tensors, state["optimizer"])
    if restore_rng:
        set_rng_state(st_load((path / "rng.safetensors").read_bytes()), state["rng"], device)
    return state


def locate_checkpoint(root: str | Path, which: str = "latest") -> Path | None:
    """The ``latest`` or ``best`` checkpoint of a run directory or of its ``checkpoints``
    folder (``root``), from the index, without writing.

    The best falls back to the latest when no metric was recorded; None when there is none.
    """
    if which not in ("latest", "best"):
        raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
    root = Path(root)
    if not (root / "index.json").exists() and (root / "checkpoints").is_dir():
        root = root / "checkpoints"  # a run directory
    f = root / "index.json"
    if not f.exists():
        return None
    index = json.loads(f.read_text())
    name = index["latest"] if which == "latest" else index["best"] or index["latest"]
    return Path(root) / name if name else None


class CheckpointManager:
    """Checkpoints ``step-<N>`` under ``root``; keeps the last ``keep_last`` and the best.

    ``index.json`` lists the kept checkpoints in order, the latest, the best and its metric.
    The manager is the run's single writer: on creation it removes temporary directories
    left by a process killed while writing. Readers use :func:`locate_checkpoint`.
    """

    def __init__(self, root: str | Path, keep_last: int = 2, mode: str = "min") -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.root = Path(root)
        self.keep_last = keep_last
        self.mode = mode
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in [*self.root.glob(".*.tmp-*"), *self.root.glob(".*.old-*")]:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        self.index = self._read_index()

    def _read_index(self) -> dict[str, Any]:
        f = self.root / "index.json"
        if f.exists():
            return json.loads(f.read_text())
        return {"kept": [], "latest": None, "best": None, "best_value": None}

    def save(
        self,
        step: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None,
        trainer_state: dict[str, Any],
        metric: float | None = None,
        codec: Any = None,
        device: torch.device | None = None,
    ) -> Path:
        """Write checkpoint ``step-<step>``, update the index, drop the ones no longer kept."""
        name = f"step-{step:08d}"
        path = save_checkpoint(self.root / name, model, optimizer, trainer_state, codec, device)
        idx = self.index
        idx["kept"] = [k for k in idx["kept"] if k != name] + [name]
        idx["latest"] = name
        if metric is not None and self._better(metric, idx["best_value"]):
            idx["best"], idx["best_value"] = name, metric
        keep = set(idx["kept"][-self.keep_last :]) | ({idx["best"]} - {None})
        for old in [k for k in idx["kept"] if k not in keep]:
            idx["kept"].remove(old)
        write_atomic(self.root / "index.json", _json_bytes(idx))
        for old in self.root.glob("step-*"):
            if old.name not in keep:
                shutil.rmtree(old)
        return path

    def _better(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value < best if self.mode == "min" else value > best

    def latest(self) -> Path | None:
        return locate_checkpoint(self.root, "latest")

    def best(self) -> Path | None:
        return locate_checkpoint(self.root, "best")
