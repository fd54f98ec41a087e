"""Checkpoints survive a kill at every point of a save, and refuse bad files with one sentence.

The crash tests run a tiny adding-problem training in a child process that kills itself
(SIGKILL) at one named point of the save protocol (``rnnkit.training.checkpoint._CRASH_AT``),
resume it, and compare the final weights bit for bit with an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import rnnkit.training.checkpoint as ck
from _training_helpers import small_model, small_trainer, subprocess_env, weights
from rnnkit.data.codec import SymbolCodec
from rnnkit.tasks import run
from rnnkit.training import (
    Callback,
    CheckpointManager,
    NonFiniteLossError,
    load_codec,
    load_model,
    load_trainer_state,
    locate_checkpoint,
    save_checkpoint,
)
from rnnkit.training.checkpoint import CheckpointError, is_complete

HERE = Path(__file__).parent
SETTINGS = [
    "task.seq_len=8",
    "task.n_train=96",
    "task.n_val=16",
    "task.n_test=16",
    "model.cell=lstm",
    "model.hidden_size=6",
    "model.num_layers=2",  # dropout acts between the layers: its RNG stream resumes too
    "model.dropout=0.2",
    "trainer.epochs=2",
    "trainer.batch_size=16",
    "trainer.lr=0.01",
    "trainer.checkpoint.every_steps=2",
    "trainer.log.tensorboard=false",
    'trainer.log.progress="none"',
    "trainer.optim.name=adamw",
]
# 6 batches an epoch; saves at steps 2, 4, 6 (twice: at its batch's end, then the epoch's
# end: a rewrite), 8, 10, 12. The first save of step 6 prunes step 2, the rewrite deletes the
# copy it set aside, the save of step 8 prunes step 4 ("mid-delete").
REWRITE = "step-00000006"
CRASHES = [
    # the rewrite of a step (the second save of step 6): the sequence the old code lost
    ("after-weights", REWRITE, 2),
    ("before-rename", REWRITE, 2),
    ("after-aside", REWRITE, 1),  # step-6 renamed aside, the new copy not yet in place
    ("after-rename", REWRITE, 2),
    ("mid-delete", REWRITE, 2),  # the set-aside copy half deleted
    ("before-index", REWRITE, 2),
    ("after-index", REWRITE, 2),
    # the first save of a step (step 8, mid-epoch)
    ("after-weights", "step-00000008", 1),
    ("before-rename", "step-00000008", 1),
    ("after-rename", "step-00000008", 1),
    ("before-index", "step-00000008", 1),
    ("after-index", "step-00000008", 1),
    ("mid-delete", "step-00000008", 1),  # step 4 half pruned
]


def _latest_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    index = json.loads((run_dir / "checkpoints" / "index.json").read_text())
    return load_file(run_dir / "checkpoints" / index["latest"] / "model.safetensors")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "run"
    run.train(run.load_run_config("adding", None, SETTINGS), out)
    return out


@pytest.mark.parametrize(("point", "name", "nth"), CRASHES, ids=lambda v: str(v))
def test_kill_at_every_point_of_a_save_resumes_to_identical_weights(
    tmp_path, uninterrupted, point, name, nth
):
    killed = tmp_path / "killed"
    child = subprocess.run(
        [
            sys.executable,
            str(HERE / "_crash_train.py"),
            str(killed),
            f"{point}@{name}#{nth}",
            "6",
            *SETTINGS,
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr  # it died at the point
    ckpts = killed / "checkpoints"
    if point == "after-aside":  # the state the old start-up deleted: index names a missing dir
        assert json.loads((ckpts / "index.json").read_text())["latest"] == REWRITE
        assert not (ckpts / REWRITE).exists()
        leftover = locate_checkpoint(killed)
        assert leftover.name.startswith(f".{REWRITE}.tmp-") and is_complete(leftover)
    before = locate_checkpoint(killed)
    assert before is not None and is_complete(before)
    run.resume(killed)
    a, b = _latest_weights(killed), _latest_weights(uninterrupted)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    index = json.loads((ckpts / "index.json").read_text())
    assert index["latest"] == "step-00000012"
    on_disk = sorted(p.name for p in ckpts.iterdir() if p.name != "index.json")
    assert on_disk == sorted(index["kept"])  # no leftover, nothing unindexed
    assert all(is_complete(ckpts / k) for k in index["kept"])


def test_start_up_never_deletes_a_complete_checkpoint(tmp_path):
    """The kill between the renames of a rewrite, made by hand: both copies survive start-up."""
    manager = CheckpointManager(tmp_path, keep_last=2)
    manager.save(1, small_model(seed=0), None, {"step": 1})
    path = tmp_path / "step-00000001"
    old = tmp_path / ".step-00000001.old-999"
    new = save_checkpoint(tmp_path / "x" / "step-00000001", small_model(seed=5), generation=9)
    os.rename(path, old)
    os.rename(new, tmp_path / ".step-00000001.tmp-999")
    located = locate_checkpoint(tmp_path)
    assert located.name == ".step-00000001.tmp-999"  # the newer generation
    reopened = CheckpointManager(tmp_path, keep_last=2)
    assert ck.resolve_moved(located) == path and is_complete(path)
    assert is_complete(old)  # a complete copy is left for the next committed save to prune
    got, want = weights(load_model(reopened.latest())), weights(small_model(seed=5))
    assert all(torch.equal(got[k], want[k]) for k in want)
    reopened.save(2, small_model(), None, {"step": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "index.json",
        "step-00000001",
        "step-00000002",
        "x",
    ]


def test_unreadable_index_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=3)
    for step in (1, 2, 3):
        manager.save(step, small_model(seed=step), None, {"step": step})
    (tmp_path / "step-00000003" / "model.safetensors").write_bytes(b"\0" * 10)  # damaged
    assert locate_checkpoint(tmp_path).name == "step-00000002"
    (tmp_path / "index.json").write_text('{"latest": "../../etc"}')  # outside: refused
    assert locate_checkpoint(tmp_path).name == "step-00000002"


# ---- integrity ---------------------------------------------------------------------------


@pytest.fixture
def full_checkpoint(tmp_path) -> Path:
    trainer = small_trainer(tmp_path / "run", epochs=1)
    trainer.codec = SymbolCodec(("<pad>", "a"))
    trainer.fit()
    return trainer.checkpoints.latest()


def _load_all(path: Path) -> None:
    load_model(path)
    load_trainer_state(path, small_trainer(None).optimizer)
    load_codec(path)
    small_trainer(None).resume(path)


def _flip(f: Path, at: int | None = None) -> None:
    data = bytearray(f.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0x01
    f.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "name",
    [
        "model.safetensors",
        "optimizer.safetensors",
        "rng.safetensors",
        "trainer.json",
        "codec.json",
        "model.json",
    ],
)
def test_a_flipped_byte_is_an_error_naming_the_file(full_checkpoint, name):
    _load_all(full_checkpoint)  # intact: loads
    _flip(full_checkpoint / name, at=-30 if name.endswith(".json") else None)
    with pytest.raises(CheckpointError, match=rf"checkpoint .*: {name} is corrupt \(checksum"):
        _load_all(full_checkpoint)
    assert not is_complete(full_checkpoint)


def _strip_manifest(path: Path) -> None:
    meta = json.loads((path / "model.json").read_text())
    meta.pop("manifest"), meta.pop("sha256")
    (path / "model.json").write_text(json.dumps(meta))


def _rewrite_config(path: Path, **changes) -> None:
    """Change model.json's config and keep its own checksum consistent (a wrong but
    well-formed model.json)."""
    meta = json.loads((path / "model.json").read_text())
    meta["config"].update(changes)
    meta["sha256"] = ck._self_checksum(meta)
    (path / "model.json").write_text(json.dumps(meta))


def test_a_checkpoint_without_a_manifest_still_loads(full_checkpoint):
    _strip_manifest(full_checkpoint)
    _load_all(full_checkpoint)
    assert is_complete(full_checkpoint)


@pytest.mark.parametrize("manifest", [True, False])
def test_files_that_are_not_regular_are_refused_before_reading(full_checkpoint, manifest):
    if not manifest:
        _strip_manifest(full_checkpoint)
    f = full_checkpoint / "model.safetensors"
    f.unlink()
    f.symlink_to("/dev/zero")
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=r"model\.safetensors is not a regular file"):
        load_model(full_checkpoint)
    assert time.monotonic() - start < 5
    f.unlink()
    os.mkfifo(f)  # a FIFO without a writer would block a plain open
    with pytest.raises(CheckpointError, match=r"model\.safetensors is not a regular file"):
        small_trainer(None).resume(full_checkpoint)


def test_a_huge_config_fails_before_any_allocation(full_checkpoint):
    _rewrite_config(full_checkpoint, hidden_size=1_000_000)
    with pytest.raises(CheckpointError) as e:
        load_model(full_checkpoint)
    msg = str(e.value)
    assert msg.startswith(f"checkpoint {full_checkpoint}: model.safetensors does not match")
    assert "[3000000, 1000000] in model.json's config" in msg  # the GRU's recurrent weights


@pytest.mark.parametrize("manifest", [True, False])
def test_truncated_weights_are_one_clear_error(full_checkpoint, manifest):
    if not manifest:
        _strip_manifest(full_checkpoint)
    f = full_checkpoint / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-7])
    what = "is corrupt" if manifest else "is corrupt or truncated"
    for load in (load_model, small_trainer(None).resume):
        with pytest.raises(CheckpointError, match=f"checkpoint .*: model.safetensors {what}"):
            load(full_checkpoint)


def test_weights_of_another_model_are_one_clear_error(full_checkpoint):
    other = small_trainer(None, cell="lstm")
    with pytest.raises(CheckpointError, match=r"model\.safetensors does not match this model"):
        other.resume(full_checkpoint)


@pytest.mark.parametrize("content", ["{not json", '["a list"]', '{"step": "x"}', '{"step": 1}'])
def test_an_invalid_trainer_json_is_one_clear_error(full_checkpoint, content):
    _strip_manifest(full_checkpoint)  # the checksum would catch it first otherwise
    (full_checkpoint / "trainer.json").write_text(content)
    with pytest.raises(CheckpointError, match=f"checkpoint {full_checkpoint}: trainer.json"):
        small_trainer(None).resume(full_checkpoint)


def test_an_invalid_codec_json_is_one_clear_error(full_checkpoint):
    _strip_manifest(full_checkpoint)
    (full_checkpoint / "codec.json").write_text('{"kind": "nonsense"}')
    with pytest.raises(CheckpointError, match=r"codec\.json is invalid"):
        load_codec(full_checkpoint)


# ---- NaN -----------------------------------------------------------------------------------


class Blowup(Callback):
    """After the update of step ``at``, set the weights near 1e30: finite, but the next loss
    is not (the weights an exploding run leaves)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_batch_end(self, t, index, info) -> None:
        if t.step == self.at:
            with torch.no_grad():
                for p in t.model.parameters():
                    p.fill_(1e30)


