r"""Dense layers whose products run through oneDNN on CPUs where ATen's BLAS is slow.

:func:`linear` is ``torch.nn.functional.linear``, y = x W^T + b, and :class:`Linear` is
``torch.nn.Linear`` (the same parameters, names and state dict) calling it. On CPU in float32
the three products of a large enough layer,

    y = x W^T + b,    dL/dx = (dL/dy) W,    dL/dW = (dL/dy)^T x,    dL/db = sum_rows dL/dy,

go through oneDNN's inner product (``torch.ops.mkldnn._linear_pointwise``, the primitive
torch's own LSTM and rnnkit's sequence kernels use) instead of ATen's BLAS call, when this
machine runs them faster that way. On an AMD EPYC with AVX-512 oneDNN ran rnnkit's
products 1.3-2.0x faster than ATen's BLAS (MKL), forward and backward
(``python benchmarks/dense_linear.py``); on CPUs where the two are level nothing changes.
The choice is measured once per process (:func:`onednn_faster`; ``RNNKIT_ONEDNN_LINEAR=1``
or ``0`` forces it). The two paths round sums differently, so the trainer saves the choice in
its checkpoints and a resumed run takes the same one (:func:`onednn_choice`,
:func:`use_onednn`): a timing that came out the other way in the new process cannot change
the numbers of a run that resumes exactly.

The layers' loop enters :func:`products` around a cell of one's own, so that the products of
the cell's ``nn.Linear`` layers take the same path (only where a product could change path).

Everything else is ``F.linear`` exactly: other dtypes and devices, CPU autocast, ``torch.func``
transforms and forward-mode AD (whose rules an autograd Function would need), products
of fewer than :data:`MIN_MACS` multiply-adds (a oneDNN call costs about 12 us more than a
BLAS call, which small products do not repay), and graphs being traced, compiled or exported
(so that they hold ATen's ``linear`` for the ONNX exporter and other runtimes). The backward
pass is made of the same function, so it is differentiable again (``create_graph=True``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from rnnkit.kernels.common import function_transform

__all__ = [
    "MIN_MACS",
    "Linear",
    "linear",
    "onednn_choice",
    "onednn_faster",
    "products",
    "use_onednn",
]

#: products of at least this many multiply-adds (rows x in x out) take oneDNN's path
MIN_MACS = 2**21

_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
_faster: bool | None = None


def onednn_faster() -> bool:
    """Whether this process sends large float32 products to oneDNN: ``RNNKIT_ONEDNN_LINEAR``
    (``1`` or ``0``) when set, else measured once, the first time it is asked: a (256, 512) x
    (512, 512) product timed both ways, oneDNN taken when it is at least 1.25x faster."""
    global _faster
    if _faster is None:
        forced = os.environ.get("RNNKIT_ONEDNN_LINEAR", "").strip()
        if forced not in ("", "0", "1"):
            raise ValueError(f"RNNKIT_ONEDNN_LINEAR: expected 0 or 1, got {forced!r}")
        usable = _LINEAR is not None and torch.backends.mkldnn.is_available()
        _faster = (forced == "1" and usable) if forced else (usable and _measure())
    return _faster


def onednn_choice() -> bool | None:
    """This process's choice (True: oneDNN), or None while nothing has asked for it yet."""
    return _faster


def use_onednn(flag: bool) -> None:
    """Fix this process's choice, as ``RNNKIT_ONEDNN_LINEAR`` does (the trainer sets a resumed
    run's saved choice). ``flag=True`` where oneDNN's product is missing is a ValueError."""
    global _faster
    if not isinstance(flag, bool):
        raise TypeError(f"flag: expected True or False, got {flag!r}")
    if flag and (_LINEAR is None or not torch.backends.mkldnn.is_available()):
        raise ValueError("use_onednn(True): this torch build has no oneDNN linear product")
    _faster = flag


def _measure(rounds: int = 5) -> bool:
    with torch.no_grad():
        x, w = torch.randn(256, 512), torch.randn(512, 512)
        calls = (
            lambda: torch.nn.functional.linear(x, w),
            lambda: _LINEAR(x, w, None, "none", [], ""),
        )
        best = []
        for call in calls:
            call()  # warm-up (oneDNN: the primitive's creation)
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            best.append(min(times))
    return best[0] >= 1.25 * best[1]


