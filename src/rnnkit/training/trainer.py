"""One trainer for every model: the loop, BPTT, clipping, checkpoints and resume.

The model meets the contract of :mod:`rnnkit.models.contract`: trainable
(``loss(batch) -> (loss, metrics)``, ``get_config()``) and, for truncated BPTT, carrying
(``carry_loss(batch, state) -> (loss, metrics, state)``), checked with one clear sentence when
the trainer is built; it knows nothing of the loop. The trainer owns the loop and calls back
through events (:mod:`rnnkit.training.callbacks`) for the schedule, logs, progress bars and
early stopping.

One optimizer step per chunk (one per batch under full BPTT):

    g = dL_chunk/dθ                      backward through the chunk's steps
    g = mean over processes of g         data parallel (weighted, see distributed.py)
    g = clip(g)                          global norm, then value
    θ = optimizer(θ, g)

A checkpoint written after batch b of epoch e records (e, b + 1), the step, the optimizer,
schedule and callback states and every RNG state; :meth:`Trainer.resume` restores them and
:meth:`Trainer.fit` continues with batch b + 1 of the same deterministic epoch order, so an
interrupted and resumed run ends with the same weights as an uninterrupted one.

A time budget (``max_minutes``) counts the wall-clock time of :meth:`Trainer.fit`, summed over
resumes. Once a batch ends past it, the run stops there: a mid-epoch stop validates the partial
epoch, then writes a checkpoint (the best one if its validation is), and ``stop_reason`` says
``"max_minutes"``. The checkpoint resumes like any other.

Device and precision (:mod:`rnnkit.training.device`): the model is moved to
``config.device`` before the optimizer is built, and each process's share of every batch is
moved there (pinned, non-blocking) before its forward pass, in training and validation. Under
``config.precision`` "bf16" or "16-mixed" the forward pass and loss run under autocast; the
backward pass, clipping and step run outside it. With "16-mixed" the chunk's update becomes

    g = d(s L)/dθ ; average ; g = g / s ; clip(g) ; θ = optimizer(θ, g) unless g has inf/NaN

where the scaler skips a step whose gradients overflowed (and lowers s) rather than failing:
only a non-finite *loss* is a :class:`NonFiniteLossError` then. Skipped steps still count in
``step`` (the schedule and the checkpoints follow the data) and in the epoch's
``skipped_steps``. The scaler's state is saved in each checkpoint; a checkpoint written on one
device resumes on any other.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnkit.config import ConfigError
from rnnkit.data.batches import EpochBatches
from rnnkit.kernels import dense
from rnnkit.models.contract import Carrying, Trainable, require
from rnnkit.training.bptt import ChunkResult, merge_results, run_bptt
from rnnkit.training.callbacks import (
    Callback,
    EarlyStopping,
    LineLogger,
    MetricsLogger,
    ProgressBar,
    ScheduleCallback,
    TensorBoardLogger,
)
from rnnkit.training.checkpoint import (
    CheckpointError,
    CheckpointManager,
    load_carry,
    load_trainer_state,
    load_weights,
    resolve_moved,
)
from rnnkit.training.clipping import ClipStats, clip_gradients
from rnnkit.training.config import TrainerConfig
from rnnkit.training.device import (
    autocast_context,
    check_precision,
    make_scaler,
    model_device,
    move_batch,
    resolve_device,
)
from rnnkit.training.distributed import DistContext
from rnnkit.training.optim import LRSchedule, build_optimizer

LIMITS = ("max_steps", "max_minutes")  # stop reasons that a resume with a larger limit undoes


class NonFiniteLossError(RuntimeError):
    """The loss (or gradient norm) became NaN or infinite; names the step and the batch."""


@dataclass(frozen=True)
class BatchInfo:
    loss: float  # mean loss of the batch on this process
    sequences: int  # sequences in the global batch
    grad_norm: float  # pre-clipping global gradient norm of the batch's last step


@dataclass(frozen=True)
class StepInfo:
    """One optimizer step (a batch, or one chunk of a batch under truncated BPTT)."""

    loss: float  # mean loss of the step's targets on this process
    targets: int  # targets of the step on this process
    grad_norm: float  # pre-clipping global gradient norm


class Trainer:
    """Train ``model`` on ``train_batches``; validate on ``val_batches`` after every epoch.

    Args:
        model: trainable (``loss``, ``get_config``), and carrying (``carry_loss``) when
            ``config.tbptt > 0`` (:mod:`rnnkit.models.contract`).
        config: the trainer's configuration.
        train_batches: training data: all rows as one batch (:class:`SequenceBatch` or
            :class:`PairBatch`, served in ``config.batch_size`` rows, shuffled per epoch,
            bucketed by length when ``config.bucket``), or an :class:`EpochBatches` (any object
            with ``len()`` and ``epoch(e, start)`` giving the same batches for the same epoch).
            Each batch is the global batch, split over processes by rows.
        val_batches: validation data (a batch or an :class:`EpochBatches`), or None.
        run_dir: where checkpoints and logs go (rank 0 only); None writes nothing. A new run
            directory gets a ``config.json`` that ``rnnkit predict``/``generate`` read.
        callbacks: extra callbacks, called after the built-in ones.
        dist_ctx: the process group; one process by default.
        codec: the task's codec (``to_json()``), saved with each checkpoint.
        task: the registered task name, when the data came from one (``config.json``).
        seed: seed of the per-epoch order when ``train_batches`` is a batch.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainerConfig,
        train_batches: EpochBatches,
        val_batches: EpochBatches | None = None,
        run_dir: str | Path | None = None,
        callbacks: Sequence[Callback] = (),
        dist_ctx: DistContext | None = None,
        codec: Any = None,
        task: str | None = None,
        seed: int = 0,
    ) -> None:
        require(model, Trainable)
        if config.tbptt:
            require(
                model,
                Carrying,
                needs=f"carried state for truncated BPTT "
                f"(trainer.tbptt={config.tbptt}); train it with tbptt = 0",
            )
        self.model, self.config, self.codec = model, config, codec
        self.train_batches = _served(train_batches, config, True, seed)
        self.val_batches = _served(val_batches, config, False, seed)
        self.dist = dist_ctx or DistContext()
        if config.batch_size < self.dist.world:
            raise ConfigError(
                f"trainer.batch_size={config.batch_size} is smaller than the {self.dist.world} "
                "processes: each needs at least one sequence per batch"
            )
        self.device = self._pick_device()
        model.to(self.device)  # before the optimizer, whose state follows the parameters
        self.dist.broadcast_parameters(model)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None and self.dist.is_writer:
            _describe_run(self.run_dir, model, config, task, seed)
        self.optimizer = build_optimizer(model.parameters(), config.optim, config.lr)
        self.scaler = make_scaler(self.device, config.precision)  # "16-mixed" only
        self._forward_context = autocast_context(self.device, config.precision)
        total = config.epochs * self._steps_per_epoch()  # S: with max_steps, the smaller
        self.schedule = LRSchedule(
            config.schedule, config.lr, min(total, config.max_steps or total), config.mode
        )
        self.lr = config.lr
        self.step = 0  # optimizer steps taken
        self.epoch = 0  # current epoch (0-based)
        self.batch_in_epoch = 0  # batches of the current epoch already done
        # truncated BPTT inside the current batch: chunks done and the state they carried
        # (one batch of long sequences may be hundreds of chunks)
        self.chunk_in_batch = 0
        self._carry: Any = None
        self._every_mark = 0  # the step at the previous every_steps check
        self.should_stop = False
        self.history: list[dict[str, float]] = []  # per-epoch metrics
        self.final_metrics: dict[str, float] = {}  # last validation, its step, epochs done
        self.stop_reason = ""  # after fit: epochs, max_steps, max_minutes or early_stopping
        self.seconds = 0.0  # wall-clock time spent in fit, summed over resumes
        self._clock: tuple[float, float] = (0.0, time.monotonic())  # (seconds, monotonic) at fit
        self.clip = ClipStats()
        self.local_sequences = 0  # training sequences this process has run (this session)
        self._batch_index = 0  # index in its epoch of the batch being trained
        self._chunks = 1  # truncated-BPTT chunks of that batch
        self._last_norm = 0.0  # pre-clipping gradient norm of the last step
        self._skipped = 0  # steps of this epoch that the loss scaler skipped (inf gradients)
        self._sums: dict[str, float] = {}  # target-weighted sums of this epoch's train metrics
        self.checkpoints: CheckpointManager | None = None
        if self.run_dir is not None and self.dist.is_writer:
            self.checkpoints = CheckpointManager(
                self.run_dir / "checkpoints", config.checkpoint.keep_last, config.mode
            )
        self.callbacks = self._default_callbacks() + list(callbacks)

    def _pick_device(self) -> torch.device:
        """The configured device (cuda:LOCAL_RANK under torchrun), checked against precision."""
        local_rank = self.dist.local_rank if self.dist.active else None
        device = resolve_device(self.config.device, local_rank)
        if self.dist.backend == "nccl" and device.type != "cuda":
            raise ValueError(f"device={self.config.device!r} is {device}, but NCCL needs CUDA")
        check_precision(self.config.precision, device)
        if device.type == "cuda" and self.config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        return device

    def _steps_per_epoch(self) -> int:
        """Optimizer steps in an epoch: one per batch, or per truncated-BPTT chunk (counted on
        the first epoch's batches when the batches can say, bucketed ones being shorter)."""
        batches, k = self.train_batches, self.config.tbptt
        if not k:
            return len(batches)
        if hasattr(batches, "chunks"):
            return batches.chunks(k)
        steps = getattr(batches, "steps", 0)
        return len(batches) * (math.ceil(steps / k) if steps else 1)

    def _default_callbacks(self) -> list[Callback]:
        cfg = self.config
        cbs: list[Callback] = [ScheduleCallback()]
        if cfg.early_stopping.patience:
            es = cfg.early_stopping
            cbs.append(EarlyStopping(cfg.monitor, cfg.mode, es.patience, es.min_delta))
        if not self.dist.is_writer:
            return cbs
        if self.run_dir is not None:
            cbs.append(MetricsLogger(self.run_dir, cfg.log.format))
            if cfg.log.tensorboard:
                cbs.append(TensorBoardLogger(self.run_dir, cfg.log.every_steps))
        progress = cfg.log.progress
        if progress == "auto":
            import sys

            progress = "tqdm" if sys.stderr.isatty() else "lines"
        if progress == "lines":
            cbs.append(LineLogger(cfg.log.print_every))
        elif progress != "none":
            cbs.append(ProgressBar(progress))
        return cbs

    def _emit(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(self, *args)

    # ---- the loop ------------------------------------------------------------------------

    def fit(self) -> list[dict[str, float]]:
        """Train until ``epochs`` or ``max_steps`` or early stopping; return per-epoch metrics."""
        previous = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )
        if self.config.deterministic and not previous[0]:
            # on CUDA an op without a deterministic kernel warns instead of stopping the run
            torch.use_deterministic_algorithms(True, warn_only=self.device.type == "cuda")
        self.model.train()
        self._clock = (self.seconds, time.monotonic())
        self.stop_reason = ""
        self._every_mark = self.step
        self._check_limits()
        self._emit("on_train_start")
        try:
            while self.epoch < self.config.epochs and not self.should_stop:
                self._run_epoch()
        finally:
            self._tick(sync=False)
            self._emit("on_train_end")
            torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        if not self.stop_reason:
            self.stop_reason = "early_stopping" if self.should_stop else "epochs"
        return self.history

    def elapsed(self) -> float:
        """Wall-clock seconds of training so far, over resumes (this process, now)."""
        before, start = self._clock
        return before + time.monotonic() - start

    def _tick(self, sync: bool = True) -> None:
        """Bring ``seconds`` up to date (averaged over processes when a budget is set)."""
        seconds = self.elapsed()
        if sync and self.config.max_minutes and self.dist.world > 1:
            seconds = self.dist.sum([seconds])[0] / self.dist.world  # every process agrees
        self.seconds = seconds

    def budget_fraction(self, now: bool = False) -> float:
        """The fraction of the time budget spent (0 without a budget): as of the last batch
        end, or with ``now`` as of this moment in a single process (several processes keep
        the last batch end's, the one they agree on)."""
        if not self.config.max_minutes:
            return 0.0
        seconds = self.elapsed() if now and self.dist.world == 1 else self.seconds
        return seconds / (60.0 * self.config.max_minutes)

    def _out_of_time(self) -> bool:
        return bool(self.config.max_minutes) and self.budget_fraction() >= 1.0

    def _check_limits(self) -> None:
        """Stop on max_steps or the time budget, recording which."""
        if self._stopped_by_max_steps():
            self.should_stop, self.stop_reason = True, "max_steps"
        elif self._out_of_time():
            self.should_stop, self.stop_reason = True, "max_minutes"

    def _run_epoch(self) -> None:
        if self.batch_in_epoch == 0 and self.chunk_in_batch == 0:
            self._sums = {}
            self.clip = ClipStats()
            self._skipped = 0
        self._emit("on_epoch_start", self.epoch)
        chunked = self.config.tbptt > 0
        for batch in self.train_batches.epoch(self.epoch, start=self.batch_in_epoch):
            index = self.batch_in_epoch
            self._emit("on_batch_start", index)
            local = batch.shard(self.dist.rank, self.dist.world)
            self.local_sequences += local.size
            self._batch_index = index
            local = move_batch(local, self.device, non_blocking=True)
            chunks = run_bptt(
                self.model,
                local,
                self.config.tbptt,
                self._update,
                self._forward_context,
                start=self.chunk_in_batch,
                state=self._carry,
                after_chunk=self._after_chunk if chunked else None,
            )
            merged = merge_results(chunks)
            if self.chunk_in_batch:  # stopped inside the batch: resumable here; on the
                # time budget, validated first (as a stop between batches is)
                metric = self._validate_partial() if self.stop_reason == "max_minutes" else None
                self.save_checkpoint(metric=metric)
                return
            if not chunked:
                self._accumulate(merged)  # (chunks are added as they finish)
            self.batch_in_epoch += 1
            info = BatchInfo(merged.loss, batch.size, self._last_norm)
            self._emit("on_batch_end", index, info)
            self._tick()
            self._check_limits()
            if self.should_stop and self.batch_in_epoch < len(self.train_batches):
                # stopped mid-epoch: resumable from here; on the time budget, validate first
                metric = self._validate_partial() if self.stop_reason == "max_minutes" else None
                self.save_checkpoint(metric=metric)
                return
            last_batch = self.batch_in_epoch >= len(self.train_batches)
            if self._crossed_every() and not last_batch:
                self.save_checkpoint()  # (on an epoch's last batch the epoch's end saves it)
        metrics = self._epoch_metrics()
        if self.val_batches is not None:
            val = self.evaluate(self.val_batches)
            metrics.update(val)
            self._emit("on_evaluation", metrics)
        self.history.append(metrics)
        self.final_metrics = {"epochs": float(self.epoch + 1), "step": float(self.step), **metrics}
        self._emit("on_epoch_end", self.epoch, metrics)
        self.epoch += 1
        self.batch_in_epoch = 0
        self._tick()  # the checkpoint's seconds include this validation
        self.save_checkpoint(metric=metrics.get(self.config.monitor))

    def _after_chunk(self, done: int, total: int, state: Any, result: ChunkResult) -> bool:
        """After a chunk of truncated BPTT: add its loss to the epoch's sums; inside the
        batch, keep the position (chunks done, carried state) and save it every
        ``checkpoint.every_steps`` steps, or stop there at ``max_steps`` or on the time
        budget (True). On a batch's last chunk the batch's end does all that. With several
        processes, each carries its own shard's state, so positions are kept at batch ends
        only."""
        self._accumulate(result)
        self._chunks = total
        if done == total or self.dist.world > 1:
            self.chunk_in_batch, self._carry = 0, None
            return False
        self.chunk_in_batch, self._carry = done, state
        if self._stopped_by_max_steps():
            self.should_stop, self.stop_reason = True, "max_steps"
            return True
        self._tick(sync=False)  # one process here: its own clock
        if self._out_of_time():
            self.should_stop, self.stop_reason = True, "max_minutes"
            return True
        if self._crossed_every():
            self.save_checkpoint()
        return False

    def _crossed_every(self) -> bool:
        """Whether ``checkpoint.every_steps`` divides a step since the previous check."""
        every = self.config.checkpoint.every_steps
        crossed = bool(every) and self.step // every > self._every_mark // every
        self._every_mark = self.step
        return crossed

    def _validate_partial(self) -> float | None:
        """Train metrics of the epoch so far and validation, kept in ``final_metrics``. The
        schedule and the callbacks see it (task scores join, as at an epoch's end) but keep
        their state: an uninterrupted run makes no such evaluation, so a plateau decay or an
        early-stopping count from it would make the resumed run differ."""
        metrics = self._epoch_metrics()
        if self.val_batches is not None:
            metrics.update(self.evaluate(self.val_batches))
            kept = self.schedule.state_dict(), [cb.state_dict() for cb in self.callbacks]
            self._emit("on_evaluation", metrics)
            self.schedule.load_state_dict(kept[0])
            for cb, state in zip(self.callbacks, kept[1], strict=True):
                if state is not None:
                    cb.load_state_dict(state)
        inside = self.chunk_in_batch / self._chunks  # the part of this batch done
        done = self.epoch + (self.batch_in_epoch + inside) / max(len(self.train_batches), 1)
        self.final_metrics = {"epochs": done, "step": float(self.step), **metrics}
        self._tick()
        return metrics.get(self.config.monitor)

    def _update(self, loss: torch.Tensor, n_local: int) -> None:
        """Backward, average over processes, (unscale,) clip and step for one chunk."""
        value = float(loss.detach())
        finite = math.isfinite(value)
        n_total, n_bad = self.dist.sum([float(n_local), 0.0 if finite else 1.0])
        if n_bad:  # the weights of this step give a non-finite loss
            self._fail(f"loss is {value if not finite else 'non-finite on another process'}")
        self._last_norm = 0.0
        if n_total == 0:  # no targets in this chunk anywhere: nothing to learn from
            return
        self.optimizer.zero_grad(set_to_none=False)
        weighted = loss * (n_local * self.dist.world / n_total)
        (self.scaler.scale(weighted) if self.scaler is not None else weighted).backward()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.dist.average_gradients(params)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # clipping sees the true gradients
        norm, fired = clip_gradients(params, self.config.clip_norm, self.config.clip_value)
        self._last_norm = norm
        if math.isfinite(norm):
            self.clip.record(norm, fired)
        elif self.scaler is not None:
            self._skipped += 1  # overflow under loss scaling: the scaler skips this step
        else:  # the weights of this step gave a finite loss, their gradient is not
            self._fail(f"gradient norm is {norm}", finite_loss=True)
        self.lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses (logs)
        self._optimizer_step()
        self.step += 1
        self._emit("on_step_end", StepInfo(value, n_local, norm))

    def _optimizer_step(self) -> None:
        """``optimizer.step()``; under loss scaling the scaler's step (skipped on inf) and
        scale update."""
        if self.scaler is None:
            self.optimizer.step()
            return
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def _fail(self, what: str, finite_loss: bool = False) -> None:
        """Stop on a non-finite loss (or gradient norm) computed with the weights of ``step``.

        The checkpoint named, and made the index's latest for ``rnnkit resume``, is the newest
        one whose weights gave a finite loss: of an earlier step (every earlier step's loss
        was finite, or training would have stopped there), or of this step when only the
        gradient failed; its weights are checked finite on reading (see
        :meth:`CheckpointManager.fall_back`). A checkpoint of this step written just before
        (its weights near 1e29, say) is taken out of the index.
        """
        kept = ""
        if self.checkpoints is not None:
            last = self.checkpoints.fall_back(self.step + 1 if finite_loss else self.step)
            kept = (
                f"; last good checkpoint: {last}"
                if last
                else "; no checkpoint with a finite loss to resume from"
            )
        raise NonFiniteLossError(
            f"{what} at step {self.step} (epoch {self.epoch + 1}, batch {self._batch_index}){kept}"
        )

    def _accumulate(self, r: ChunkResult) -> None:
        s = self._sums
        s["n"] = s.get("n", 0.0) + r.n_targets
        s["loss"] = s.get("loss", 0.0) + r.loss * r.n_targets
        for k, v in r.metrics.items():
            s[k] = s.get(k, 0.0) + v * r.n_targets

    def _epoch_metrics(self) -> dict[str, float]:
        keys = sorted(self._sums)
        totals = dict(zip(keys, self.dist.sum([self._sums[k] for k in keys]), strict=True))
        n = totals.pop("n", 0.0) or 1.0
        out = {f"train_{k}": v / n for k, v in totals.items()}
        out["grad_norm_mean"] = self.clip.mean_norm
        out["grad_norm_max"] = self.clip.norm_max
        out["clip_rate"] = self.clip.fire_rate
        out["lr"] = self.lr
        if self.scaler is not None:
            out["skipped_steps"] = float(self._skipped)
            out["loss_scale"] = float(self.scaler.get_scale())
        return out

    def evaluate(self, batches: EpochBatches, prefix: str = "val_") -> dict[str, float]:
        """Target-weighted mean loss and metrics over ``batches`` (no gradient, eval mode)."""
        return evaluate_model(
            self.model, batches, self.dist, prefix, self.device, self.config.precision
        )

    # ---- checkpoints ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The trainer's JSON-friendly state (the optimizer is saved separately, as tensors)."""
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "chunk_in_batch": self.chunk_in_batch,
            "lr": self.lr,
            # a stop on max_steps or the budget is not saved: a larger limit continues the run
            "should_stop": self.should_stop and self.stop_reason not in LIMITS,
            "history": self.history,
            "final_metrics": self.final_metrics,
            "seconds": self.seconds,
            "stop_reason": self.stop_reason,
            "sums": self._sums,
            "clip": self.clip.state_dict(),
            "skipped": self._skipped,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "schedule": self.schedule.state_dict(),
            "callbacks": {
                cb.name: cb.state_dict() for cb in self.callbacks if cb.state_dict() is not None
            },
            # the dense products' path (oneDNN or ATen's BLAS, measured once per process):
            # a resumed run takes the same one, which rounds the same way
            "onednn_linear": dense.onednn_choice(),
        }

    def _stopped_by_max_steps(self) -> bool:
        return bool(self.config.max_steps) and self.step >= self.config.max_steps

    def save_checkpoint(self, metric: float | None = None) -> Path | None:
        """Write a checkpoint of the current position (rank 0 with a run_dir only). Every
        process calls it: the epoch's loss and metric sums saved are those of all of them."""
        sums = dict(self._sums)
        if self.dist.world > 1:
            keys = sorted(self._sums)
            sums = dict(zip(keys, self.dist.sum([self._sums[k] for k in keys]), strict=True))
        if self.checkpoints is None:
            return None
        path = self.checkpoints.save(
            self.step,
            self.model,
            self.optimizer,
            {**self.state_dict(), "sums": sums},
            metric,
            self.codec,
            self.device,
            carry=self._carry if self.chunk_in_batch else None,
        )
        self._emit("on_checkpoint", path)
        return path

    def resume(self, path: str | Path) -> None:
        """Restore the model, optimizer, schedule, position and RNG states of checkpoint.

        The saved tensors are mapped to this trainer's device, whatever device wrote them.
        Every file is checked (:mod:`rnnkit.training.checkpoint`, Integrity): a corrupt,
        truncated or mismatched checkpoint, or an invalid trainer.json, is one
        :class:`CheckpointError` naming the checkpoint and the file. A leftover directory that
        this run's :class:`CheckpointManager` moved into its step's name is followed there.
        """
        path = resolve_moved(Path(path))
        load_weights(path, self.model, self.device)
        state = load_trainer_state(path, self.optimizer, device=self.device)
        try:
            self._load_state(state)
            self._carry = load_carry(path, state, self.device) if self.chunk_in_batch else None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise CheckpointError(
                f"checkpoint {path}: trainer.json is invalid ({type(e).__name__}: {e})"
            ) from None

    def _load_state(self, state: dict[str, Any]) -> None:
        """The trainer's own part of trainer.json (:meth:`state_dict`)."""
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.chunk_in_batch = int(state.get("chunk_in_batch", 0))
        self.lr, self.should_stop = float(state["lr"]), bool(state["should_stop"])
        self.history = list(state["history"])
        self.final_metrics = dict(state.get("final_metrics", {}))
        self.seconds = float(state.get("seconds", 0.0))
        self._clock = (self.seconds, time.monotonic())
        # the sums of all processes: one of them carries them on, the others start from zero
        self._sums = {k: float(v) if self.dist.rank == 0 else 0.0 for k, v in state["sums"].items()}
        self.clip.load_state_dict(state["clip"])
        self._skipped = int(state.get("skipped", 0))
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.schedule.load_state_dict(state["schedule"])
        saved = state["callbacks"]
        for cb in self.callbacks:
            if cb.name in saved:
                cb.load_state_dict(saved[cb.name])
        _same_products(state.get("onednn_linear"))


