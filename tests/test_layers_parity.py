"""Layers equal torch.nn: outputs, final states and every gradient, for both backends,
over cell x 1-3 layers x uni/bi x batch_first x lengths x bias, in float32 and float64."""

import pytest
import torch

from rnnkit import parity
from rnnkit.parity import TOLERANCE, Case, compare, grid

CASES = list(grid(dtypes=(torch.float32,)))


@pytest.mark.parametrize(
    "case",
    CASES,
    ids=lambda c: "-".join(
        str(v)
        for v in (
            c.kind,
            c.num_layers,
            c.bidirectional,
            c.batch_first,
            c.with_lengths,
            c.bias,
            c.backend,
        )
    ),
)
def test_equals_torch_nn(case):
    for dtype in (torch.float32, torch.float64):
        diffs = compare(Case(**{**case.__dict__, "dtype": dtype}))
        assert len(diffs) >= 3 + 2 * (1 + case.bias) * case.num_layers
        bad = {k: v for k, v in diffs.items() if v > TOLERANCE[dtype]}
        assert not bad, f"{dtype}: {bad}"


def test_compare_detects_a_difference(monkeypatch):
    """The comparison is not vacuous: a perturbed weight shows up in the report."""

    class Perturbed(parity.LSTM):
        def load_state_dict(self, state_dict, strict=True):
            state_dict = {k: v + 1e-6 if k == "weight_hh_l0" else v for k, v in state_dict.items()}
            return super().load_state_dict(state_dict, strict)

    monkeypatch.setitem(parity.KINDS, "lstm", (Perturbed, *parity.KINDS["lstm"][1:]))
    rows = parity.report([Case("lstm", 1, False, False, True, True, "loop", torch.float64)])
    assert not rows[0]["passed"] and rows[0]["max_abs_diff"] > 1e-8
