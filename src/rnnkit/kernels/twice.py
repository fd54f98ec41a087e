r"""Double backward for the sequence kernels: their hand-written backward runs without a
graph, so when autograd asks for one (``torch.autograd.grad(..., create_graph=True)``:
gradient penalties, Hessian-vector products) the kernel's backward comes here instead.

The recurrence is recomputed with autograd from the kernel's inputs, in the same equations
as the kernels (written once more, plainly, for this purpose):

.. math::
    \text{Elman:}\quad h_t = \phi(xp_t + W_{hh} h_{t-1})
    \text{LSTM:}\quad A_t = xp_t + W_{hh} h_{t-1},\ c_t = \sigma(A^f) c_{t-1}
        + \sigma(A^i) \tanh(A^g),\ h_t = \sigma(A^o) \tanh(c_t)
    \text{GRU:}\quad a_t = W_{hh} h_{t-1} + b_{hh},\ r, z = \sigma(xp^{r,z}_t + a^{r,z}_t),
        \ n = \tanh(xp^n_t + r\, a^n_t),\ h_t = n + z (h_{t-1} - n)

with padded rows carrying their state and giving zero outputs, and the first-order
gradients are taken from it with ``create_graph=True``, so they are themselves
differentiable. The projected inputs ``xp`` are not kept by the kernels (that would cost a
(T, B, G*H) tensor in every training step); the layer passes a function that recomputes them
from its input, which autograd keeps anyway for the projection's own backward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["Recompute", "double_backward"]

#: recomputes the projected inputs xp (T, B, G*H) with autograd, from the layer's input
Recompute = Callable[[], Tensor]


def _recurrence(kind: str, xp: Tensor, state: tuple[Tensor, ...], w: Tensor, b, mask, extra):
    """Outputs (T, B, H) and the final state, with autograd, for ``kind``."""
    outputs = []
    masks = mask.unbind(0) if mask is not None else [None] * xp.shape[0]
    for xp_t, m in zip(xp.unbind(0), masks, strict=True):
        h = state[0]
        if kind == "lstm":
            i, f, g, o = torch.addmm(xp_t, h, w.t()).chunk(4, 1)
            c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
            new = (torch.sigmoid(o) * torch.tanh(c), c)
        elif kind == "gru":
            x_rz, x_n = xp_t.split([2 * h.shape[1], h.shape[1]], 1)
            a_rz, a_n = torch.nn.functional.linear(h, w, b).split([2 * h.shape[1], h.shape[1]], 1)
            r, z = torch.sigmoid(x_rz + a_rz).chunk(2, 1)
            n = torch.tanh(x_n + r * a_n)
            new = (n + z * (h - n),)
        else:
            pre = torch.addmm(xp_t, h, w.t())
            new = (torch.tanh(pre) if extra == "tanh" else torch.relu(pre),)
        if m is not None:
            new = tuple(torch.where(m, n_, s) for n_, s in zip(new, state, strict=True))
            outputs.append(new[0] * m)
        else:
            outputs.append(new[0])
        state = new
    return torch.stack(outputs), state


def double_backward(
    kind: str,
    grads: tuple[Tensor, ...],
    xp: Tensor | Recompute,
    state: tuple[Tensor, ...],
    w: Tensor,
    b: Tensor | None = None,
    mask: Tensor | None = None,
    extra: str | None = None,
) -> tuple[Tensor | None, ...]:
    """The kernel's gradients (for xp, each state tensor, w, and b where given) as
    differentiable tensors, from the output gradients ``grads`` (for the outputs and each
    final state tensor). ``xp`` is the projected input or a function recomputing it;
    ``extra`` the Elman nonlinearity."""
    with torch.enable_grad():
        xp = xp() if callable(xp) else xp
        inputs = [xp, *state, w, *([] if b is None else [b])]
        out, final = _recurrence(kind, xp, state, w, b, mask, extra)
        wanted = [t for t in inputs if t.requires_grad]
        found = torch.autograd.grad(
            (out, *final), wanted, grads, create_graph=True, allow_unused=True
        )
    by_id = {id(t): g for t, g in zip(wanted, found, strict=True)}
    return tuple(by_id.get(id(t)) for t in inputs)
