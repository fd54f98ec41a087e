"""Decoding from any model with a one-step interface and a carried state.

A model decodes here when it offers::

    step(tokens (B,), state) -> (logits (B, V), state)      # one new token, O(1) work
    prime(tokens (B, P), state) -> (logits (B, V), state)   # optional: a prefix at once
    reorder_state(state, index (B',)) -> state               # optional: for beam search

``state=None`` means the model's initial state; without ``reorder_state`` a state is a tensor
or nested tuples of tensors whose batch dimension is 1 (:func:`reorder_state`). Sampling:
greedy (``temperature=0``), temperature, top-k and top-p (nucleus), repeatable with ``seed``,
streaming each new token to a callback.

Beam search (:func:`beam_search`) advances the K = ``beam_size`` best partial sequences of all
B rows together, as B*K rows of one state (one ``step`` per time step). A hypothesis
Y = (y_1, ..., y_|Y|) after ``start`` y_0 (its last token eos, or |Y| = ``max_length``) has::

    s(Y)  = sum_{t=1..|Y|} log p(y_t | y_0 ... y_{t-1})      # Hypothesis.score
    lp(Y) = ((5 + |Y|) / 6) ** alpha,  alpha = length_penalty  # GNMT, Wu et al. 2016
    s(Y) / lp(Y)                                             # Hypothesis.normalized: the rank

|Y| counts the decoded tokens, eos included (alpha = 0: plain summed log-probability). Beams
grow by summed log-probability s; finished hypotheses are ranked by s / lp. Constraints set
log p(y_t = v) = -inf:

- ``no_repeat_ngram`` = n > 0: v when (y_{t-n+1}, ..., y_{t-1}, v) = (y_j, ..., y_{j+n-1}) for
  some 1 <= j <= t - n (the n-gram is already in the hypothesis; ``start`` is not part of it);
- ``min_length`` = m: v = eos while t - 1 < m (eos only after m decoded tokens).

An eos among a row's K best candidates finishes a hypothesis. A row is done when it holds K
finished hypotheses and no live beam can beat the worst of them: a live beam with s after t
tokens reaches at most s / max(lp(t + 1), lp(max_length)) (s only falls, lp is monotone in
|Y|), which is exact for every alpha (no heuristic stop); or when it has no live beam left.
At ``max_length`` the live beams count as finished (without eos).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.layers import stepping

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


def _stepping(decode: Callable) -> Callable:
    """Run ``decode(model, ...)`` inside :func:`rnnkit.layers.stepping` (the recurrent
    layers' weights packed once for the whole decode, not transposed at every token)."""

    @functools.wraps(decode)
    def run(model, *args, **kwargs):
        with stepping(model):
            return decode(model, *args, **kwargs)

    return run


@_stepping
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
    banned: Sequence[int] = (),
) -> Tensor:
    """Continue ``prime`` (B, P) by ``length`` tokens: returns (B, P + length) or shorter
    when every row has produced ``eos_id``. ``on_token(tokens (B,))`` streams them.
    ``banned`` token ids are never drawn (log p = -inf: ``<pad>``, and others the model was
    never trained to emit)."""
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
    ban = torch.tensor(sorted(set(banned)), dtype=torch.long, device=prime.device)
    for i in range(length):
        if len(ban):
            logits = logits.index_fill(-1, ban, float("-inf"))
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