def _same_products(saved: bool | None) -> None:
    """Take the dense products' path a resumed run was trained with (None: not recorded, or
    no product asked), unless ``RNNKIT_ONEDNN_LINEAR`` forces one or this machine has no
    oneDNN product (another machine rounds differently anyway)."""
    if saved is None or os.environ.get("RNNKIT_ONEDNN_LINEAR", "").strip():
        return
    if not isinstance(saved, bool):
        raise ValueError(f"onednn_linear must be true, false or null, got {saved!r}")
    with contextlib.suppress(ValueError):
        dense.use_onednn(saved)


def _served(data: Any, config: TrainerConfig, train: bool, seed: int) -> Any:
    """``data`` as batches in a per-epoch order: an EpochBatches-like object as it is, a batch
    of all rows cut into ``config.batch_size`` rows (shuffled and whole for training)."""
    if data is None or hasattr(data, "epoch"):
        return data
    return EpochBatches(
        data, config.batch_size, shuffle=train, seed=seed, drop_last=train, bucket=config.bucket
    )


def _describe_run(run_dir: Path, model: Any, config: TrainerConfig, task: str | None, seed: int):
    """Write ``config.json`` for a run started from Python (a task run writes its own first)."""
    import json

    from rnnkit.config import to_dict
    from rnnkit.training.checkpoint import write_atomic

    if (run_dir / "config.json").exists():
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    described = {
        "task": task,
        "seed": seed,
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "model": model.get_config(),
        "trainer": to_dict(config),
    }
    write_atomic(run_dir / "config.json", json.dumps(described, indent=1).encode())


