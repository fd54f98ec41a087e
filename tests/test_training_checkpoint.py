"""Checkpoints: round trip, no pickles, atomic writes, keep last k and the best."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from _training_helpers import small_model, small_trainer, weights
from rnnkit.data.codec import SymbolCodec
from rnnkit.data.synthetic import adding_problem
from rnnkit.training import (
    CheckpointManager,
    load_codec,
    load_model,
    load_trainer_state,
    save_checkpoint,
)
from rnnkit.training.checkpoint import optimizer_from_flat, optimizer_to_flat


def test_model_rebuilds_from_checkpoint_alone(tmp_path):
    model = small_model("lstm", recurrent_scale=0.5)
    codec = SymbolCodec(("<pad>", "a"))
    path = save_checkpoint(tmp_path / "ck", model, codec=codec)
    assert sorted(p.name for p in path.iterdir()) == [
        "codec.json",
        "model.json",
        "model.safetensors",
    ]
    meta = json.loads((path / "model.json").read_text())
    assert meta["class"] == "rnnkit.models.recurrent.RecurrentModel"
    again = load_model(path)
    assert again.config == model.config
    assert load_codec(path) == codec
    batch = adding_problem(4, 6, seed=0)
    want = model.predict_steps(batch)
    torch.testing.assert_close(again.predict_steps(batch), want, rtol=0, atol=0)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    trainer = small_trainer(tmp_path, epochs=1)
    trainer.fit()
    path = trainer.checkpoints.latest()

    def refuse(*a, **k):
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", refuse)
    import pickle

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    load_model(path)
    other = small_trainer(None, epochs=1)
    other.resume(path)
    suffixes = {p.suffix for p in path.iterdir()}
    assert suffixes <= {".json", ".safetensors"}


def test_model_class_outside_rnnkit_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "ck", small_model())
    meta = json.loads((path / "model.json").read_text())
    meta["class"] = "os.system"
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="outside the rnnkit package"):
        load_model(path)


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam", "adamw"])
def test_optimizer_state_round_trip(name):
    from rnnkit.training.config import OptimConfig
    from rnnkit.training.optim import build_optimizer

    model = small_model()
    opt = build_optimizer(model.parameters(), OptimConfig(name=name), 0.01)
    for _ in range(2):
        loss, _ = model.loss(adding_problem(4, 5, seed=0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    tensors, meta = optimizer_to_flat(opt)
    meta = json.loads(json.dumps(meta))  # through JSON, as on disk
    fresh = build_optimizer(model.parameters(), OptimConfig(name=name), 0.5)
    optimizer_from_flat(fresh, tensors, meta)
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid, st in a["state"].items():
        for key, value in st.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["state"][pid][key]))


def test_trainer_state_restores_rng_and_optimizer(tmp_path):
    trainer = small_trainer(None, epochs=1)
    trainer.fit()
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    path = save_checkpoint(tmp_path / "ck", trainer.model, trainer.optimizer, {"step": 7})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    other = small_trainer(None, epochs=1)
    state = load_trainer_state(path, other.optimizer)
    assert state["step"] == 7
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0])
    assert np.array_equal(expected[1], got[1]) and expected[2] == got[2]


def test_keep_last_k_and_best(tmp_path):
    model = small_model()
    manager = CheckpointManager(tmp_path, keep_last=2, mode="min")
    for step, metric in [(1, 0.5), (2, 0.1), (3, 0.4), (4, 0.3), (5, None)]:
        manager.save(step, model, None, {"step": step}, metric)
    kept = sorted(p.name for p in tmp_path.glob("step-*"))
    assert kept == ["step-00000002", "step-00000004", "step-00000005"]
    assert manager.best().name == "step-00000002"
    assert manager.latest().name == "step-00000005"
    reopened = CheckpointManager(tmp_path, keep_last=2)
    assert reopened.latest() == manager.latest() and reopened.best() == manager.best()


def test_interrupted_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    model = small_model()
    manager = CheckpointManager(tmp_path, keep_last=2)
    manager.save(1, model, None, {"step": 1})
    before = weights(load_model(manager.latest()))

    def crash(*a, **k):
        raise OSError("disk gone")

    import rnnkit.training.checkpoint as ck

    monkeypatch.setattr(ck.os, "rename", crash)
    with pytest.raises(OSError):
        manager.save(2, small_model(seed=9), None, {"step": 2})
    monkeypatch.undo()
    assert not (tmp_path / "step-00000002").exists()
    reopened = CheckpointManager(tmp_path, keep_last=2)  # cleans the half-written directory
    assert not list(tmp_path.glob(".*tmp*"))
    assert reopened.latest().name == "step-00000001"
    after = weights(load_model(reopened.latest()))
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_readers_locate_without_touching_a_write_in_progress(tmp_path):
    from rnnkit.training import locate_checkpoint

    assert locate_checkpoint(tmp_path) is None
    manager = CheckpointManager(tmp_path, keep_last=1)
    manager.save(3, small_model(), None, {"step": 3}, metric=0.5)
    manager.save(4, small_model(), None, {"step": 4}, metric=0.7)
    in_progress = tmp_path / ".step-00000005.tmp-12345"
    in_progress.mkdir()
    assert locate_checkpoint(tmp_path).name == "step-00000004"
    assert locate_checkpoint(tmp_path, "best").name == "step-00000003"
    assert in_progress.exists()
    with pytest.raises(ValueError, match="which must be"):
        locate_checkpoint(tmp_path, "oldest")


def test_rewriting_a_step_replaces_it(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    manager.save(1, small_model(seed=0), None, {"step": 1})
    manager.save(1, small_model(seed=5), None, {"step": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json", "step-00000001"]
    got, want = weights(load_model(manager.latest())), weights(small_model(seed=5))
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_tied_weights_survive_a_checkpoint(tmp_path):
    """A model whose parameters share memory (tied embeddings) saves, loads and stays tied."""
    from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig
    from rnnkit.training.checkpoint import load_model, save_checkpoint

    torch.manual_seed(0)
    config = Seq2SeqConfig(
        source_vocab_size=9,
        target_vocab_size=9,
        hidden_size=4,
        embedding_size=8,
        share_embeddings=True,
        tie_embeddings=True,
    )
    model = Seq2Seq(config)
    save_checkpoint(tmp_path / "ckpt", model)
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.head.weight is loaded.source_embedding.weight  # still one parameter
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)
