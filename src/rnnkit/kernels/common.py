"""What the sequence kernels share: per-step products with a packed weight, and masks."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "Linear",
    "StepMasks",
    "function_transform",
    "needs_grad",
    "project",
    "split_carry",
    "tanh",
]


def function_transform() -> bool:
    """Whether a ``torch.func`` transform (``vmap``, ``grad``, ``jacrev``, ...) or forward-mode
    AD is running: rnnkit's autograd Functions lack the rules these need (``setup_context``,
    ``jvp``, a vmap rule), so their callers take plain differentiable operations instead.
    True also while ``torch.compile`` traces (it uses these transforms): ask after it."""
    return (
        torch._C._functorch.peek_interpreter_stack() is not None
        or torch.autograd.forward_ad._current_level >= 0
    )


def vmapped(t: Tensor) -> bool:
    """Whether ``t`` is batched by ``torch.func.vmap`` (at any of its wrappers' levels): its
    values cannot be read then (one per batch row), so callers skip value checks and cuts."""
    functorch = torch._C._functorch
    while functorch.is_functorch_wrapped_tensor(t):
        if functorch.is_batchedtensor(t):
            return True
        t = functorch.get_unwrapped(t)
    return False


_ONEDNN = getattr(torch.ops.mkldnn, "_reorder_linear_weight", None) is not None


class Linear:
    """``x @ w.T``, plus ``add`` (B, out) or ``bias`` (out,), for a fixed ``w`` (out, in).

    With oneDNN (float32 on CPU) ``w`` is packed once for batch size ``batch`` and the
    addition is fused into the product; otherwise this is ``addmm``. Returns a new tensor.
    """

    def __init__(self, w: Tensor, batch: int, bias: Tensor | None = None):
        self.wt, self.bias, self.packed = w.t(), bias, None
        if (
            _ONEDNN
            and w.dtype == torch.float32
            and w.device.type == "cpu"
            and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled
        ):
            self.packed = torch.ops.mkldnn._reorder_linear_weight(w.contiguous(), batch)

    def __call__(self, x: Tensor, add: Tensor | None = None, rows: int | None = None) -> Tensor:
        """The product for x (B, in); with ``rows``, only for x's first ``rows`` rows, the
        others being padding: their results are ``add``'s rows (or zeros), finite values
        that the masks discard."""
        if rows is not None and rows < x.shape[0]:
            tail = (
                add[rows:] if add is not None else x.new_zeros(x.shape[0] - rows, self.wt.shape[1])
            )
            if rows == 0:
                return tail.clone()
            return torch.cat([self(x[:rows], None if add is None else add[:rows]), tail])
        if self.packed is not None:
            if add is None:
                return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
            return torch.ops.mkldnn._linear_pointwise.binary(x, add, self.packed, self.bias, "add")
        if add is not None:
            return torch.addmm(add, x, self.wt)
        return torch.mm(x, self.wt) if self.bias is None else torch.addmm(self.bias, x, self.wt)


class StepMasks:
    """Per-step views of a mask (T, B, 1), ``None`` at steps known to be all valid.

    ``keep[t]`` is the bool mask m_t (B, 1) for the forward pass; :meth:`split` gives the
    pairs ``(m_t, 1 - m_t)`` in the data's dtype for the backward pass. ``out_mask``
    (T, B, 1) zeroes the outputs at padded steps, or is None without a mask. Where the
    valid rows of a step are its first ones (a batch sorted by decreasing length),
    ``rows[t]`` counts them, so that the products skip the padded rows; else it is None.
    """

    def __init__(self, mask: Tensor | None, first_masked: int, steps: int, dtype):
        self.keep: list[Tensor | None] = [None] * steps
        self.rows: list[int | None] = [None] * steps
        self.out_mask = None if mask is None else mask.to(dtype)
        self.lengths: Tensor | None = None  # (B,) valid steps per row, when sorted
        if mask is not None:
            self.keep[first_masked:] = mask[first_masked:].unbind(0)
            counts = mask.sum((1, 2))  # (T,): valid rows at each step
            first_rows = torch.arange(mask.shape[1], device=mask.device) < counts.unsqueeze(1)
            if torch.equal(first_rows, mask.squeeze(2)):
                self.rows[first_masked:] = counts[first_masked:].tolist()
                self.lengths = mask.sum((0, 2))

    def prefix_rows(self, batch: int) -> list[int] | None:
        """Valid rows per step when every step's valid rows are its first ones (a batch
        sorted by decreasing length, padded): then step t need only touch rows [0, n_t)."""
        if self.lengths is None:
            return None
        return [batch if r is None else r for r in self.rows]

    def last_states(self, hs: Tensor) -> Tensor:
        """Each row's state at its own last valid step, from h_0..h_T (T+1, B, H)."""
        assert self.lengths is not None
        return hs[self.lengths, torch.arange(hs.shape[1], device=hs.device)]

    def split(self) -> list[tuple[Tensor, Tensor] | None]:
        """``(m_t, 1 - m_t)`` for the masked steps, for the backward pass."""
        if self.out_mask is None:
            return list(self.keep)
        pairs = zip(self.out_mask.unbind(0), (1.0 - self.out_mask).unbind(0), strict=True)
        return [None if k is None else p for k, p in zip(self.keep, pairs, strict=True)]

    def outputs(self, hs: Tensor, inplace: bool = False) -> Tensor:
        """The outputs y_t = m_t * h_t from the states h_1..h_T (T, B, H); ``inplace``
        overwrites the states (when nothing else needs them)."""
        if self.out_mask is None:
            return hs
        return hs.mul_(self.out_mask) if inplace else hs * self.out_mask

    def output_grads(self, grad_out: Tensor) -> list[Tensor]:
        """dL/dy_t masked as y_t is, per step: T x (B, H)."""
        g = grad_out if self.out_mask is None else grad_out * self.out_mask
        return g.contiguous().unbind(0)