@torch.no_grad()
def evaluate_model(
    model: Any,
    batches: EpochBatches,
    dist_ctx: DistContext | None = None,
    prefix: str = "",
    device: torch.device | str | None = None,
    precision: str = "32",
) -> dict[str, float]:
    """Target-weighted mean of ``model.loss`` and its metrics over ``batches``.

    Each process evaluates its share of every batch, moved to ``device`` (by default the
    model's), with the loss under ``precision``'s autocast; the sums are added over processes.
    The model is put in eval mode for the pass and restored afterwards.
    """
    dist_ctx = dist_ctx or DistContext()
    device = model_device(model) if device is None else torch.device(device)
    check_precision(precision, device)
    forward_context = autocast_context(device, precision)
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {"n": 0.0, "loss": 0.0}
    for batch in batches.epoch(0):
        spare = False  # a process with no row of this batch
        if batch.size < dist_ctx.world:  # a last batch of fewer rows than processes
            spare = dist_ctx.rank >= batch.size  # it reads row 0 with weight 0, so that every
            row = 0 if spare else dist_ctx.rank  # process reports the same metric names
            local = move_batch(batch.rows(slice(row, row + 1)), device)
        else:
            local = move_batch(batch.shard(dist_ctx.rank, dist_ctx.world), device)
        with forward_context():
            loss, metrics = model.loss(local)
        n = 0 if spare else local.n_targets
        sums["n"] += n
        sums["loss"] += float(loss) * n
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
    model.train(was_training)
    keys = sorted(sums)
    totals = dict(zip(keys, dist_ctx.sum([sums[k] for k in keys]), strict=True))
    n = totals.pop("n") or 1.0
    return {f"{prefix}{k}": v / n for k, v in totals.items()}
