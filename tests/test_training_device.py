"""Devices and precisions: device names, batch moves, autocast, loss scaling, CUDA resume."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from _training_helpers import small_model, small_trainer, weights
from rnnkit.config import ConfigError, from_dict
from rnnkit.data.synthetic import adding_problem
from rnnkit.training import (
    Callback,
    CheckpointConfig,
    EpochBatches,
    LogConfig,
    NonFiniteLossError,
    SequenceBatch,
    Trainer,
    TrainerConfig,
    evaluate_model,
    load_model,
    move_batch,
    resolve_device,
)

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
without_cuda = pytest.mark.skipif(CUDA, reason="checks the behaviour without CUDA")


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


# ---- device names ---------------------------------------------------------------------------


def test_cpu_device_trains_like_the_default_and_auto_picks_cuda_only_when_there():
    kw = dict(epochs=1, tbptt=4)
    cpu, default = small_trainer(None, device="cpu", **kw), small_trainer(None, **kw)
    assert cpu.device == torch.device("cpu")
    assert default.config.device == "auto"
    assert default.device.type == ("cuda" if CUDA else "cpu")
    cpu.fit()
    if CUDA:
        return
    default.fit()  # "auto" without CUDA: the CPU, bit for bit the run of before devices
    assert _same(weights(cpu.model), weights(default.model))
    assert cpu.history == default.history


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "mps", "", 0])
def test_bad_device_is_refused_naming_it(name):
    with pytest.raises(ValueError, match=rf"device must be .* got {name!r}"):
        TrainerConfig(device=name)
    with pytest.raises(ValueError, match="device must be"):
        resolve_device(name)


def test_device_from_a_config_file_names_the_key():
    with pytest.raises(ConfigError, match=r"trainer\.device must be .* got 'gpu'"):
        from_dict(TrainerConfig, {"device": "gpu"}, "trainer")
    assert from_dict(TrainerConfig, {"device": "cuda:1"}).device == "cuda:1"


def test_resolve_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")


@without_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_cuda_fails_with_one_clear_sentence(name):
    TrainerConfig(device=name)  # a valid name: checked against the machine by the Trainer
    with pytest.raises(ValueError) as e:
        small_trainer(None, device=name)
    msg = str(e.value)
    assert f"device={name!r} needs CUDA" in msg and "device='cpu'" in msg
    assert "\n" not in msg


# ---- precision names ------------------------------------------------------------------------


def test_precision_is_validated_and_32_may_be_a_number():
    with pytest.raises(ValueError, match=r"precision must be one of .* got 'fp8'"):
        TrainerConfig(precision="fp8")
    assert TrainerConfig(precision=32).precision == "32"
    assert from_dict(TrainerConfig, {"precision": 32}).precision == "32"
    assert from_dict(TrainerConfig, {"precision": "bf16"}).precision == "bf16"


def test_16_mixed_is_refused_on_the_cpu_suggesting_bf16():
    with pytest.raises(ValueError, match=r"precision='16-mixed' needs CUDA.*'bf16'"):
        TrainerConfig(device="cpu", precision="16-mixed")
    if CUDA:
        return
    TrainerConfig(precision="16-mixed")  # "auto" may be CUDA: the Trainer decides
    with pytest.raises(ValueError, match=r"precision='16-mixed' needs a CUDA device.*'bf16'"):
        small_trainer(None, precision="16-mixed")


# ---- move_batch ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PairBatch:
    source: torch.Tensor
    source_lengths: torch.Tensor
    target: torch.Tensor
    target_lengths: torch.Tensor
    name: str = "pairs"  # not a tensor: kept as it is


def _pairs() -> PairBatch:
    return PairBatch(
        torch.randint(0, 9, (3, 5)),
        torch.tensor([5, 4, 2]),
        torch.randn(3, 6, 2),
        torch.tensor([6, 1, 3]),
    )


def test_move_batch_moves_every_tensor_field_of_a_frozen_dataclass():
    batch = _pairs()
    moved = move_batch(batch, "meta")  # a device every machine has
    assert type(moved) is PairBatch and moved.name == "pairs"
    for f in dataclasses.fields(PairBatch)[:4]:
        old, new = getattr(batch, f.name), getattr(moved, f.name)
        assert new.device.type == "meta" and old.device.type == "cpu"
        assert (new.shape, new.dtype) == (old.shape, old.dtype)
    seq = adding_problem(4, 6, seed=0)
    moved = move_batch(seq, torch.device("meta"), non_blocking=False)
    assert isinstance(moved, SequenceBatch) and moved.mask.device.type == "meta"


def test_move_batch_to_its_own_device_is_the_same_object():
    batch = _pairs()
    assert move_batch(batch, "cpu") is batch
    t = torch.ones(2)
    assert move_batch(t, "cpu") is t


def test_move_batch_refuses_what_is_not_a_dataclass():
    with pytest.raises(TypeError, match="dataclass of tensors, got dict"):
        move_batch({"x": torch.ones(1)}, "cpu")


@needs_cuda
def test_move_batch_to_cuda_pins_and_copies_every_field():
    batch = _pairs()
    moved = move_batch(batch, "cuda")
    torch.cuda.synchronize()
    for f in dataclasses.fields(PairBatch)[:4]:
        new = getattr(moved, f.name)
        assert new.is_cuda
        assert torch.equal(new.cpu(), getattr(batch, f.name))
    assert not batch.source.is_pinned()  # the caller's tensors are left as they were


# ---- bf16 on the CPU -------------------------------------------------------------------------


class Spy(Callback):
    """Records whether autocast is on in the model's loss and in the optimizer's step."""

    def __init__(self, model, optimizer, device_type: str) -> None:
        self.in_loss: list[tuple[bool, torch.dtype]] = []
        self.in_step: list[bool] = []
        original = model.loss, model.carry_loss

        def loss(batch):
            self.in_loss.append(self._state(device_type))
            return original[0](batch)

        def carry_loss(batch, state):
            self.in_loss.append(self._state(device_type))
            return original[1](batch, state)

        model.loss, model.carry_loss = loss, carry_loss
        optimizer.register_step_pre_hook(
            lambda *a: self.in_step.append(torch.is_autocast_enabled(device_type))
        )

    @staticmethod
    def _state(device_type: str) -> tuple[bool, torch.dtype]:
        return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)


def _trainer(cell="lstm", backend="torch", n=64, batch=16, run_dir=None, **cfg_kw) -> Trainer:
    """A trainer whose recurrent layer is torch's (the loop kernels take float32 only)."""
    cfg_kw.setdefault("log", LogConfig(progress="none", tensorboard=False))
    model = small_model(cell, backend=backend)
    cfg = TrainerConfig(batch_size=batch, **cfg_kw)
    train = EpochBatches(adding_problem(n, 10, seed=0), batch, seed=0)
    val = EpochBatches(adding_problem(32, 10, seed=1), batch, shuffle=False)
    return Trainer(model, cfg, train, val, run_dir=run_dir)


