"""``SessionRecommender``: GRU4Rec, the next item of a history read by a recurrent net.

After Hidasi, Karatzoglou, Baltrunas and Tikk (2016), "Session-based recommendations with
recurrent neural networks". For the item ids x_1..x_T (B, T) of a history (0 pads its end):

    e_t = dropout(E[x_t])                       # (B, T, D) item embedding
    h_t = GRU(e_t, h_{t-1}), h_0 = 0            # (B, T, H) rk.GRU (any registered cell)
    s_t = W_o dropout(h_t) + b_o                # (B, T, V) a score for every item
        = E P dropout(h_t) + b_o                #   tied: W_o = E, P (H -> D) when H != D
    s_t[0] = -inf                               # model id 0 pads; it is never an item
    p(x_{t+1} = j | x_1..x_t) = softmax(s_t)_j
    L = mean over the marked steps (b, t) of -log p(y_bt)      # nats per target item

Training rows mark every step (the target is the next item); validation and test rows mark
their last step only, whose target is the held-out item.

The loss is the cross-entropy over all V items at every step (a full softmax, cheap with a
catalogue of a few thousand items). It replaces the paper's sampled ranking losses (BPR and
TOP1 against the other items of the mini-batch), which were needed for catalogues of tens of
thousands of items; later work trains with the same cross-entropy: GRU4Rec's own later
versions offer it beside BPR-max and TOP1-max (Hidasi & Karatzoglou 2018), and the
comparisons of Ludewig, Latifi and Jannach (2019, 2021) run GRU4Rec with it.

The model is trainable and traceable (:mod:`rnnkit.models.contract`); with its codec
(:class:`~rnnkit.data.codec.ItemCodec`) it recommends from raw item ids:
``model.predict("50,172,133")`` lists the ``k`` likeliest next items with their titles.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rnnkit.data.batches import SequenceBatch
from rnnkit.kernels.dense import Linear
from rnnkit.models.contract import Predicting, require
from rnnkit.models.encoder import RecurrentConfig, build_encoder

__all__ = ["Recommendations", "RecommenderConfig", "SessionRecommender"]


@dataclass(frozen=True, kw_only=True)
class RecommenderConfig(RecurrentConfig):
    num_items: int  # V: model ids, the padding id 0 included (set by the data)
    cell: str = "gru"  # GRU4Rec's cell; any registered kind
    hidden_size: int = 100  # H (GRU4Rec: 100 units)
    embedding_dim: int = 64  # D, size of each item's embedding
    tie_weights: bool = False  # score items with their embeddings E (V, D) as W_o
    # RecurrentConfig's dropout applies to the embeddings, between layers and before W_o

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, low in (("num_items", 2), ("embedding_dim", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class Recommendations:
    """The ``k`` likeliest next items after a history, best first."""

    history: list[str]  # the item ids given
    items: list[str]  # recommended item ids
    titles: list[str]  # their titles
    probabilities: list[float]  # p(next = item), the softmax over all items

    def __str__(self) -> str:
        rows = zip(self.items, self.probabilities, self.titles, strict=True)
        return "\n".join(f"{r}\t{i}\t{p:.4f}\t{t}" for r, (i, p, t) in enumerate(rows, 1))


class SessionRecommender(nn.Module):
    """Next-item model of item histories (see the module docstring for the equations).

    ``batch.inputs`` (B, T) holds model ids (0 after each row's ``lengths``),
    ``batch.targets`` (B, T) the next item where ``batch.mask`` (B, T) is set.
    """

    kind = "session recommender"
    config_cls = RecommenderConfig

    def __init__(self, config: RecommenderConfig, codec: Any = None) -> None:
        super().__init__()
        self.config = c = config
        self.codec = codec  # an ItemCodec: item ids and titles, for predict
        self.embedding = nn.Embedding(c.num_items, c.embedding_dim, padding_idx=0)
        self.rnn = build_encoder(c.embedding_dim, c)
        self.drop = nn.Dropout(c.dropout)
        tied_proj = c.tie_weights and c.hidden_size != c.embedding_dim
        self.proj = Linear(c.hidden_size, c.embedding_dim) if tied_proj else None
        self.head = Linear(c.embedding_dim if c.tie_weights else c.hidden_size, c.num_items)
        if c.tie_weights:
            self.head.weight = self.embedding.weight  # one Parameter, (V, D)

    # ---- checkpoint contract --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any], codec: Any = None) -> SessionRecommender:
        return cls(RecommenderConfig(**config), codec)

    # ---- forward ----------------------------------------------------------------------------
    def _embed(self, items: torch.Tensor) -> torch.Tensor:
        return self.drop(self.embedding(items))  # (B, T, D)

    def hidden(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """h_1..h_T (B, T, H) of item ids (B, T) with ``lengths`` (B,); zeros past the end."""
        h, _ = self.rnn(self._embed(items), lengths=lengths)  # (B, T, H)
        return h

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        """s = W_o dropout(h) + b_o (..., V) of hidden states (..., H); s[..., 0] = -inf."""
        h = self.drop(h)
        if self.proj is not None:
            h = self.proj(h)  # (..., D)
        s = self.head(h)  # (..., V)
        return s.index_fill(-1, torch.zeros(1, dtype=torch.long, device=s.device), -torch.inf)

    def next_scores(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """s_T (B, V): the scores of the item after each row's last one."""
        h = self.hidden(items, lengths)  # (B, T, H)
        last = h[torch.arange(h.shape[0], device=h.device), lengths.to(h.device) - 1]  # (B, H)
        return self.scores(last)

    def _loss(self, h: torch.Tensor, batch: SequenceBatch) -> tuple[torch.Tensor, dict]:
        mask = batch.mask  # (B, T)
        s = self.scores(h[mask])  # (n, V): only the marked steps get scores
        loss = nn.functional.cross_entropy(s, batch.targets[mask].long())
        return loss, {"perplexity": math.exp(min(float(loss.detach()), 50.0))}

    def loss(self, batch: SequenceBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean nats per target item, and the perplexity exp(L)."""
        return self._loss(self.hidden(batch.inputs, batch.lengths), batch)

    def trace(self, batch: SequenceBatch) -> tuple[torch.Tensor, Any]:
        """The loss and the recurrent layer's per-step trace (the loop path)."""
        tr = self.rnn.trace(self._embed(batch.inputs), lengths=batch.lengths)
        return self._loss(tr.output, batch)[0], tr

    # ---- raw input ----------------------------------------------------------------------------
    @torch.no_grad()
    def predict(
        self, histories: str | Sequence[str], k: int = 10, exclude_seen: bool = True
    ) -> Any:
        """The ``k`` likeliest next items after each history (``"50,172,133"``: item ids
        separated by commas or spaces; a list of such strings gives a list of results).

        With ``exclude_seen`` the items of the history are not recommended (the rule the
        ``recommend`` task scores with); an unknown item id is an error naming it.
        """
        require(self, Predicting)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k: expected an integer >= 1, got {k!r}")
        single = isinstance(histories, str)
        texts = [histories] if single else list(histories)
        rows = [self.codec.parse_items(t) for t in texts]
        if not rows:
            return []
        device = self.head.weight.device
        lengths = torch.tensor([len(r) for r in rows])
        items = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
        for b, r in enumerate(rows):
            items[b, : len(r)] = torch.tensor(r)
        was_training = self.training
        self.eval()
        try:
            s = self.next_scores(items.to(device), lengths.to(device)).float()  # (B, V)
        finally:
            self.train(was_training)
        p = torch.softmax(s, -1)  # (B, V)
        if exclude_seen:
            s = s.scatter(1, items.to(device), -torch.inf)  # the history and the padding id
        best, top = s.topk(min(k, self.config.num_items - 1), -1)  # (B, k)
        out = []
        for b, r in enumerate(rows):
            found = [int(j) for j, v in zip(top[b], best[b], strict=True) if v > -torch.inf]
            out.append(
                Recommendations(
                    [self.codec.item(i) for i in r],
                    [self.codec.item(j) for j in found],
                    [self.codec.title(j) for j in found],
                    [float(p[b, j]) for j in found],
                )
            )
        return out[0] if single else out
