"""The compiled sequence kernels (``csrc/fused.cpp``): built on first use, else Python.

The C++ runs a whole sequence: per step one matrix product (in float32 for batches and
weights large enough, oneDNN with the weight packed once, as
:class:`rnnkit.kernels.common.Linear`; else ``mm``) and one fused loop over the rows for
the element-wise work, which in Python costs a dozen op dispatches a step. The loops are
vectorized by gcc with glibc's vector ``exp`` (libmvec; AVX2 or AVX-512 where the CPU has
them). A batch of at least 16 rows a thread is cut into one block of rows per thread,
each run through the whole sequence on its own thread (one fork and join per sequence,
none per step). It is built with :func:`torch.utils.cpp_extension.load` (about 20 s, ninja and a
C++ compiler needed) into ``$RNNKIT_CACHE/ext-<hash>`` (default ``~/.cache/rnnkit``),
the hash covering the source, the flags and the torch installation, so that a changed
source or torch rebuilds; torch's lock file lets concurrent processes (pytest-xdist
workers) share one build.

The kernels in Python stay the reference and the fallback: they run when the build fails
(no compiler, say; a warning gives the reason, once), when ``RNNKIT_EXT=0`` is set, and
for tensors other than float32/float64 on CPU.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import warnings
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "DIRECT_MAX_ROWS",
    "args",
    "available",
    "disabled",
    "load",
    "ops",
    "packed",
    "step_rows",
    "use",
    "why_not",
]

_SOURCE = Path(__file__).with_name("csrc") / "fused.cpp"
_NAME = "rnnkit_fused"
_state: dict[str, object] = {}  # "ops" after a load attempt (None on failure), "reason"


def disabled() -> bool:
    """Whether ``RNNKIT_EXT=0`` (or ``false``/``off``/``no``) turns the extension off."""
    return os.environ.get("RNNKIT_EXT", "1").strip().lower() in ("0", "false", "off", "no")


def _flags() -> list[str]:
    flags = ["-O3", "-fno-math-errno", "-fopenmp"]
    if platform.machine() in ("x86_64", "AMD64"):
        cpu = Path("/proc/cpuinfo")
        text = cpu.read_text() if cpu.exists() else ""
        if " avx2" in text and " fma" in text:
            flags += ["-mavx2", "-mfma"]  # 8 floats a vector: libmvec's AVX2 exp
        if " avx512f" in text:
            flags += ["-mavx512f"]  # 16 floats a vector: libmvec's AVX-512 exp
    return flags


def _build():
    from torch.utils import cpp_extension

    flags = _flags()
    source = _SOURCE.read_bytes()
    # one build per source, flags and torch installation (version, path, Python)
    ident = " ".join([torch.__version__, torch.__file__, sys.version, *flags])
    key = hashlib.sha256(source + ident.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("RNNKIT_CACHE", Path.home() / ".cache" / "rnnkit"))
    build = cache / f"ext-{key}"
    build.mkdir(parents=True, exist_ok=True)
    clear_stale_lock(build / "lock")
    cpp_extension.load(
        name=f"{_NAME}_{key}",
        sources=[str(_SOURCE)],
        extra_cflags=flags,
        extra_ldflags=["-fopenmp", *(["-lmvec"] if platform.system() == "Linux" else [])],
        build_directory=str(build),
        is_python_module=False,
        verbose=False,
    )
    return getattr(torch.ops, _NAME)


#: a build lock older than this is left by a killed build (a build takes about 20 s)
STALE_LOCK_SECONDS = 600


def clear_stale_lock(lock: Path, max_age: float = STALE_LOCK_SECONDS) -> bool:
    """Remove torch's build lock when it is older than ``max_age`` seconds: a build killed
    mid-way leaves it behind, and every later process would wait on it forever. Returns
    whether it was removed."""
    import time

    try:
        if time.time() - lock.stat().st_mtime > max_age:
            lock.unlink()
            return True
    except FileNotFoundError:
        pass
    return False


def load():
    """The extension's ops (``torch.ops.rnnkit_fused``), building it on the first call; None
    when it is disabled or the build failed (the reason in :func:`why_not`)."""
    if disabled():
        return None
    if "ops" not in _state:
        try:
            _state["ops"] = _build()
        except Exception as err:  # no compiler, no headers, a failed link: fall back
            _state["ops"] = None
            _state["reason"] = f"{type(err).__name__}: {str(err).strip()[-500:]}"
            warnings.warn(
                "rnnkit: the compiled sequence kernels could not be built; the Python kernels "
                f"run instead (slower). Reason: {_state['reason']}",
                RuntimeWarning,
                stacklevel=3,
            )
    return _state["ops"]


def available() -> bool:
    """Whether the compiled kernels can run (building them if needed)."""
    return load() is not None


def why_not() -> str | None:
    """Why the compiled kernels do not run, or None when they do."""
    if disabled():
        return "RNNKIT_EXT=0"
    return None if load() is not None else str(_state.get("reason"))


def use(*tensors: Tensor | None):
    """The ops when the compiled kernels run these tensors (CPU, float32 or float64), else
    None."""
    ref = next(t for t in tensors if t is not None)
    if ref.device.type != "cpu" or ref.dtype not in (torch.float32, torch.float64):
        return None
    if any(t is not None and (t.device != ref.device or t.dtype != ref.dtype) for t in tensors):
        return None
    return load()


def args(masks, mask: Tensor | None, *tensors: Tensor | None):
    """``(ops, mask (T, B), rows)`` for a compiled kernel over ``tensors`` with these masks
    (:class:`StepMasks` and the mask (T, B, 1) or None), or None where Python runs."""
    found = use(*tensors)
    if found is None:
        return None
    return found, None if mask is None else mask.squeeze(2), step_rows(masks)


def ops():
    """The ops, which must have loaded."""
    result = load()
    assert result is not None
    return result


#: batches of at most this many rows form each step's product with the kernels' own loop over
#: the weight's rows, no library call (``kDirectMaxRows`` in csrc/fused.cpp, whose
#: ``set_direct_max_rows`` op changes it for comparisons)
DIRECT_MAX_ROWS = 4

#: the C++ kernels multiply by a oneDNN-packed weight (float32) from this batch size and
#: weight size on; below, ``mm`` measured faster (B = 1: 2-3x; Elman at H = 256: 1.15x at one
#: thread) unless the batch is split between threads (:data:`SPLIT_MIN_ROWS`)
PACK_MIN_BATCH = 8
PACK_MIN_NUMEL = 2**17

#: rows a thread at least for the C++ kernels to cut the batch into one block per thread
#: (``kSplitMinRows`` in csrc/fused.cpp). Each block's products then run inside the parallel
#: region, where ``at::mm`` on a full block is slow: an Elman layer at (32, 100, 128, 256),
#: two threads, ran its unpadded inference at 0.71x torch.nn with ``mm`` and 0.98x with the
#: packed product (``python benchmarks/row_split.py``; docs/RESULTS.md), so a split batch
#: packs any weight, except where the steps' row counts vary (a padded batch sorted by
#: length): there the packed product read slower (1.07x against 1.32x in padded inference).
SPLIT_MIN_ROWS = 16
#: whether split batches pack every weight (False: the rule before, for comparisons)
PACK_SPLIT = True


def packed(w: Tensor, batch: int, rows=()) -> Tensor | None:
    """``w`` packed by oneDNN for products ``x @ w.T`` with ``batch`` rows, as
    :class:`rnnkit.kernels.common.Linear` packs it, when that is the faster product; None
    where the C++ kernels are to use ``mm``. ``rows``: the valid rows of each step when
    they vary (:func:`step_rows`), else empty."""
    from rnnkit.kernels.common import Linear

    split = torch.get_num_threads() > 1 and batch >= 2 * SPLIT_MIN_ROWS
    split = PACK_SPLIT and split and not len(rows)
    if batch < PACK_MIN_BATCH or (w.numel() < PACK_MIN_NUMEL and not split):
        return None
    return Linear(w, batch).packed


def step_rows(masks) -> list[int]:
    """The rows each step's product touches (:class:`StepMasks`), for the C++ kernels: all
    of them (an empty list) unless the batch is sorted by decreasing length."""
    if masks.lengths is None:
        return []
    batch = masks.out_mask.shape[1]
    return [batch if r is None else int(r) for r in masks.rows]
