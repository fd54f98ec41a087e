"""``MelodyModel``: a :class:`LanguageModel` over whole melodies of note-event tokens.

The same next-token model and loss (nats per predicted token), read one melody per row::

    inputs  = <bos> e_1 ... e_n          # (B, T) event ids, <pad> after a melody's end
    targets = e_1 ... e_n <eos>          # the next event; the end of the melody is predicted too

so the loss is the negative log-likelihood per event, with the end counted as one event.
``generate`` starts from ``<bos>`` (and the events of the prime, if any) and stops at the
first ``<eos>`` it draws, or after ``length`` events: a whole new melody, which the codec
(:class:`~rnnkit.data.codec.MelodyCodec`) writes as MIDI (``rnnkit generate RUN --out x.mid``).
The decoding steps (``step``, ``prime``) never offer ``<pad>``, ``<unk>`` or ``<bos>``: their
logits are -inf, so a sample holds events and its end only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rnnkit.models.contract import ModelContractError
from rnnkit.models.language_model import LanguageModel

__all__ = ["MelodyModel"]


class MelodyModel(LanguageModel):
    """A language model of melodies, one per row (see the module docstring)."""

    kind = "melody model"

    def _events_only(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) with <pad>, <unk> and <bos> at -inf (none is an event to draw)."""
        v = self.codec.vocab if self.codec is not None else None
        specials = [v.pad_id, v.unk_id, v.bos_id] if v is not None else [0, 1, 2]
        return logits.index_fill(-1, torch.tensor(specials, device=logits.device), -torch.inf)

    def step(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits (B, V) of the event after ``tokens`` (B,), special tokens excluded."""
        logits, state = super().step(tokens, state)
        return self._events_only(logits), state

    def prime(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Run a prefix (B, P); logits (B, V) of the event after it (specials excluded)."""
        logits, state = super().prime(tokens, state)
        return self._events_only(logits), state

    @torch.no_grad()
    def generate(
        self,
        prime: str,
        length: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> str:
        """A melody that opens with the events of ``prime`` (``"p67_1.0 p69_0.5"``; empty:
        from the start) and runs to its drawn end or ``length`` new events; returns the new
        events' text, each token preceded by a space (``on_text`` receives them as drawn)."""
        from rnnkit.decoding import generate

        if self.codec is None:
            raise ModelContractError(
                "the melody model has no codec to read events with (load it with rnnkit.load)"
            )
        vocab = self.codec.vocab
        ids = [vocab.bos_id, *self.codec.encode(prime)]
        pieces: list[str] = []

        def emit(token: torch.Tensor) -> None:
            if int(token[0]) == vocab.eos_id:
                return
            pieces.append(self.codec.piece(int(token[0])))
            if on_text is not None:
                on_text(pieces[-1])

        was_training = self.training
        self.eval()
        prefix = torch.tensor([ids], device=self.head.weight.device)  # (1, P)
        try:
            generate(
                self,
                prefix,
                length,
                temperature,
                top_k,
                top_p,
                seed,
                eos_id=vocab.eos_id,
                on_token=emit,
            )
        finally:
            self.train(was_training)
        return "".join(pieces)
