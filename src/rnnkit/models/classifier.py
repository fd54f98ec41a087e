"""Many-to-one: a recurrent encoder, a summary of its outputs and a classifier on top.

For token ids x (B, T), or frames of numbers x (B, T, D), with lengths n_b (padding after
step n_b is ignored)::

    e_t = E x_t  or  onehot(x_t)  or  x_t    # (B, T, D), embedding, one-hot, or the frame
    h_1..h_T = RNN(e_1..e_T)                 # (B, T, H'), H' = 2H if bidirectional
    s = summary(h, n)                        # (B, H')
        last: forward h_{n_b} (and the backward direction's h_1), each sequence's own last step
        mean: (1 / n_b) sum_{t <= n_b} h_t
        max:  max_{t <= n_b} h_t
        attention: sum_t a_t h_t, a = softmax_t(v^T tanh(W_q q + W_k h_t)) over valid t
        flatten: [h_1; h_2; ..; h_P]  (B, P H'), every position's output side by side, zeros
              past n_b (P = ``positions``, the longest training sequence: a readout that
              knows where each feature sits, as Keras's Flatten after an RNN; a longer
              sequence's steps past P are not read)
    z = W_o dropout(s) + b_o                 # (B, K) logits, or (B, 1) for a sigmoid head
    z = z + sum_{g in G(x)} r_g u_g          # with a wide part (``wide_ngrams`` = N > 0)
    z = z + W_w ((phi(x) - mu) / sigma)      # frames, with ``wide_summary``
    p(y | x) = softmax(z)  or  p(y = 1 | x) = sigmoid(z)

The wide part (a "wide and deep" model, as fastText's bag of n-grams beside the RNN): G(x) is
the set of distinct n-grams of the token ids, n = 1..N (:func:`rnnkit.data.ngram_ids`:
unigrams are their ids, longer n-grams hashed into ``wide_buckets`` rows), u_g (K,) a
learned row per n-gram, zero at the start, and r_g a fixed scale per n-gram: 1, or the
Naive Bayes log-count ratio of the training split (the sentiment task's
``task.wide_nb``), which makes the wide part NBSVM's linear model (Wang & Manning 2012).

For frames of numbers the wide part (``wide_summary``) is linear in each sequence's summary
statistics (:func:`frame_statistics`), phi(x) = [mean_t x_t; std_t x_t; min_t x_t; max_t x_t;
x_1; x_n; log n] (6 D + 1 values, over the n valid steps), standardised by mu and sigma
(buffers: zero and one until the task sets them to the training split's), W_w (K, 6 D + 1)
zero at the start: the multinomial logistic regression on summary features that
``classify-series`` reports as its linear baseline, trained jointly with the RNN.

The label of sequence b is ``batch.targets[b, n_b - 1]`` (the many-to-one layout of a
:class:`~rnnkit.data.batches.SequenceBatch`: the one marked step is the last valid one). The
model is trainable and traceable (:mod:`rnnkit.models.contract`); with a codec
(``rnnkit.load``) it classifies raw text: ``model.predict(["a witty film"])``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from rnnkit.attention import AttentionPooling, lengths_to_mask
from rnnkit.data.batches import SequenceBatch
from rnnkit.data.representations import OneHot, ngram_ids
from rnnkit.kernels.common import vmapped
from rnnkit.kernels.dense import Linear
from rnnkit.models.contract import Predicting, check_batch_size, require
from rnnkit.models.encoder import RecurrentConfig, build_encoder

POOLINGS = ("last", "mean", "max", "attention", "flatten")
WIDE_BUCKETS = 262_144  # the wide part's hash rows when wide_buckets is 0


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig(RecurrentConfig):
    vocab_size: int = 0  # V, token ids in [0, V) (set by the data); 0 for frames
    input_features: int = 0  # D of each frame of numbers (set by the data); 0 for token ids
    num_classes: int = 2  # K (set by the data)
    padding_idx: int = 0  # id of <pad>: its embedding row is zero (set by the data)
    embedding_dim: int = 100  # D; 0: one-hot inputs (D = V)
    bidirectional: bool = False  # also read each sequence from its last step to its first
    pooling: Literal["last", "mean", "max", "attention", "flatten"] = "last"  # the summary s
    positions: int = 0  # P, the longest training sequence (set by the data); read by "flatten"
    head: Literal["softmax", "sigmoid"] = "softmax"  # sigmoid: one logit, K must be 2
    freeze_embedding: bool = False  # keep the (pretrained) embedding fixed
    wide_ngrams: int = 0  # N > 0: a linear term over each sequence's distinct 1..N-grams
    wide_buckets: int = 0  # hash rows of the wide part's n-grams with n >= 2 (0: 262,144)
    wide_summary: bool = False  # frames: a linear term over each sequence's summary statistics
    # RecurrentConfig's dropout applies to the embeddings, between layers and to the summary

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vocab_size < 0 or self.input_features < 0:
            raise ValueError(
                f"vocab_size and input_features must be >= 0, got {self.vocab_size} and "
                f"{self.input_features}"
            )
        if (self.vocab_size > 0) == (self.input_features > 0):
            raise ValueError(
                "exactly one of vocab_size (token ids) and input_features (frames of numbers) "
                f"must be > 0, got vocab_size={self.vocab_size}, "
                f"input_features={self.input_features}"
            )
        if self.input_features and self.freeze_embedding:
            raise ValueError("freeze_embedding: frames of numbers (input_features > 0) have none")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if self.embedding_dim < 0:
            raise ValueError(f"embedding_dim must be >= 0 (0: one-hot), got {self.embedding_dim}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.positions < 0 or (self.pooling == "flatten" and self.positions < 1):
            raise ValueError(
                f"positions must be >= 1 with pooling 'flatten' (the task sets it to the "
                f"longest training sequence), got {self.positions}"
            )
        if self.head not in ("softmax", "sigmoid"):
            raise ValueError(f"head must be 'softmax' or 'sigmoid', got {self.head!r}")
        if self.head == "sigmoid" and self.num_classes != 2:
            raise ValueError(f"head 'sigmoid' needs num_classes 2, got {self.num_classes}")
        if self.wide_ngrams < 0 or self.wide_buckets < 0:
            raise ValueError(
                f"wide_ngrams and wide_buckets must be >= 0, got {self.wide_ngrams} and "
                f"{self.wide_buckets}"
            )
        if self.wide_buckets and self.wide_ngrams < 2:
            raise ValueError(
                f"wide_buckets={self.wide_buckets} hashes n-grams with n >= 2: set "
                f"wide_ngrams >= 2, got {self.wide_ngrams}"
            )
        if self.wide_ngrams and self.input_features:
            raise ValueError(
                f"wide_ngrams={self.wide_ngrams}: the wide part reads token ids; frames of "
                f"numbers (input_features={self.input_features}) have no n-grams"
            )
        if self.wide_summary and not self.input_features:
            raise ValueError(
                "wide_summary=True: the summary statistics are of frames of numbers; token ids "
                f"(vocab_size={self.vocab_size}) take wide_ngrams"
            )
        if self.vocab_size and not 0 <= self.padding_idx < self.vocab_size:
            raise ValueError(
                f"padding_idx must be in [0, {self.vocab_size}), got {self.padding_idx}"
            )


class SequenceClassifier(nn.Module):
    """One label per sequence (see the module docstring for the equations).

    Example::

        model = SequenceClassifier(ClassifierConfig(vocab_size=100, pooling="mean"))
        logits = model(ids, lengths)          # ids (B, T) int64, lengths (B,) -> (B, 2)
        labels, probs = model.classify(ids, lengths)   # (B,), (B, K)
        rnnkit.load("runs/sentiment").predict(["a witty film"])   # [Prediction(...)]
    """

    kind = "classifier"
    config_cls = ClassifierConfig

    def __init__(self, config: ClassifierConfig, codec: Any = None) -> None:
        super().__init__()
        self.config = c = config
        self.codec = codec  # a TextCodec with the label names, for predict(texts)
        self.embedding: nn.Module | None = None  # frames go in as they are
        if c.input_features:
            width_in = c.input_features
        elif c.embedding_dim:
            self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim, padding_idx=c.padding_idx)
            self.embedding.weight.requires_grad_(not c.freeze_embedding)
            width_in = c.embedding_dim
        else:
            self.embedding = OneHot(c.vocab_size, padding_idx=c.padding_idx)
            width_in = c.vocab_size
        self.rnn = build_encoder(width_in, c)
        width = c.hidden_size * (2 if c.bidirectional else 1)  # H'
        self.pool = AttentionPooling(width) if c.pooling == "attention" else None
        self.drop = nn.Dropout(c.dropout)
        summary = width * c.positions if c.pooling == "flatten" else width  # (P) H'
        self.out = Linear(summary, 1 if c.head == "sigmoid" else c.num_classes)
        self.wide: nn.Embedding | None = None
        if c.wide_ngrams:  # u: one row per n-gram (V unigrams, then the hashed buckets)
            rows = c.vocab_size + (self.buckets if c.wide_ngrams > 1 else 0)
            self.wide = nn.Embedding(rows, self.out.out_features, padding_idx=c.padding_idx)
            nn.init.zeros_(self.wide.weight)
            self.register_buffer("wide_scale", torch.ones(rows))  # r, set by the task
        self.wide_stats: nn.Linear | None = None
        if c.wide_summary:  # W_w over phi(x), standardised by mu and sigma (set by the task)
            f = statistics_width(c.input_features)
            self.wide_stats = nn.Linear(f, self.out.out_features, bias=False)
            nn.init.zeros_(self.wide_stats.weight)
            self.register_buffer("stats_mean", torch.zeros(f))  # mu
            self.register_buffer("stats_std", torch.ones(f))  # sigma

    # ---- checkpoint contract --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any], codec: Any = None) -> SequenceClassifier:
        return cls(ClassifierConfig(**config), codec)

    def load_vectors(self, weight: Tensor) -> None:
        """Copy a (V, D) matrix (e.g. from :func:`rnnkit.data.build_embedding`) in."""
        if not isinstance(self.embedding, nn.Embedding):
            raise ValueError("load_vectors: the model has no embedding (one-hot or frame inputs)")
        if tuple(weight.shape) != tuple(self.embedding.weight.shape):
            raise ValueError(
                f"weight shape {tuple(weight.shape)} differs from the embedding's "
                f"{tuple(self.embedding.weight.shape)}"
            )
        with torch.no_grad():
            self.embedding.weight.copy_(weight)
            self.embedding.weight[self.config.padding_idx] = 0.0

    # ---- forward ----------------------------------------------------------------------------
    def _inputs(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Checked ids (B, T) -> embedded inputs (B, T', D) cut to the longest sequence;
        frames (B, T, D) pass as they are (no dropout on measured values)."""
        d = self.config.input_features
        if d:
            if ids.dim() != 3 or ids.shape[-1] != d or not ids.is_floating_point():
                raise ValueError(
                    f"inputs must be frames (B, T, {d}) of floats, got {tuple(ids.shape)} "
                    f"{ids.dtype}"
                )
        elif ids.dim() != 2 or ids.dtype != torch.int64:
            raise ValueError(f"ids must be (B, T) int64, got {tuple(ids.shape)} {ids.dtype}")
        if not isinstance(lengths, Tensor):
            lengths = torch.as_tensor(lengths)
        readable = _readable(lengths)
        if lengths.shape != ids.shape[:1] or (readable and bool((lengths < 1).any())):
            raise ValueError(f"lengths must be (B,) = ({ids.shape[0]},) with values >= 1")
        if readable:  # an ONNX graph keeps its time axis dynamic
            ids = ids[:, : int(lengths.max())]  # (B, T'): padding past the longest changes nothing
        if self.embedding is None:
            return ids.to(self.out.weight.dtype), lengths  # (B, T', D)
        return self.drop(self.embedding(ids).to(self.out.weight.dtype)), lengths  # (B, T', D)

    def _pool(self, out: Tensor, state: Any, lengths: Tensor) -> Tensor:
        """Outputs (B, T', H') and the final state -> summary s (B, H'), or (B, P H')."""
        c = self.config
        if c.pooling == "flatten":  # the first P steps; padded steps are zero already
            out = out[:, : c.positions]  # (a longer sequence's later steps are not read)
            return nn.functional.pad(out, (0, 0, 0, c.positions - out.shape[1])).flatten(1)
        if c.pooling == "last":
            h = state[0] if isinstance(state, tuple) else state  # (L * dirs, B, H)
            dirs = 2 if c.bidirectional else 1
            return torch.cat(list(h[-dirs:]), dim=-1)  # (B, H'): top layer, each direction
        mask = lengths_to_mask(lengths, out.shape[1])  # (B, T')
        if c.pooling == "mean":
            out = out * mask.unsqueeze(-1)
            return out.sum(1) / lengths.to(out.dtype).unsqueeze(-1)  # (B, H')
        if c.pooling == "max":
            return out.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)  # (B, H')
        summary, _ = self.pool(out, mask)  # (B, H')
        return summary

    def summarise(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, T) int64, lengths (B,) with 1 <= n_b <= T -> summary s (B, H')."""
        x, lengths = self._inputs(ids, lengths)
        out, state = self.rnn(x, lengths=lengths)  # (B, T', H')
        return self._pool(out, state, lengths)

    @property
    def buckets(self) -> int:
        """The wide part's hash rows for n-grams with n >= 2."""
        return self.config.wide_buckets or WIDE_BUCKETS

    def wide_grams(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """The wide part's n-gram rows of ids (B, T): (B, G), padding id where none."""
        c = self.config
        return ngram_ids(ids, lengths, c.wide_ngrams, c.vocab_size, self.buckets, c.padding_idx)

    @torch.no_grad()
    def start_wide_as_naive_bayes(self) -> None:
        """Set u so that the wide part alone gives the log-odds z_1 - z_0 = sum_g r_g: with
        r_g the log-count ratios (``wide_scale``), the binarized Naive Bayes classifier
        without its prior (the output bias b_o can learn that). Softmax: u_g = (-1/2, 1/2);
        sigmoid: u_g = 1."""
        if self.wide is None or self.config.num_classes != 2:
            raise ValueError(
                "start_wide_as_naive_bayes needs a wide part (wide_ngrams > 0) and 2 classes, "
                f"got wide_ngrams={self.config.wide_ngrams}, num_classes={self.config.num_classes}"
            )
        u = self.wide.weight
        u.copy_(torch.tensor([1.0] if u.shape[1] == 1 else [-0.5, 0.5]).expand_as(u))
        u[self.config.padding_idx] = 0.0

    @torch.no_grad()
    def set_statistics_scale(self, mean: Tensor, std: Tensor) -> None:
        """Set mu and sigma of the wide part over summary statistics (``wide_summary``),
        e.g. to the training split's: ``phi = frame_statistics(x, n); phi.mean(0), phi.std(0)``.
        A sigma of zero (a constant statistic) is read as one."""
        if self.wide_stats is None:
            raise ValueError("set_statistics_scale: the model has no wide_summary part")
        mean, std = torch.as_tensor(mean), torch.as_tensor(std)
        f = self.stats_mean.numel()
        if tuple(mean.shape) != (f,) or tuple(std.shape) != (f,):
            raise ValueError(
                f"mean and std must be ({f},), got {tuple(mean.shape)} and {tuple(std.shape)}"
            )
        if not bool(torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ValueError("mean and std must be finite numbers, got NaN or infinity")
        if bool((std < 0).any()):
            raise ValueError(f"std must be >= 0, got {float(std.min())}")
        self.stats_mean.copy_(mean)
        self.stats_std.copy_(torch.where(std > 0, std, torch.ones_like(std)))

    def _logits(self, summary: Tensor, ids: Tensor, lengths: Tensor) -> Tensor:
        """z = W_o dropout(s) + b_o, plus the wide part sum_g r_g u_g (token ids) or
        W_w ((phi(x) - mu) / sigma) (frames) when there is one."""
        z = self.out(self.drop(summary))
        if self.wide_stats is not None:
            if _readable(lengths):
                ids = ids[:, : int(lengths.max())]
            phi = frame_statistics(ids.to(z.dtype), lengths)  # (B, 6 D + 1)
            scaled = (phi - self.stats_mean.to(z.dtype)) / self.stats_std.to(z.dtype)
            return z + self.wide_stats(scaled)
        if self.wide is None:
            return z
        if not torch.jit.is_tracing():  # positions past the longest add no n-gram
            ids = ids[:, : int(lengths.max())]
        grams = self.wide_grams(ids, lengths)  # (B, G)
        r = self.wide_scale[grams].unsqueeze(-1).to(z.dtype)  # (B, G, 1); u_pad = 0
        return z + (self.wide(grams).to(z.dtype) * r).sum(1)  # (B, K)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """Logits z: (B, K) for softmax, (B, 1) for sigmoid."""
        if not isinstance(lengths, Tensor):
            lengths = torch.as_tensor(lengths)
        return self._logits(self.summarise(ids, lengths), ids, lengths)

    def probabilities(self, logits: Tensor) -> Tensor:
        """(B, K) class probabilities from the logits of either head."""
        if self.config.head == "sigmoid":
            p = torch.sigmoid(logits)  # (B, 1): p(y = 1)
            return torch.cat([1 - p, p], dim=-1)
        return torch.softmax(logits, dim=-1)

    @torch.no_grad()
    def classify(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Labels (B,) and probabilities (B, K)."""
        probs = self.probabilities(self(ids, lengths))
        return probs.argmax(-1), probs

    # ---- trainer contract -------------------------------------------------------------------
    @staticmethod
    def labels(batch: SequenceBatch) -> Tensor:
        """(B,) labels, read at each sequence's last step."""
        last = (batch.lengths - 1).clamp(min=0).unsqueeze(1)  # (B, 1)
        return batch.targets.gather(1, last).squeeze(1).long()

    def _loss(self, z: Tensor, batch: SequenceBatch) -> tuple[Tensor, dict[str, float]]:
        y = self.labels(batch)  # (B,)
        if self.config.head == "sigmoid":
            loss = nn.functional.binary_cross_entropy_with_logits(z.squeeze(-1), y.to(z.dtype))
            pred = (z.squeeze(-1) > 0).long()
        else:
            loss = nn.functional.cross_entropy(z, y)
            pred = z.argmax(-1)
        return loss, {"accuracy": float((pred == y).float().mean())}

    def loss(self, batch: SequenceBatch) -> tuple[Tensor, dict[str, float]]:
        """Mean cross-entropy of the labels, and accuracy."""
        return self._loss(self(batch.inputs, batch.lengths), batch)

    @torch.no_grad()
    def confusion(self, batch: SequenceBatch) -> Tensor:
        """(K, K) int64 counts: row = true label, column = predicted label."""
        k = self.config.num_classes
        pred, _ = self.classify(batch.inputs, batch.lengths)
        index = self.labels(batch) * k + pred  # (B,)
        return torch.bincount(index.cpu(), minlength=k * k).reshape(k, k)

    def class_names(self) -> list[str]:
        """The label names (from the codec), or class numbers without one."""
        labels = getattr(self.codec, "labels", None)
        return (
            [str(x) for x in labels] if labels else [str(k) for k in range(self.config.num_classes)]
        )

    def trace(self, batch: SequenceBatch) -> tuple[Tensor, Any]:
        """The loss and the recurrent layer's per-step trace (the loop path)."""
        x, lengths = self._inputs(batch.inputs, batch.lengths)
        tr = self.rnn.trace(x, lengths=lengths)
        z = self._logits(self._pool(tr.output, tr.state, lengths), batch.inputs, lengths)
        return self._loss(z, batch)[0], tr

    def onnx_graphs(self) -> list:
        """``rnnkit export``'s graph (:mod:`rnnkit.export`): ids (B, T) (or frames (B, T, D))
        and lengths (B,) -> logits (B, K) (or (B, 1)), batch and time dynamic."""
        from rnnkit.export import OnnxGraph, example_lengths

        c = self.config

        def inputs(batch: int, steps: int) -> tuple[Tensor, Tensor]:
            g = torch.Generator().manual_seed(batch * 1000 + steps)
            if c.input_features:
                x = torch.randn(batch, steps, c.input_features, generator=g)
            else:
                x = torch.randint(0, c.vocab_size, (batch, steps), generator=g)
            return x, example_lengths(batch, steps)

        axes = {"ids": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "logits": {0: "batch"}}
        names = ("ids", "lengths"), ("logits",)
        return [OnnxGraph("classifier", self, self.forward, inputs, *names, axes)]

    # ---- raw text ---------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, texts: Any, batch_size: int = 256) -> Any:
        """The label and its probability for each text (a list, or one for one string), or
        for each case of a series codec (strings of symbols, arrays (T, D))."""
        require(self, Predicting)
        check_batch_size(batch_size)
        single = isinstance(texts, str) or (
            self.config.input_features > 0 and getattr(texts, "ndim", 0) in (1, 2)
        )
        items = [texts] if single else list(texts)
        name = getattr(self.codec, "describe", str)
        was_training = self.training
        self.eval()
        device = self.out.weight.device
        out = []
        try:
            for start in range(0, len(items), batch_size):
                chunk = items[start : start + batch_size]
                ids, lengths = self.codec.batch(chunk)
                pred, probs = self.classify(ids.to(device), lengths.to(device))
                for i, k in enumerate(pred.tolist()):
                    label, p = self.codec.labels[k], float(probs[i, k])
                    out.append(Prediction(name(chunk[i]), label, p))
        finally:
            self.train(was_training)
        return out[0] if single else out


def _readable(lengths: Tensor) -> bool:
    """Whether the values of ``lengths`` can be read: not while a graph is traced (ONNX) nor
    under ``torch.func.vmap`` with per-sample lengths (each row's own)."""
    return not (torch.jit.is_tracing() or vmapped(lengths))


def statistics_width(features: int) -> int:
    """The number of summary statistics of frames with ``features`` values: 6 D + 1."""
    return 6 * features + 1


def frame_statistics(x: Tensor, lengths: Tensor) -> Tensor:
    """Summary statistics of each sequence of frames x (B, T, D) over its n_b valid steps::

        phi_b = [mean_t x_bt; std_t x_bt; min_t x_bt; max_t x_bt; x_b1; x_bn; log n_b]

    (B, 6 D + 1); std is the population standard deviation (divided by n_b). Steps past n_b
    are not read, so a padded batch gives each sequence's own statistics."""
    if x.dim() != 3:
        raise ValueError(f"x: expected frames (B, T, D), got shape {tuple(x.shape)}")
    b, t, d = x.shape
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.shape != (b,):
        raise ValueError(f"lengths: expected shape ({b},), got {tuple(lengths.shape)}")
    if _readable(lengths) and b and not 1 <= int(lengths.min()) <= int(lengths.max()) <= t:
        raise ValueError(
            f"lengths: expected values in 1..{t}, got min {int(lengths.min())}, "
            f"max {int(lengths.max())}"
        )
    dtype = x.dtype
    x = x.double()  # the squares of large float32 frames would overflow float32
    mask = lengths_to_mask(lengths, t).unsqueeze(-1)  # (B, T, 1)
    n = lengths.to(x.dtype).unsqueeze(-1)  # (B, 1)
    mean = (x * mask).sum(1) / n  # (B, D)
    var = (((x - mean.unsqueeze(1)) * mask) ** 2).sum(1) / n
    std = var.clamp_min(1e-30).sqrt()  # sqrt's gradient stays finite for a constant feature
    low = x.masked_fill(~mask, float("inf")).amin(1)
    high = x.masked_fill(~mask, float("-inf")).amax(1)
    last = x.gather(1, (lengths - 1).view(b, 1, 1).expand(b, 1, d)).squeeze(1)  # x_bn
    return torch.cat([mean, std, low, high, x[:, 0], last, n.log()], dim=-1).to(dtype)


@dataclass(frozen=True)
class Prediction:
    text: str  # the input text
    label: str  # the most probable class
    probability: float  # its probability

    def __str__(self) -> str:
        return f"{self.label}\t{self.probability:.4f}\t{self.text}"
