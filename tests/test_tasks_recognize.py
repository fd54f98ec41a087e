"""The recognize task (CTC) on tiny fixtures the tests write: composing strings of utterances,
the splits, scores and baselines, and a run through the CLI and from Python."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import _training_helpers  # noqa: F401  (one torch thread)
import rnnkit
from rnnkit.cli import app
from rnnkit.data.readers import write_ts
from rnnkit.tasks.recognize import (
    RecognizeConfig,
    compose_strings,
    plot_posteriors,
    prepare,
    transcript_scores,
)

WORDS = ("1", "2", "3")
D = 4  # feature 0: energy (low at the edges), 1-3: the word's one-hot, louder in the middle


def _utterance(rng: random.Random, word: str, marker: float = 0.0) -> np.ndarray:
    t = rng.randint(3, 5)
    x = np.zeros((t, D), dtype=np.float32)
    x[:, 0] = [-2.0] + [1.0] * (t - 2) + [-2.0]  # quiet edges
    x[1:-1, 1 + WORDS.index(word)] = 2.0
    x += np.float32(0.1) * np.array([[rng.gauss(0, 1) for _ in range(D)] for _ in range(t)])
    x[:, 3] += marker  # a split's own offset on one feature: where each frame came from
    return x


def _write_split(path, n: int, seed: int, marker: float = 0.0) -> None:
    rng = random.Random(seed)
    labels = [rng.choice(WORDS) for _ in range(n)]
    series = [_utterance(rng, w, marker) for w in labels]
    write_ts(path, series, labels, problem_name="Tiny", class_labels=list(WORDS))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("utterances")
    for split, n, seed in (("train", 60, 0), ("valid", 20, 1), ("test", 20, 2)):
        _write_split(tmp / f"{split}.ts", n, seed)
    return tmp


def _settings(files) -> list[str]:
    return [
        'task.dataset=""',
        f'task.train="{files / "train.ts"}"',
        f'task.valid="{files / "valid.ts"}"',
        f'task.test="{files / "test.ts"}"',
        "task.train_strings=96",
        "task.valid_strings=16",
        "task.test_strings=16",
        "task.max_words=3",
        "model.hidden_size=12",
        "model.num_layers=1",
        "model.cell='gru'",
        "trainer.epochs=3",
        "trainer.batch_size=8",
        "trainer.lr=0.02",
        "trainer.log.tensorboard=false",
    ]


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


@pytest.fixture(scope="module")
def run(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("speech") / "run"
    code, text = _cli("train", "speech", *_sets(_settings(files)), "--out", str(out))
    assert code == 0, text
    return out


def test_composed_strings_are_utterances_of_their_own_split_joined_by_silence_frames():
    rng = random.Random(0)
    series = [_utterance(rng, w) for w in WORDS * 4]
    labels = list(WORDS * 4)
    silence = {tuple(s[int(np.argmin(s[:, 0]))]) for s in series}
    strings, transcripts = compose_strings(series, labels, 50, seed=3, words=(2, 4), gap=(1, 2))
    assert transcripts != compose_strings(series, labels, 50, seed=4)[1]
    again = compose_strings(series, labels, 50, seed=3, words=(2, 4), gap=(1, 2))
    assert transcripts == again[1]
    assert all(np.array_equal(a, b) for a, b in zip(strings, again[0], strict=True))

    def utterance_at(x: np.ndarray, t: int) -> int | None:
        found = [i for i, u in enumerate(series) if np.array_equal(x[t : t + len(u)], u)]
        return found[0] if found else None

    for x, text in zip(strings, transcripts, strict=True):
        # walk the string: a whole utterance, then 1-2 silence frames, then the next one
        t, found, gaps = 0, [], []
        while True:
            i = utterance_at(x, t)
            assert i is not None, (text, t)
            found.append(labels[i])
            t += len(series[i])
            if t == len(x):
                break
            g = next(g for g in (1, 2) if utterance_at(x, t + g) is not None)
            assert all(tuple(f) in silence for f in x[t : t + g])
            gaps.append(g)
            t += g
        assert found == text.split() and 2 <= len(found) <= 4 and len(gaps) == len(found) - 1


def test_no_utterance_is_heard_in_two_splits(tmp_path, monkeypatch):
    """The spoken-digits dataset as fetched (a fake cache): each split's strings hold frames of
    that split's utterances only, gaps included (each split's utterances carry an offset)."""
    home = tmp_path / "cache"
    folder = home / "spoken-digits"
    folder.mkdir(parents=True)
    for split, marker, seed in (("train", 0.0, 0), ("valid", 50.0, 1), ("test", 100.0, 2)):
        _write_split(folder / f"{split}.ts", 30, seed, marker)
    meta = {
        "name": "spoken-digits",
        "path": str(folder),
        "splits": {"train": 30, "valid": 30, "test": 30},
        "bytes": 0,
        "download_bytes": 0,
        "seconds": 0.0,
        "sha256": {},
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    monkeypatch.setenv("RNNKIT_DATA", str(home))
    cfg = RecognizeConfig(train_strings=40, valid_strings=10, test_strings=12)
    data = prepare(cfg, seed=0)
    assert data.fixed == {"source_features": D, "target_vocab_size": 7}
    assert (data.train.size, data.val.size, data.test.size) == (40, 10, 12)
    std = data.codec.standardizer
    marks = {}
    for split in ("train", "val", "test"):
        rows = getattr(data, split)
        valid = torch.arange(rows.source.shape[1]) < rows.source_lengths[:, None]
        raw = rows.source[valid][:, 3] * std.std[3] + std.mean[3]  # undo the standardisation
        marks[split] = (round(float(raw.min()) / 50), round(float(raw.max()) / 50))
    assert marks == {"train": (0, 0), "val": (1, 1), "test": (2, 2)}
    assert abs(std.mean[0]) > 0 and data.codec.target_eos is False
    # validation and test strings do not depend on the run's seed; training strings do
    other = prepare(cfg, seed=1)
    assert other.references["test"] == data.references["test"]
    assert not torch.equal(other.train.target, data.train.target)


def test_scores_and_baselines():
    assert transcript_scores([["1", "2"], ["3"]], [["1", "2"], ["3", "3"]]) == {
        "error_rate": 0.25,
        "exact": 0.5,
    }


def test_config_errors_name_the_setting():
    with pytest.raises(ValueError, match="dataset must be one of"):
        RecognizeConfig(dataset="timit")
    with pytest.raises(ValueError, match="train_strings=5 does not apply: the data is images"):
        RecognizeConfig(dataset="digit-strips", train_strings=5)
    with pytest.raises(ValueError, match=r"scale=0.5 does not apply: the data is utterances"):
        RecognizeConfig(scale=0.5)
    with pytest.raises(ValueError, match="max_words must be >= min_words=3, got 2"):
        RecognizeConfig(min_words=3, max_words=2)
    with pytest.raises(ValueError, match="min_gap and max_gap must satisfy"):
        RecognizeConfig(min_gap=3, max_gap=1)
    with pytest.raises(ValueError, match="needs train and valid files"):
        RecognizeConfig(dataset="")
    with pytest.raises(ValueError, match=r"train: expected a \.ts or \.jsonl file, got '\.csv'"):
        RecognizeConfig(dataset="", train="a.csv", valid="b.csv")


def test_evaluate_reports_scores_and_baselines_greedy_and_beam(run):
    code, out = _cli("evaluate", str(run))
    assert code == 0, out
    greedy = json.loads(out)
    for key in (
        "loss",
        "error_rate",
        "exact",
        "baseline_frequent_transcript_exact",
        "baseline_duration_guess_error_rate",
    ):
        assert key in greedy, key
    assert greedy["error_rate"] < 0.5  # 3 words, 3 epochs: far better than guessing
    code, out = _cli("evaluate", str(run), "--set", "task.beam=4")
    assert code == 0, out
    assert json.loads(out)["error_rate"] <= greedy["error_rate"] + 0.1


def test_evaluate_on_a_file_of_utterances_composes_its_strings(run, files):
    code, out = _cli("evaluate", str(run), "--data", str(files / "test.ts"))
    assert code == 0, out
    again = json.loads(out)
    assert again["n"] == 16 and 0 <= again["error_rate"] <= 1  # task.test_strings strings
    code, out = _cli("evaluate", str(run), "--data", str(files / "test.jsonl"))
    assert code == 2 and "this run reads .ts files of utterances" in out, out


def test_load_predict_and_the_posterior_plot(run, files, tmp_path):
    model = rnnkit.load(run)
    rng = random.Random(9)
    words = ["3", "1", "2"]
    gap = np.zeros((1, D), dtype=np.float32) - 2.0
    utterance = np.concatenate([_utterance(rng, words[0]), gap, _utterance(rng, words[1])])
    one = model.predict(utterance)
    assert str(one) == one.text and isinstance(one.score, float)
    both = model.predict([utterance, utterance[:5]])
    assert len(both) == 2 and str(both[0]) == str(one)
    path = plot_posteriors(run, tmp_path / "posteriors.png", index=1)
    assert path.stat().st_size > 5000
    with pytest.raises(ValueError, match=r"index must be in \[0, 16\), got 99"):
        plot_posteriors(run, tmp_path / "x.png", index=99)


def test_predict_file_npy_prints_the_transcript_and_bad_input_is_one_message(run, tmp_path):
    rng = random.Random(5)
    x = np.concatenate([_utterance(rng, "2"), _utterance(rng, "3")])
    np.save(tmp_path / "utterance.npy", x)
    code, out = _cli("predict", str(run), "--file", str(tmp_path / "utterance.npy"))
    assert code == 0, out
    assert out.strip() == str(rnnkit.load(run).predict(x))
    np.save(tmp_path / "wide.npy", np.zeros((5, D + 1)))
    for name in ("wide.npy", "missing.npy"):
        code, out = _cli("predict", str(run), "--file", str(tmp_path / name))
        assert code == 2 and "Traceback" not in out and len(out.strip().splitlines()) == 1, out


def test_diagnose_draws_gradients_gates_and_curves(run):
    code, out = _cli("diagnose", str(run))
    assert code == 0, out
    for name in ("grad_norms.png", "gates.png", "hidden.png", "curves.png"):
        assert (run / "diagnostics" / name).stat().st_size > 1000


def test_bad_settings_and_files_are_one_clear_message(files, tmp_path):
    base = _sets(_settings(files))
    for item, named in (
        ("model.source_features=3", "model.source_features: set by the task"),
        ("model.conv_channels=8", "conv_channels sizes the image encoder"),
        ("task.compose=10", "compose=10 does not apply"),
        ("model.bogus=1", "model.bogus: unknown key"),
    ):
        code, out = _cli("train", "ctc", *base, "--set", item, "--out", str(tmp_path / "r"))
        assert code == 2 and named in out and "Traceback" not in out, (item, out)
    (tmp_path / "bad.ts").write_text("@problemName X\n@data\n1,2:3\n")
    bad = [*_settings(files), f'task.valid="{tmp_path / "bad.ts"}"']
    code, out = _cli("train", "ctc", *_sets(bad), "--out", str(tmp_path / "r2"))
    assert code == 2 and "bad.ts" in out and "Traceback" not in out, out


def test_digit_strips_from_captioned_images(tmp_path):
    """Images read column by column: a JSONL of captioned strips, trained from Python."""
    rng = random.Random(0)
    lines = []
    for _ in range(48):
        digits = rng.choices(range(3), k=rng.randint(1, 3))
        pixels = [[(d + 1) * 5 * (r == d) for d in digits for _ in range(3)] for r in range(4)]
        lines.append(json.dumps({"pixels": pixels, "caption": " ".join(WORDS[d] for d in digits)}))
    f = tmp_path / "strips.jsonl"
    f.write_text("\n".join(lines) + "\n")
    model = rnnkit.train(
        "recognize",
        tmp_path / "strips",
        overrides=[
            'task.dataset=""',
            f'task.train="{f}"',
            f'task.valid="{f}"',
            "model.conv_channels=4",
            "model.hidden_size=8",
            "model.num_layers=1",
            "trainer.epochs=2",
            "trainer.batch_size=8",
            "trainer.log.tensorboard=false",
        ],
    )
    assert model.config.image_height == 4 and model.codec.source_kind == "image"
    image = np.array(json.loads(lines[0])["pixels"], dtype=np.float32)
    assert isinstance(str(model.predict(image)), str)
    code, out = _cli("evaluate", str(tmp_path / "strips"), "--data", str(f))
    assert code == 0 and "error_rate" in json.loads(out), out


@pytest.mark.parametrize("name", ["speech.toml", "ctc_strips.toml"])
def test_the_shipped_configs_load(name):
    from pathlib import Path

    from rnnkit.tasks.run import load_run_config

    path = Path(__file__).resolve().parents[1] / "configs" / name
    cfg = load_run_config("recognize", path)
    assert cfg.score_val and cfg.trainer.monitor == "val_exact"
