r"""A linear-chain conditional random field over tag sequences, batched and masked.

For emissions :math:`e_t(y)` (the tagger's per-step scores, (B, T, K)) and transition
scores :math:`A_{y,y'}` (K, K), with start and end scores :math:`s_y` and :math:`u_y`,
the score of a tag path :math:`y_1..y_n` of a sequence of length n is

.. math::
    S(y) = s_{y_1} + \sum_{t=1}^{n} e_t(y_t) + \sum_{t=2}^{n} A_{y_{t-1}, y_t} + u_{y_n}

and :math:`p(y \mid x) = \exp S(y) / Z` with :math:`Z = \sum_{y'} \exp S(y')`. The
forward algorithm computes :math:`\log Z` in O(n K^2) with the recursion

.. math::
    \alpha_1(y) = s_y + e_1(y), \qquad
    \alpha_t(y) = e_t(y) + \operatorname{logsumexp}_{y'} (\alpha_{t-1}(y') + A_{y', y}),
    \qquad \log Z = \operatorname{logsumexp}_y (\alpha_n(y) + u_y)

and Viterbi decoding replaces logsumexp by max, keeping back-pointers. Transition
constraints (such as "no I-PER after O" in BIO) are masks of -inf added to ``A``, ``s``
and ``u``: forbidden paths then have probability zero and are never decoded.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["LinearChainCRF", "allowed_transitions"]

NEG_INF = -1e4  # finite "minus infinity": keeps gradients finite while vetoing a path


class LinearChainCRF(nn.Module):
    """Batched linear-chain CRF with optional transition constraints.

    Args:
        num_tags: K.
        constraints: optional ``(allowed (K, K), start_allowed (K,), end_allowed (K,))``
            boolean tensors, e.g. from :func:`allowed_transitions`.

    Shapes: emissions (B, T, K) float, tags (B, T) long, mask (B, T) bool with each row's
    true entries first (a prefix: padding only at the end), at least one per row.
    """

    def __init__(self, num_tags: int, constraints: tuple[Tensor, Tensor, Tensor] | None = None):
        super().__init__()
        if not isinstance(num_tags, int) or num_tags < 1:
            raise ValueError(f"num_tags: expected a positive integer, got {num_tags!r}")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))  # A[from, to]
        self.start = nn.Parameter(torch.empty(num_tags))
        self.end = nn.Parameter(torch.empty(num_tags))
        allowed = torch.ones(num_tags, num_tags, dtype=torch.bool)
        start_ok = end_ok = torch.ones(num_tags, dtype=torch.bool)
        if constraints is not None:
            allowed, start_ok, end_ok = constraints
            if allowed.shape != (num_tags, num_tags) or start_ok.shape != (num_tags,):
                raise ValueError(
                    f"constraints: expected shapes ({num_tags}, {num_tags}) and ({num_tags},), "
                    f"got {tuple(allowed.shape)} and {tuple(start_ok.shape)}"
                )
        self.register_buffer("allowed", allowed.bool().clone())
        self.register_buffer("start_allowed", start_ok.bool().clone())
        self.register_buffer("end_allowed", end_ok.bool().clone())
        nn.init.uniform_(self.transitions, -0.1, 0.1)
        nn.init.uniform_(self.start, -0.1, 0.1)
        nn.init.uniform_(self.end, -0.1, 0.1)

    def _scores(self) -> tuple[Tensor, Tensor, Tensor]:
        """Transition, start and end scores with forbidden entries set to NEG_INF."""
        trans = self.transitions.masked_fill(~self.allowed, NEG_INF)
        start = self.start.masked_fill(~self.start_allowed, NEG_INF)
        end = self.end.masked_fill(~self.end_allowed, NEG_INF)
        return trans, start, end

    @staticmethod
    def _check(emissions: Tensor, mask: Tensor | None) -> Tensor:
        if emissions.dim() != 3:
            raise ValueError(f"emissions: expected (B, T, K), got {tuple(emissions.shape)}")
        if mask is None:
            return torch.ones(emissions.shape[:2], dtype=torch.bool, device=emissions.device)
        if mask.shape != emissions.shape[:2]:
            raise ValueError(
                f"mask: expected shape {tuple(emissions.shape[:2])}, got {tuple(mask.shape)}"
            )
        if not mask[:, 0].all():
            raise ValueError("mask: expected every sequence to have at least its first step")
        return mask.bool()

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """S(y) of the given tag paths: (B,)."""
        mask = self._check(emissions, mask)
        trans, start, end = self._scores()
        m = mask.to(emissions.dtype)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T): e_t(y_t)
        step = trans[tags[:, :-1], tags[:, 1:]]  # (B, T-1): A[y_{t-1}, y_t]
        last = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)  # (B,): y_n
        return start[tags[:, 0]] + (emit * m).sum(1) + (step * m[:, 1:]).sum(1) + end[last]

    def log_partition(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """log Z by the forward algorithm: (B,)."""
        mask = self._check(emissions, mask)
        trans, start, end = self._scores()
        alpha = start + emissions[:, 0]  # (B, K): alpha_1
        for t in range(1, emissions.shape[1]):
            # alpha_t(y) = e_t(y) + logsumexp_y' (alpha_{t-1}(y') + A[y', y])
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t : t + 1], nxt, alpha)  # padding keeps alpha
        return torch.logsumexp(alpha + end, dim=1)

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """Negative log-likelihood -log p(y | x) per sequence: (B,)."""
        return self.log_partition(emissions, mask) - self.score(emissions, tags, mask)

    def decode(self, emissions: Tensor, mask: Tensor | None = None) -> list[list[int]]:
        """The best tag path of each sequence by Viterbi (as long as its mask)."""
        mask = self._check(emissions, mask)
        trans, start, end = self._scores()
        best = start + emissions[:, 0]  # (B, K)
        pointers = []
        for t in range(1, emissions.shape[1]):
            cand = best.unsqueeze(2) + trans  # (B, K_from, K_to)
            value, arg = cand.max(dim=1)
            pointers.append(arg)
            best = torch.where(mask[:, t : t + 1], value + emissions[:, t], best)
        best = best + end
        lengths = mask.sum(1).tolist()
        paths = []
        for b, n in enumerate(lengths):
            tag = int(best[b].argmax())
            path = [tag]
            for t in range(n - 1, 0, -1):  # pointers[t-1] maps step t's tag to step t-1's
                tag = int(pointers[t - 1][b, tag])
                path.append(tag)
            paths.append(path[::-1])
        return paths


def allowed_transitions(tags: list[str], scheme: str = "BIO") -> tuple[Tensor, Tensor, Tensor]:
    """Boolean (allowed (K, K), start_allowed (K,), end_allowed (K,)) for a tag scheme.

    ``scheme`` is "IO", "BIO" (IOB2) or "BIOES"; tags look like ``O``, ``B-PER``,
    ``I-PER``, ``E-PER``, ``S-PER``. In BIO, ``I-X`` may only follow ``B-X`` or ``I-X``
    (and cannot start a sequence); in BIOES, ``I-X``/``E-X`` continue ``B-X``/``I-X``,
    and a sequence ends only after ``O``, ``E-X`` or ``S-X``.
    """
    scheme = scheme.upper()
    if scheme not in ("IO", "BIO", "BIOES"):
        raise ValueError(f"scheme: expected 'IO', 'BIO' or 'BIOES', got {scheme!r}")
    parts = []
    for tag in tags:
        prefix, _, kind = tag.partition("-")
        if tag == "O" or not kind:
            prefix, kind = "O", ""
        if prefix != "O" and (prefix not in ("B", "I", "E", "S") or prefix not in scheme):
            raise ValueError(f"tags: {tag!r} is not a {scheme} tag")
        parts.append((prefix, kind))
    k = len(tags)
    allowed = torch.ones(k, k, dtype=torch.bool)
    start = torch.ones(k, dtype=torch.bool)
    end = torch.ones(k, dtype=torch.bool)
    if scheme == "IO":
        return allowed, start, end
    inside = {"BIO": ("I",), "BIOES": ("I", "E")}[scheme]
    opens = ("B", "I")  # after B-X or I-X, the entity X may continue
    for j, (pj, kj) in enumerate(parts):
        if pj in inside:
            start[j] = False
            for i, (pi, ki) in enumerate(parts):
                allowed[i, j] = pi in opens and ki == kj
        elif scheme == "BIOES":  # B, S or O may not interrupt an open B-X / I-X
            for i, (pi, _) in enumerate(parts):
                allowed[i, j] = pi not in ("B", "I")
    if scheme == "BIOES":
        for i, (pi, _) in enumerate(parts):
            end[i] = pi not in ("B", "I")
    return allowed, start, end
