"""Synthetic long-range tasks, generated from a seed: the adding problem and copy memory.

Adding problem (Hochreiter & Schmidhuber 1997): each step carries two features, a value
u_t ~ U(0, 1) and a marker m_t in {0, 1}; exactly two markers are set, one in the first half
of the sequence and one in the second. The target, read at the last step, is the sum of the
two marked values. Always answering 1 (the mean) scores the target's variance,
Var(U1 + U2) = 1/6 ≈ 0.167, so a model under 0.167 has learned something and one under 0.01
has solved it.

Copy memory (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): ``copy_len`` symbols drawn
from 1..n_symbols, then ``delay - 1`` blanks (0), a delimiter (n_symbols + 1), and
``copy_len`` more blanks during which the model must output the symbols in order. The loss
counts the last ``copy_len`` steps only; guessing gives accuracy 1/n_symbols and
cross-entropy ln(n_symbols).
"""

from __future__ import annotations

import math

import torch

from rnnkit.data.batches import SequenceBatch


def adding_problem(n: int, steps: int, seed: int) -> SequenceBatch:
    """``n`` adding-problem sequences of length ``steps`` (>= 2); inputs (n, T, 2)."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    gen = torch.Generator().manual_seed(seed)
    values = torch.rand(n, steps, generator=gen)  # (n, T)
    half = steps // 2
    first = torch.randint(0, half, (n,), generator=gen)  # (n,)
    second = torch.randint(half, steps, (n,), generator=gen)  # (n,)
    markers = torch.zeros(n, steps)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = torch.zeros(n, steps)
    targets[:, -1] = values[rows, first] + values[rows, second]
    mask = torch.zeros(n, steps, dtype=torch.bool)
    mask[:, -1] = True
    inputs = torch.stack([values, markers], dim=-1)  # (n, T, 2)
    return SequenceBatch(inputs, targets, mask, torch.full((n,), steps, dtype=torch.int64))


def copy_memory(
    n: int, delay: int, seed: int, n_symbols: int = 8, copy_len: int = 10
) -> SequenceBatch:
    """``n`` copy-memory sequences of length ``delay + 2 * copy_len``; token ids (n, T)."""
    if delay < 1 or n_symbols < 2 or copy_len < 1:
        raise ValueError(
            f"need delay >= 1, n_symbols >= 2, copy_len >= 1; got {delay}, {n_symbols}, {copy_len}"
        )
    gen = torch.Generator().manual_seed(seed)
    steps = delay + 2 * copy_len
    symbols = torch.randint(1, n_symbols + 1, (n, copy_len), generator=gen)  # (n, S)
    inputs = torch.zeros(n, steps, dtype=torch.int64)
    inputs[:, :copy_len] = symbols
    inputs[:, copy_len + delay - 1] = n_symbols + 1  # the delimiter: "now recall"
    targets = torch.zeros(n, steps, dtype=torch.int64)
    targets[:, -copy_len:] = symbols
    mask = torch.zeros(n, steps, dtype=torch.bool)
    mask[:, -copy_len:] = True
    return SequenceBatch(inputs, targets, mask, torch.full((n,), steps, dtype=torch.int64))


ADDING_BASELINE_MSE = 1.0 / 6.0  # always answering the mean 1


def copy_baseline(n_symbols: int) -> dict[str, float]:
    """Cross-entropy and accuracy of guessing uniformly among the symbols."""
    return {"loss": math.log(n_symbols), "accuracy": 1.0 / n_symbols}
