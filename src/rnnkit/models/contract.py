"""The contract between models and the code that drives them, as small protocols.

A model offers some of these; the trainer, the decoders, ``rnnkit generate``, ``diagnose``
and ``evaluate`` check the one they need with :func:`require`, which answers a model that
lacks it with one sentence ("runs/sentiment is a classifier: it has no next-token step to
generate with") instead of an AttributeError deep inside::

    Trainable   loss(batch) -> (loss, metrics)                 every model; the trainer
                get_config() -> dict, from_config(dict)         checkpoints rebuild it
    Carrying    carry_loss(batch, state) -> (loss, metrics, state)      truncated BPTT
    Stepping    step(tokens (B,), state) -> (logits (B, V), state)      decoding, generate
    Traceable   trace(batch) -> (loss, LayerTrace)              per-step states: diagnose
    Predicting  predict(inputs) -> predictions                  raw input in (with a codec)
    Translating translate(inputs, beam=, n_best=, attention=)   encoder-decoders: outputs
    Attending   explain(batch, n) -> [Explanation(weights (U, S), source, output, image)]
                                                                attention heatmaps: diagnose
    Classifying confusion(batch) -> (K, K) counts, class_names()    confusion matrices
    Ensembling  ensemble(others) -> a model that decodes as their combination
                                                                evaluate --ensemble

A model's class attribute ``kind`` names it in those sentences ("classifier",
"language model", "tagger", "per-step model").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

__all__ = [
    "Attending",
    "Carrying",
    "Classifying",
    "Ensembling",
    "Explanation",
    "ModelContractError",
    "Predicting",
    "Stepping",
    "Traceable",
    "Trainable",
    "Translating",
    "check_batch_size",
    "describe",
    "require",
]


class ModelContractError(TypeError):
    """A model lacks a method the caller needs; the message says which and why."""


@runtime_checkable
class Trainable(Protocol):
    """What the trainer needs: a loss with metrics, and a config that rebuilds the model."""

    def loss(self, batch: Any) -> tuple[Tensor, dict[str, float]]: ...

    def get_config(self) -> dict[str, Any]: ...


@runtime_checkable
class Carrying(Protocol):
    """A loss that starts from, and returns, a recurrent state (truncated BPTT)."""

    def carry_loss(self, batch: Any, state: Any) -> tuple[Tensor, dict[str, float], Any]: ...


@runtime_checkable
class Stepping(Protocol):
    """One decoding step with a carried state: O(1) work per new token."""

    def step(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, Any]: ...


@runtime_checkable
class Traceable(Protocol):
    """The loss together with the recurrent layer's per-step trace (hidden states, gates)."""

    def trace(self, batch: Any) -> tuple[Tensor, Any]: ...


@runtime_checkable
class Predicting(Protocol):
    """Predictions for raw inputs (texts, sequences), through the model's codec."""

    def predict(self, inputs: Any) -> Any: ...


@runtime_checkable
class Translating(Protocol):
    """Decoded outputs for raw sources (greedy or beam search), through the model's codec."""

    def translate(self, inputs: Any, beam: int = 1, n_best: int = 1) -> Any: ...


@runtime_checkable
class Ensembling(Protocol):
    """This trained model and ``others`` of the same kind and codec combined into one model
    that evaluates and decodes as their ensemble (``rnnkit evaluate RUN --ensemble OTHER``)."""

    def ensemble(self, others: Any) -> Any: ...


@dataclass(frozen=True)
class Explanation:
    """The attention behind one output: what an attention heatmap draws."""

    weights: Tensor  # (U, S): output step u's weights over the S source steps
    source: list[str]  # S labels: source tokens, or column numbers of an image
    target: list[str]  # U labels: the output tokens, <eos> last
    image: Tensor | None = None  # (H, S) for an image source, drawn above the map


@runtime_checkable
class Attending(Protocol):
    """The attention of the model's own outputs on the first ``n`` rows of a batch, with the
    tokens to label its axes."""

    def explain(self, batch: Any, n: int = 3) -> list[Explanation]: ...


@runtime_checkable
class Classifying(Protocol):
    """One class per sequence: the counts of true (rows) against predicted (columns) classes
    of a batch, and the class names in the order of those rows."""

    def confusion(self, batch: Any) -> Tensor: ...

    def class_names(self) -> list[str]: ...


_NEEDS = {
    Trainable: "loss(batch) and get_config() to train with",
    Carrying: "carry_loss(batch, state) to carry its state through truncated BPTT with",
    Stepping: "next-token step to generate with",
    Traceable: "trace(batch) of per-step states to diagnose",
    Predicting: "predict(inputs) for raw input",
    Translating: "translate(inputs) to decode raw input with (it is not an encoder-decoder)",
    Attending: "attention to explain its outputs with",
    Classifying: "single class per sequence to draw a confusion matrix of",
    Ensembling: "ensemble(others) to combine with other runs (only encoder-decoders have one)",
}


def check_batch_size(batch_size: Any) -> None:
    """A ValueError naming ``batch_size`` unless it is an integer >= 1 (the chunk size of the
    models' ``predict``, ``translate`` and the like)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")


def describe(model: Any) -> str:
    """``a classifier``, ``a language model``, or the class name for other models."""
    kind = getattr(type(model), "kind", "") or f"{type(model).__name__} model"
    return f"{'an' if kind[0].lower() in 'aeiou' else 'a'} {kind}"


def require(model: Any, protocol: type, where: str = "", needs: str = "") -> None:
    """Raise :class:`ModelContractError` unless ``model`` implements ``protocol``.

    Args:
        model: the model to check.
        protocol: one of the protocols above.
        where: what the model is called in the message (a run directory); "the model" if "".
        needs: what it lacks, in words (default: the protocol's own phrase).
    """
    if isinstance(model, protocol) and (
        protocol not in (Predicting, Translating) or getattr(model, "codec", None) is not None
    ):
        return
    subject = where or "the model"
    what = needs or _NEEDS.get(protocol, protocol.__name__)
    if protocol in (Predicting, Translating) and isinstance(model, protocol):
        what = "codec to read raw input with (train it through a task, or give the Trainer codec=)"
    raise ModelContractError(f"{subject} is {describe(model)}: it has no {what}")
