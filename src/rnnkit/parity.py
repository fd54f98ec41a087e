"""Parity with torch.nn: the same weights give the same outputs, states and gradients.

:func:`compare` runs one configuration through an rnnkit layer and the torch.nn layer
whose ``state_dict`` it loaded (through ``pack_padded_sequence`` where lengths are
given) and returns the largest absolute difference of every output, final state and
gradient. :func:`report` sweeps the whole grid; ``rnnkit parity`` prints it and the test
suite asserts it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.layers import GRU, LSTM, RNN

__all__ = ["KINDS", "TOLERANCE", "Case", "compare", "grid", "report"]

#: kind -> (rnnkit layer, torch.nn layer, extra constructor arguments)
KINDS = {
    "rnn_tanh": (RNN, nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (RNN, nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (LSTM, nn.LSTM, {}),
    "gru": (GRU, nn.GRU, {}),
}
#: the largest difference allowed per dtype
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


@dataclass(frozen=True)
class Case:
    """One configuration of the grid."""

    kind: str  # a key of KINDS
    num_layers: int
    bidirectional: bool
    batch_first: bool
    with_lengths: bool  # a padded batch with unsorted lengths, one of them a single step
    bias: bool
    backend: str  # "loop" or "torch"
    dtype: torch.dtype


def grid(
    backends=("loop", "torch"), dtypes=(torch.float32, torch.float64), kinds=tuple(KINDS)
) -> Iterator[Case]:
    """Every cell kind x 1-3 layers x uni/bi x batch_first x lengths x bias x backend x dtype."""
    flags = (False, True)
    for values in itertools.product(kinds, (1, 2, 3), flags, flags, flags, flags, backends, dtypes):
        yield Case(*values)


def _parts(state) -> tuple[Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def _run_reference(ref: nn.Module, x, state, lengths, batch_first):
    if lengths is None:
        return ref(x, state)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out, state = ref(packed, state)
    total = x.shape[1 if batch_first else 0]
    out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=total)
    return out, state


def _gradients(module, loss, x, state0) -> dict[str, Tensor]:
    """d loss / d (input, initial state, every parameter by its state_dict key)."""
    named = module.state_dict(keep_vars=True)
    inputs = [x, *_parts(state0), *named.values()]
    names = ["input", *(f"state0[{i}]" for i in range(len(_parts(state0)))), *named]
    return dict(zip(names, torch.autograd.grad(loss, inputs), strict=True))


def compare(
    case: Case, batch: int = 3, steps: int = 5, inputs: int = 4, hidden: int = 3, seed: int = 0
) -> dict[str, float]:
    """Largest absolute difference between rnnkit and torch.nn, per compared quantity."""
    torch.manual_seed(seed)
    ours_cls, ref_cls, extra = KINDS[case.kind]
    kwargs = dict(
        num_layers=case.num_layers,
        bidirectional=case.bidirectional,
        batch_first=case.batch_first,
        bias=case.bias,
        **extra,
    )
    ref = ref_cls(inputs, hidden, **kwargs).to(case.dtype)
    layer = ours_cls(inputs, hidden, **kwargs, backend=case.backend).to(case.dtype)
    layer.load_state_dict(ref.state_dict())

    shape = (batch, steps, inputs) if case.batch_first else (steps, batch, inputs)
    x = torch.randn(*shape, dtype=case.dtype, requires_grad=True)
    n_layers = case.num_layers * (2 if case.bidirectional else 1)
    state0 = tuple(
        torch.randn(n_layers, batch, hidden, dtype=case.dtype, requires_grad=True)
        for _ in range(2 if case.kind == "lstm" else 1)
    )
    state0 = state0 if len(state0) > 1 else state0[0]
    lengths = None
    if case.with_lengths:
        lengths = torch.randint(1, steps + 1, (batch,))
        lengths[0], lengths[-1] = steps, 1  # a full sequence and a single step

    out, state = layer(x, state0, lengths=lengths)
    ref_out, ref_state = _run_reference(ref, x, state0, lengths, case.batch_first)
    diffs = {"output": (out - ref_out).abs().max().item()}
    for i, (a, b) in enumerate(zip(_parts(state), _parts(ref_state), strict=True)):
        diffs[f"state[{i}]"] = (a - b).abs().max().item()

    # a loss touching every output and final state with random weights
    weights = [torch.randn_like(p) for p in (out, *_parts(state))]

    def loss(out, state):
        parts = (out, *_parts(state))
        return sum((p * w).sum() for p, w in zip(parts, weights, strict=True))

    ours = _gradients(layer, loss(out, state), x, state0)
    theirs = _gradients(ref, loss(ref_out, ref_state), x, state0)
    if ours.keys() != theirs.keys():
        raise AssertionError(f"gradient keys differ: {sorted(ours)} vs {sorted(theirs)}")
    for name in ours:
        diffs[f"grad {name}"] = (ours[name] - theirs[name]).abs().max().item()
    return diffs


def report(cases=None) -> list[dict]:
    """One row per case: its settings, the worst difference and what it was, and pass."""
    rows = []
    for case in cases if cases is not None else grid():
        diffs = compare(case)
        worst = max(diffs, key=diffs.get)
        row = {**asdict(case), "dtype": str(case.dtype).removeprefix("torch.")}
        row.update(
            worst=worst, max_abs_diff=diffs[worst], passed=diffs[worst] <= TOLERANCE[case.dtype]
        )
        rows.append(row)
    return rows
