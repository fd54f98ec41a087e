"""Decoding from any model with a one-step interface and a carried state.

A model decodes here when it offers::

    step(tokens (B,), state) -> (logits (B, V), state)      # one new token, O(1) work
    prime(tokens (B, P), state) -> (logits (B, V), state)   # optional: a prefix at once
    reorder_state(state, index (B',)) -> state               # optional: for beam search

``state=None`` means the model's initial state. Sampling: greedy (``temperature=0``),
temperature, top-k and top-p (nucleus), repeatable with ``seed``, streaming each new
token to a callback. Beam search keeps the ``beam_size`` best partial sequences by
summed log-probability, with an optional length penalty.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "Hypothesis",
    "beam_search",
    "check_sampling",
    "generate",
    "reorder_state",
    "sample_next",
]


def check_sampling(
    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> None:
    """Refuse a temperature that is not a finite number >= 0, a top_p outside (0, 1] and a
    top_k below 1 (ValueError naming the option)."""
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise ValueError(f"temperature: expected a number >= 0, got {temperature!r}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature: expected a finite number >= 0, got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:  # also refuses nan
        raise ValueError(f"top_p: expected a number in (0, 1], got {top_p}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k: expected a positive integer, got {top_k}")


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw one token per row of logits (B, V): greedy when temperature is 0."""
    check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (B, 1): the k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token when the tokens ranked above it already reach top_p
        drop = probs.cumsum(dim=-1) - probs >= top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(
    model,
    prime: Tensor,
    length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    state=None,
    eos_id: int | None = None,
    on_token: Callable[[Tensor], None] | None = None,
) -> Tensor:
    """Continue ``prime`` (B, P) by ``length`` tokens: returns (B, P + length) or shorter
    when every row has produced ``eos_id``. ``on_token(tokens (B,))`` streams them."""
    if prime.dim() != 2 or prime.shape[1] < 1:
        raise ValueError(f"prime: expected a (B, P) tensor with P >= 1, got {tuple(prime.shape)}")
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length: expected an integer >= 0, got {length!r}")
    check_sampling(temperature, top_k, top_p)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=prime.device).manual_seed(seed)
    if hasattr(model, "prime"):
        logits, state = model.prime(prime, state)
    else:
        for t in range(prime.shape[1]):
            logits, state = model.step(prime[:, t], state)
    out = [prime]
    done = torch.zeros(prime.shape[0], dtype=torch.bool, device=prime.device)
    for i in range(length):
        token = sample_next(logits, temperature, top_k, top_p, generator)  # (B,)
        if eos_id is not None:
            token = token.masked_fill(done, eos_id)
            done |= token == eos_id
        out.append(token.unsqueeze(1))
        if on_token is not None:
            on_token(token)
        if i == length - 1 or (eos_id is not None and bool(done.all())):
            break
        logits, state = model.step(token, state)
    return torch.cat(out, dim=1)


def reorder_state(state, index: Tensor, batch_dim: int = 1):
    """Select batch rows ``index`` of a state: a tensor or nested tuples of tensors whose
    batch dimension is ``batch_dim`` (1 for torch.nn-style (layers, B, H) states)."""
    if state is None:
        return None
    if isinstance(state, tuple | list):
        return type(state)(reorder_state(s, index, batch_dim) for s in state)
    return state.index_select(batch_dim, index)


@dataclass
class Hypothesis:
    tokens: list[int]  # the decoded tokens, without the start token
    score: float  # summed log-probability (before any length penalty)


@torch.no_grad()
def beam_search(
    model,
    start: Tensor,
    beam_size: int = 5,
    max_length: int = 50,
    eos_id: int | None = None,
    length_penalty: float = 1.0,
    state=None,
) -> list[list[Hypothesis]]:
    """Beam search from ``start`` tokens (B,): per batch row, the ``beam_size`` best
    hypotheses, best first, ranked by score / length**length_penalty."""
    if beam_size < 1:
        raise ValueError(f"beam_size: expected a positive integer, got {beam_size}")
    reorder = getattr(model, "reorder_state", reorder_state)
    results = []
    for b in range(start.shape[0]):  # one row at a time keeps the bookkeeping plain
        row_state = reorder(state, torch.tensor([b])) if state is not None else None
        logits, row_state = model.step(start[b : b + 1], row_state)
        beams = [([], 0.0)]
        finished: list[Hypothesis] = []
        for _ in range(max_length):
            logp = logits.log_softmax(-1)  # (beams, V)
            total = torch.tensor([s for _, s in beams]).unsqueeze(1) + logp
            flat = total.flatten()
            top = flat.topk(min(beam_size, flat.numel()))
            next_beams, keep = [], []
            for value, idx in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                src, token = divmod(idx, logp.shape[1])
                tokens = [*beams[src][0], token]
                if eos_id is not None and token == eos_id:
                    finished.append(Hypothesis(tokens, value))
                else:
                    next_beams.append((tokens, value))
                    keep.append(src)
            if not next_beams or len(finished) >= beam_size:
                break
            index = torch.tensor(keep)
            row_state = reorder(row_state, index)
            beams = next_beams
            logits, row_state = model.step(torch.tensor([t[-1] for t, _ in beams]), row_state)
        finished += [Hypothesis(t, s) for t, s in beams] if len(finished) < beam_size else []

        def rank(h: Hypothesis) -> float:
            return h.score / max(len(h.tokens), 1) ** length_penalty

        results.append(sorted(finished, key=rank, reverse=True)[:beam_size])
    return results
