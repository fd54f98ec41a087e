r"""CTC decoding: from per-frame class posteriors to a labelling (Graves et al. 2006).

A CTC model gives, at each of S frames, log-probabilities log y_s(k) over V classes, class
0 being the blank. A path pi = pi_1..pi_S (one class per frame) gives the labelling B(pi):
repeated classes collapsed, then blanks dropped (B(a a - a b -) = a a b, "-" the blank). A
labelling's probability sums over its paths::

    p(l | x) = sum over pi with B(pi) = l of  prod_s y_s(pi_s)

Best path (greedy, ``beam`` 1): the labelling of the most probable path, which is not always
the most probable labelling (many likely paths can outweigh one)::

    pi*_s = argmax_k y_s(k);   l* = B(pi*)

Prefix beam search (Graves 2012, section 7.5; Hannun et al. 2014): K prefixes l, each with
the probability of the paths of the first s frames that give l and end in a blank (p_b) or
in l's last label (p_nb). Frame s + 1, for each prefix l (last label c) and class k::

    k = blank:   p_b(l)      += (p_b(l) + p_nb(l)) * y_{s+1}(blank)
    k = c:       p_nb(l)     += p_nb(l) * y_{s+1}(c)           # the repeat collapses into l
                 p_nb(l + c) += p_b(l) * y_{s+1}(c)            # a blank between: a new label
    other k:     p_nb(l + k) += (p_b(l) + p_nb(l)) * y_{s+1}(k)

then the K prefixes of largest p(l) = p_b(l) + p_nb(l) are kept. Everything is computed in
log space (sums as logaddexp). Without pruning (K at least the number of prefixes) the
final p(l) is exactly p(l | x), so a wide beam finds the most probable labelling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["best_path", "collapse", "prefix_beam_search"]

NEG_INF = float("-inf")


def collapse(path: Sequence[int], blank: int = 0) -> list[int]:
    """B(pi): repeated classes merged, then blanks dropped: ``[1, 1, 0, 1, 2, 0] -> [1, 1, 2]``."""
    out: list[int] = []
    previous = None
    for k in path:
        if k != previous and k != blank:
            out.append(int(k))
        previous = k
    return out


def best_path(log_probs: Tensor, lengths: Tensor | None = None, blank: int = 0) -> list[list[int]]:
    """l* = B(argmax_k y_s(k)) for each row of ``log_probs`` (B, S, V) (or one (S, V)), over
    its first ``lengths[b]`` frames (all S without lengths)."""
    if log_probs.dim() == 2:
        log_probs = log_probs.unsqueeze(0)
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs: expected (B, S, V) or (S, V), got {tuple(log_probs.shape)}")
    b, s, _ = log_probs.shape
    if lengths is None:
        lengths = torch.full((b,), s)
    pi = log_probs.argmax(-1).cpu()  # (B, S): pi*_s
    return [collapse(pi[i, : int(n)].tolist(), blank) for i, n in enumerate(lengths.tolist())]


def _lse(a: float, b: float) -> float:
    """log(exp(a) + exp(b)), with -inf for a zero probability."""
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


def prefix_beam_search(
    log_probs: Tensor, beam: int, blank: int = 0, n_best: int = 1
) -> list[tuple[list[int], float]]:
    """The ``n_best`` labellings of one sequence's ``log_probs`` (S, V) found by prefix beam
    search with ``beam`` K prefixes (see the module docstring), best first, each with its
    log p(l) as the search accumulated it (exactly log p(l | x) when nothing was pruned)."""
    if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
        raise ValueError(f"beam: expected an integer >= 1, got {beam!r}")
    if not 1 <= n_best <= beam:
        raise ValueError(f"n_best: expected 1 to beam={beam}, got {n_best!r}")
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs: expected (S, V), got {tuple(log_probs.shape)}")
    y = log_probs.detach().double().cpu().tolist()  # S rows of V log y_s(k)
    classes = [k for k in range(log_probs.shape[1]) if k != blank]
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}  # l: (p_b, p_nb)
    for y_s in y:
        p_b: dict[tuple[int, ...], float] = {}
        p_nb: dict[tuple[int, ...], float] = {}
        for prefix, (b, nb) in beams.items():
            total = _lse(b, nb)  # p(l)
            p_b[prefix] = _lse(p_b.get(prefix, NEG_INF), total + y_s[blank])
            last = prefix[-1] if prefix else None
            if last is not None:  # the repeat collapses into l
                p_nb[prefix] = _lse(p_nb.get(prefix, NEG_INF), nb + y_s[last])
            for k in classes:
                longer = (*prefix, k)
                # after the same label only a path ending in a blank starts a new one
                add = (b if k == last else total) + y_s[k]
                p_nb[longer] = _lse(p_nb.get(longer, NEG_INF), add)
        found = {p: (p_b.get(p, NEG_INF), p_nb.get(p, NEG_INF)) for p in p_b.keys() | p_nb.keys()}
        ranked = sorted(found, key=lambda p: (-_lse(*found[p]), p))[:beam]
        beams = {p: found[p] for p in ranked}
    ranked = sorted(beams, key=lambda p: (-_lse(*beams[p]), p))[:n_best]
    return [(list(p), _lse(*beams[p])) for p in ranked]
