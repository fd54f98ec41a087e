"""Count-based n-gram language models: the baselines beside the recurrent ones.

:class:`KneserNey` is interpolated Kneser-Ney over token ids; the melody task fits it as its
Markov baselines, and ``benchmarks/ptb_ngram.py`` fits a 5-gram on the Penn Treebank.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

__all__ = ["KneserNey"]


class KneserNey:
    """Interpolated Kneser-Ney n-gram model of token ids with a context of ``order`` ids
    (Chen & Goodman 1999), the discount D_k = n1 / (n1 + 2 n2) of each order::

        P_k(w | h) = (max(c_k(h w) - D_k, 0) + D_k N1+(h .) P_(k-1)(w | h')) / c_k(h)
        P_(-1)(w) = 1 / V

    with c_order the counts of (order + 1)-grams, c_k for k < order the number of distinct
    ids seen before (h w), h' = h less its first id, and a context never seen skipped.
    Each sequence is read after ``order`` copies of its first id (``<bos>``).
    """

    def __init__(self, sequences: Sequence[Sequence[int]], order: int, vocab_size: int):
        if order < 0 or vocab_size < 1:
            raise ValueError(f"order >= 0 and vocab_size >= 1 needed, got {order}, {vocab_size}")
        self.order, self.vocab_size = order, vocab_size
        top: dict[tuple, Counter] = defaultdict(Counter)
        for seq in sequences:
            padded = [seq[0]] * order + list(seq)
            for i in range(order + 1, len(padded)):
                top[tuple(padded[i - order : i])][padded[i]] += 1
        self.counts = [top]  # counts[j]: context length order - j
        for _ in range(order):
            lower: dict[tuple, Counter] = defaultdict(Counter)
            for h, table in self.counts[-1].items():
                for w in table:
                    lower[h[1:]][w] += 1  # one more distinct id before (h[1:] w)
            self.counts.append(lower)
        self.counts.reverse()  # counts[k]: context length k
        self.totals = [{h: sum(t.values()) for h, t in c.items()} for c in self.counts]
        self.discounts = [self._discount(c) for c in self.counts]

    @staticmethod
    def _discount(counts: dict[tuple, Counter]) -> float:
        n = Counter(v for table in counts.values() for v in table.values())
        return min(max(n[1] / (n[1] + 2 * n[2]), 0.05), 0.95) if n[1] else 0.5

    def prob(self, w: int, history: Sequence[int]) -> float:
        """P(w | the last ``order`` ids of ``history``)."""
        p = 1.0 / self.vocab_size
        for k in range(self.order + 1):
            h = tuple(history[len(history) - k :]) if k else ()
            table = self.counts[k].get(h)
            if not table:
                continue
            d = self.discounts[k]
            p = (max(table.get(w, 0) - d, 0.0) + d * len(table) * p) / self.totals[k][h]
        return p

    def nll(self, sequences: Sequence[Sequence[int]]) -> float:
        """Mean -log P of every id after the first of each sequence (nats)."""
        total, n = 0.0, 0
        for seq in sequences:
            padded = [seq[0]] * self.order + list(seq)
            for i in range(self.order + 1, len(padded)):
                total -= math.log(self.prob(padded[i], padded[i - self.order : i]))
                n += 1
        return total / max(n, 1)
