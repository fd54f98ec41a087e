"""``PianoRollModel``: polyphonic music as a recurrent net with an independent sigmoid per pitch.

The model of Boulanger-Lewandowski et al. (2012, their "RNN" baseline) and of the JSB
Chorales results of Bai et al. (2018). For a piano roll y_1..y_T in {0, 1}^P (P pitches, one
frame every so many quarter notes) the recurrent stack reads the previous frame and predicts
every pitch of the next one independently::

    x_t = y_{t-1}  (x_1 = 0)                       # (B, T, P) the frame before, dropout
    h_t, s_t = RNN(x_t, s_{t-1})                   # (B, T, H) rk.LSTM / rk.GRU / rk.RNN
    z_t = W_o dropout(h_t) + b_o                   # (B, T, P) one logit per pitch
    p(y_t | y_<t) = prod_k σ(z_tk)^y_tk (1 - σ(z_tk))^(1 - y_tk)
    NLL_t = -sum_k [y_tk log σ(z_tk) + (1 - y_tk) log(1 - σ(z_tk))]     # nats per frame
    L = mean over the frames of the batch of NLL_t

L is the "negative log-likelihood per frame" published for JSB Chorales. The model is
trainable, stepping (``step(frame (B, P), state) -> (logits (B, P), state)``) and
traceable; with its codec (:class:`~rnnkit.data.codec.PianoRollCodec`) it samples new
frames from text: ``model.generate("", 64, temperature=0.8)`` draws each pitch of each frame
from its Bernoulli (temperature T scales the logits: σ(z / T); T = 0 keeps the pitches with
σ(z) > 1/2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rnnkit.data.batches import SequenceBatch
from rnnkit.kernels.dense import Linear
from rnnkit.layers import stepping
from rnnkit.models.contract import ModelContractError
from rnnkit.models.encoder import RecurrentConfig, build_encoder

__all__ = ["PianoRollConfig", "PianoRollModel"]


@dataclass(frozen=True, kw_only=True)
class PianoRollConfig(RecurrentConfig):
    pitches: int  # P, columns of the piano roll (set by the data)
    frame_dropout: float = 0.0  # drop each pitch of the input frame with this probability
    # RecurrentConfig's dropout applies between layers and before the output layer

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.pitches, bool) or not isinstance(self.pitches, int) or self.pitches < 1:
            raise ValueError(f"pitches must be an integer >= 1, got {self.pitches!r}")
        if not 0.0 <= self.frame_dropout < 1.0:
            raise ValueError(f"frame_dropout must be in [0, 1), got {self.frame_dropout!r}")


class PianoRollModel(nn.Module):
    """Next-frame model of a piano roll (see the module docstring for the equations).

    ``batch.inputs`` (B, T, P) holds frame t - 1 at step t, ``batch.targets`` (B, T, P) frame
    t, both {0, 1} (bool or float); ``batch.mask`` (B, T) the frames that count. A padded
    batch gives each row the loss it has alone (the recurrence reads left to right, and
    padding comes after a row's last frame).
    """

    kind = "piano-roll model"
    config_cls = PianoRollConfig

    def __init__(self, config: PianoRollConfig, codec: Any = None) -> None:
        super().__init__()
        self.config = c = config
        self.codec = codec  # a PianoRollCodec, for generate
        self.frame_drop = nn.Dropout(c.frame_dropout)
        self.rnn = build_encoder(c.pitches, c)
        self.drop = nn.Dropout(c.dropout)
        self.head = Linear(c.hidden_size, c.pitches)

    # ---- checkpoint contract --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any], codec: Any = None) -> PianoRollModel:
        return cls(PianoRollConfig(**config), codec)

    # ---- forward ----------------------------------------------------------------------------
    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        return self.frame_drop(x.to(self.head.weight.dtype))

    def forward(self, frames: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits (B, T, P) of frames 1..T from the previous frames (B, T, P), and the state."""
        h, state = self.rnn(self._frames(frames), state)  # (B, T, H)
        return self.head(self.drop(h)), state  # (B, T, P)

    def frame_nll(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """NLL_t (B, T): the Bernoulli NLL of each frame, summed over its P pitches."""
        y = targets.to(logits.dtype)
        bce = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return bce.sum(-1)  # (B, T)

    def _loss(self, logits: torch.Tensor, batch: SequenceBatch) -> tuple[torch.Tensor, dict]:
        mask = batch.mask.to(logits.dtype)  # (B, T)
        nll = (self.frame_nll(logits, batch.targets) * mask).sum() / mask.sum().clamp(min=1)
        return nll, {"nll_per_frame": float(nll.detach())}

    def loss(self, batch: SequenceBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean NLL per frame in nats (also reported as ``nll_per_frame``)."""
        logits, _ = self(batch.inputs)
        return self._loss(logits, batch)

    def trace(self, batch: SequenceBatch) -> tuple[torch.Tensor, Any]:
        """The loss and the recurrent layer's per-step trace (the loop path)."""
        tr = self.rnn.trace(self._frames(batch.inputs))
        return self._loss(self.head(self.drop(tr.output)), batch)[0], tr

    # ---- decoding contract ------------------------------------------------------------------
    def step(self, frame: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits (B, P) of the frame after ``frame`` (B, P), one recurrent step from ``state``."""
        h, state = self.rnn.step(self._frames(frame), state)  # (B, H)
        return self.head(self.drop(h)), state  # (B, P)

    @torch.no_grad()
    def sample(
        self,
        prime: torch.Tensor,
        length: int,
        temperature: float = 1.0,
        seed: int | None = None,
        on_frame: Callable[[torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """``length`` new frames (length, P) bool after the frames ``prime`` (S, P), S >= 0.

        Each pitch k of frame t is drawn from Bernoulli(σ(z_tk / temperature)) given the frames
        drawn before it; temperature 0 keeps the pitches with z_tk > 0.
        """
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"length: expected an integer >= 0, got {length!r}")
        if not (temperature >= 0 and temperature != float("inf")):
            raise ValueError(f"temperature: expected a finite number >= 0, got {temperature!r}")
        p = self.config.pitches
        device = self.head.weight.device
        generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
        frames = torch.cat([torch.zeros(1, p, device=device), prime.to(device).float()])
        logits, state = self(frames.unsqueeze(0))  # (1, S + 1, P)
        z = logits[:, -1]  # (1, P): the frame after the prime
        out = []
        with stepping(self):
            for i in range(length):
                if temperature == 0:
                    frame = z > 0
                else:
                    probs = torch.sigmoid(z / temperature)
                    frame = torch.rand(probs.shape, generator=generator, device=device) < probs
                out.append(frame[0].cpu())
                if on_frame is not None:
                    on_frame(out[-1])
                if i < length - 1:
                    z, state = self.step(frame.float(), state)
        return torch.stack(out) if out else torch.zeros(0, p, dtype=torch.bool)

    def generate(
        self,
        prime: str,
        length: int = 64,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> str:
        """Continue the frames of the text ``prime`` (``"60.64.67 -"``; empty: from silence,
        as a piece starts) by ``length`` frames; returns their text, one word per frame, each
        preceded by a space. ``on_text`` receives each frame's word as it is drawn."""
        if self.codec is None:
            raise ModelContractError(
                "the piano-roll model has no codec to read frames with (load it with rnnkit.load)"
            )
        for name, value in (("top_k", top_k), ("top_p", top_p)):
            if value is not None:
                raise ValueError(
                    f"{name}: a piano-roll model draws every pitch on its own (a Bernoulli "
                    "each), so there is no list of tokens to cut; use the temperature"
                )
        prime_roll = self.codec.encode(prime)  # (S, P)
        pieces: list[str] = []

        def emit(frame: torch.Tensor) -> None:
            pieces.append(" " + self.codec.frame_text(frame))
            if on_text is not None:
                on_text(pieces[-1])

        was_training = self.training
        self.eval()
        try:
            self.sample(prime_roll, length, temperature, seed, on_frame=emit)
        finally:
            self.train(was_training)
        return "".join(pieces)
