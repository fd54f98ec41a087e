"""The trainer loop: learning, schedules, early stopping, NaN stop, logs, exact resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

from _training_helpers import LossOnly, small_trainer, weights
from rnnkit.training import (
    Callback,
    EarlyStoppingConfig,
    LogConfig,
    NonFiniteLossError,
    ScheduleConfig,
    read_metrics,
)
from rnnkit.training.optim import LRSchedule


def test_loss_goes_down_and_epoch_metrics_are_reported(tmp_path):
    trainer = small_trainer(
        tmp_path, epochs=4, lr=0.01, clip_norm=0.05, log=LogConfig(progress="none", format="jsonl")
    )
    history = trainer.fit()
    assert len(history) == 4
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert history[0]["clip_rate"] == 1.0  # threshold far below the gradient norms
    assert history[0]["grad_norm_mean"] > 0.05
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert rows[-1]["val_loss"] == pytest.approx(history[-1]["val_loss"])


def test_tensorboard_and_csv_logs_written(tmp_path):
    trainer = small_trainer(tmp_path, epochs=1, log=LogConfig(progress="tqdm", every_steps=1))
    trainer.fit()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    rows = read_metrics(tmp_path / "metrics.csv")
    assert len(rows) == 1 and rows[0]["step"] == 8


def test_events_fire_in_order():
    events = []

    class Recorder(Callback):
        def on_train_start(self, t):
            events.append("train_start")

        def on_epoch_start(self, t, e):
            events.append(f"epoch_start{e}")

        def on_batch_end(self, t, i, info):
            events.append("batch")

        def on_evaluation(self, t, m):
            events.append("eval")

        def on_epoch_end(self, t, e, m):
            events.append(f"epoch_end{e}")

        def on_train_end(self, t):
            events.append("train_end")

    trainer = small_trainer(None, epochs=1, n=32, log=LogConfig(progress="rich"))
    trainer.callbacks.append(Recorder())
    trainer.fit()
    assert events == [
        "train_start",
        "epoch_start0",
        "batch",
        "batch",
        "eval",
        "epoch_end0",
        "train_end",
    ]


def test_nan_loss_stops_with_step_and_batch_and_keeps_last_checkpoint(tmp_path):
    trainer = small_trainer(tmp_path, epochs=3, n=64)

    class Poison(Callback):
        def on_batch_start(self, t, index):
            if t.epoch == 1 and index == 2:
                with torch.no_grad():
                    t.model.head.bias.fill_(math.nan)

    trainer.callbacks.append(Poison())
    with pytest.raises(NonFiniteLossError) as e:
        trainer.fit()
    msg = str(e.value)
    assert "loss is nan at step 6 (epoch 2, batch 2)" in msg
    assert "step-00000004" in msg  # the end-of-epoch-1 checkpoint, still there
    kept = trainer.checkpoints.latest()
    assert kept.name == "step-00000004" and (kept / "model.safetensors").exists()
    from rnnkit.training import load_model

    assert all(torch.isfinite(v).all() for v in load_model(kept).state_dict().values())


def test_early_stopping_stops_when_metric_stalls():
    trainer = small_trainer(
        None, epochs=20, lr=1e-9, early_stopping=EarlyStoppingConfig(patience=2, min_delta=1e-3)
    )
    history = trainer.fit()
    assert len(history) == 3  # best at epoch 1, two epochs without improvement


def test_max_steps_stops_mid_epoch():
    trainer = small_trainer(None, epochs=5, max_steps=3)
    trainer.fit()
    assert trainer.step == 3


def _lrs(cfg, steps=10, epochs=None):
    sched = LRSchedule(cfg, base_lr=1.0, total_steps=steps, mode="min")
    return [sched.lr_at(s, epochs[s] if epochs else 0) for s in range(steps)]


def test_schedules():
    assert _lrs(ScheduleConfig(warmup_steps=4))[:5] == [0.25, 0.5, 0.75, 1.0, 1.0]
    cos = _lrs(ScheduleConfig(name="cosine", min_lr=0.1))
    assert cos[0] == 1.0 and cos[5] == pytest.approx(0.55) and cos == sorted(cos, reverse=True)
    step = _lrs(ScheduleConfig(name="step", step_size=2, gamma=0.5), 6, [0, 0, 1, 2, 3, 4])
    assert step == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]
    sched = LRSchedule(
        ScheduleConfig(name="plateau", patience=1, factor=0.1, min_lr=0.005),
        base_lr=1.0,
        total_steps=10,
        mode="min",
    )
    for value in (1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1):
        sched.observe(value)
    assert sched.lr_at(0, 0) == pytest.approx(0.005)  # 1 -> 0.1 -> 0.01 -> floor 0.005


def test_tbptt_trainer_steps_once_per_chunk_with_targets():
    trainer = small_trainer(None, epochs=1, n=32, tbptt=3)
    trainer.fit()
    assert trainer.step == 2  # adding targets sit at the last step: one chunk per batch


def test_tbptt_needs_carry_loss():
    from rnnkit.data.synthetic import adding_problem
    from rnnkit.models import ModelContractError
    from rnnkit.training import EpochBatches, Trainer, TrainerConfig, run_bptt

    data = EpochBatches(adding_problem(8, 4, 0), 4)
    with pytest.raises(ModelContractError, match=r"no carried state .*\(trainer\.tbptt=4\)"):
        Trainer(LossOnly(), TrainerConfig(tbptt=4), data)
    Trainer(LossOnly(), TrainerConfig(tbptt=0), data)  # full BPTT needs no carried state
    with pytest.raises(TypeError, match="tbptt=4 needs a model with carry_loss"):
        run_bptt(LossOnly(), adding_problem(8, 4, 0), 4, lambda loss, n: None)


@pytest.mark.parametrize("tbptt", [0, 4])
def test_resume_mid_epoch_in_process_gives_identical_weights(tmp_path, tbptt):
    kw = dict(epochs=2, n=64, tbptt=tbptt, lr=0.01)
    from rnnkit.training import CheckpointConfig

    full = small_trainer(tmp_path / "a", checkpoint=CheckpointConfig(every_steps=3), **kw)
    full.fit()
    ckpt = tmp_path / "a" / "checkpoints"
    # step 3 is mid-epoch 1 (4 batches per epoch); keep_last=2 dropped it, so rerun to it
    part = small_trainer(
        tmp_path / "b", checkpoint=CheckpointConfig(every_steps=3), max_steps=3, **kw
    )
    part.fit()
    resumed = small_trainer(tmp_path / "b", checkpoint=CheckpointConfig(every_steps=3), **kw)
    mid = resumed.checkpoints.root / "step-00000003"
    assert mid.exists()
    resumed.resume(mid)
    assert (resumed.epoch, resumed.batch_in_epoch) == (0, 3)
    resumed.fit()
    assert resumed.step == full.step
    a, b = weights(full.model), weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history == full.history
    assert ckpt.exists()


def test_resume_takes_the_dense_products_path_the_checkpoint_was_written_with(
    tmp_path, monkeypatch
):
    """oneDNN and ATen's BLAS round sums differently and the choice between them is timed
    once per process: a resumed run takes the saved choice, unless RNNKIT_ONEDNN_LINEAR
    forces one."""
    from rnnkit.kernels import dense
    from rnnkit.training import CheckpointConfig

    monkeypatch.delenv("RNNKIT_ONEDNN_LINEAR", raising=False)
    usable = dense._LINEAR is not None and torch.backends.mkldnn.is_available()
    monkeypatch.setattr(dense, "_faster", usable)  # the process that wrote the checkpoint
    part = small_trainer(tmp_path, checkpoint=CheckpointConfig(every_steps=3), max_steps=3)
    part.fit()
    mid = part.checkpoints.root / "step-00000003"
    assert json.loads((mid / "trainer.json").read_text())["onednn_linear"] is usable
    monkeypatch.setattr(dense, "_faster", not usable)  # a new process measured otherwise
    resumed = small_trainer(tmp_path, checkpoint=CheckpointConfig(every_steps=3))
    if usable:
        resumed.resume(mid)
        assert dense.onednn_choice() is True
    monkeypatch.setattr(dense, "_faster", False)
    monkeypatch.setenv("RNNKIT_ONEDNN_LINEAR", "0")  # the user's explicit choice stands
    resumed.resume(mid)
    assert dense.onednn_choice() is False
    monkeypatch.delenv("RNNKIT_ONEDNN_LINEAR")
    resumed._load_state({**resumed.state_dict(), "onednn_linear": None})  # older checkpoints
    assert dense.onednn_choice() is False
    with pytest.raises(ValueError, match="onednn_linear must be true, false or null"):
        resumed._load_state({**resumed.state_dict(), "onednn_linear": "yes"})
    with pytest.raises(TypeError, match="flag: expected True or False, got 1"):
        dense.use_onednn(1)


def _ragged(n: int, seed: int):
    """Per-step regression on sequences of lengths 2..16 (bucketing reorders them)."""
    from rnnkit.data.batches import SequenceBatch

    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 17, (n,), generator=gen)
    mask = torch.arange(16).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    x = torch.randn(n, 16, 2, generator=gen) * mask.unsqueeze(-1)
    return SequenceBatch(x, x.sum(-1) * mask, mask, lengths)


@pytest.mark.parametrize("tbptt", [0, 5])
def test_bucketed_resume_mid_epoch_gives_identical_weights(tmp_path, tbptt):
    """The default bucketed order (TrainerConfig.bucket) over a raw batch of ragged sequences
    is the same per (seed, epoch), so a resumed run ends with the uninterrupted run's weights."""
    from _training_helpers import small_model
    from rnnkit.training import CheckpointConfig, Trainer, TrainerConfig

    def trainer(run_dir, **kw):
        cfg = TrainerConfig(
            epochs=2,
            batch_size=8,
            tbptt=tbptt,
            lr=0.01,
            checkpoint=CheckpointConfig(every_steps=3),
            log=LogConfig(progress="none", tensorboard=False),
            **kw,
        )
        assert cfg.bucket  # the default
        train, val = _ragged(72, seed=0), _ragged(16, seed=1)
        return Trainer(small_model("lstm"), cfg, train, val, run_dir, seed=3)

    full = trainer(tmp_path / "a")
    full.fit()
    part = trainer(tmp_path / "b", max_steps=3)  # stops at step 3 (under tbptt, in a batch)
    part.fit()
    mid = part.checkpoints.latest()
    resumed = trainer(tmp_path / "b")
    resumed.resume(mid)
    position = (resumed.batch_in_epoch, resumed.chunk_in_batch)
    assert resumed.epoch == 0 and position != (0, 0)
    assert resumed.batch_in_epoch < len(resumed.train_batches)
    resumed.fit()
    assert resumed.step == full.step
    a, b = weights(full.model), weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history == full.history
    first = [b.lengths.tolist() for b in full.train_batches.epoch(0)]
    assert first == [b.lengths.tolist() for b in resumed.train_batches.epoch(0)]
    spread = [max(x) - min(x) for x in first]
    assert max(spread) < 14 and sorted(spread)[len(spread) // 2] <= 3  # bucketed by length


def test_same_seed_same_weights_different_seed_different():
    a, b = small_trainer(None, epochs=1), small_trainer(None, epochs=1)
    a.fit()
    b.fit()
    wa, wb = weights(a.model), weights(b.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = small_trainer(None, epochs=1)
    c.train_batches.seed = 1  # another shuffling order
    c.fit()
    wc = weights(c.model)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_tbptt_many_to_many_steps_per_chunk_and_reports_all_targets():
    from rnnkit.data.batches import SequenceBatch
    from rnnkit.models import RecurrentModel, RecurrentModelConfig
    from rnnkit.training import EpochBatches, Trainer, TrainerConfig

    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([12, 7, 3, 10])
    mask = torch.arange(12).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    x = torch.randn(4, 12, 2, generator=gen) * mask.unsqueeze(-1)
    data = SequenceBatch(x, torch.randn(4, 12, generator=gen) * mask, mask, lengths)
    torch.manual_seed(0)
    model = RecurrentModel(RecurrentModelConfig(cell="lstm", input_size=2, hidden_size=4))
    cfg = TrainerConfig(epochs=1, batch_size=4, tbptt=5, log=LogConfig(progress="none"))
    trainer = Trainer(model, cfg, EpochBatches(data, 4, shuffle=False))
    before = float(model.loss(data)[0].detach())
    trainer.fit()
    assert trainer.step == 3  # chunks [0, 5), [5, 10), [10, 12), each with targets
    assert trainer.clip.steps == 3
    assert 0 < trainer.history[0]["train_loss"] < before * 1.5


def _stream(n: int, steps: int, seed: int):
    """Per-step regression on equal-length sequences: one batch is a whole epoch, as a
    stream language model's."""
    from rnnkit.data.batches import SequenceBatch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, steps, 2, generator=gen)
    mask = torch.ones(n, steps, dtype=torch.bool)
    return SequenceBatch(x, x.cumsum(1).sum(-1), mask, torch.full((n,), steps))


def test_truncated_bptt_saves_and_resumes_inside_a_batch(tmp_path):
    """An epoch of one batch in 4 chunks: every_steps and max_steps act at chunk (step)
    granularity, the checkpoint keeps the chunks done and the carried state, and a run
    resumed from inside the batch ends with the uninterrupted run's weights and history."""
    from _training_helpers import small_model
    from rnnkit.training import CheckpointConfig, Trainer, TrainerConfig
    from rnnkit.training.checkpoint import load_carry, load_trainer_state

    def trainer(run_dir, **kw):
        cfg = TrainerConfig(
            epochs=3,
            batch_size=16,
            tbptt=4,
            lr=0.01,
            checkpoint=CheckpointConfig(every_steps=2, keep_last=10),
            log=LogConfig(progress="none", tensorboard=False),
            **kw,
        )
        return Trainer(small_model("lstm"), cfg, _stream(16, 16, 0), _stream(8, 16, 1), run_dir)

    full = trainer(tmp_path / "a")
    full.fit()
    assert full.step == 12 and len(full.train_batches) == 1
    inside = full.checkpoints.root / "step-00000006"  # epoch 2, after 2 of its 4 chunks
    state = load_trainer_state(inside)
    assert (state["epoch"], state["batch_in_epoch"], state["chunk_in_batch"]) == (1, 0, 2)
    h, c = load_carry(inside, state)
    assert h.shape == c.shape == (1, 16, 8)  # (layers, B, H): the LSTM's carried (h, c)
    assert not (full.checkpoints.root / "step-00000004" / "carry.safetensors").exists()

    part = trainer(tmp_path / "b", max_steps=5)  # inside epoch 2's batch, after one chunk
    part.fit()
    assert part.step == 5 and part.stop_reason == "max_steps"
    for start in (part.checkpoints.latest(), inside):
        resumed = trainer(tmp_path / "c")
        resumed.resume(start)
        assert resumed.chunk_in_batch in (1, 2)
        resumed.fit()
        assert resumed.step == full.step
        a, b = weights(full.model), weights(resumed.model)
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert resumed.history == full.history


def test_truncated_bptt_sets_the_rate_of_every_step_inside_a_batch():
    """One batch in 4 chunks is 4 optimizer steps: a warm-up over 4 steps raises the rate at
    each of them, not once a batch (a language model's epoch is often one batch)."""
    from _training_helpers import small_model
    from rnnkit.training import Callback, ScheduleConfig, Trainer, TrainerConfig

    seen = []

    class Rates(Callback):
        def on_step_end(self, trainer, info):  # after the schedule's: the next step's rate
            seen.append((trainer.step, trainer.optimizer.param_groups[0]["lr"]))

    cfg = TrainerConfig(
        epochs=2,
        batch_size=16,
        tbptt=4,
        lr=0.5,
        schedule=ScheduleConfig(warmup_steps=4),
        log=LogConfig(progress="none", tensorboard=False),
    )
    trainer = Trainer(small_model("lstm"), cfg, _stream(16, 16, 0), callbacks=[Rates()])
    trainer.fit()
    assert [s for s, _ in seen] == list(range(1, 9))
    assert [lr for _, lr in seen] == pytest.approx([0.5 * min(1, (s + 1) / 4) for s in range(1, 9)])


def test_truncated_bptt_stops_on_the_time_budget_inside_a_batch(tmp_path):
    """An epoch of one batch in 4 chunks and a budget the first step spends: training stops
    after that step, not at the batch's end, validates, and keeps its position."""
    from _training_helpers import small_model
    from rnnkit.training import Trainer, TrainerConfig
    from rnnkit.training.checkpoint import load_trainer_state

    cfg = TrainerConfig(
        epochs=3,
        batch_size=16,
        tbptt=4,
        max_minutes=1e-7,
        log=LogConfig(progress="none", tensorboard=False),
    )
    trainer = Trainer(small_model("lstm"), cfg, _stream(16, 16, 0), _stream(8, 16, 1), tmp_path)
    trainer.fit()
    assert trainer.stop_reason == "max_minutes" and trainer.step == 1
    assert "val_loss" in trainer.final_metrics  # the partial epoch was validated
    assert trainer.final_metrics["epochs"] == 0.25  # one chunk of the epoch's one batch of 4
    state = load_trainer_state(trainer.checkpoints.latest())
    assert (state["epoch"], state["batch_in_epoch"], state["chunk_in_batch"]) == (0, 0, 1)