@pytest.mark.parametrize(("cell", "tbptt"), [("lstm", 0), ("gru", 4)])
def test_bf16_trains_on_the_cpu_under_autocast(cell, tbptt):
    trainer = _trainer(cell, device="cpu", precision="bf16", epochs=1, tbptt=tbptt, lr=0.01)
    spy = Spy(trainer.model, trainer.optimizer, "cpu")
    trainer.callbacks.append(spy)
    before = weights(trainer.model)
    history = trainer.fit()
    after = weights(trainer.model)
    assert trainer.step == 4  # 4 batches; under tbptt only the last chunk has the target
    assert math.isfinite(history[-1]["train_loss"]) and math.isfinite(history[-1]["val_loss"])
    assert not _same(before, after)
    assert all(v.dtype == torch.float32 for v in after.values())  # float32 master weights
    assert spy.in_loss and all(s == (True, torch.bfloat16) for s in spy.in_loss)  # val too
    assert spy.in_step and not any(spy.in_step)  # backward, clipping and step outside
    assert trainer.scaler is None and "loss_scale" not in history[-1]


def test_evaluate_model_runs_the_loss_under_autocast():
    model = small_model("lstm", backend="torch")
    spy = Spy(model, torch.optim.SGD(model.parameters()), "cpu")
    batches = EpochBatches(adding_problem(8, 6, seed=0), 4, shuffle=False)
    plain = evaluate_model(model, batches)
    half = evaluate_model(model, batches, device="cpu", precision="bf16")
    assert [s[0] for s in spy.in_loss] == [False, False, True, True]
    assert half["loss"] == pytest.approx(plain["loss"], rel=0.05)


