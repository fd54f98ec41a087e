r"""Attention over the steps of an encoded sequence, with padding masks.

A query :math:`q` (the decoder state, (B, Q)) scores every key :math:`k_s` (the encoder
outputs, (B, S, K)); the softmax of the scores over the valid steps gives the weights
:math:`a_s`, and the context is the weighted sum of the values :math:`v_s`:

.. math::
    \text{additive (Bahdanau):}\quad e_s = v^\top \tanh(W_q q + W_k k_s)
    \text{dot (Luong):}\quad e_s = q^\top k_s \qquad
    \text{general (Luong):}\quad e_s = q^\top W k_s
    \text{concat (Luong):}\quad e_s = v^\top \tanh(W_c [q; k_s])
        = v^\top \tanh(W_{cq} q + W_{ck} k_s)
    a = \operatorname{softmax}(e \text{ with padded steps at } -\infty), \qquad
    c = \sum_s a_s v_s

Padded steps get weight exactly zero. Keys double as values unless values are given.
:class:`AttentionPooling` uses a learned query to summarise a sequence into one vector
(many-to-one classification).

The part of a score that depends on the keys alone (additive :math:`W_k k_s + b`, general
:math:`W k_s`, dot :math:`k_s`, concat :math:`W_{ck} k_s`) is the same at every decoder step:
:meth:`Attention.precompute` returns it once, and ``scores``/``forward`` take it as
``projected=`` instead of recomputing it (the results are identical)::

    projected = attention.precompute(encoder_outputs)  # once per sequence
    for t in range(steps):
        context, weights = attention(state, encoder_outputs, mask, projected=projected)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.kernels.dense import Linear

__all__ = ["Attention", "AttentionPooling", "lengths_to_mask"]

SCORES = ("additive", "dot", "general", "concat")


def lengths_to_mask(lengths: Tensor, steps: int) -> Tensor:
    """(B,) lengths -> (B, S) bool mask, true at valid steps."""
    return torch.arange(steps, device=lengths.device) < lengths.unsqueeze(1)


class Attention(nn.Module):
    """Scores a query against keys and returns (context (B, V), weights (B, S)).

    Args:
        query_size: Q. key_size: K (and the value size unless values are given).
        score: "additive", "dot" (needs Q == K), "general" or "concat".
        hidden_size: size of the additive or concat score's hidden layer (default K).
    """

    def __init__(
        self, query_size: int, key_size: int, score: str = "general", hidden_size: int | None = None
    ):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"score: expected one of {SCORES}, got {score!r}")
        if score == "dot" and query_size != key_size:
            raise ValueError(
                f"query_size: expected key_size={key_size} for the dot score, got {query_size}"
            )
        self.score = score
        if score == "additive":
            hidden = hidden_size or key_size
            self.w_query = Linear(query_size, hidden, bias=False)
            self.w_key = Linear(key_size, hidden)
            self.v = Linear(hidden, 1, bias=False)
        elif score == "general":
            self.w = Linear(key_size, query_size, bias=False)
        elif score == "concat":
            hidden = hidden_size or key_size
            self.w_concat = Linear(query_size + key_size, hidden, bias=False)  # W_c
            self.v = Linear(hidden, 1, bias=False)
        self.query_size = query_size
        self.projected_size = {"dot": key_size, "general": query_size}.get(
            score, hidden_size or key_size
        )

    def precompute(self, keys: Tensor) -> Tensor:
        """The keys-only part of the score, to pass as ``projected=`` at every step.

        keys (B, S, K) -> (B, S, P): W_k k + b (additive, P = hidden), W k (general, P = Q),
        the keys themselves (dot, P = K), W_ck k, the key columns of W_c (concat, P = hidden).
        """
        if self.score == "additive":
            return self.w_key(keys)
        if self.score == "general":
            return self.w(keys)
        if self.score == "concat":
            return keys @ self.w_concat.weight[:, self.query_size :].T
        return keys

    def scores(self, query: Tensor, keys: Tensor, *, projected: Tensor | None = None) -> Tensor:
        """Unnormalised scores e: query (B, Q), keys (B, S, K) -> (B, S); or a block of
        queries (B, U, Q) -> (B, U, S), each row scored as alone.

        ``projected``: ``precompute(keys)``, (B, S, P), computed once for many queries.
        """
        if projected is None:
            projected = self.precompute(keys)
        elif projected.shape != (*keys.shape[:2], self.projected_size):
            raise ValueError(
                f"projected: expected shape {(*keys.shape[:2], self.projected_size)} "
                f"(precompute(keys)), got {tuple(projected.shape)}"
            )
        block = query.dim() == 3
        if self.score in ("additive", "concat"):
            w_query = (
                self.w_query(query)
                if self.score == "additive"
                else query @ self.w_concat.weight[:, : self.query_size].T  # W_cq q
            )
            if block:  # (B, U, 1, h) + (B, 1, S, h)
                hidden = torch.tanh(w_query.unsqueeze(2) + projected.unsqueeze(1))
                return self.v(hidden).squeeze(3)  # (B, U, S)
            hidden = torch.tanh(w_query.unsqueeze(1) + projected)  # (B, S, h)
            return self.v(hidden).squeeze(2)
        if block:
            return torch.bmm(query, projected.transpose(1, 2))  # (B, U, Q) x (B, Q, S)
        return torch.bmm(projected, query.unsqueeze(2)).squeeze(2)  # (B, S, Q) x (B, Q, 1)

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        mask: Tensor | None = None,
        values: Tensor | None = None,
        *,
        projected: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """query (B, Q), keys (B, S, K), mask (B, S) bool -> context (B, V), weights (B, S).

        A block of queries (B, U, Q) (a decoder's every step at once, when no step depends on
        the previous one's context) gives context (B, U, V) and weights (B, U, S).
        ``projected``: ``precompute(keys)``, passed to reuse it across decoder steps.
        """
        e = self.scores(query, keys, projected=projected)
        block = query.dim() == 3
        if mask is not None:
            if mask.shape != (e.shape[0], e.shape[-1]):
                want = (e.shape[0], e.shape[-1])
                raise ValueError(f"mask: expected shape {want}, got {tuple(mask.shape)}")
            e = e.masked_fill(~(mask.unsqueeze(1) if block else mask), float("-inf"))
        weights = torch.softmax(e, dim=-1)  # (B, [U,] S)
        values = keys if values is None else values
        if block:
            return torch.bmm(weights, values), weights  # (B, U, V)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)  # (B, V)
        return context, weights


class AttentionPooling(nn.Module):
    """Summarise (B, S, K) outputs into (B, K) with a learned query (additive score)."""

    def __init__(self, size: int, hidden_size: int | None = None):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(size))
        self.attention = Attention(size, size, "additive", hidden_size)

    def forward(self, outputs: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        query = self.query.expand(outputs.shape[0], -1)
        return self.attention(query, outputs, mask)
