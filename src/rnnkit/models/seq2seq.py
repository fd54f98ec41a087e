r"""``Seq2Seq``: an encoder-decoder with attention, for translation, G2P and captioning.

The encoder reads a source x_1..x_S: token ids (embedded), feature frames, or an image read
column by column after a small convolutional stack. The decoder generates y_1..y_U, one
token at a time, from ``<bos>``; its first state comes from the encoder's last one::

    m_1..m_S, (h_S, c_S) = Encoder(x_1..x_S)          # memory (B, S, K), K = dirs * H
    s_0 = tanh(W_b [h_S^fwd; h_S^bwd])                 # bridge, per decoder layer ("linear")

Attention (:mod:`rnnkit.attention`, masked on source padding) and the step t, for each
``attention`` setting (e_t = E[y_{t-1}], the target embedding)::

    "none"                 s_t = RNN(e_t, s_{t-1});                 o_t = s_t
    "bahdanau" (additive)  c_t = Attn(s_{t-1}, m);  s_t = RNN([e_t; c_t], s_{t-1})
                           o_t = tanh(W_c [c_t; s_t])
    "dot" | "general" | "concat" (Luong)
                           s_t = RNN([e_t; o_{t-1}], s_{t-1})   (input feeding; e_t alone
                           without it);  c_t = Attn(s_t, m);  o_t = tanh(W_c [c_t; s_t])
    p(y_t | y_<t, x) = softmax(W_o dropout(o_t) + b_o)        # (B, V)

o_t is the attentional vector (size H_d, the decoder's hidden size, K by default). With
``tie_embeddings`` W_o is the target embedding E (a projection H_d -> D between when the sizes
differ); with ``share_embeddings`` source and target share one embedding (one vocabulary).
Training is teacher forcing: the loss is the mean over target tokens (``<eos>`` included) of
-log p(y_t | y_<t, x), with optional label smoothing; the model reports perplexity and token
accuracy.

The model is trainable and stepping (:mod:`rnnkit.models.contract`): ``encode(source,
lengths)`` gives the decoder's first state, ``step(tokens, state)`` one more token from it
with O(1) work (the state holds the memory, not the prefix), and ``reorder_state`` selects
beams, so greedy decoding, sampling and beam search in :mod:`rnnkit.decoding` run on it
unchanged. With a codec (``rnnkit.load``) it translates raw input::

    model.translate(["In the beginning God created the heavens"], beam=5)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from rnnkit.attention import Attention, lengths_to_mask
from rnnkit.data.batches import PairBatch
from rnnkit.errors import ShapeError
from rnnkit.kernels.dense import Linear
from rnnkit.layers import stepping
from rnnkit.models.contract import Explanation, ModelContractError, check_batch_size
from rnnkit.models.encoder import CELLS, RecurrentConfig, build_encoder

__all__ = ["DecoderState", "Seq2Seq", "Seq2SeqConfig", "Seq2SeqEnsemble", "Translation"]

ATTENTION = ("none", "bahdanau", "dot", "general", "concat")
BOS, EOS, PAD = 2, 3, 0  # rnnkit.data.vocab's fixed ids
# the config fields the data sets (the kind and size of the source, the output vocabulary):
# what ensembled models must share
DATA_FIELDS = (
    "source_vocab_size",
    "target_vocab_size",
    "source_features",
    "image_channels",
    "image_height",
)


@dataclass(frozen=True, kw_only=True)
class Seq2SeqConfig(RecurrentConfig):
    # the encoder: RecurrentConfig's cell, hidden_size (H per direction), num_layers, dropout
    target_vocab_size: int  # V, target tokens (set by the data)
    source_vocab_size: int = 0  # > 0: the source is token ids (set by the data)
    source_features: int = 0  # > 0: the source is feature frames (B, S, D) (set by the data)
    image_channels: int = 0  # > 0: the source is images (B, C, H, W) (set by the data)
    image_height: int = 0  # H of those images (set by the data)
    conv_channels: int = 32  # channels of the image encoder's two convolutions
    embedding_size: int = 128  # D, token embeddings (source and target)
    hidden_size: int = 128  # H per encoder direction
    bidirectional: bool = True  # the encoder reads the source both ways
    attention: Literal["none", "bahdanau", "dot", "general", "concat"] = "general"
    input_feed: bool = True  # Luong attention: feed o_{t-1} into the next step
    decoder_cell: str = ""  # a registered cell kind ("": the encoder's)
    decoder_layers: int = 0  # stacked decoder layers (0: the encoder's num_layers)
    decoder_hidden_size: int = 0  # H_d (0: K, the encoder's output size)
    bridge: Literal["linear", "zero"] = "linear"  # the decoder's first state
    tie_embeddings: bool = False  # W_o is the target embedding E
    share_embeddings: bool = False  # one embedding for source and target (shared vocab)
    label_smoothing: float = 0.0  # epsilon of the smoothed cross-entropy

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target_vocab_size < 5:
            raise ValueError(f"target_vocab_size must be >= 5, got {self.target_vocab_size}")
        sources = [
            n
            for n in ("source_vocab_size", "source_features", "image_channels")
            if getattr(self, n)
        ]
        if len(sources) != 1:
            raise ValueError(
                "exactly one of source_vocab_size, source_features, image_channels must be "
                f"> 0 (the kind of source), got {sources or 'none'}"
            )
        for name in ("conv_channels", "embedding_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("decoder_layers", "decoder_hidden_size", "image_height"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.image_channels and self.image_height < 1:
            raise ValueError("image_height must be >= 1 with image_channels > 0")
        if self.attention not in ATTENTION:
            raise ValueError(f"attention must be one of {ATTENTION}, got {self.attention!r}")
        if self.conv_channels != 32 and not self.image_channels:
            raise ValueError(
                f"conv_channels={self.conv_channels} sizes the image encoder; this source is not "
                "an image"
            )
        if not self.input_feed and self.attention in ("none", "bahdanau"):
            raise ValueError(
                f"input_feed=False applies to Luong attention (dot, general, concat); "
                f"attention={self.attention!r} has no attentional vector to feed or not, so "
                "leave input_feed true"
            )
        if self.decoder_cell and self.decoder_cell not in CELLS:
            raise ValueError(
                f"decoder_cell must be one of {sorted(CELLS)}, got {self.decoder_cell!r}"
            )
        if self.bridge not in ("linear", "zero"):
            raise ValueError(f"bridge must be 'linear' or 'zero', got {self.bridge!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.share_embeddings and self.source_vocab_size != self.target_vocab_size:
            raise ValueError(
                "share_embeddings=True needs one vocabulary: source_vocab_size="
                f"{self.source_vocab_size} but target_vocab_size={self.target_vocab_size}"
            )
        if self.attention == "dot" and self.decoder_hidden_size not in (0, self.memory_size):
            raise ValueError(
                f"attention='dot' scores s_t against the memory directly, so decoder_hidden_size "
                f"must be {self.memory_size} (or 0), got {self.decoder_hidden_size}"
            )

    @property
    def memory_size(self) -> int:
        """K, the size of each encoder output."""
        return self.hidden_size * (2 if self.bidirectional else 1)

    @property
    def decoder_size(self) -> int:
        """H_d, the decoder's hidden size."""
        return self.decoder_hidden_size or self.memory_size


