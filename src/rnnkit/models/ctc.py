r"""``CTCRecognizer``: a stacked bidirectional encoder with a CTC output (Graves et al. 2006).

Speech or handwriting recognition without a segmentation. The model reads S frames (feature
vectors, or the columns of an image after :class:`~rnnkit.models.seq2seq.ImageColumns`) and
gives, at every frame, a distribution over the V classes: the target tokens and the blank,
id 0 (the vocabulary's ``<pad>``, which never occurs inside a target)::

    m_1..m_S = BiRNN(x_1..x_S)                      # (B, S, K), K = dirs * H
    z_s = W dropout(m_s) + b                        # (B, S, V) logits
    log y_s = log_softmax(z_s)                      # y_s(0): the blank

A path pi (one class per frame) gives the labelling B(pi): repeats collapsed, then blanks
dropped. A labelling's probability sums over its paths (the CTC forward algorithm), and the
loss is its negative log, summed over the batch and divided by the number of target tokens
(every model's loss here is a mean per target token, which is how the trainer weighs it)::

    p(l | x) = sum over pi with B(pi) = l of  prod_s y_s(pi_s)
    L = sum_b -log p(l_b | x_b) / sum_b |l_b|       # torch.nn.CTCLoss(blank=0, "sum") / N

A labelling needs S >= |l| + (its repeated neighbours) frames; a row that cannot be aligned
costs 0 (``zero_infinity``), not inf. Targets are labels only: no ``<bos>`` and no ``<eos>``
(a ``PairCodec(..., target_eos=False)`` writes them so, and a codec that ends targets with
``<eos>`` is refused rather than trained on as a label); the blank inside a target is an
error.

Decoding (:mod:`rnnkit.ctc_decoding`): best path with ``beam`` 1 (argmax per frame, repeats
collapsed, blanks dropped), prefix beam search with ``beam`` K > 1. With a codec
(``rnnkit.load``) the model reads raw input: ``model.predict([frames (S, D), ...])`` gives a
:class:`Transcript` per input, which prints as its text.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.ctc_decoding import best_path, prefix_beam_search
from rnnkit.data.batches import PairBatch
from rnnkit.kernels.dense import Linear
from rnnkit.models.contract import Predicting, check_batch_size, require
from rnnkit.models.encoder import RecurrentConfig, build_encoder
from rnnkit.models.seq2seq import ImageColumns

__all__ = ["BLANK", "CTCRecognizer", "CTCRecognizerConfig", "Transcript"]

BLANK = 0  # rnnkit.data.vocab's fixed id of <pad>: the blank


@dataclass(frozen=True, kw_only=True)
class CTCRecognizerConfig(RecurrentConfig):
    # the encoder: RecurrentConfig's cell, hidden_size (H per direction), num_layers, dropout
    target_vocab_size: int  # V, with the blank (id 0) and the specials (set by the data)
    source_features: int = 0  # > 0: the source is feature frames (B, S, D) (set by the data)
    image_channels: int = 0  # > 0: the source is images (B, C, H, W) (set by the data)
    image_height: int = 0  # H of those images (set by the data)
    conv_channels: int = 32  # channels of the image encoder's two convolutions
    bidirectional: bool = True  # the encoder reads the frames both ways
    num_layers: int = 2  # stacked recurrent layers
    # RecurrentConfig's dropout applies between stacked layers and before the output layer

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target_vocab_size < 2:
            raise ValueError(
                f"target_vocab_size must be >= 2 (the blank and a label), got "
                f"{self.target_vocab_size}"
            )
        for name in ("source_features", "image_channels", "image_height"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if (self.source_features > 0) == (self.image_channels > 0):
            raise ValueError(
                "exactly one of source_features (frames) and image_channels (images) must be "
                f"> 0, got source_features={self.source_features}, "
                f"image_channels={self.image_channels}"
            )
        if self.image_channels and self.image_height < 1:
            raise ValueError(
                f"image_height must be >= 1 with image_channels > 0, got {self.image_height}"
            )
        if self.conv_channels < 1:
            raise ValueError(f"conv_channels must be >= 1, got {self.conv_channels}")
        if self.conv_channels != 32 and not self.image_channels:
            raise ValueError(
                f"conv_channels={self.conv_channels} sizes the image encoder; this source is "
                "feature frames"
            )


@dataclass(frozen=True)
class Transcript:
    """One decoded input: its text, tokens and log-probability."""

    text: str  # detokenized labelling
    tokens: list[str]  # the labels as tokens
    score: float  # log p of the best path (greedy) or of the labelling (beam search)

    def __str__(self) -> str:
        return self.text


class CTCRecognizer(nn.Module):
    """Bidirectional recurrent encoder + CTC output (see the module docstring)."""

    kind = "recognizer"
    config_cls = CTCRecognizerConfig

    def __init__(self, config: CTCRecognizerConfig, codec: Any = None) -> None:
        super().__init__()
        self.config = c = config
        if getattr(codec, "target_eos", False):
            raise ValueError(
                "codec: its targets end with <eos>, which a CTC model would learn as a label; "
                "build the PairCodec with target_eos=False"
            )
        self.codec = codec  # a PairCodec with target_eos=False, for predict(inputs)
        self.columns: ImageColumns | None = None
        source_size = c.source_features
        if c.image_channels:
            self.columns = ImageColumns(c.image_channels, c.image_height, c.conv_channels)
            source_size = self.columns.output_size
        self.encoder = build_encoder(source_size, c)
        self.drop = nn.Dropout(c.dropout)
        self.head = Linear(c.hidden_size * (2 if c.bidirectional else 1), c.target_vocab_size)
        self.ctc = nn.CTCLoss(blank=BLANK, reduction="none", zero_infinity=True)

    # ---- checkpoint contract --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any], codec: Any = None) -> CTCRecognizer:
        return cls(CTCRecognizerConfig(**config), codec)

    # ---- forward ----------------------------------------------------------------------------
    def _inputs(self, source: Tensor, source_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's input (B, S, D') cut to the longest valid source, and the lengths
        (B,) on the CPU."""
        if not isinstance(source_lengths, Tensor):
            source_lengths = torch.as_tensor(source_lengths)
        if source_lengths.is_floating_point() or source_lengths.dtype == torch.bool:
            raise ValueError(
                f"source_lengths: expected integers, got {source_lengths.dtype} (a length of "
                "2.7 frames has no meaning)"
            )
        lengths = source_lengths.to("cpu", torch.int64)
        s = int(lengths.max())
        w = self.head.weight
        if self.columns is not None:
            if source.dim() != 4:
                raise ValueError(f"source: expected images (B, C, H, W), got {_shape(source)}")
            return self.columns(source[..., :s].to(w.device, w.dtype), lengths), lengths
        if source.dim() != 3 or source.shape[-1] != self.config.source_features:
            raise ValueError(
                f"source: expected frames (B, S, {self.config.source_features}), got "
                f"{_shape(source)}"
            )
        return source[:, :s].to(w.device, w.dtype), lengths

    def forward(self, source: Tensor, source_lengths: Tensor) -> Tensor:
        """log y: (B, S, V) log-probabilities of every class at every frame, S the longest
        source of the batch (a row's frames past its length are padding)."""
        x, lengths = self._inputs(source, source_lengths)
        m, _ = self.encoder(x, None, lengths)  # (B, S, K)
        return self.head(self.drop(m)).log_softmax(-1)  # (B, S, V)

    def _nll(self, log_y: Tensor, batch: PairBatch) -> Tensor:
        """-log p(l_b | x_b) per row (B,): the CTC forward algorithm (torch.nn.CTCLoss)."""
        u = batch.target_lengths.to("cpu", torch.int64)
        target = batch.target.to(log_y.device)
        inside = torch.arange(target.shape[1], device=target.device) < u.to(target.device)[:, None]
        if bool(((target == BLANK) & inside).any()):
            raise ValueError(
                f"target: a CTC target holds labels only, but a row holds the blank (id {BLANK}) "
                "within its target_lengths"
            )
        v = self.config.target_vocab_size
        outside = inside & ((target < 0) | (target >= v))
        if bool(outside.any()):  # torch's CTC kernel reads out of bounds on these
            raise ValueError(
                f"target: labels must be in 1..{v - 1} (target_vocab_size={v}), got "
                f"{int(target[outside][0])} within a row's target_lengths"
            )
        s = batch.source_lengths.to("cpu", torch.int64)
        return self.ctc(log_y.transpose(0, 1), target, s, u)  # (B,)

    def loss(self, batch: PairBatch) -> tuple[Tensor, dict[str, float]]:
        """L = sum_b -log p(l_b | x_b) / sum_b |l_b|, nats per target token (no other metric:
        the task scores decoded transcripts)."""
        log_y = self(batch.source, batch.source_lengths)  # (B, S, V)
        nll = self._nll(log_y, batch)  # (B,)
        return nll.sum() / max(int(batch.target_lengths.sum()), 1), {}

    def trace(self, batch: PairBatch) -> tuple[Tensor, Any]:
        """The loss and the encoder's per-step trace (hidden states, gates): ``diagnose``."""
        x, lengths = self._inputs(batch.source, batch.source_lengths)
        tr = self.encoder.trace(x, lengths=lengths)
        log_y = self.head(self.drop(tr.output)).log_softmax(-1)  # (B, S, V)
        return self._nll(log_y, batch).sum() / max(int(batch.target_lengths.sum()), 1), tr

    # ---- decoding ---------------------------------------------------------------------------
    @torch.no_grad()
    def posteriors(self, batch: PairBatch) -> Tensor:
        """y: (B, S, V) class probabilities at every frame, zero past each row's length."""
        was_training = self.training
        self.eval()
        try:
            y = self(batch.source, batch.source_lengths).exp()  # (B, S, V)
        finally:
            self.train(was_training)
        valid = torch.arange(y.shape[1]) < batch.source_lengths.cpu()[:, None]  # (B, S)
        return y * valid.to(y.device)[..., None]

    @torch.no_grad()
    def decode_scored(self, batch: PairBatch, beam: int = 1) -> list[tuple[list[int], float]]:
        """The labelling of every row with its log-probability: best path with ``beam`` 1
        (log p of the path), prefix beam search otherwise (log p(l | x) as found)."""
        if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
            raise ValueError(f"beam: expected an integer >= 1, got {beam!r}")
        was_training = self.training
        self.eval()
        try:
            log_y = self(batch.source, batch.source_lengths).cpu()  # (B, S, V)
        finally:
            self.train(was_training)
        lengths = batch.source_lengths.cpu()
        if beam == 1:
            best = log_y.max(-1).values  # (B, S): log y_s(pi*_s)
            scores = [float(best[i, :n].sum()) for i, n in enumerate(lengths.tolist())]
            return list(zip(best_path(log_y, lengths, BLANK), scores, strict=True))
        return [
            prefix_beam_search(log_y[i, :n], beam, BLANK)[0] for i, n in enumerate(lengths.tolist())
        ]

    def decode(self, batch: PairBatch, beam: int = 1) -> list[list[int]]:
        """The label ids of every row of ``batch``: best path (``beam`` 1) or prefix beam
        search with ``beam`` prefixes."""
        return [ids for ids, _ in self.decode_scored(batch, beam)]

    # ---- raw input ----------------------------------------------------------------------------
    def predict(self, inputs: Any, beam: int = 1, batch_size: int = 64) -> Any:
        """Transcripts of raw sources through the codec: a list of :class:`Transcript`, or one
        for one array (frames (S, D), or an image (H, W))."""
        require(self, Predicting)
        check_batch_size(batch_size)
        single = isinstance(inputs, np.ndarray | Tensor) and inputs.ndim == 2
        items = [inputs] if single else list(inputs)
        if not items:
            raise ValueError("inputs: expected at least one source, got none")
        out: list[Transcript] = []
        for start in range(0, len(items), batch_size):
            source, lengths = self.codec.source_batch(items[start : start + batch_size])
            rows = PairBatch(source, lengths, lengths.new_zeros(len(lengths), 1), lengths * 0)
            for ids, score in self.decode_scored(rows, beam):
                tokens = self.codec.target_tokens(ids)
                out.append(Transcript(self.codec.decode_target(ids), tokens, score))
        return out[0] if single else out


def _shape(x: Any) -> Any:
    return tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
