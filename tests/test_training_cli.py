"""The train/resume/evaluate/diagnose commands through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import _training_helpers  # noqa: F401  (one torch thread)
from rnnkit.cli import app


def _sets(*items: str) -> list[str]:
    """``--set`` options for each ``key=value`` item."""
    return [a for item in items for a in ("--set", item)]


SMALL = _sets(
    "task.seq_len=8",
    "task.n_train=64",
    "task.n_val=32",
    "task.n_test=32",
    "model.hidden_size=8",
    "trainer.epochs=1",
    "trainer.batch_size=16",
    'trainer.log.progress="none"',
)


def test_train_evaluate_resume_diagnose(tmp_path):
    runner = CliRunner()
    cfg = tmp_path / "run.toml"
    cfg.write_text("[model]\ncell = 'rnn'\n[trainer]\nlr = 0.01\n[trainer.log]\nformat = 'jsonl'\n")
    out = tmp_path / "run"
    r = runner.invoke(
        app, ["train", "adding", "--config", str(cfg), *SMALL, "--seed", "4", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert "done: 1 epochs, 4 steps" in r.output
    saved = json.loads((out / "config.json").read_text())
    assert saved["seed"] == 4 and saved["model"]["cell"] == "rnn"
    assert saved["trainer"]["lr"] == 0.01
    r = runner.invoke(app, ["evaluate", str(out)])
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.output)
    assert metrics["baseline_loss"] == 1 / 6 and metrics["loss"] > 0
    r = runner.invoke(app, ["resume", str(out)])  # already finished: nothing more to do
    assert r.exit_code == 0 and "done: 1 epochs, 4 steps" in r.output
    r = runner.invoke(app, ["diagnose", str(out)])
    assert r.exit_code == 0, r.output
    pngs = r.output.split()
    assert [p.rsplit("/", 1)[1] for p in pngs] == [
        "grad_norms.png",
        "gates.png",
        "hidden.png",
        "curves.png",
    ]
    for p in pngs:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = runner.invoke(app, ["train", "adding", *SMALL, "--out", str(out)])
    assert r.exit_code == 2 and "already holds a run" in r.output


def test_copy_task_trains_with_accuracy(tmp_path):
    r = CliRunner().invoke(
        app,
        [
            "train",
            "copy",
            *SMALL[8:],
            *_sets(
                "task.delay=5",
                "task.copy_len=3",
                "task.n_train=64",
                "task.n_val=32",
                "task.n_test=32",
                "trainer.tbptt=4",
            ),
            "--out",
            str(tmp_path / "copy"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "val_accuracy=" in r.output
    from rnnkit.tasks.run import checkpoint_path
    from rnnkit.training import load_codec

    codec = load_codec(checkpoint_path(tmp_path / "copy"))
    assert codec.symbols[0] == "<blank>" and codec.symbols[-1] == "<recall>"
    assert len(codec.symbols) == 8 + 2


def test_config_errors_exit_2_naming_the_key(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["train", "adding", "--set", "trainer.lrr=1", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "trainer.lrr: unknown key" in r.output
    r = runner.invoke(app, ["train", "nope", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "unknown task 'nope'" in r.output
    r = runner.invoke(app, ["resume", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "not a run directory" in r.output


def test_exploding_run_stops_with_step_batch_and_checkpoint(tmp_path):
    sets = [
        "task.seq_len=30",
        "task.n_train=128",
        "task.n_val=32",
        "model.cell=rnn",
        "model.nonlinearity=relu",
        "model.recurrent_scale=1.3",
        "model.hidden_size=16",
        "trainer.optim.name=sgd",
        "trainer.lr=0.05",
        "trainer.batch_size=16",
        "trainer.epochs=3",
        'trainer.log.progress="none"',
        "trainer.checkpoint.every_steps=1",
    ]
    out = tmp_path / "boom"
    r = CliRunner().invoke(app, ["train", "adding", *_sets(*sets), "--out", str(out)])
    assert r.exit_code == 1
    assert "error: loss is nan at step 1 (epoch 1, batch 1)" in r.output
    # step 1's weights are the ones whose loss is nan: no checkpoint is good to resume from,
    # and it stays on disk for inspection (out of the index)
    assert "no checkpoint with a finite loss to resume from" in r.output
    assert (out / "checkpoints" / "step-00000001" / "model.safetensors").exists()
