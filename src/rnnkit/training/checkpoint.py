"""Self-describing checkpoints: a directory per checkpoint, written atomically, no pickles.

A checkpoint directory holds::

    model.safetensors      the model's state_dict
    codec.json             the task's codec (tokenizer, vocabulary, labels), when it has one
    optimizer.safetensors  every tensor of the optimizer state ("state.<param>.<key>")
    rng.safetensors        torch's CPU generator state (and the CUDA one of the training GPU)
    carry.safetensors      under truncated BPTT, inside a batch only: the state the chunks
                           done so far carried (its nesting in trainer.json's "carry")
    trainer.json           everything else: optimizer scalars and param groups, schedule, step,
                           epoch, batch position, Python and NumPy RNG states, callback states
    model.json             {"class": "rnnkit....Model", "config": {...}}: rebuilds the model
                           alone; and the manifest: the size and SHA-256 of every other file,
                           the checkpoint's generation, and the SHA-256 of model.json itself

Loading reads safetensors and JSON only: no ``torch.load``, no unpickling, and the model class
is imported only from the ``rnnkit`` package. Tensors are saved from the CPU, so a checkpoint
written on a GPU loads anywhere: :func:`load_model` maps the weights to ``map_location`` and an
optimizer takes its state to its parameters' device.

Integrity. Every reader (:func:`load_model`, :func:`load_trainer_state`, :func:`load_codec`,
:meth:`rnnkit.training.Trainer.resume`) goes through one checked read: a file that is not a
regular file (a device such as ``/dev/zero``, a FIFO, a directory; a symlink is followed to its
target) is refused before a byte is read; with a manifest, a file whose size or SHA-256 differs
is "corrupt (checksum mismatch)"; a safetensors header is parsed and the shapes it declares are
compared with the model that model.json's config builds on the ``meta`` device (no memory)
before the real model is built. Every failure is one :class:`CheckpointError` (a ValueError)
naming the checkpoint directory and the file. A checkpoint without a manifest (written before
manifests existed) loads without the checksum checks.

Write protocol (:func:`save_checkpoint` and :meth:`CheckpointManager.save`), for checkpoint
``step-N`` of generation ``g`` (a counter that grows with every save of the run)::

    1. mkdir .step-N.tmp-PID; write and fsync model.safetensors, codec.json,
       optimizer.safetensors, rng.safetensors, trainer.json             [after-weights]
    2. write and fsync model.json (the manifest) last, fsync the dir    [before-rename]
       -- the temporary directory is now complete: every file is on disk and verifiable
    3. only when step-N exists (the same step saved twice): rename
       step-N -> .step-N.old-PID                                        [after-aside]
    4. rename .step-N.tmp-PID -> step-N, fsync the root                 [after-rename]
    5. delete .step-N.old-PID (model.json first, so a half-deleted
       directory is never complete)                                     [mid-delete, before-index]
    6. replace index.json atomically (temporary file, fsync, rename)    [after-index]
    7. delete the checkpoints no longer kept and every leftover
       directory (model.json first)                                     [mid-delete]

Why every crash point resumes. A checkpoint is *complete* when its model.json parses, its own
checksum matches and every file it lists has the listed size and SHA-256 (or, without a
manifest, when model.json and model.safetensors are there). Nothing complete is ever deleted
or renamed away until a complete copy of the same or a newer state is on disk (step 3 runs
after step 2), and index.json changes only by atomic replacement after the directory it names
is in place. So at every point the index's latest is complete, or (in the window between steps
3 and 4 of a rewrite) the step it names has a complete newer copy under a leftover name.
:func:`locate_checkpoint` takes the index's checkpoint when it is complete, otherwise the newest
complete copy of the same step (leftovers included, highest generation first), otherwise the
newest complete checkpoint in the folder. Whichever it picks is a consistent state of the run,
and resuming from an older one replays the same deterministic batches to the same weights.
:class:`CheckpointManager` (the run's single writer) never deletes a complete checkpoint when it
starts: it deletes incomplete leftovers, moves a complete leftover into its step's name when
that name is free (:func:`resolve_moved` follows the move), and leaves any other until the next
committed save prunes it. The hook :data:`_CRASH_AT` kills the process at each named point;
``tests/test_reliability_checkpoint.py`` resumes from every one of them.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import random
import re
import shutil
import signal
import stat
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

FORMAT_VERSION = 1
MARKER = "model.json"  # written last, deleted first: a directory without it is never complete
STEP = re.compile(r"step-(\d+)")  # a checkpoint's name
LEFTOVER = re.compile(r"\.(?P<name>step-(?P<step>\d+))\.(?:tmp|old)-\d+")  # a save cut short

# Fault injection for the crash tests: "POINT", "POINT@NAME" or "POINT@NAME#K" kills this
# process (SIGKILL) the K-th time (default 1) the save of checkpoint NAME reaches POINT.
# Points: after-weights, before-rename, after-aside, after-rename, before-index, after-index,
# mid-delete. None (always, outside tests) does nothing.
_CRASH_AT: str | None = None
_crash_counts: dict[tuple[str, str], int] = {}


def _reached(point: str, name: str) -> None:
    """The save of checkpoint ``name`` reached ``point``: die here if :data:`_CRASH_AT` says so."""
    if _CRASH_AT is None:
        return
    want, _, rest = _CRASH_AT.partition("@")
    target, _, nth = rest.partition("#")
    if want != point or (target and target != name):
        return
    key = (point, name)
    _crash_counts[key] = _crash_counts.get(key, 0) + 1
    if _crash_counts[key] == int(nth or 1):
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: names the checkpoint directory and the file."""


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


