"""The errors rnnkit raises for bad arguments, and the checks that raise them.

torch.nn raises ``RuntimeError`` for most tensors of the wrong shape (an input of another
size, a state of another batch, an empty sequence) and ``ValueError`` for an input whose
dtype is not the weights'; Python code reaches for ``ValueError`` and ``TypeError``. Each
class below derives from all the built-in errors it stands for, so that ``except
RuntimeError`` written for torch.nn and ``except ValueError`` both catch it. Messages name
the argument and what came, as every rnnkit error does::

    >>> rk.LSTM(4, 8)(torch.randn(5, 3, 6))
    ShapeError: input: expected last dimension input_size=4, got 6 (shape (5, 3, 6))
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

__all__ = [
    "DTypeError",
    "ShapeError",
    "check_dtype",
    "check_flag",
    "check_probability",
    "check_size",
    "describe",
]


class ShapeError(ValueError, RuntimeError):
    """A tensor argument of the wrong shape: an input's dimensions or features, a state of
    another batch or size, lengths of another batch, an empty sequence."""


class DTypeError(TypeError, ValueError, RuntimeError):
    """A tensor argument of the wrong dtype: an input or state whose dtype is not the
    weights', floating-point lengths. (torch.nn raises ValueError for an input whose dtype
    is not the weights', RuntimeError from its kernels for the rest.)"""


def describe(value) -> str:
    """What came, for a message: a tensor's shape, else the type's name."""
    return str(tuple(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def check_flag(name: str, value) -> None:
    """``value`` must be a bool (``"False"`` or ``0`` would be read as its truth value):
    TypeError otherwise, as torch.nn's layers raise for ``bias`` and ``batch_first``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {value!r} ({type(value).__name__})")


def check_size(name: str, value, minimum: int = 1) -> None:
    """``value`` must be an int (not a bool) of at least ``minimum``: TypeError for another
    type, ValueError below the minimum, as torch.nn raises for ``input_size``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name}: expected an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name}: expected {what}, got {value!r}")


def check_probability(name: str, value) -> None:
    """``value`` must be a real number in [0, 1] (not a bool), as torch.nn's ``dropout``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")


def check_dtype(name: str, tensor: Tensor, dtype: torch.dtype | None, whose: str) -> None:
    """``tensor`` must have ``dtype`` (``whose`` says where that comes from: "the weights'",
    "the input's"); no check under autocast, which casts inside the products, or for None."""
    if dtype is None or tensor.dtype == dtype:
        return
    if torch.is_autocast_enabled(tensor.device.type):
        return
    raise DTypeError(f"{name}: expected dtype {dtype} ({whose}), got {tensor.dtype}")