def _length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al. 2016)."""
    return ((5 + length) / 6) ** alpha


@dataclass
class Hypothesis:
    tokens: list[int]  # the decoded tokens, without the start token (with eos when it ended so)
    score: float  # summed log-probability s(Y) (before any length penalty)
    normalized: float | None = None  # s(Y) / lp(Y), the ranking key; None -> score (alpha 0)

    def __post_init__(self) -> None:
        if self.normalized is None:
            self.normalized = self.score


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")


def _blocked_ngrams(history: Tensor, n: int, vocab: int) -> Tensor:
    """(R, V) bool: the tokens that would complete an n-gram already in each row of
    ``history`` (R, t): v is blocked when (y[t-n+1:t], v) == y[j:j+n] for some j."""
    rows, t = history.shape
    banned = torch.zeros(rows, vocab + 1, dtype=torch.bool, device=history.device)
    if t >= n:
        windows = history.unfold(1, n, 1)  # (R, t - n + 1, n): every n-gram y[j:j+n]
        prefix = history[:, t - n + 1 :].unsqueeze(1)  # (R, 1, n - 1): the last n - 1 tokens
        match = (windows[..., : n - 1] == prefix).all(-1)  # (R, W): the n-gram's head matches
        # its last token is banned; the rows' non-matching n-grams write to the spare column V
        banned.scatter_(1, torch.where(match, windows[..., n - 1], vocab), True)
    return banned[:, :vocab]


@torch.no_grad()
@_stepping
def beam_search(
    model,
    start: Tensor,
    beam_size: int = 5,
    max_length: int | Sequence[int] = 50,
    eos_id: int | None = None,
    length_penalty: float = 0.0,
    state=None,
    n_best: int | None = None,
    no_repeat_ngram: int = 0,
    min_length: int = 0,
) -> list[list[Hypothesis]]:
    """Batched beam search from ``start`` tokens (B,): per batch row, the ``n_best`` (default
    ``beam_size``) best hypotheses, best first, ranked by s(Y) / lp(Y) with the GNMT length
    penalty lp(Y) = ((5 + |Y|) / 6) ** length_penalty (see the module docstring).

    All B rows and their K = ``beam_size`` beams advance together as B*K rows of one state:
    one ``model.step`` per time step (the first, from ``start``, on the B rows, then expanded
    with ``model.reorder_state`` or this module's :func:`reorder_state`). ``state`` is the
    initial state of the B rows (None: the model's own). ``no_repeat_ngram`` = n > 0 blocks a
    token that would repeat an n-gram of the hypothesis; ``min_length`` blocks eos until that
    many tokens are decoded. ``max_length`` is one limit for every row or a limit per row
    (B,): a row decodes as it would alone with its own limit. A row may return fewer than
    ``n_best`` hypotheses when fewer sequences exist (a tiny vocabulary, blocking)."""
    if not isinstance(start, Tensor) or start.dim() != 1:
        shape = tuple(start.shape) if isinstance(start, Tensor) else type(start).__name__
        raise ValueError(f"start: expected a 1-D (B,) tensor of tokens, got {shape}")
    _check_int("beam_size", beam_size, 1)
    if isinstance(max_length, int | bool):
        _check_int("max_length", max_length, 1)
        limits = [max_length] * start.shape[0]
    else:
        limits = list(max_length)
        if len(limits) != start.shape[0]:
            raise ValueError(
                f"max_length: expected an integer or one per row ({start.shape[0]}), got "
                f"{len(limits)} values"
            )
        for limit in limits:
            _check_int("max_length", limit, 1)
    _check_int("no_repeat_ngram", no_repeat_ngram, 0)
    _check_int("min_length", min_length, 0)
    if n_best is None:
        n_best = beam_size
    if isinstance(n_best, bool) or not isinstance(n_best, int) or not 1 <= n_best <= beam_size:
        raise ValueError(
            f"n_best: expected an integer in [1, beam_size={beam_size}], got {n_best!r}"
        )
    if (
        isinstance(length_penalty, bool)
        or not isinstance(length_penalty, int | float)
        or not math.isfinite(length_penalty)
    ):
        raise ValueError(f"length_penalty: expected a finite number, got {length_penalty!r}")
    if eos_id is not None and (isinstance(eos_id, bool) or not isinstance(eos_id, int)):
        raise ValueError(f"eos_id: expected an integer token id or None, got {eos_id!r}")
    B, K, alpha = start.shape[0], beam_size, float(length_penalty)
    if B == 0:
        return []
    reorder = getattr(model, "reorder_state", reorder_state)

    def lp(length: int) -> float:
        return _length_penalty(length, alpha)

    # the first step once per row, then B -> B*K rows (row b's beams at b*K ... b*K + K - 1)
    logits, state = model.step(start, state)
    V, device = logits.shape[-1], logits.device  # the model's device, whatever start's
    if eos_id is not None and not 0 <= eos_id < V:
        raise ValueError(f"eos_id: expected a token id in [0, {V}), got {eos_id}")
    expand = torch.arange(B, device=device).repeat_interleave(K)
    if state is not None:
        state = reorder(state, expand)
    logits = logits.index_select(0, expand)
    # only beam 0 of a row is live at first: the other K - 1 copies start at -inf
    scores = torch.full((B, K), -math.inf, device=device)
    scores[:, 0] = 0.0
    history = torch.empty(B * K, 0, dtype=torch.long, device=device)  # y_1 ... y_t per beam
    base = torch.arange(B, device=device).unsqueeze(1) * K  # (B, 1): a row's first beam
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    done = [False] * B
    n_cand = min(2 * K if eos_id is not None else K, K * V)  # >= K candidates not ending in eos
    positions = torch.arange(n_cand, device=device)

    longest = max(limits)
    for t in range(longest):  # t tokens decoded so far; choosing y_{t+1}
        if t > 0:
            logits, state = model.step(history[:, -1], state)
        logp = logits.to(torch.promote_types(logits.dtype, torch.float32)).log_softmax(-1)
        if scores.dtype != logp.dtype:
            scores = scores.to(logp.dtype)
        if eos_id is not None and t < min_length:
            logp[:, eos_id] = -math.inf
        if no_repeat_ngram > 0:
            logp = logp.masked_fill(_blocked_ngrams(history, no_repeat_ngram, V), -math.inf)
        total = (scores.view(B * K, 1) + logp).view(B, K * V)
        values, flat = total.topk(n_cand, dim=1)  # (B, C), best first
        src, token = flat // V, flat % V  # the beam (within its row) and the token
        is_eos = (
            token == eos_id if eos_id is not None else torch.zeros_like(token, dtype=torch.bool)
        )

        # eos among a row's K best candidates ends a hypothesis (fairseq / HF rule)
        active = torch.tensor([not d for d in done], device=device).unsqueeze(1)
        ends = is_eos[:, :K] & values[:, :K].isfinite() & active
        if bool(ends.any()):
            where = ends.nonzero()  # (N, 2): (row, candidate)
            rows = (where[:, 0] * K + src[where[:, 0], where[:, 1]]).tolist()
            prefixes = history.index_select(0, torch.tensor(rows, device=device)).tolist()
            ended = values[where[:, 0], where[:, 1]].tolist()
            for (b, _), prefix, s in zip(where.tolist(), prefixes, ended, strict=True):
                finished[b].append(Hypothesis([*prefix, eos_id], s, s / lp(t + 1)))
            for b in set(where[:, 0].tolist()):
                finished[b].sort(key=lambda h: h.normalized, reverse=True)
                del finished[b][K:]

        # the next live beams: a row's K best candidates that do not end in eos
        order = (is_eos.long() * n_cand + positions).argsort(dim=1)[:, :K]  # non-eos first
        scores = values.gather(1, order).masked_fill(is_eos.gather(1, order), -math.inf)
        scores = scores.masked_fill(~active, -math.inf)  # done rows stay empty
        index = (base + src.gather(1, order)).view(-1)  # (B*K,) source beams
        new_token = token.gather(1, order)
        if eos_id is not None:
            new_token = new_token.masked_fill(~active, eos_id)  # pad the done rows with eos
        history = torch.cat([history.index_select(0, index), new_token.view(-1, 1)], dim=1)
        ending = [b for b in range(B) if not done[b] and limits[b] == t + 1]
        if ending:  # rows at their own limit: their live beams end here (without eos)
            live, tokens = scores.tolist(), history.tolist()
            for b in ending:
                for k in range(K):
                    if live[b][k] != -math.inf:
                        h = Hypothesis(tokens[b * K + k], live[b][k], live[b][k] / lp(t + 1))
                        finished[b].append(h)
                done[b] = True
        if t == longest - 1 or all(done):
            break
        state = reorder(state, index) if state is not None else None

        # a row is done when no live beam can reach its K kept finished hypotheses: a live beam
        # with s after t + 1 tokens scores at most s / max(lp(t + 2), lp(its limit)) later
        # (s only falls, every log p <= 0, and lp is monotone in |Y|), or when none is left
        best_live = scores.max(dim=1).values.tolist()
        for b in range(B):
            full = len(finished[b]) >= K
            reach = max(lp(t + 2), lp(limits[b]))
            done[b] = (
                done[b]
                or best_live[b] == -math.inf
                or (full and best_live[b] / reach <= finished[b][-1].normalized)
            )
        if all(done):
            break

    for b in range(B):  # every row has ended: at eos, by the bound, or at its limit
        finished[b].sort(key=lambda h: h.normalized, reverse=True)
    return [hyps[:n_best] for hyps in finished]
