r"""Attention over the steps of an encoded sequence, with padding masks.

A query :math:`q` (the decoder state, (B, Q)) scores every key :math:`k_s` (the encoder
outputs, (B, S, K)); the softmax of the scores over the valid steps gives the weights
:math:`a_s`, and the context is the weighted sum of the values :math:`v_s`:

.. math::
    \text{additive (Bahdanau):}\quad e_s = v^\top \tanh(W_q q + W_k k_s)
    \text{dot (Luong):}\quad e_s = q^\top k_s \qquad
    \text{general (Luong):}\quad e_s = q^\top W k_s
    a = \operatorname{softmax}(e \text{ with padded steps at } -\infty), \qquad
    c = \sum_s a_s v_s

Padded steps get weight exactly zero. Keys double as values unless values are given.
:class:`AttentionPooling` uses a learned query to summarise a sequence into one vector
(many-to-one classification).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Attention", "AttentionPooling", "lengths_to_mask"]

SCORES = ("additive", "dot", "general")


def lengths_to_mask(lengths: Tensor, steps: int) -> Tensor:
    """(B,) lengths -> (B, S) bool mask, true at valid steps."""
    return torch.arange(steps, device=lengths.device) < lengths.unsqueeze(1)


class Attention(nn.Module):
    """Scores a query against keys and returns (context (B, V), weights (B, S)).

    Args:
        query_size: Q. key_size: K (and the value size unless values are given).
        score: "additive", "dot" (needs Q == K) or "general".
        hidden_size: size of the additive score's hidden layer (default K).
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
            self.w_query = nn.Linear(query_size, hidden, bias=False)
            self.w_key = nn.Linear(key_size, hidden)
            self.v = nn.Linear(hidden, 1, bias=False)
        elif score == "general":
            self.w = nn.Linear(key_size, query_size, bias=False)

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """Unnormalised scores e: query (B, Q), keys (B, S, K) -> (B, S)."""
        if self.score == "additive":
            hidden = torch.tanh(self.w_query(query).unsqueeze(1) + self.w_key(keys))  # (B,S,h)
            return self.v(hidden).squeeze(2)
        if self.score == "general":
            keys = self.w(keys)  # (B, S, Q)
        return torch.bmm(keys, query.unsqueeze(2)).squeeze(2)

    def forward(
        self, query: Tensor, keys: Tensor, mask: Tensor | None = None, values: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """query (B, Q), keys (B, S, K), mask (B, S) bool -> context (B, V), weights (B, S)."""
        e = self.scores(query, keys)
        if mask is not None:
            if mask.shape != e.shape:
                raise ValueError(f"mask: expected shape {tuple(e.shape)}, got {tuple(mask.shape)}")
            e = e.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(e, dim=1)  # (B, S)
        values = keys if values is None else values
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