def test_nan_stop_names_and_resumes_from_the_last_checkpoint_with_a_finite_loss(tmp_path):
    from rnnkit.training import CheckpointConfig

    cfg = dict(epochs=2, n=64, checkpoint=CheckpointConfig(every_steps=1, keep_last=1))
    trainer = small_trainer(tmp_path, **cfg)
    trainer.callbacks.append(Blowup(3))
    with pytest.raises(NonFiniteLossError) as e:
        trainer.fit()
    msg = str(e.value)
    assert msg.startswith("loss is ") and "at step 3 (epoch 1, batch 3)" in msg
    assert msg.endswith(f"last good checkpoint: {tmp_path / 'checkpoints' / 'step-00000002'}")
    bad = tmp_path / "checkpoints" / "step-00000003"
    big = load_file(bad / "model.safetensors")  # written after step 3, with the 1e30 weights
    assert max(float(v.abs().max()) for v in big.values()) >= 1e29
    good = locate_checkpoint(tmp_path)
    assert good.name == "step-00000002"  # what `rnnkit resume` continues from
    assert all(torch.isfinite(v).all() for v in load_model(good).state_dict().values())
    again = small_trainer(tmp_path, **cfg)
    again.resume(locate_checkpoint(tmp_path))
    again.fit()
    assert again.step == 8 and all(math.isfinite(h["train_loss"]) for h in again.history)


def test_nan_at_the_first_step_names_no_checkpoint(tmp_path):
    from rnnkit.training import CheckpointConfig

    trainer = small_trainer(tmp_path, epochs=1, checkpoint=CheckpointConfig(every_steps=1))
    trainer.callbacks.append(Blowup(1))
    with pytest.raises(NonFiniteLossError, match="no checkpoint with a finite loss"):
        trainer.fit()
    assert locate_checkpoint(tmp_path) is None  # a resume starts afresh
