"""Gate activations and saturation over time, from a layer trace.

A sigmoid gate (LSTM i, f, o; GRU r, z) is saturated when its value is within ``eps`` of 0 or
1; a tanh activation (Elman h, LSTM g, GRU n) when its magnitude is within ``eps`` of 1.
Saturated units pass (almost) no gradient through the gate's own derivative,
sigma' = sigma (1 - sigma) or tanh' = 1 - tanh^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnnkit.layers import LayerTrace

TANH_GATES = {"h", "g", "n"}  # tanh-valued activations; the rest are sigmoids


@dataclass(frozen=True)
class GateStats:
    mean: torch.Tensor  # (T,) mean activation over batch and units
    saturation: torch.Tensor  # (T,) fraction of saturated entries


def gate_statistics(trace: LayerTrace, layer: int = -1, eps: float = 0.05) -> dict[str, GateStats]:
    """Per gate of one layer-direction: mean activation and saturated fraction over time."""
    steps = trace.gates[layer]
    if not steps:
        return {}
    out = {}
    for name in steps[0]:
        a = torch.stack([g[name].detach() for g in steps])  # (T, B, H)
        sat = a.abs() > 1 - eps if name in TANH_GATES else (a < eps) | (a > 1 - eps)
        out[name] = GateStats(a.mean(dim=(1, 2)), sat.float().mean(dim=(1, 2)))
    return out


def hidden_matrix(trace: LayerTrace, layer: int = -1, row: int = 0) -> torch.Tensor:
    """Hidden states of sequence ``row`` over time, (T, H)."""
    return torch.stack([h[row].detach() for h in trace.hidden[layer]])
