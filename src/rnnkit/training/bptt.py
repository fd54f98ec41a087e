"""Backpropagation through time, in full or truncated to chunks of k steps.

Full BPTT runs the whole batch forward, then backward through every step. Truncated BPTT
(``k > 0``) cuts the batch into chunks of k steps (:meth:`SequenceBatch.time_chunks`) and for
each chunk ``c``:

    loss_c, h_c = model.carry_loss(chunk_c, h_{c-1})   # forward k steps from the carried state
    update(loss_c)                                      # backward through these k steps, step
    h_c = detach(h_c)                                   # the next chunk starts from its value

so gradients flow back at most k steps while the forward pass still sees the whole sequence.
When ``k >= T`` there is one chunk and truncated BPTT is full BPTT. A model taking part in
truncated BPTT provides ``carry_loss(batch, state) -> (loss, metrics, state)``; sequences whose
``lengths`` is 0 in a chunk (they ended earlier) must leave their carried state unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch

from rnnkit.data.batches import SequenceBatch
from rnnkit.models.contract import Carrying, Trainable

State = Any  # a tensor, or a tuple of tensors (LSTM's (h, c)), or None before the first chunk


TrainableModel = Trainable  # the protocols live with the models (rnnkit.models.contract)
CarryingModel = Carrying


def detach_state(state: State) -> State:
    """The same state cut from the autograd graph (tensors, tuples and lists of tensors)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


@dataclass
class ChunkResult:
    loss: float  # mean loss over the chunk's targets
    n_targets: int  # targets in the chunk on this process
    metrics: dict[str, float] = field(default_factory=dict)  # the model's metrics


#: after_chunk(chunks done, the batch's chunks, carried state, the chunk's result)
#: -> True to stop the batch there
AfterChunk = Callable[[int, int, State, "ChunkResult"], bool]


def run_bptt(
    model: Any,
    batch: SequenceBatch,
    tbptt: int,
    update: Callable[[torch.Tensor, int], None],
    forward_context: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
    start: int = 0,
    state: State = None,
    after_chunk: AfterChunk | None = None,
) -> list[ChunkResult]:
    """Run one batch forward and call ``update(loss, n_targets)`` once per chunk.

    Args:
        model: a :class:`TrainableModel`; also a :class:`CarryingModel` when ``tbptt > 0``.
        batch: the sequences, (B, T, ...).
        tbptt: chunk length k; 0 means full BPTT (one chunk, ``model.loss``).
        update: called with the chunk's loss (still in the graph) and its number of targets;
            it does the backward pass and the optimizer step.
        forward_context: makes the context each forward pass and loss run in (autocast for
            mixed precision); ``update`` runs outside it.
        start, state: under truncated BPTT, the chunks already done and the state they
            carried (detached), to continue a batch where a checkpoint left it.
        after_chunk: under truncated BPTT, called after each chunk's update (see
            :data:`AfterChunk`); True stops the batch there (the trainer saves its position
            or stops on a limit).

    Returns:
        One :class:`ChunkResult` per chunk run (from ``start``), in time order.
    """
    if tbptt == 0:
        with forward_context():
            loss, metrics = model.loss(batch)
        update(loss, batch.n_targets)
        return [ChunkResult(float(loss.detach()), batch.n_targets, dict(metrics))]
    if not isinstance(model, Carrying):
        raise TypeError(f"tbptt={tbptt} needs a model with carry_loss(batch, state)")
    results = []
    chunks = list(batch.time_chunks(tbptt))  # views of the batch
    for index, chunk in enumerate(chunks):
        if index < start:
            continue
        with forward_context():
            loss, metrics, state = model.carry_loss(chunk, state)
        update(loss, chunk.n_targets)
        state = detach_state(state)
        results.append(ChunkResult(float(loss.detach()), chunk.n_targets, dict(metrics)))
        if after_chunk is not None and after_chunk(index + 1, len(chunks), state, results[-1]):
            break
    return results


def merge_results(results: list[ChunkResult]) -> ChunkResult:
    """Target-weighted mean of chunk losses and metrics (chunks without targets weigh 0)."""
    n = sum(r.n_targets for r in results)
    if n == 0:
        return ChunkResult(0.0, 0, {})
    loss = sum(r.loss * r.n_targets for r in results) / n
    keys = {k for r in results if r.n_targets for k in r.metrics}
    metrics = {
        k: sum(r.metrics.get(k, 0.0) * r.n_targets for r in results) / n for k in sorted(keys)
    }
    return ChunkResult(loss, n, metrics)