@dataclass
class DecoderState:
    """What one decoding step needs; every tensor has the batch (or beam) first except the
    recurrent state's, which is torch's (L, B, H) or a tuple of them (LSTM)."""

    hidden: Any  # s_{t-1}
    feed: Tensor | None  # o_{t-1} (B, H_d) for input feeding, else None
    memory: Tensor  # m (B, S, K)
    keys: Tensor  # the attention's precomputed key part (B, S, *) (the memory without one)
    mask: Tensor  # (B, S) bool, true on valid source steps
    weights: Tensor | None = None  # the last step's attention (B, S)

    def select(self, index: Tensor) -> DecoderState:
        """The rows ``index`` of every part (beam search's reordering)."""
        hidden = (
            tuple(h.index_select(1, index) for h in self.hidden)
            if isinstance(self.hidden, tuple)
            else self.hidden.index_select(1, index)
        )

        def rows(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.index_select(0, index)

        return DecoderState(
            hidden,
            rows(self.feed),
            rows(self.memory),  # type: ignore[arg-type]
            rows(self.keys),  # type: ignore[arg-type]
            rows(self.mask),  # type: ignore[arg-type]
            rows(self.weights),
        )


@dataclass(frozen=True)
class Translation:
    """One decoded output: its text, tokens, score and (when asked) attention."""

    text: str  # detokenized output
    tokens: list[str]  # output tokens, without <eos>
    score: float  # summed log-probability (<eos> included)
    source_tokens: list[str]  # the source as the model read it
    attention: Tensor | None = None  # (U, S) weights, U = len(tokens) + 1 (the <eos> step)
    alternatives: list[Translation] = dataclasses.field(default_factory=list)  # n-best, 2nd on

    def __str__(self) -> str:
        return self.text


class ImageColumns(nn.Module):
    """Two 3x3 convolutions with ReLU, each followed by max-pooling over height only, so an
    image (B, C, H, W) becomes W columns of C' * (H // 4) features; columns past an image's
    width are zeroed after each convolution, so padding never leaks into valid columns."""

    def __init__(self, channels: int, height: int, conv_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, conv_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(conv_channels, conv_channels, 3, padding=1)
        self.pool1 = nn.MaxPool2d((2, 1)) if height >= 2 else nn.Identity()
        h = height // 2 if height >= 2 else height
        self.pool2 = nn.MaxPool2d((2, 1)) if h >= 2 else nn.Identity()
        h = h // 2 if h >= 2 else h
        self.output_size = conv_channels * h
        self.channels, self.height = channels, height

    def forward(self, images: Tensor, lengths: Tensor) -> Tensor:
        """(B, C, H, W), widths (B,) -> columns (B, W, C' * H')."""
        if images.dim() != 4 or tuple(images.shape[1:3]) != (self.channels, self.height):
            raise ValueError(
                f"images: expected (B, {self.channels}, {self.height}, W), {self.channels} "
                f"channel(s) of {self.height} rows as the model was trained on, got "
                f"{tuple(images.shape)}"
            )
        keep = lengths_to_mask(lengths.to(images.device), images.shape[-1])[:, None, None, :]
        x = images * keep
        x = self.pool1(torch.relu(self.conv1(x)) * keep)
        x = self.pool2(torch.relu(self.conv2(x)) * keep)
        return x.flatten(1, 2).transpose(1, 2)  # (B, W, C' * H')


def _top_state(state: Any, layers: int, directions: int) -> tuple[Tensor, Tensor | None]:
    """The last layer's final h (and c) with the directions side by side: (B, dirs * H)."""
    h, c = state if isinstance(state, tuple) else (state, None)

    def top(x: Tensor) -> Tensor:
        last = x[(layers - 1) * directions :]  # (dirs, B, H)
        return last.transpose(0, 1).flatten(1)  # (B, dirs * H)

    return top(h), (top(c) if c is not None else None)


class _Decoding(nn.Module):
    """Search, scoring and raw input, shared by :class:`Seq2Seq` and
    :class:`Seq2SeqEnsemble`, which each define what is declared here: ``encode(source,
    lengths) -> state``, the stepping contract (``step``, ``reorder_state``),
    ``has_attention`` and ``attention_weights``."""

    codec: Any
    has_attention: bool
    encode: Callable[[Tensor, Tensor], Any]

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def decode(
        self,
        source: Tensor,
        source_lengths: Tensor,
        beam: int = 1,
        n_best: int = 1,
        max_length: int | None = None,
        length_penalty: float = 0.0,
        no_repeat_ngram: int = 0,
    ) -> list[list[tuple[list[int], float]]]:
        """Token ids (without ``<eos>``) and summed log-probabilities of the ``n_best`` best
        outputs per source: greedy (``beam`` 1, one output) or beam search (also at beam 1
        with ``no_repeat_ngram`` > 0: no n-gram twice in an output). Without ``max_length``
        each output stops at 2 n + 10 tokens of its own source length n, so a source decodes
        the same whatever else is in its batch."""
        from rnnkit.decoding import beam_search, generate

        if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
            raise ValueError(f"beam: expected an integer >= 1, got {beam!r}")
        if length_penalty and beam == 1:
            raise ValueError(
                f"length_penalty={length_penalty} ranks the hypotheses of a beam; greedy "
                "decoding (beam 1) has none to rank: give beam > 1"
            )
        b = source.shape[0]
        if max_length is None:  # each source's own limit, 2 n_b + 10: as if decoded alone
            limits = [2 * int(n) + 10 for n in torch.as_tensor(source_lengths).tolist()]
        else:
            limits = [max_length] * b
        state = self.encode(source, source_lengths)
        device = self._device()
        if beam == 1 and n_best == 1 and not no_repeat_ngram:
            start = torch.full((b, 1), BOS, dtype=torch.long, device=device)
            out = generate(self, start, max(limits), temperature=0, state=state, eos_id=EOS)
            rows = out[:, 1:]  # greedy rows are independent: each is cut at its own limit
            logp = self._score(state, rows, torch.tensor(limits, device=device))
            return [
                [(_cut(r.tolist()[:limit]), s)]
                for r, s, limit in zip(rows, logp.tolist(), limits, strict=True)
            ]
        start = torch.full((b,), BOS, dtype=torch.long, device=device)
        hyps = beam_search(
            self,
            start,
            beam_size=beam,
            max_length=limits,
            eos_id=EOS,
            length_penalty=length_penalty,
            state=state,
            n_best=n_best,
            no_repeat_ngram=no_repeat_ngram,
        )
        return [[(_cut(h.tokens), float(h.score)) for h in row] for row in hyps]

    def _score(self, state: DecoderState, rows: Tensor, limits: Tensor) -> Tensor:
        """Summed log-probability of each row's tokens up to and with its first ``<eos>``,
        and at most its limit's many (B,)."""
        tokens = torch.cat([rows.new_full((rows.shape[0], 1), BOS), rows], 1)
        total = None
        alive = torch.ones(rows.shape[0], dtype=torch.bool, device=rows.device)
        with stepping(self):
            for t in range(rows.shape[1]):
                alive &= t < limits
                logits, state = self.step(tokens[:, t], state)
                logp = logits.log_softmax(-1).gather(1, rows[:, t : t + 1]).squeeze(1)
                total = logp * alive if total is None else total + logp * alive
                alive &= rows[:, t] != EOS
        return total if total is not None else torch.zeros(rows.shape[0], device=rows.device)

    def translate(
        self,
        inputs: Any,
        beam: int = 1,
        n_best: int = 1,
        max_length: int | None = None,
        length_penalty: float = 0.0,
        attention: bool = False,
        batch_size: int = 64,
        no_repeat_ngram: int = 0,
    ) -> Any:
        """Decode raw sources (texts, images or frame arrays) with the model's codec: a list
        of :class:`Translation`, or one for one text.

        Greedy with ``beam`` 1, beam search otherwise (``length_penalty`` alpha of GNMT;
        ``no_repeat_ngram`` n > 0 blocks any n-gram from repeating in an output);
        each :class:`Translation` has the best output and the next ``n_best - 1`` in
        ``alternatives``; with ``attention`` its (U, S) attention matrix too.
        """
        check_batch_size(batch_size)
        if self.codec is None:
            raise ModelContractError(
                "the encoder-decoder has no codec to read raw input with (load it with "
                "rnnkit.load, or give Seq2Seq(config, codec))"
            )
        if isinstance(inputs, str):
            return self.translate(
                [inputs],
                beam,
                n_best,
                max_length,
                length_penalty,
                attention,
                batch_size,
                no_repeat_ngram,
            )[0]
        was_training = self.training
        self.eval()
        device = self._device()
        # decode in chunks of similar source length (less padding), answer in input order
        inputs = list(inputs)
        order = sorted(range(len(inputs)), key=lambda i: len(self.codec.source_tokens(inputs[i])))
        out: list[Translation | None] = [None] * len(inputs)
        try:
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                chunk = [inputs[i] for i in index]
                source, lengths = self.codec.source_batch(chunk)
                source = source.to(device)
                rows = self.decode(
                    source, lengths, beam, n_best, max_length, length_penalty, no_repeat_ngram
                )
                for j, row in enumerate(rows):
                    found = [self._translation(chunk[j], ids, s) for ids, s in row]
                    best = found[0]
                    if attention and self.has_attention:
                        one = source[j : j + 1, ..., : int(lengths[j])]
                        if self.codec.source_kind == "frames":
                            one = source[j : j + 1, : int(lengths[j])]
                        w = self.attention_weights(one, lengths[j : j + 1], row[0][0])
                        best = dataclasses.replace(best, attention=w)
                    out[index[j]] = dataclasses.replace(best, alternatives=found[1:])
        finally:
            self.train(was_training)
        return out

    def _translation(self, source: Any, ids: list[int], score: float) -> Translation:
        codec = self.codec
        return Translation(
            codec.decode_target(ids), codec.target_tokens(ids), score, codec.source_tokens(source)
        )

    @torch.no_grad()
    def explain(self, batch: PairBatch, n: int = 3) -> list[Explanation]:
        """For the first ``n`` rows of ``batch``: the attention (U, S) of the greedy output,
        the source tokens (column numbers for images), the output tokens with ``<eos>`` and,
        for an image, the image (H, W); nothing without attention (``attention='none'``)."""
        if not self.has_attention:
            return []
        was_training = self.training
        self.eval()
        out = []
        try:
            device = self._device()
            for b in range(min(n, batch.size)):
                length = batch.source_lengths[b : b + 1]
                s = int(length)
                src = batch.source[b : b + 1]
                src = (src[..., :s] if src.dim() == 4 else src[:, :s]).to(device)
                ids = self.decode(src, length)[0][0][0]
                weights = self.attention_weights(src, length, ids)
                if self.codec is not None and self.codec.source_vocab is not None:
                    source = self.codec.source_vocab.decode(src[0].tolist(), strip_specials=False)
                else:
                    source = [str(i) for i in range(s)]
                target = self.codec.target_vocab.decode(ids) if self.codec is not None else []
                if self.codec is None:
                    target = [str(i) for i in ids]
                image = src[0].mean(0).cpu() if src.dim() == 4 else None  # channels averaged
                out.append(Explanation(weights, source, [*target, "<eos>"], image))
        finally:
            self.train(was_training)
        return out

    def predict(self, inputs: Any) -> Any:
        """Greedy outputs for raw sources (:meth:`translate` with its defaults)."""
        return self.translate(inputs)


class Seq2Seq(_Decoding):
    """Encoder-decoder with attention (see the module docstring for the equations)."""

    kind = "encoder-decoder"
    config_cls = Seq2SeqConfig

    def __init__(self, config: Seq2SeqConfig, codec: Any = None) -> None:
        super().__init__()
        self.config = c = config
        self.codec = codec  # a PairCodec, for translate(texts)
        self.drop = nn.Dropout(c.dropout)
        # ---- encoder
        self.source_embedding: nn.Embedding | None = None
        self.columns: ImageColumns | None = None
        if c.source_vocab_size:
            self.source_embedding = nn.Embedding(c.source_vocab_size, c.embedding_size)
            source_size = c.embedding_size
        elif c.image_channels:
            self.columns = ImageColumns(c.image_channels, c.image_height, c.conv_channels)
            source_size = self.columns.output_size
        else:
            source_size = c.source_features
        self.encoder = build_encoder(source_size, c)
        # ---- decoder
        k, hd = c.memory_size, c.decoder_size
        self.decoder_layers = c.decoder_layers or c.num_layers
        self.target_embedding = nn.Embedding(c.target_vocab_size, c.embedding_size)
        if c.share_embeddings:
            self.target_embedding.weight = self.source_embedding.weight  # type: ignore[union-attr]
        extra = {"none": 0, "bahdanau": k}.get(c.attention, hd if c.input_feed else 0)
        self.decoder = build_encoder(
            c.embedding_size + extra,
            c,
            cell=c.decoder_cell or c.cell,
            hidden_size=hd,
            num_layers=self.decoder_layers,
            bidirectional=False,
            recurrent_scale=0.0,
        )
        self.feeds = c.attention not in ("none", "bahdanau") and c.input_feed
        self.attention: Attention | None = None
        self.combine: nn.Linear | None = None
        if c.attention != "none":
            score = "additive" if c.attention == "bahdanau" else c.attention
            self.attention = Attention(hd, k, score)
            self.combine = Linear(k + hd, hd, bias=False)  # W_c
        # ---- bridge: the top encoder layer's final state -> every decoder layer's first one
        self.state_parts = self.decoder.cells[0].state_size  # 2 for (h, c), else 1
        self.bridge: nn.ModuleList | None = None
        if c.bridge == "linear":
            self.bridge = nn.ModuleList(
                Linear(k, self.decoder_layers * hd) for _ in range(self.state_parts)
            )
        # ---- output
        self.proj: nn.Linear | None = None
        out_in = hd
        if c.tie_embeddings:
            if hd != c.embedding_size:
                self.proj = Linear(hd, c.embedding_size, bias=False)
            out_in = c.embedding_size
        self.head = Linear(out_in, c.target_vocab_size)
        self.register_buffer("_never", torch.tensor([PAD, BOS]), persistent=False)
        if c.tie_embeddings:
            self.head.weight = self.target_embedding.weight

    @property
    def has_attention(self) -> bool:
        return self.attention is not None

    # ---- checkpoint contract --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any], codec: Any = None) -> Seq2Seq:
        return cls(Seq2SeqConfig(**config), codec)

    # ---- encoder ----------------------------------------------------------------------------
    def encode(self, source: Tensor, source_lengths: Tensor) -> DecoderState:
        """The decoder's first state for a batch of sources (ids (B, S), frames (B, S, D) or
        images (B, C, H, W)) of ``source_lengths`` (B,) valid steps."""
        c = self.config
        lengths = source_lengths.to("cpu", torch.int64)
        if self.source_embedding is not None:
            x = self.drop(self.source_embedding(source))  # (B, S, D)
        elif self.columns is not None:
            x = self.columns(source, lengths)  # (B, W, C' H')
        else:
            x = source
        memory, final = self.encoder(x, None, lengths)  # (B, S, K)
        mask = lengths_to_mask(lengths.to(memory.device), memory.shape[1])  # (B, S)
        b, hd, layers = memory.shape[0], c.decoder_size, self.decoder_layers
        if self.bridge is None:
            parts = [memory.new_zeros(layers, b, hd) for _ in range(self.state_parts)]
        else:
            h, cell = _top_state(final, c.num_layers, 2 if c.bidirectional else 1)
            sources = [h, cell if cell is not None else h][: len(self.bridge)]

            def bridged(linear: nn.Linear, x: Tensor) -> Tensor:
                return torch.tanh(linear(x)).view(b, layers, hd).transpose(0, 1).contiguous()

            parts = [bridged(lin, x) for lin, x in zip(self.bridge, sources, strict=True)]
        hidden: Any = tuple(parts) if len(parts) > 1 else parts[0]
        keys = self.attention.precompute(memory) if self.attention is not None else memory
        feed = memory.new_zeros(b, hd) if self.feeds else None
        return DecoderState(hidden, feed, memory, keys, mask)

    # ---- decoder ----------------------------------------------------------------------------
    def _attend(self, query: Tensor, state: DecoderState) -> tuple[Tensor, Tensor]:
        assert self.attention is not None
        return self.attention(query, state.memory, state.mask, projected=state.keys)

    def _step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """o_t (B, H_d) and the state after one target token (B,)."""
        e = self.drop(self.target_embedding(tokens))  # (B, D)
        c = self.config
        weights = None
        if c.attention == "bahdanau":
            h_prev = state.hidden[0] if isinstance(state.hidden, tuple) else state.hidden
            context, weights = self._attend(h_prev[-1], state)  # from s_{t-1}
            s, hidden = self.decoder.step(torch.cat([e, context], 1), state.hidden)
        else:
            x = torch.cat([e, state.feed], 1) if self.feeds else e
            s, hidden = self.decoder.step(x, state.hidden)
            if self.attention is not None:
                context, weights = self._attend(s, state)
        o = s
        if self.combine is not None:
            o = torch.tanh(self.combine(torch.cat([context, s], 1)))  # (B, H_d)
        new = DecoderState(
            hidden, o if self.feeds else None, state.memory, state.keys, state.mask, weights
        )
        return o, new

    def _logits(self, o: Tensor) -> Tensor:
        o = self.drop(o)
        if self.proj is not None:
            o = self.proj(o)
        return self.head(o)

    def forward(
        self, source: Tensor, source_lengths: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: logits (B, U, V) of every target token given the ones before it
        (the decoder reads ``<bos>, y_1 .. y_{U-1}``), and the attention (B, U, S) or None."""
        o, weights = self._outputs(source, source_lengths, target)
        return self._logits(o), weights

    def _outputs(
        self, source: Tensor, source_lengths: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """The attentional vectors o_t (B, U, H_d) under teacher forcing, and the attention."""
        if target.dim() != 2 or target.shape[1] < 1:
            raise ShapeError(
                f"target: expected token ids (B, U) with U >= 1 (the outputs, ending in <eos>), "
                f"got shape {tuple(target.shape)}"
            )
        state = self.encode(source, source_lengths)
        bos = target.new_full((target.shape[0], 1), BOS)
        inputs = torch.cat([bos, target[:, :-1]], 1)  # (B, U)
        if self.attention is None or (self.config.attention != "bahdanau" and not self.feeds):
            # no step depends on the previous one's context: the whole target at once
            e = self.drop(self.target_embedding(inputs))  # (B, U, D)
            s, _ = self.decoder(e, state.hidden)  # (B, U, H_d)
            if self.attention is None:
                return s, None
            context, weights = self._attend(s, state)  # (B, U, K), (B, U, S)
            return torch.tanh(self.combine(torch.cat([context, s], 2))), weights  # (B, U, H_d)
        outs, weights = [], []
        for t in range(inputs.shape[1]):
            o, state = self._step(inputs[:, t], state)
            outs.append(o)
            weights.append(state.weights)
        return torch.stack(outs, 1), torch.stack(weights, 1)

    def loss(self, batch: PairBatch) -> tuple[Tensor, dict[str, float]]:
        """Mean -log p per target token (``<eos>`` included), label-smoothed when set:
        (1 - eps) * -log p(y_t) + eps * mean_v -log p(v), as torch's cross-entropy; the
        metrics are the unsmoothed perplexity and the token accuracy. Logits are computed at
        the valid target positions only (padding costs no output projection)."""
        logp, gold = self.token_log_probs(batch)
        return _smoothed_loss(logp, gold, self.config.label_smoothing)

    def token_log_probs(self, batch: PairBatch) -> tuple[Tensor, Tensor]:
        """log p(. | y_<t, x) (N, V) at the N valid target positions of ``batch`` (teacher
        forcing, row by row) and the gold tokens there (N,)."""
        o, _ = self._outputs(batch.source, batch.source_lengths, batch.target)  # (B, U, H_d)
        mask = lengths_to_mask(batch.target_lengths.to(o.device), batch.target.shape[1])
        logp = self._logits(o[mask]).log_softmax(-1)  # (N, V), N valid target tokens
        return logp, batch.target.to(o.device)[mask]

    # ---- decoding contract ------------------------------------------------------------------
    def step(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, DecoderState]:
        """Logits (B, V) of the token after ``tokens`` (B,) and the new state: one decoder
        step from ``state``, which :meth:`encode` starts (there is no state without a source).
        ``<pad>`` and ``<bos>`` get -inf: a decoder never emits them."""
        if not isinstance(state, DecoderState):
            raise ValueError(
                "state: an encoder-decoder steps from the state encode(source, lengths) returns, "
                f"got {type(state).__name__}"
            )
        o, state = self._step(tokens, state)
        logits = self._logits(o)
        return logits.index_fill(1, self._never, float("-inf")), state

    @torch.no_grad()
    def attention_weights(self, source: Tensor, source_lengths: Tensor, ids: list[int]) -> Tensor:
        """The attention (U, S) of one source (batch of 1) while the decoder reads ``ids`` and
        then ``<eos>`` (forced decoding: the weights the decoder had when it produced them)."""
        target = torch.tensor([[*ids, EOS]], device=source.device)
        _, weights = self(source, source_lengths, target)
        if weights is None:
            raise ModelContractError("the model has no attention (attention='none')")
        return weights[0, :, : int(source_lengths[0])].cpu()

    def reorder_state(self, state: DecoderState, index: Tensor) -> DecoderState:
        """Rows ``index`` of a decoder state (beam search)."""
        return state.select(index.to(state.memory.device))

    def ensemble(self, others: Sequence[Seq2Seq]) -> Seq2SeqEnsemble:
        """This model and ``others`` (same codec and vocabulary sizes) decoding as one
        (:class:`Seq2SeqEnsemble`), with this model's codec."""
        return Seq2SeqEnsemble([self, *others], self.codec)

    def onnx_graphs(self) -> list:
        """``rnnkit export``'s graphs (:mod:`rnnkit.export`), batch and source time dynamic:

        ``encoder``: source (ids (B, S), frames (B, S, D) or images (B, C, H, S)) and
        source_lengths (B,) -> the first decoder state: h (L, B, H_d) (and c), with input
        feeding ``feed`` (B, H_d), with attention ``memory``, ``keys`` and ``mask`` (B, S);
        ``decoder_step``: tokens (B,) and that state -> logits (B, V) and h_next (and
        c_next, feed_next). Search (greedy, beam) runs the step from outside."""
        from rnnkit.export import OnnxGraph, example_lengths

        c = self.config
        hidden = ("h", "c")[: self.state_parts]
        feed = ("feed",) if self.feeds else ()
        memory = ("memory", "keys", "mask") if self.attention is not None else ()

        def source(batch: int, steps: int) -> tuple[Tensor, Tensor]:
            g = torch.Generator().manual_seed(batch * 1000 + steps)
            if c.source_vocab_size:
                x = torch.randint(0, c.source_vocab_size, (batch, steps), generator=g)
            elif c.image_channels:
                x = torch.rand(batch, c.image_channels, c.image_height, steps, generator=g)
            else:
                x = torch.randn(batch, steps, c.source_features, generator=g)
            return x, example_lengths(batch, steps)

        def flat(state: DecoderState) -> tuple[Tensor, ...]:
            h = state.hidden if isinstance(state.hidden, tuple) else (state.hidden,)
            attended = (state.memory, state.keys, state.mask)[: len(memory)]
            return (*h, *(state.feed,) * len(feed), *attended)

        def encoder(x: Tensor, lengths: Tensor) -> tuple[Tensor, ...]:
            return flat(self.encode(x, lengths))

        def step_inputs(batch: int, steps: int) -> tuple[Tensor, ...]:
            with torch.no_grad():
                state = flat(self.encode(*source(batch, steps)))
            g = torch.Generator().manual_seed(batch)
            return torch.randint(0, c.target_vocab_size, (batch,), generator=g), *state

        def step(tokens: Tensor, *parts: Tensor) -> tuple[Tensor, ...]:
            h, parts = parts[: len(hidden)], parts[len(hidden) :]
            f, m = (parts[0], parts[1:]) if feed else (None, parts)
            m = m or (h[0],) * 3  # without attention the step reads no memory
            state = DecoderState(h if len(h) > 1 else h[0], f, *m)
            logits, new = self.step(tokens, state)
            return (logits, *flat(new)[: len(hidden) + len(feed)])

        out = ("logits", *(f"{k}_next" for k in (*hidden, *feed)))
        batched = ("source_lengths", "tokens", "logits", "feed", "feed_next")
        axes = {k: {0: "batch"} for k in batched}
        axes.update({k: {0: "batch", 1: "time"} for k in memory})
        axes.update({k: {1: "batch"} for k in (*hidden, "h_next", "c_next")})
        axes["source"] = {0: "batch", (3 if c.image_channels else 1): "time"}
        graphs = [
            ("encoder", encoder, source, ("source", "source_lengths"), (*hidden, *feed, *memory)),
            ("decoder_step", step, step_inputs, ("tokens", *hidden, *feed, *memory), out),
        ]
        return [
            OnnxGraph(name, self, fn, make, ins, outs, _only(axes, (*ins, *outs)))
            for name, fn, make, ins, outs in graphs
        ]


class Seq2SeqEnsemble(_Decoding):
    r"""M trained encoder-decoders with one codec decoding as one model (OpenNMT-py's ensemble
    rule): each member m encodes the source and steps its own state; at every step their
    log-probabilities are averaged and renormalised, a product of experts::

        log p(y_t = v | y_<t, x) = log_softmax_v( (1/M) sum_m log p_m(v | y_<t, x) )

    so greedy decoding, beam search, :meth:`translate`, scoring and the loss (the same
    p, with the first member's label smoothing) run on it as on one :class:`Seq2Seq`. The
    attention of an output is the members' mean. Built by ``Seq2Seq.ensemble(others)``
    (``rnnkit evaluate RUN --ensemble OTHER``); an ensemble is decoded and evaluated, not
    trained or saved.
    """

    kind = "encoder-decoder ensemble"

    def __init__(self, members: Sequence[Seq2Seq], codec: Any = None) -> None:
        super().__init__()
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"members: an ensemble needs at least 2 models, got {len(members)}")
        for i, m in enumerate(members):
            if not isinstance(m, Seq2Seq):
                raise ModelContractError(
                    f"members[{i}]: a {getattr(m, 'kind', type(m).__name__)} is not an "
                    "encoder-decoder: only Seq2Seq models are ensembled"
                )
        first = members[0].config
        for i, m in enumerate(members[1:], 1):
            for field in DATA_FIELDS:
                a, b = getattr(first, field), getattr(m.config, field)
                if a != b:
                    raise ValueError(
                        f"members[{i}]: {field} is {b}, members[0]'s {a}: ensembled models "
                        "read the same sources and write the same vocabulary"
                    )
        self.members = nn.ModuleList(members)
        self.codec = codec if codec is not None else members[0].codec

    @property
    def has_attention(self) -> bool:
        return all(m.has_attention for m in self.members)

    def encode(self, source: Tensor, source_lengths: Tensor) -> tuple[DecoderState, ...]:
        """Every member's first decoder state."""
        return tuple(m.encode(source, source_lengths) for m in self.members)

    def step(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, tuple[DecoderState, ...]]:
        """log p (B, V) of the token after ``tokens`` (B,) (normalised, so usable as logits)
        and every member's next state."""
        if not isinstance(state, tuple) or len(state) != len(self.members):
            raise ValueError(
                "state: an ensemble steps from the tuple of member states encode(source, "
                f"lengths) returns, got {type(state).__name__}"
            )
        logps, states = [], []
        for m, s in zip(self.members, state, strict=True):
            logits, s = m.step(tokens, s)
            logps.append(logits.log_softmax(-1))
            states.append(s)
        return _mean_log_probs(logps), tuple(states)

    def reorder_state(self, state: tuple[DecoderState, ...], index: Tensor) -> tuple:
        """Rows ``index`` of every member's state (beam search)."""
        return tuple(m.reorder_state(s, index) for m, s in zip(self.members, state, strict=True))

    def loss(self, batch: PairBatch) -> tuple[Tensor, dict[str, float]]:
        """The mean -log p per target token under the ensemble's p (teacher forcing), with the
        first member's label smoothing; perplexity and token accuracy as :class:`Seq2Seq`."""
        parts = [m.token_log_probs(batch) for m in self.members]
        logp = _mean_log_probs([p for p, _ in parts])
        return _smoothed_loss(logp, parts[0][1], self.members[0].config.label_smoothing)

    @torch.no_grad()
    def attention_weights(self, source: Tensor, source_lengths: Tensor, ids: list[int]) -> Tensor:
        """The members' mean attention (U, S) while the decoder reads ``ids`` then ``<eos>``."""
        return torch.stack(
            [m.attention_weights(source, source_lengths, ids) for m in self.members]
        ).mean(0)


def _mean_log_probs(logps: Sequence[Tensor]) -> Tensor:
    """log_softmax of the mean of M log-probability tensors (..., V): their renormalised
    geometric mean. A token every member rules out (-inf) stays -inf."""
    return torch.stack(logps).mean(0).log_softmax(-1)


def _smoothed_loss(logp: Tensor, gold: Tensor, eps: float) -> tuple[Tensor, dict[str, float]]:
    """(1 - eps) * mean -log p(y_t) + eps * mean_t mean_v -log p(v) over N tokens (logp (N, V),
    gold (N,)), with the unsmoothed perplexity and the token accuracy as metrics."""
    nll = -logp.gather(1, gold.unsqueeze(1)).squeeze(1)  # (N,)
    nats = nll.mean()
    loss = (1 - eps) * nats - eps * logp.mean(-1).mean() if eps > 0 else nats
    with torch.no_grad():
        accuracy = float((logp.argmax(-1) == gold).float().mean())
    value = float(nats.detach())
    return loss, {"perplexity": math.exp(min(value, 50.0)), "accuracy": accuracy}


def _only(axes: dict, names: tuple[str, ...]) -> dict:
    """The dynamic axes of the named inputs and outputs of one graph."""
    return {k: v for k, v in axes.items() if k in names}


def _cut(ids: list[int]) -> list[int]:
    """Ids before the first ``<eos>``."""
    return ids[: ids.index(EOS)] if EOS in ids else ids
