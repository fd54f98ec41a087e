"""The music tasks on tiny score files the tests write: the data each prepares, training,
evaluation with its baselines, `rnnkit generate --out` writing MIDI that music21 reads back,
and one clear message for every bad setting or option."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

import _training_helpers  # noqa: F401  (one torch thread)
from rnnkit.cli import app
from rnnkit.data.readers import REST, read_scores
from rnnkit.tasks.base import get_task
from rnnkit.tasks.music import PianoRollTaskConfig

VOICES = ("Soprano", "Alto", "Tenor", "Bass")
CHORDS = [(72, 67, 64, 48), (74, 65, 62, 50), (71, 67, 62, 43), (72, 64, 60, 45)]
TRAINER = [
    "model.hidden_size=8",
    "trainer.epochs=2",
    "trainer.batch_size=4",
    "trainer.log.tensorboard=false",
    "trainer.log.progress=none",
]


def _chorale(rng: random.Random, i: int, **extra) -> dict:
    chords = [rng.choice(CHORDS) for _ in range(rng.randint(4, 7))]
    durations = [rng.choice([0.5, 1.0, 1.0, 2.0]) for _ in chords]
    parts = {
        v: [[c[k], d] for c, d in zip(chords, durations, strict=True)] for k, v in enumerate(VOICES)
    }
    parts["Bass"][1][0] = REST
    return {"id": f"c{i}", "parts": parts, **extra}


def _melody(rng: random.Random, i: int) -> dict:
    steps = [
        rng.choice([(60, 1.0), (62, 0.5), (64, 0.5), (65, 1.0), (67, 2.0), (REST, 0.5)])
        for _ in range(rng.randint(5, 12))
    ]
    return {"id": f"m{i}", "parts": {"melody": [list(s) for s in steps]}}


def _write(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("music")
    rng = random.Random(0)
    train = [_chorale(rng, i, riemenschneider=[i + 1]) for i in range(6)]
    train.append(_chorale(rng, 99, riemenschneider=[]))  # outside the collection: dropped
    return {
        "train": _write(root / "train.jsonl", train),
        "valid": _write(root / "valid.jsonl", [_chorale(rng, 10 + i) for i in range(3)]),
        "melody_train": _write(root / "mtrain.jsonl", [_melody(rng, i) for i in range(16)]),
        "melody_valid": _write(root / "mvalid.jsonl", [_melody(rng, 20 + i) for i in range(4)]),
    }


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def _one_error_line(r, *needles: str) -> None:
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert not r.exception or isinstance(r.exception, SystemExit), r.exception
    lines = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, r.output
    for needle in needles:
        assert needle in lines[0], r.output


def _pianoroll_sets(files) -> list[str]:
    return ['task.dataset=""', f'task.train="{files["train"]}"', f'task.valid="{files["valid"]}"']


def _melody_sets(files) -> list[str]:
    return [
        'task.dataset=""',
        f'task.train="{files["melody_train"]}"',
        f'task.valid="{files["melody_valid"]}"',
        "model.embedding_size=8",
        "model.num_layers=1",
    ]


def test_pianoroll_data_transposes_the_training_split_only(files):
    cfg = PianoRollTaskConfig(dataset="", train=files["train"], valid=files["valid"], transpose=2)
    data = get_task("chorales").prepare(cfg, 0, None)
    assert data.train.size == 6 * 5  # six chorales of the collection, in five keys
    assert data.val.size == data.test.size == 3  # never transposed
    assert (data.codec.low, data.codec.pitches) == (43 - 2, 74 - 43 + 1 + 4)
    assert data.codec.part_names == VOICES and data.fixed == {"pitches": 36}
    assert set(data.baseline) == {
        "marginal_val",
        "marginal_test",
        "repeat_val",
        "repeat_test",
        "repeat_weight",
    }
    keys = data.train.targets[:5].any(1).float().argmax(1).tolist()  # one piece, 5 shifts
    assert keys == [keys[0] + s for s in range(5)]  # the lowest note moves up a semitone


def test_pianoroll_task_trains_evaluates_and_writes_midi(files, tmp_path):
    run = tmp_path / "run"
    r = _cli("train", "pianoroll", *_sets([*_pianoroll_sets(files), *TRAINER]), "--out", str(run))
    assert r.exit_code == 0, r.output
    r = _cli("evaluate", str(run))
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.output)
    assert metrics["nll_per_frame"] == pytest.approx(metrics["loss"])
    assert metrics["baseline_marginal_test"] > 0 and "baseline_repeat_test" in metrics
    r = _cli("evaluate", str(run), "--data", files["valid"])
    assert r.exit_code == 0 and json.loads(r.output)["n"] == 3.0, r.output
    r = _cli("diagnose", str(run))
    assert r.exit_code == 0 and "gates.png" in r.output, r.output
    song = tmp_path / "out" / "song.mid"
    r = _cli(
        "generate",
        str(run),
        "--prime",
        "72.67.64.48",
        "--length",
        "12",
        "--seed",
        "1",
        "--temperature",
        "0.5",
        "--out",
        str(song),
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.split()[0] == "72.67.64.48" and len(r.stdout.split()) == 13
    for path in (song, song.with_suffix(".musicxml"), song.with_suffix(".png")):
        assert path.stat().st_size > 0, path
    [score] = read_scores(song)  # music21 reads the MIDI back
    notes = [p for part in score.parts.values() for p, _ in part if p != REST]
    assert 72 in notes and 48 in notes  # the prime's chord opens it


def test_melody_task_trains_evaluates_and_writes_midi(files, tmp_path):
    run = tmp_path / "run"
    r = _cli("train", "melody", *_sets([*_melody_sets(files), *TRAINER]), "--out", str(run))
    assert r.exit_code == 0, r.output
    r = _cli("evaluate", str(run))
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.output)
    assert {"baseline_markov1_test", "baseline_markov3_test"} <= set(metrics)
    r = _cli("evaluate", str(run), "--data", files["melody_valid"])
    assert r.exit_code == 0, r.output
    song = tmp_path / "tune.mid"
    r = _cli(
        "generate",
        str(run),
        "--prime",
        "p60_1 p62_0.5",
        "--length",
        "30",
        "--seed",
        "2",
        "--out",
        str(song),
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("p60_1 p62_0.5 ")  # the prime as typed, then the new events
    [score] = read_scores(song)
    [melody] = score.parts.values()
    assert melody[:2] == [(60, 1.0), (62, 0.5)]
    assert song.with_suffix(".png").stat().st_size > 0

    # bad input to generate: one sentence each, nothing sampled first
    r = _cli("generate", str(run), "--prime", "PRIME", "--out", str(tmp_path / "x.wav"))
    _one_error_line(r, "--out", "ending in .mid or .midi", "x.wav")
    assert "PRIME" not in r.stdout
    r = _cli("generate", str(run), "--out", str(tmp_path))
    _one_error_line(r, "--out", "ending in .mid")
    r = _cli("generate", str(run), "--prime", "p60_1.0 p62.5")
    _one_error_line(r, "--prime: music token 'p62.5'")
    assert "p60_1.0" not in r.stdout


def test_bad_settings_and_options_give_one_clear_message(files, tmp_path):
    p = _pianoroll_sets(files)
    for item, needle in (
        ("task.frame=0", "frame must be a quarter length > 0"),
        ("task.transpose=20", "transpose must be 0-12"),
        ('task.dataset="essen-folk"', "dataset must be 'bach-chorales'"),
        ("model.pitches=12", "model.pitches"),
        ("model.frame_dropout=1.5", "frame_dropout"),
    ):
        r = _cli("train", "pianoroll", *_sets([*p, item, *TRAINER]), "--out", str(tmp_path / "x"))
        _one_error_line(r, needle)
    m = _melody_sets(files)
    for item, needle in (
        ('task.part="Soprano"', "task.part='Soprano'"),
        ('task.dataset="bach-chorales"', "dataset must be 'essen-folk'"),
        ("task.max_vocab=2", "max_vocab"),
    ):
        r = _cli("train", "melody", *_sets([*m, item, *TRAINER]), "--out", str(tmp_path / "y"))
        _one_error_line(r, needle)
    # a note outside the trained range, and options a piano-roll model has no use for
    run = tmp_path / "run"
    r = _cli(
        "train", "pianoroll", *_sets([*p, "trainer.epochs=1", *TRAINER[2:]]), "--out", str(run)
    )
    assert r.exit_code == 0, r.output
    _one_error_line(_cli("generate", str(run), "--prime", "99"), "--prime: frame 1 '99'")
    _one_error_line(_cli("generate", str(run), "--top-k", "3"), "top_k: a piano-roll model")
    _one_error_line(
        _cli(
            "generate",
            str(run),
            "--temperature",
            "0",
            "--length",
            "0",
            "--out",
            str(tmp_path / "silent.mid"),
        ),
        "--out",
        "no note",
    )
    # --out on a model whose samples are text
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. " * 40)
    lm = tmp_path / "lm"
    sets = [
        f'task.train_files=["{text}"]',
        f'task.val_files=["{text}"]',
        "task.streams=2",
        "task.eval_streams=1",
        "task.window=16",
        "model.embedding_size=4",
        "model.num_layers=1",
        "trainer.epochs=1",
        *TRAINER[2:],
    ]
    r = _cli("train", "lm", *_sets([*sets, "model.hidden_size=4"]), "--out", str(lm))
    assert r.exit_code == 0, r.output
    r = _cli("generate", str(lm), "--prime", "PRIME", "--out", str(tmp_path / "t.mid"))
    _one_error_line(r, "--out", "a language model, whose samples are text only")
    assert "PRIME" not in r.stdout