def _takes_onednn(x: Tensor, w: Tensor) -> bool:
    """Whether the product x (M, K) w^T (K, N) runs on oneDNN."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    if x.dtype != torch.float32 or w.dtype != torch.float32 or x.device.type != "cpu":
        return False
    if x.dim() != 2 or w.dim() != 2 or x.numel() * w.shape[0] < MIN_MACS:
        return False
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return False
    if function_transform():  # vmap, grad, jacrev, ..., forward-mode AD
        return False
    if torch.is_autocast_enabled("cpu") or not torch.backends.mkldnn.enabled:
        return False
    return onednn_faster()


def _dense(t: Tensor) -> Tensor:
    """A matrix oneDNN reads as it is (row- or column-major), else a contiguous copy (an
    expanded gradient, with stride 0, for instance)."""
    return t if t.is_contiguous() or t.t().is_contiguous() else t.contiguous()


def _onednn(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """x (M, K) w^T + b by oneDNN: through :class:`_OneDNNLinear` where autograd records
    (also a backward pass with ``create_graph=True``), else the bare call."""
    if torch.is_grad_enabled():
        return _OneDNNLinear.apply(_dense(x), _dense(w), b)
    return _LINEAR(_dense(x), _dense(w), b, "none", [], "")


def _product(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """x (M, K) w^T + b through oneDNN or ``F.linear`` (any strides)."""
    if not _takes_onednn(x, w):
        return torch.nn.functional.linear(x, w, b)
    return _onednn(x, w, b)


class _OneDNNLinear(torch.autograd.Function):
    """y = x W^T + b by oneDNN; the gradients by :func:`_product` again, so that a backward
    pass run with ``create_graph=True`` records them."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return _LINEAR(x, w, b, "none", [], "")

    @staticmethod
    def backward(ctx, g: Tensor):
        x, w = ctx.saved_tensors
        gx = _product(g, w.t()) if ctx.needs_input_grad[0] else None  # dL/dy W: (M, K)
        # dL/dW = dL/dy^T x (N, K). oneDNN copies its first operand into rows, so the product
        # runs in the orientation that copies the smaller one: (N, M), or (K, M) for the
        # transpose (x^T dL/dy)^T
        transpose = g.shape[1] > x.shape[1]
        gw = None
        if ctx.needs_input_grad[1]:
            gw = _product(x.t(), g.t()).t() if transpose else _product(g.t(), x.t())
        gb = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``torch.nn.functional.linear(x, weight, bias)``: y = x W^T + b over x's last axis,
    large float32 CPU products through oneDNN where that is faster (module docstring)."""
    if x.dim() == 2:
        return _product(x, weight, bias)
    if x.dim() < 2 or weight.dim() != 2 or torch.jit.is_tracing():
        return torch.nn.functional.linear(x, weight, bias)
    rows = x.reshape(-1, x.shape[-1])  # (M, K): a view where x's layout allows one
    if not _takes_onednn(rows, weight):
        return torch.nn.functional.linear(x, weight, bias)
    return _onednn(rows, weight, bias).reshape(*x.shape[:-1], weight.shape[0])


class Linear(nn.Linear):
    """``torch.nn.Linear`` (the same parameters and state dict) whose product is
    :func:`linear`."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)


@contextlib.contextmanager
def products(module: nn.Module, x: Tensor, macs: int) -> Iterator[None]:
    """Within this context every ``nn.Linear`` in ``module`` (of exactly that type) computes
    its product with :func:`linear`, as :class:`Linear` does, and as before after it: the
    layers' loop enters it around a cell of one's own, so that the cell's ``nn.Linear``
    layers take the path of rnnkit's own. ``x`` is the cell's input and ``macs`` the
    multiply-adds of its step's products, roughly. Nothing changes where no product would
    change path: x not float32 on the CPU, ``macs`` under :data:`MIN_MACS`, oneDNN not faster
    here, a graph being traced or compiled, or a torch function mode active (which would see
    oneDNN's call instead of ``linear``'s). A layer whose ``forward`` is already its own
    attribute keeps it."""
    if (
        x.device.type != "cpu"
        or x.dtype != torch.float32
        or macs < MIN_MACS
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or torch._C._is_torch_function_mode_enabled()
        or not onednn_faster()
    ):
        yield
        return
    layers = [m for m in module.modules() if type(m) is nn.Linear and "forward" not in m.__dict__]
    for m in layers:  # an instance attribute before the class's forward, as torch's own
        m.__dict__["forward"] = Linear.forward.__get__(m)  # functional_call swaps in place
    try:
        yield
    finally:
        for m in layers:
            m.__dict__.pop("forward", None)