def tanh(x: Tensor, out: Tensor) -> Tensor:
    """``tanh(x)`` into ``out`` as ``2 sigmoid(2x) - 1``: on CPU torch's sigmoid is about five
    times faster than its tanh, so the four operations take half the time of one tanh
    (absolute error about 2e-7 in float32, 4e-16 in float64)."""
    torch.add(x, x, out=out).sigmoid_()
    return out.add_(out).sub_(1.0)


#: padded batches project only their valid positions when at most this share is valid
#: (a gather and a scatter of rows for fewer rows through the product)
PROJECT_VALID_MAX_SHARE = 0.9


def project(cell, x: Tensor, mask: Tensor | None = None) -> Tensor:
    """``cell.project_input(x)`` for x (T, B, I); without autograd, through :class:`Linear`
    (oneDNN with a packed weight is much faster than ``linear`` for small I).

    With ``mask`` (T, B, 1) (True where valid) and a padded share of at least 10%, only the
    valid positions go through the product and the padded ones are zero: their values are
    never used (the kernels carry the state past them)."""
    x = x.contiguous()  # a strided x (batch_first) slows the product down
    if mask is not None:
        flat = mask.reshape(-1)
        valid = int(flat.sum())
        if valid <= PROJECT_VALID_MAX_SHARE * flat.numel():
            index = flat.nonzero().squeeze(1)
            rows = project(cell, x.flatten(0, 1).index_select(0, index).unsqueeze(0)).squeeze(0)
            out = rows.new_zeros(flat.numel(), rows.shape[1])
            return out.index_copy_(0, index, rows).unflatten(0, x.shape[:2])
    if needs_grad(x, cell.weight_ih, cell.bias_ih, cell.bias_hh):
        return cell.project_input(x)
    with torch.no_grad():
        lin = Linear(cell.weight_ih, x.shape[0] * x.shape[1], cell.input_bias())
        return lin(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def needs_grad(*tensors: Tensor | None) -> bool:
    """Whether autograd is recording and one of ``tensors`` requires grad."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def split_carry(grad: Tensor, pair: tuple[Tensor, Tensor] | None) -> Tensor | None:
    """At a masked step, keep ``m_t * grad`` in ``grad`` for the step and return
    ``(1 - m_t) * grad``, the part carried straight to the previous state."""
    if pair is None:
        return None
    carry = grad * pair[1]
    grad.mul_(pair[0])
    return carry
