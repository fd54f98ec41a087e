"""Gradient clipping by norm and by value, and its per-epoch statistics."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.training.clipping import ClipStats, clip_gradients, global_grad_norm


def _params(*grads):
    ps = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros_like(g))
        p.grad = g.clone()
        ps.append(p)
    return ps


def test_global_norm_is_norm_of_concatenation():
    ps = _params(torch.tensor([3.0, 0.0]), torch.tensor([[4.0]]))
    assert global_grad_norm(ps) == pytest.approx(5.0)


def test_norm_clipping_rescales_to_threshold_keeping_direction():
    ps = _params(torch.tensor([3.0, 0.0]), torch.tensor([[4.0]]))
    norm, fired = clip_gradients(ps, max_norm=1.0)
    assert fired and norm == pytest.approx(5.0)
    assert global_grad_norm(ps) == pytest.approx(1.0, rel=1e-5)
    assert torch.allclose(ps[0].grad, torch.tensor([0.6, 0.0]), atol=1e-6)


def test_below_threshold_leaves_gradients_alone():
    ps = _params(torch.tensor([0.3, -0.4]))
    norm, fired = clip_gradients(ps, max_norm=1.0, max_value=1.0)
    assert not fired and norm == pytest.approx(0.5)
    assert torch.equal(ps[0].grad, torch.tensor([0.3, -0.4]))


def test_value_clipping_clamps_each_entry():
    ps = _params(torch.tensor([2.0, -3.0, 0.1]))
    _, fired = clip_gradients(ps, max_value=0.5)
    assert fired
    assert torch.equal(ps[0].grad, torch.tensor([0.5, -0.5, 0.1]))


def test_negative_threshold_rejected():
    with pytest.raises(ValueError, match="max_norm"):
        clip_gradients(_params(torch.ones(1)), max_norm=-1.0)


def test_stats_mean_norm_and_fire_rate():
    stats = ClipStats()
    for norm in (1.0, 3.0, 5.0, 7.0):
        ps = _params(torch.tensor([norm]))
        n, fired = clip_gradients(ps, max_norm=4.0)
        stats.record(n, fired)
    assert stats.mean_norm == pytest.approx(4.0)
    assert stats.fire_rate == pytest.approx(0.5)
    assert stats.norm_max == pytest.approx(7.0)
    stats.record(math.inf, True)  # an infinite norm counts as a step, not in the mean
    assert stats.steps == 5 and stats.norm_sum == pytest.approx(16.0)
    restored = ClipStats()
    restored.load_state_dict(stats.state_dict())
    assert restored == stats