# ---- loss scaling (a CPU GradScaler stands in for "16-mixed"'s CUDA one) ----------------------


class InfGradient(Callback):
    """Makes the gradients of ``batch`` infinite while its loss stays finite."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at, self.handle, self.kept = (epoch, batch), None, None

    def on_batch_start(self, t, index):
        if (t.epoch, index) == self.at:
            self.handle = t.model.head.weight.register_hook(lambda g: g * math.inf)
            self.kept = weights(t.model)

    def on_batch_end(self, t, index, info):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
            assert math.isfinite(info.loss)
            assert _same(self.kept, weights(t.model))  # the step was skipped


def test_scaler_skips_an_overflowing_step_instead_of_failing():
    trainer = small_trainer(None, epochs=1, n=64)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    spy = InfGradient(0, 2)
    trainer.callbacks.append(spy)
    history = trainer.fit()
    assert spy.kept is not None and trainer.step == 4  # the skipped step still counts
    assert history[-1]["skipped_steps"] == 1.0
    assert history[-1]["loss_scale"] == 2.0**9  # halved once, never grown (interval 2000)
    plain = small_trainer(None, epochs=1, n=64)
    plain.callbacks.append(InfGradient(0, 2))
    with pytest.raises(NonFiniteLossError, match=r"gradient norm is (inf|nan) at step 2"):
        plain.fit()


def test_scaler_state_round_trips_through_a_checkpoint_and_resume_is_exact(tmp_path):
    def scaled(run_dir, **kw):
        t = small_trainer(run_dir, epochs=2, n=64, checkpoint=CheckpointConfig(every_steps=3), **kw)
        t.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=2)
        t.callbacks.append(InfGradient(0, 1))  # scale 2^11, then doubled every 2 good steps
        return t

    full = scaled(tmp_path / "a")
    full.fit()
    part = scaled(tmp_path / "b", max_steps=3)
    part.fit()
    saved = json.loads((part.checkpoints.latest() / "trainer.json").read_text())["scaler"]
    assert saved == part.scaler.state_dict() and saved["scale"] == 2.0**11
    assert saved["_growth_tracker"] == 1
    resumed = scaled(tmp_path / "b")
    resumed.resume(part.checkpoints.latest())
    assert resumed.scaler.state_dict() == saved
    resumed.fit()
    assert _same(weights(full.model), weights(resumed.model))
    assert resumed.history == full.history
    assert full.scaler.state_dict() == resumed.scaler.state_dict()


def test_no_scaler_state_in_32_bit_checkpoints(tmp_path):
    # on the CPU: "auto" on a GPU machine trains on CUDA, whose generator state is then saved
    trainer = small_trainer(tmp_path, epochs=1, n=32, device="cpu")
    trainer.fit()
    state = json.loads((trainer.checkpoints.latest() / "trainer.json").read_text())
    assert state["scaler"] is None
    assert "torch_cuda" not in load_file(trainer.checkpoints.latest() / "rng.safetensors")


# ---- CUDA ------------------------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("tbptt", [0, 4])
def test_cuda_resume_mid_epoch_gives_identical_weights(tmp_path, tbptt):
    kw = dict(epochs=2, n=64, tbptt=tbptt, lr=0.01, device="cuda")
    every = CheckpointConfig(every_steps=3)
    full = small_trainer(tmp_path / "a", checkpoint=every, **kw)
    full.fit()
    assert all(p.is_cuda for p in full.model.parameters())
    state = next(iter(full.optimizer.state.values()))
    assert state["exp_avg"].is_cuda  # the optimizer was built on the moved parameters
    part = small_trainer(tmp_path / "b", checkpoint=every, max_steps=3, **kw)
    part.fit()
    mid = part.checkpoints.root / "step-00000003"
    assert "torch_cuda" in load_file(mid / "rng.safetensors")
    resumed = small_trainer(tmp_path / "b", checkpoint=every, **kw)
    resumed.resume(mid)
    resumed.fit()
    assert resumed.step == full.step
    assert _same(weights(full.model), weights(resumed.model))
    assert resumed.history == full.history


@needs_cuda
def test_cuda_checkpoint_loads_and_resumes_on_the_cpu(tmp_path):
    gpu = small_trainer(tmp_path / "gpu", epochs=1, n=32, device="cuda")
    gpu.fit()
    path = gpu.checkpoints.latest()
    model = load_model(path, map_location="cpu")
    assert all(v.device.type == "cpu" for v in model.state_dict().values())
    cpu = small_trainer(None, epochs=2, n=32, device="cpu")
    cpu.resume(path)
    state = next(iter(cpu.optimizer.state.values()))
    assert state["exp_avg"].device.type == "cpu"
    cpu.fit()
    assert cpu.step == 4 and math.isfinite(cpu.history[-1]["val_loss"])


@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "16-mixed"])
def test_mixed_precision_on_cuda_trains_and_its_scaler_resumes(tmp_path, precision):
    kw = dict(epochs=2, n=64, lr=0.01, device="cuda", precision=precision)
    every = CheckpointConfig(every_steps=3)
    trainer = _trainer("lstm", run_dir=tmp_path / "a", checkpoint=every, **kw)
    spy = Spy(trainer.model, trainer.optimizer, "cuda")
    trainer.callbacks.append(spy)
    before = weights(trainer.model)
    history = trainer.fit()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    assert spy.in_loss and all(s == (True, dtype) for s in spy.in_loss)
    assert not any(spy.in_step)
    assert math.isfinite(history[-1]["train_loss"]) and math.isfinite(history[-1]["val_loss"])
    assert not _same(before, weights(trainer.model))
    if precision == "bf16":
        assert trainer.scaler is None
        return
    assert history[-1]["loss_scale"] > 0 and "skipped_steps" in history[-1]
    part = _trainer("lstm", run_dir=tmp_path / "b", checkpoint=every, max_steps=3, **kw)
    part.fit()
    saved = part.scaler.state_dict()
    resumed = _trainer("lstm", run_dir=tmp_path / "b", checkpoint=every, **kw)
    resumed.resume(part.checkpoints.latest())
    assert resumed.scaler.state_dict() == saved
    resumed.fit()
    assert resumed.scaler.state_dict() == trainer.scaler.state_dict()
    assert _same(weights(trainer.model), weights(resumed.model))


# ---- torchrun backends -----------------------------------------------------------------------


class FakeGroup:
    """Stands in for torch.distributed: records the backend a process group is made with."""

    def __init__(self) -> None:
        self.backend: str | None = None

    def is_initialized(self) -> bool:
        return self.backend is not None

    def init_process_group(self, backend: str) -> None:
        self.backend = backend

    def get_backend(self) -> str:
        return self.backend

    def get_rank(self) -> int:
        return 1

    def get_world_size(self) -> int:
        return 2


@pytest.fixture
def fake_torchrun(monkeypatch):
    from rnnkit.training import distributed

    group = FakeGroup()
    monkeypatch.setattr(distributed, "dist", group)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    return group


@pytest.mark.parametrize("device", [None, "cpu"] + ([] if CUDA else ["auto"]))
def test_torchrun_on_the_cpu_uses_gloo(fake_torchrun, device):
    from rnnkit.training import init_distributed

    ctx = init_distributed(device)
    assert fake_torchrun.backend == "gloo"
    assert (ctx.rank, ctx.world, ctx.local_rank, ctx.backend) == (1, 2, 0, "gloo")


@without_cuda
def test_torchrun_asking_for_cuda_without_it_fails_clearly(fake_torchrun):
    from rnnkit.training import init_distributed

    with pytest.raises(ValueError, match="device='cuda' needs CUDA"):
        init_distributed("cuda")
    assert fake_torchrun.backend is None


@needs_cuda
@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_torchrun_on_cuda_uses_nccl_on_the_local_rank_gpu(fake_torchrun, monkeypatch, device):
    from rnnkit.training import init_distributed

    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    ctx = init_distributed(device)
    assert fake_torchrun.backend == "nccl" and ctx.backend == "nccl"
    assert chosen == [torch.device("cuda", 0)]
    assert resolve_device(device, ctx.local_rank) == torch.device("cuda", 0)
