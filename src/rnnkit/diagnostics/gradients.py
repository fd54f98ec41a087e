"""Per-time-step gradient norms ||dL/dh_t||: the vanishing and exploding gradients, measured.

For a loss L read at the end of a sequence, backpropagation through time gives

    dL/dh_t = (dh_{t+1}/dh_t)^T dL/dh_{t+1} + (direct terms at step t)
            = prod_{s=t+1..T} J_s^T dL/dh_T        (when only the last step is read)

with J_s = dh_s/dh_{s-1}; for an Elman RNN J_s = diag(phi'(a_s)) W_hh. When the Jacobians'
norms stay below 1 the product shrinks exponentially in T - t (vanishing), above 1 it grows
(exploding). The LSTM's cell path multiplies by the forget gate instead, which can stay near 1.

:func:`step_gradient_norms` measures ||dL/dh_t|| on the layer's explicit loop (``trace``),
keeping each step's hidden state in the graph with ``retain_grad``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch


def hidden_gradients(loss: torch.Tensor, hidden: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Backpropagate ``loss`` and return dL/dh_t per layer-direction as (T, B, H) tensors.

    ``hidden[k][t]`` must be tensors of the graph that produced ``loss`` (a layer trace);
    a step whose hidden state does not influence the loss has gradient zero.
    """
    for per_step in hidden:
        for h in per_step:
            h.retain_grad()
    loss.backward()
    grads = []
    for per_step in hidden:
        grads.append(
            torch.stack([h.grad if h.grad is not None else torch.zeros_like(h) for h in per_step])
        )
    return grads


def step_gradient_norms(
    model: Any, batch: Any, layer: int = -1, dtype: torch.dtype | None = torch.float64
) -> torch.Tensor:
    """Mean over the batch of ||dL/dh_t||_2 for each step t, shape (T,).

    Args:
        model: has ``trace(batch) -> (loss, LayerTrace)``.
        batch: the sequences.
        layer: which layer-direction's hidden states (default the last).
        dtype: run a copy of the model in this precision (default float64: vanishing
            gradients fall below float32's 1e-38 within a few hundred steps); None runs the
            model as it is.
    """
    if dtype is not None:
        model = copy.deepcopy(model).to(dtype)
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    loss, trace = model.trace(batch)
    grads = hidden_gradients(loss, trace.hidden)[layer]  # (T, B, H)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return grads.norm(dim=-1).mean(dim=1).detach()  # (T,)


def decay_rate(norms: torch.Tensor, eps: float = 1e-300) -> float:
    """Mean factor by which ||dL/dh_t|| changes per step going back in time.

    The geometric mean of norms[t] / norms[t+1]: below 1 the gradient vanishes towards the
    start of the sequence, above 1 it explodes.
    """
    logs = torch.log(norms.double().clamp_min(eps))  # (T,)
    return float(torch.exp((logs[0] - logs[-1]) / max(len(norms) - 1, 1)))
