"""Where training runs and in what precision: devices, batch moves, autocast, loss scaling.

Devices (``TrainerConfig.device``): ``"auto"`` is CUDA when ``torch.cuda.is_available()`` and
the CPU otherwise; ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` name one. Under torchrun, ``"auto"``
and ``"cuda"`` mean ``cuda:LOCAL_RANK``, one GPU per process.

Batches are frozen dataclasses of tensors; :func:`move_batch` copies every tensor field to the
device with ``non_blocking=True``. Towards CUDA each CPU tensor is first copied to page-locked
(pinned) memory, so that the host-to-device copy is asynchronous and overlaps the GPU's work.

Precisions (``TrainerConfig.precision``):

    "32"        float32 everywhere
    "bf16"      forward and loss under autocast to bfloat16 (CPU and CUDA); float32 weights and
                gradients; bfloat16 has float32's exponent range, so no loss scaling
    "16-mixed"  forward and loss under autocast to float16, CUDA only; the loss is scaled by s
                before backward and the gradients unscaled before clipping:

                    g = (d(s L)/dθ) / s            s halves when g has an inf or NaN (the step
                                                   is skipped), doubles after 2000 good steps

"16-mixed" is refused on the CPU: float16 kernels there depend on the processor (oneDNN needs
AVX512-FP16 or AVX-NE-CONVERT for some, and its LSTM has none); use "bf16" instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import torch

from rnnkit.training.config import PRECISIONS, check_device_name

B = TypeVar("B")

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "16-mixed": torch.float16}


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """The ``torch.device`` that ``name`` ("auto", "cpu", "cuda", "cuda:N") stands for.

    Args:
        name: the device name, as ``TrainerConfig.device``.
        local_rank: under torchrun, this process's LOCAL_RANK: "auto" and "cuda" then mean
            ``cuda:local_rank``; None for a single process ("cuda" is the current device).

    Raises:
        ValueError: ``name`` is not a device name, or it asks for CUDA that is not there.
    """
    check_device_name(name)
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(
            f"device={name!r} needs CUDA, but this torch ({torch.__version__}) sees no CUDA "
            "device; use device='cpu' or device='auto'"
        )
    if name.startswith("cuda:"):
        index = int(name.split(":", 1)[1])
    else:
        index = local_rank if local_rank is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"device={name!r} asks for cuda:{index}, but {count} are visible")
    return torch.device("cuda", index)


def move_batch(batch: B, device: torch.device | str, non_blocking: bool = True) -> B:
    """``batch`` with every tensor field on ``device`` (the same object when none moves).

    ``batch`` is a dataclass (frozen or not) whose tensor fields are moved and whose other
    fields are kept; a bare tensor is moved too. Towards CUDA, CPU tensors are pinned first.
    """
    device = torch.device(device)
    if isinstance(batch, torch.Tensor):
        return _move_tensor(batch, device, non_blocking)  # type: ignore[return-value]
    if not dataclasses.is_dataclass(batch) or isinstance(batch, type):
        raise TypeError(f"batch must be a dataclass of tensors, got {type(batch).__name__}")
    changes = {}
    for f in dataclasses.fields(batch):
        value = getattr(batch, f.name)
        if f.init and isinstance(value, torch.Tensor) and value.device != device:
            changes[f.name] = _move_tensor(value, device, non_blocking)
    return dataclasses.replace(batch, **changes) if changes else batch  # type: ignore[type-var]


def _move_tensor(t: torch.Tensor, device: torch.device, non_blocking: bool) -> torch.Tensor:
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu" and not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=non_blocking)


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run (float16 on the CPU)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "16-mixed" and device.type != "cuda":
        raise ValueError(
            f"precision='16-mixed' needs a CUDA device, but training runs on {device}; "
            "use precision='bf16' on the CPU"
        )


def autocast_context(
    device: torch.device, precision: str
) -> Callable[[], AbstractContextManager[Any]]:
    """A factory of the context that runs the forward pass and loss in ``precision``."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def make_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """The loss scaler of "16-mixed"; None for the precisions that need none."""
    if precision != "16-mixed":
        return None
    return torch.amp.GradScaler(device.type)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU when it has none)."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    first = next(tensors, None)
    return first.device if first is not None else torch.device("cpu")