def _write_file(path: Path, data: bytes) -> dict[str, Any]:
    """Write and fsync ``data``; its manifest entry."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True).encode()


def _self_checksum(meta: dict[str, Any]) -> str:
    """SHA-256 of model.json's content without its own ``sha256`` key (canonical JSON)."""
    return hashlib.sha256(_json_bytes({k: v for k, v in meta.items() if k != "sha256"})).hexdigest()


class _NotRegular(OSError):
    pass


def _read_regular(path: Path) -> bytes:
    """The bytes of ``path``, which must be a regular file (a symlink is followed).

    The file is opened without blocking and checked on its descriptor before anything is read,
    so a device (``/dev/zero``), a FIFO or a directory is refused without a read and without a
    race between the check and the read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotRegular(f"{path} is not a regular file")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


def _st_shapes(data: bytes) -> dict[str, tuple[int, ...]] | None:
    """The tensor shapes a safetensors file declares in its header (8-byte little-endian
    length, then JSON), or None when the header is malformed. Reads no tensor data."""
    if len(data) < 8:
        return None
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        return None
    try:
        header = json.loads(data[8 : 8 + n])
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict):
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            return None
        shapes[name] = tuple(shape)
    return shapes


class _Reader:
    """Checked reads of the files of checkpoint ``path`` (see the module's Integrity)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._meta: dict[str, Any] | None = None

    def error(self, name: str, what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {self.path}: {name} {what}")

    def raw(self, name: str) -> bytes:
        try:
            return _read_regular(self.path / name)
        except FileNotFoundError:
            if not self.path.is_dir():
                raise CheckpointError(f"checkpoint {self.path} is not a directory") from None
            raise self.error(name, "is missing") from None
        except _NotRegular:
            raise self.error(name, "is not a regular file; refusing to read it") from None
        except OSError as e:
            raise self.error(name, f"cannot be read ({e.strerror or e})") from None

    def _parse(self, name: str, data: bytes) -> dict[str, Any]:
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise self.error(name, f"is not valid JSON ({e})") from None
        if not isinstance(obj, dict):
            raise self.error(name, "is not a JSON object")
        return obj

    def meta(self) -> dict[str, Any]:
        """model.json: class, config and (when written with one) the manifest, checked."""
        if self._meta is not None:
            return self._meta
        meta = self._parse(MARKER, self.raw(MARKER))
        if not isinstance(meta.get("class"), str) or not isinstance(meta.get("config"), dict):
            raise self.error(MARKER, "has no model class and config")
        _check_class_name(meta["class"])  # a refusal, before anything else is trusted
        manifest = meta.get("manifest")
        if manifest is not None:
            if meta.get("sha256") != _self_checksum(meta):
                raise self.error(MARKER, "is corrupt (checksum mismatch)")
            files = manifest.get("files") if isinstance(manifest, dict) else None
            ok = isinstance(files, dict) and all(
                isinstance(e, dict)
                and isinstance(e.get("size"), int)
                and isinstance(e.get("sha256"), str)
                for e in files.values()
            )
            if not ok:
                raise self.error(MARKER, "has an invalid manifest")
        self._meta = meta
        return meta

    def manifest(self) -> dict[str, Any] | None:
        return self.meta().get("manifest")

    def file(self, name: str, required: bool = True) -> bytes | None:
        """The bytes of ``name``, checked against the manifest; None when it is optional and
        the checkpoint has none."""
        manifest = self.manifest()
        entry = manifest["files"].get(name) if manifest is not None else None
        if (
            entry is None
            and not (self.path / name).exists()
            and not (self.path / name).is_symlink()
        ):
            if required:
                raise self.error(name, "is missing")
            return None
        if manifest is not None and entry is None:
            raise self.error(name, "is not listed in the checkpoint's manifest (model.json)")
        data = self.raw(name)
        if entry is not None:
            if len(data) != entry["size"]:
                raise self.error(
                    name, f"is corrupt (size {len(data)} bytes, {entry['size']} expected)"
                )
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise self.error(name, "is corrupt (checksum mismatch)")
        return data

    def json(self, name: str, required: bool = True) -> dict[str, Any] | None:
        data = self.file(name, required)
        return None if data is None else self._parse(name, data)

    def shapes(self, name: str, data: bytes) -> dict[str, tuple[int, ...]]:
        shapes = _st_shapes(data)
        if shapes is None:
            raise self.error(name, "is corrupt or truncated (its safetensors header is invalid)")
        return shapes

    def tensors(self, name: str, data: bytes | None = None) -> dict[str, torch.Tensor]:
        data = self.file(name) if data is None else data
        self.shapes(name, data)
        try:
            return st_load(data)
        except Exception as e:  # SafetensorError and friends: the file, not the code
            raise self.error(name, f"is corrupt or truncated ({e})") from None

    def verify(self) -> None:
        """Check every file the manifest lists (without one: model.json and the weights)."""
        manifest = self.manifest()
        for name in manifest["files"] if manifest is not None else ["model.safetensors"]:
            data = self.file(name)
            if name.endswith(".safetensors"):
                self.shapes(name, data)


def verify_checkpoint(path: str | Path) -> None:
    """Raise :class:`CheckpointError` unless checkpoint ``path`` is complete and intact."""
    _Reader(path).verify()


def is_complete(path: str | Path) -> bool:
    """Whether ``path`` is a complete checkpoint whose files match its manifest."""
    try:
        verify_checkpoint(path)
    except (ValueError, OSError):  # CheckpointError, or a refused model class
        return False
    return True


def _generation(path: Path) -> int:
    """The generation in the manifest of ``path`` (0 without one, -1 when unreadable)."""
    try:
        manifest = _Reader(path).manifest()
    except (ValueError, OSError):  # CheckpointError, or a refused model class
        return -1
    if manifest is None:
        return 0
    g = manifest.get("generation", 0)
    return g if isinstance(g, int) else 0


def _check_shapes(
    reader: _Reader,
    name: str,
    expected: dict[str, tuple[int, ...]],
    found: dict[str, tuple[int, ...]],
    against: str,
) -> None:
    """One sentence when the tensors of ``name`` do not match ``expected`` (the model's)."""
    problems = [f"{k} is missing" for k in expected if k not in found]
    problems += [f"{k} is unexpected" for k in found if k not in expected]
    problems += [
        f"{k} is {list(found[k])} in the file but {list(v)} in {against}"
        for k, v in expected.items()
        if k in found and tuple(found[k]) != tuple(v)
    ]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise reader.error(name, f"does not match {against}: {'; '.join(problems[:3])}{more}")


def load_weights(
    path: str | Path, model: torch.nn.Module, map_location: str | torch.device = "cpu"
) -> None:
    """Load the weights of checkpoint ``path`` into ``model`` after the checks (checksum,
    header shapes against the model's) and with one clear error for any mismatch."""
    _load_weights(_Reader(path), model, map_location)


def _load_weights(
    reader: _Reader,
    model: torch.nn.Module,
    map_location: str | torch.device,
    data: bytes | None = None,
) -> None:
    data = reader.file("model.safetensors") if data is None else data
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = reader.shapes("model.safetensors", data)
    _check_shapes(reader, "model.safetensors", expected, found, "this model")
    weights = reader.tensors("model.safetensors", data)
    try:
        model.load_state_dict({k: v.to(map_location) for k, v in weights.items()})
    except (RuntimeError, ValueError, TypeError) as e:
        raise reader.error("model.safetensors", f"does not fit this model ({e})") from None


def weights_finite(path: str | Path) -> bool:
    """Whether checkpoint ``path`` verifies and every floating-point weight in it is finite."""
    try:
        weights = _Reader(path).tensors("model.safetensors")
    except (ValueError, OSError):  # CheckpointError, or a refused model class
        return False
    return all(bool(torch.isfinite(v).all()) for v in weights.values() if v.is_floating_point())


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
    generation: int = 0,
    carry: Any = None,
) -> Path:
    """Write a checkpoint directory at ``path`` atomically (steps 1-5 of the module's protocol).

    ``carry``: the state truncated BPTT carries inside a batch (a tensor, or nested tuples of
    them), saved with the trainer state (:func:`load_carry` reads it back).

    ``codec``: the task's codec (an object with ``to_json()``, or its JSON dict).
    ``device``: the training device; a GPU's random generator is saved with the CPU's.
    ``generation``: recorded in the manifest; of two complete copies of one step, the higher
    generation is the newer (:class:`CheckpointManager` counts them).
    """
    path = Path(path)
    if not hasattr(model, "get_config"):
        raise TypeError(f"{type(model).__name__} has no get_config(): cannot rebuild it")
    name = path.name
    tmp = path.with_name(f".{name}.tmp-{os.getpid()}")
    if tmp.exists():  # this process's own earlier attempt, never committed
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    files: dict[str, dict[str, Any]] = {}
    files["model.safetensors"] = _write_file(tmp / "model.safetensors", st_save(_weights(model)))
    _reached("after-weights", name)
    if codec is not None:
        data = codec.to_json() if hasattr(codec, "to_json") else codec
        files["codec.json"] = _write_file(tmp / "codec.json", _json_bytes(data))
    if optimizer is not None or trainer_state is not None:
        state = dict(trainer_state or {})
        if optimizer is not None:
            tensors, state["optimizer"] = optimizer_to_flat(optimizer)
            files["optimizer.safetensors"] = _write_file(
                tmp / "optimizer.safetensors", st_save(tensors)
            )
        rng_tensors, state["rng"] = rng_state(device)
        files["rng.safetensors"] = _write_file(tmp / "rng.safetensors", st_save(rng_tensors))
        if carry is not None:
            carried: dict[str, torch.Tensor] = {}
            state["carry"] = _flatten_carry(carry, carried)
            files["carry.safetensors"] = _write_file(tmp / "carry.safetensors", st_save(carried))
        files["trainer.json"] = _write_file(tmp / "trainer.json", _json_bytes(state))
    cls = type(model)
    meta = {
        "format": FORMAT_VERSION,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "config": model.get_config(),
        "manifest": {"files": files, "generation": int(generation)},
    }
    meta["sha256"] = _self_checksum(meta)
    _write_file(tmp / MARKER, _json_bytes(meta))  # last: the directory is now complete
    fsync_dir(tmp)
    _reached("before-rename", name)
    old = path.with_name(f".{name}.old-{os.getpid()}")
    if path.exists():  # the same step again: the complete new copy is on disk already
        if old.exists():
            shutil.rmtree(old)
        os.rename(path, old)
        fsync_dir(path.parent)
        _reached("after-aside", name)
    os.rename(tmp, path)
    fsync_dir(path.parent)
    _reached("after-rename", name)
    if old.exists():
        _remove(old, name)
    return path


def _remove(path: Path, saving: str) -> None:
    """Delete a checkpoint directory (its model.json first: a half-deleted one is never
    complete) or a leftover file. ``saving``: the checkpoint being saved (crash hook)."""
    if path.is_dir() and not path.is_symlink():
        (path / MARKER).unlink(missing_ok=True)
        _reached("mid-delete", saving)
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


MOVED = {"rnnkit.tasks.models.RecurrentModel": "rnnkit.models.recurrent.RecurrentModel"}


def _check_class_name(qualname: str) -> None:
    qualname = MOVED.get(qualname, qualname)
    module = qualname.rpartition(".")[0]
    if not (module == "rnnkit" or module.startswith("rnnkit.")):
        raise ValueError(f"model class {qualname!r} is outside the rnnkit package; refusing it")


def _import_class(qualname: str) -> type:
    _check_class_name(qualname)
    qualname = MOVED.get(qualname, qualname)
    module, _, name = qualname.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        cls = None
    if not isinstance(cls, type) or not hasattr(cls, "from_config"):
        raise ValueError(
            f"model class {qualname!r} is not in this rnnkit (a checkpoint of another version?)"
        )
    return cls


class _CallBudget(torch.overrides.TorchFunctionMode):
    """Refuses (ValueError) the torch call past ``calls``: a config such as ``num_layers`` =
    10**12 would build modules on the ``meta`` device for ever; one that matches the weights
    makes a few calls per tensor of the file."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.left = calls

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.left -= 1
        if self.left < 0:
            raise ValueError("it builds a model far larger than the weights file")
        return func(*args, **(kwargs or {}))


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict as CPU tensors of their own: a parameter tied to another (a language
    model's output matrix and its embedding) is written under each of its names, since
    safetensors stores no shared memory; loading fills the tied parameter twice, alike."""
    weights, seen = {}, set()
    for k, v in model.state_dict().items():
        t = v.detach().cpu().contiguous()
        where = (t.untyped_storage().data_ptr(), t.storage_offset(), t.numel())
        weights[k] = t.clone() if where in seen or t.untyped_storage().nbytes() != t.nbytes else t
        seen.add(where)
    return weights


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the model of checkpoint ``path`` from its JSON config and load its weights.

    The config is first built on the ``meta`` device (no memory) and its shapes compared with
    the safetensors header, so a config that does not match the weights (``hidden_size`` a
    million) is one error before anything is allocated.
    """
    reader = _Reader(path)
    meta = reader.meta()
    cls = _import_class(meta["class"])
    data = reader.file("model.safetensors")
    found = reader.shapes("model.safetensors", data)
    try:
        with torch.device("meta"), _CallBudget(10_000 + 100 * len(found)):
            probe = cls.from_config(meta["config"])
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError, OverflowError) as e:
        # RuntimeError: a size too big even for the meta device ("storage size overflowed")
        raise reader.error(MARKER, f"has an invalid model config ({e})") from None
    expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    del probe
    _check_shapes(reader, "model.safetensors", expected, found, "model.json's config")
    model = cls.from_config(meta["config"])
    _load_weights(reader, model, map_location, data)
    return model


def load_codec(path: str | Path) -> Any:
    """The checkpoint's codec (:func:`rnnkit.data.codec.codec_from_json`), or None."""
    from rnnkit.data.codec import codec_from_json

    reader = _Reader(path)
    data = reader.json("codec.json", required=False)
    if data is None:
        return None
    try:
        return codec_from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise reader.error("codec.json", f"is invalid ({e})") from None


def _flatten_carry(state: Any, out: dict[str, torch.Tensor]) -> Any:
    """A carried state's tensors into ``out`` ("0", "1", ...); returns its nesting: the
    tensor's key, or a list of nestings (None stays None)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        key = str(len(out))
        out[key] = state.detach().cpu().contiguous()
        return key
    return [_flatten_carry(s, out) for s in state]


def _unflatten_carry(nesting: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if nesting is None:
        return None
    if isinstance(nesting, str):
        return tensors[nesting]
    return tuple(_unflatten_carry(n, tensors) for n in nesting)


def load_carry(path: str | Path, state: dict[str, Any], device: torch.device | None = None):
    """The state truncated BPTT carried inside the batch a checkpoint stopped in (``state``:
    its trainer.json), on ``device``."""
    reader = _Reader(path)
    tensors = reader.tensors("carry.safetensors")
    try:
        carry = _unflatten_carry(state["carry"], tensors)
    except (KeyError, TypeError) as e:
        raise reader.error(
            "carry.safetensors", f"(with trainer.json) holds no carried state ({e})"
        ) from None

    def move(s):
        if s is None or isinstance(s, torch.Tensor):
            return s if s is None or device is None else s.to(device)
        return tuple(map(move, s))

    return move(carry)


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
    reader = _Reader(path)
    state = reader.json("trainer.json")
    for key, needed in (("optimizer", optimizer is not None), ("rng", restore_rng)):
        if needed and not isinstance(state.get(key), dict):
            raise reader.error("trainer.json", f"is invalid (it has no {key} state)")
    if optimizer is not None:
        tensors = reader.tensors("optimizer.safetensors")
        try:
            optimizer_from_flat(optimizer, tensors, state["optimizer"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
            raise reader.error(
                "optimizer.safetensors", f"(with trainer.json) does not fit this optimizer ({e})"
            ) from None
    if restore_rng:
        tensors = reader.tensors("rng.safetensors")
        try:
            set_rng_state(tensors, state["rng"], device)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
            raise reader.error(
                "rng.safetensors", f"(with trainer.json) holds no valid RNG state ({e})"
            ) from None
    return state


def _step_of(name: str) -> int:
    m = STEP.fullmatch(name) or LEFTOVER.fullmatch(name)
    if m is None:
        raise ValueError(f"{name!r} is not a checkpoint name")
    return int(m.group(1) if m.re is STEP else m["step"])


def _read_index(root: Path) -> dict[str, Any] | None:
    """index.json of ``root`` when it is there and valid (names are checkpoint names only:
    an index cannot point outside its folder), else None."""
    try:
        index = json.loads(_read_regular(root / "index.json"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(index, dict) or not isinstance(index.get("kept", []), list):
        return None

    def name_ok(n: Any) -> bool:
        return n is None or (isinstance(n, str) and STEP.fullmatch(n) is not None)

    if not all(name_ok(n) and n is not None for n in index.get("kept", [])):
        return None
    if not (name_ok(index.get("latest")) and name_ok(index.get("best"))):
        return None
    bv = index.get("best_value")
    if bv is not None and not isinstance(bv, (int, float)):
        return None
    index.setdefault("kept", [])
    index.setdefault("latest", None)
    index.setdefault("best", None)
    index.setdefault("best_value", None)
    return index


def _candidates(root: Path, name: str | None = None) -> list[Path]:
    """Checkpoint directories under ``root`` (of checkpoint ``name`` only, when given),
    leftovers included, newest first: by step, then generation, a plain name before a
    leftover of the same generation."""
    found = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    for p in entries:
        plain = STEP.fullmatch(p.name)
        left = LEFTOVER.fullmatch(p.name)
        if not (plain or left):
            continue
        if name is not None and (p.name if plain else left["name"]) != name:
            continue
        found.append((_step_of(p.name), _generation(p), bool(plain), p))
    found.sort(key=lambda t: t[:3], reverse=True)
    return [t[3] for t in found]


def _resolve(root: Path, name: str) -> Path | None:
    """Checkpoint ``name``: its directory when complete, else its newest complete leftover."""
    if is_complete(root / name):
        return root / name
    for p in _candidates(root, name):
        if is_complete(p):
            return p
    return None


def _newest_complete(root: Path) -> Path | None:
    for p in _candidates(root):
        if is_complete(p):
            return p
    return None


def _checkpoints_root(root: str | Path) -> Path:
    root = Path(root)
    if not (root / "index.json").exists() and (root / "checkpoints").is_dir():
        root = root / "checkpoints"  # a run directory
    return root


def refuse_unverifiable(root: str | Path, which: str = "latest") -> None:
    """Raise the newest checkpoint's :class:`CheckpointError` (naming the file) when a run
    has checkpoints but none that :func:`locate_checkpoint` can use, none verifying.

    Without it, loading would say "no checkpoint yet" and resuming would start over from
    scratch on a run whose every checkpoint is corrupt. A run whose index records no latest
    because every checkpoint came after a non-finite loss still verifies here, and resumes
    from scratch as its error said it would.
    """
    root = _checkpoints_root(root)
    if not root.is_dir() or locate_checkpoint(root, which) is not None:
        return
    steps = sorted(
        (int(m[1]), p) for p in root.iterdir() if (m := STEP.fullmatch(p.name)) and p.is_dir()
    )
    if steps:
        verify_checkpoint(steps[-1][1])


def locate_checkpoint(root: str | Path, which: str = "latest") -> Path | None:
    """The ``latest`` or ``best`` checkpoint of a run directory or of its ``checkpoints``
    folder (``root``), without writing; None when there is none.

    The index's checkpoint when it is complete (its files verify); otherwise the newest
    complete copy of that step (a leftover of a save cut short); otherwise the newest complete
    checkpoint in the folder. The best falls back to the latest when no metric was recorded
    or the best cannot be verified. An index that records no latest (a fresh run, or one whose
    every checkpoint came after a non-finite loss) gives None.
    """
    if which not in ("latest", "best"):
        raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
    root = _checkpoints_root(root)
    index = _read_index(root)
    if index is not None:
        if which == "best" and index["best"]:
            found = _resolve(root, index["best"])
            if found is not None:
                return found
        if index["latest"] is None:
            return None
        found = _resolve(root, index["latest"])
        if found is not None:
            return found
    return _newest_complete(root)


def resolve_moved(path: str | Path) -> Path:
    """``path``, or where :class:`CheckpointManager` moved it when ``path`` was a complete
    leftover (``.step-N.tmp-PID``) that it moved into its step's name (``step-N``)."""
    path = Path(path)
    m = LEFTOVER.fullmatch(path.name)
    if m is not None and not path.exists() and (path.parent / m["name"]).is_dir():
        return path.parent / m["name"]
    return path


class CheckpointManager:
    """Checkpoints ``step-<N>`` under ``root``; keeps the last ``keep_last``, the best, and
    the newest one before the latest (until a later loss shows the latest's weights finite).

    ``index.json`` lists the kept checkpoints in order, the latest, the best and its metric,
    and the last generation written. The manager is the run's single writer. On creation it
    never deletes a complete checkpoint: it deletes incomplete leftovers of a process killed
    while writing, moves a complete leftover into its step's name when that name is free, and
    leaves the rest to the next save, which prunes everything not kept once its own checkpoint
    and the index are committed (see the module's protocol). Readers use
    :func:`locate_checkpoint`.
    """

    def __init__(self, root: str | Path, keep_last: int = 2, mode: str = "min") -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.root = Path(root)
        self.keep_last = keep_last
        self.mode = mode
        self.root.mkdir(parents=True, exist_ok=True)
        self._recover()
        self.index = self._load_index()
        on_disk = [_generation(p) for p in _candidates(self.root)]
        self.generation = max([int(self.index.get("generation", 0) or 0), *on_disk])

    def _recover(self) -> None:
        """Deal with what a killed writer left: see the class docstring."""
        for f in self.root.glob(".index.json.tmp-*"):
            _remove(f, "")
        for p in _candidates(self.root):
            if STEP.fullmatch(p.name):
                continue
            if not p.is_dir() or not is_complete(p):
                _remove(p, "")  # an unfinished write: never a resumable state
                continue
            target = self.root / LEFTOVER.fullmatch(p.name)["name"]
            if target.exists() and is_complete(target):
                continue  # a complete duplicate: the next committed save prunes it
            if target.exists():
                _remove(target, "")  # incomplete (a delete cut short); the leftover replaces it
            os.rename(p, target)
            fsync_dir(self.root)

    def _load_index(self) -> dict[str, Any]:
        index = _read_index(self.root)
        if index is not None:
            return index
        # no index (or an unreadable one): the complete checkpoints on disk, oldest first
        names = sorted(
            {p.name for p in _candidates(self.root) if STEP.fullmatch(p.name) and is_complete(p)},
            key=_step_of,
        )
        latest = names[-1] if names else None
        return {"kept": names, "latest": latest, "best": None, "best_value": None}

    def save(
        self,
        step: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None,
        trainer_state: dict[str, Any],
        metric: float | None = None,
        codec: Any = None,
        device: torch.device | None = None,
        carry: Any = None,
    ) -> Path:
        """Write checkpoint ``step-<step>``, commit it in the index, prune what is not kept.

        A metric that is not finite never becomes the best. ``carry``: as
        :func:`save_checkpoint`.
        """
        name = f"step-{step:08d}"
        self.generation += 1
        path = save_checkpoint(
            self.root / name,
            model,
            optimizer,
            trainer_state,
            codec,
            device,
            self.generation,
            carry=carry,
        )
        idx = self.index
        idx["kept"] = [k for k in idx["kept"] if k != name] + [name]
        idx["latest"] = name
        idx["generation"] = self.generation
        if metric is not None and math.isfinite(metric) and self._better(metric, idx["best_value"]):
            idx["best"], idx["best_value"] = name, metric
        earlier = [k for k in idx["kept"] if _step_of(k) < step]
        keep = set(idx["kept"][-self.keep_last :]) | ({idx["best"]} - {None})
        if earlier:  # the newest before this one: its weights gave a finite loss
            keep.add(max(earlier, key=_step_of))
        idx["kept"] = [k for k in idx["kept"] if k in keep]
        _reached("before-index", name)
        write_atomic(self.root / "index.json", _json_bytes(idx))
        _reached("after-index", name)
        self._prune(keep, name)
        return path

    def _prune(self, keep: set[str], saving: str) -> None:
        """Delete the checkpoints not in ``keep`` and every leftover (after a commit only)."""
        for p in sorted(self.root.iterdir()):
            if p.name in keep:
                continue
            ours = STEP.fullmatch(p.name) or LEFTOVER.fullmatch(p.name)
            if ours or p.name.startswith(".index.json.tmp-"):
                _remove(p, saving)

    def fall_back(self, before_step: int) -> Path | None:
        """After a non-finite loss computed with the weights of step ``before_step``: make the
        newest kept checkpoint of an earlier step whose files verify and whose weights are all
        finite the latest, and take every later one out of the index (they stay on disk until
        the next save prunes them). Returns it, or None when there is none (the index then
        records no latest, so a resume starts afresh)."""
        idx = self.index
        good = None
        for name in sorted(idx["kept"], key=_step_of, reverse=True):
            if _step_of(name) < before_step and weights_finite(self.root / name):
                good = name
                break
        limit = _step_of(good) if good is not None else -1
        idx["kept"] = [k for k in idx["kept"] if _step_of(k) <= limit]
        idx["latest"] = good
        if idx["best"] is not None and _step_of(idx["best"]) > limit:
            idx["best"], idx["best_value"] = None, None
        write_atomic(self.root / "index.json", _json_bytes(idx))
        return self.root / good if good is not None else None

    def _better(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value < best if self.mode == "min" else value > best

    def latest(self) -> Path | None:
        return locate_checkpoint(self.root, "latest")

    def best(self) -> Path | None:
        return locate_checkpoint(self.root, "best")
