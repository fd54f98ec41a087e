"""Issue 18, findings 4, 6 (part), 8 (part) and 9: every bad config value refused at load, an
unknown monitored metric refused at the first validation, `evaluate` writing valid JSON and
failing on a non-finite loss, and one line ``error: ...`` (exit 2 for bad input, 1 for a
runtime fault) instead of a traceback, which ``--debug`` or ``RNNKIT_DEBUG=1`` brings back."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch
import typer
from typer.testing import CliRunner

from rnnkit import tasks
from rnnkit.cli import app
from rnnkit.config import ConfigError, load_toml
from rnnkit.data import registry
from rnnkit.data.fetching import Artifact, sha256_of
from rnnkit.decoding import generate, sample_next
from rnnkit.tasks import run
from rnnkit.training.config import (
    EarlyStoppingConfig,
    OptimConfig,
    ScheduleConfig,
    TrainerConfig,
)

ADDING = [
    "task.n_train=16",
    "task.n_val=8",
    "task.n_test=8",
    "task.seq_len=4",
    "trainer.epochs=1",
    "trainer.batch_size=8",
    "trainer.log.tensorboard=false",
    'trainer.log.progress="none"',
]


def _sets(items) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def _cli(*args: str, **kw):
    return CliRunner().invoke(app, list(args), **kw)


def _one_error_line(r, *needles: str) -> None:
    """A single ``error:`` line naming ``needles``, and no traceback."""
    assert "Traceback" not in r.output
    assert not r.exception or isinstance(r.exception, SystemExit), r.exception
    lines = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, r.output
    for needle in needles:
        assert needle in lines[0], r.output


@pytest.fixture(scope="module")
def adding_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("adding") / "run"
    r = _cli("train", "adding", *_sets(ADDING), "--out", str(out))
    assert r.exit_code == 0, r.output
    return out


# ---- finding 4: silent wrong training ------------------------------------------------------


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.schedule.min_lr=-1", "trainer.schedule.min_lr"),
        ("trainer.schedule.min_lr=nan", "trainer.schedule.min_lr"),
        ("trainer.schedule.min_lr=inf", "trainer.schedule.min_lr"),
        ("trainer.epochs=1e23", "trainer.epochs"),
        ("trainer.lr=nan", "trainer.lr"),
        ("trainer.lr=inf", "trainer.lr"),
        ("trainer.clip_norm=nan", "trainer.clip_norm"),
        ("trainer.clip_value=inf", "trainer.clip_value"),
        ("trainer.max_minutes=nan", "trainer.max_minutes"),
        ("trainer.schedule.gamma=nan", "trainer.schedule.gamma"),
        ("trainer.schedule.factor=inf", "trainer.schedule.factor"),
        ("trainer.early_stopping.min_delta=nan", "trainer.early_stopping.min_delta"),
        ("trainer.early_stopping.min_delta=-0.1", "trainer.early_stopping.min_delta"),
        ("trainer.optim.eps=inf", "trainer.optim.eps"),
        ("trainer.optim.momentum=nan", "trainer.optim.momentum"),
        ("trainer.optim.weight_decay=inf", "trainer.optim.weight_decay"),
        ("trainer.optim.alpha=nan", "trainer.optim.alpha"),
        ("trainer.optim.betas=[nan, 0.9]", "trainer.optim.betas"),
        ('trainer.monitor=""', "trainer.monitor"),
        ("trainer.log.every_steps=0", "trainer.log.every_steps"),
        ("model.recurrent_scale=nan", "model.recurrent_scale"),
    ],
)
def test_bad_config_values_refused_at_load(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run.load_run_config("adding", None, [*ADDING, 'trainer.schedule.name="cosine"', override])
    out = tmp_path / "run"
    r = _cli("train", "adding", *_sets([*ADDING, override]), "--out", str(out))
    assert r.exit_code == 2
    _one_error_line(r, key)
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize(
    "build",
    [
        lambda: TrainerConfig(epochs=1e23),  # a float where an int is wanted
        lambda: TrainerConfig(batch_size=2.5),
        lambda: TrainerConfig(lr=float("nan")),
        lambda: TrainerConfig(mode="up"),
        lambda: TrainerConfig(clip_norm=float("inf")),
        lambda: ScheduleConfig(name="cosine", min_lr=-1.0),
        lambda: ScheduleConfig(name="linear"),
        lambda: ScheduleConfig(warmup_steps=1.5),
        lambda: OptimConfig(eps=float("nan")),
        lambda: OptimConfig(name="lion"),
        lambda: EarlyStoppingConfig(min_delta=float("nan")),
    ],
)
def test_bad_values_refused_at_construction(build):
    with pytest.raises(ValueError, match=r"must be .*, got"):
        build()


def test_unknown_monitored_metric_refused_at_first_validation(tmp_path):
    r = _cli(
        "train",
        "adding",
        *_sets([*ADDING, 'trainer.monitor="val_bogus"']),
        "--out",
        str(tmp_path / "run"),
    )
    assert r.exit_code == 2
    _one_error_line(r, "'val_bogus'", "val_loss", "train_loss")
    # no run was made: the same directory takes the corrected command
    r = _cli("train", "adding", *_sets(ADDING), "--out", str(tmp_path / "run"))
    assert r.exit_code == 0, r.output


def test_monitoring_a_train_metric_is_fine(tmp_path):
    items = [*ADDING, 'trainer.monitor="train_loss"', 'trainer.schedule.name="plateau"']
    r = _cli("train", "adding", *_sets(items), "--out", str(tmp_path / "run"))
    assert r.exit_code == 0, r.output


# ---- finding 6 (part): evaluate on a model whose loss is not finite ------------------------


def test_evaluate_non_finite_loss_writes_valid_json_and_fails(adding_run, tmp_path):
    import shutil

    from rnnkit.training.checkpoint import load_codec, load_model, save_checkpoint

    broken = tmp_path / "broken"
    shutil.copytree(adding_run, broken)
    for ckpt in broken.glob("checkpoints/step-*"):
        model = load_model(ckpt)
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float("nan"))
        save_checkpoint(ckpt, model, codec=load_codec(ckpt))  # a checkpoint that verifies
    r = _cli("evaluate", str(broken))
    assert r.exit_code == 1
    metrics = json.loads(r.stdout)  # strict JSON: NaN would not parse with parse_constant
    assert metrics["loss"] is None
    json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    _one_error_line(r, "loss", "not a finite number")

    good = _cli("evaluate", str(adding_run))
    assert good.exit_code == 0, good.output
    assert math.isfinite(json.loads(good.stdout)["loss"])


# ---- finding 8 (part): one sentence, exit 2 for bad input, 1 for runtime faults ------------


def test_toml_config_not_utf8_or_a_folder(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe[trainer]\nlr = 0.1\n")
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    for path in (bad, folder):
        with pytest.raises(ConfigError, match=str(path)):
            load_toml(path)
        r = _cli("train", "adding", "-c", str(path), "--out", str(tmp_path / "run"))
        assert r.exit_code == 2
        _one_error_line(r, str(path))
    assert not (tmp_path / "run").exists()


def test_out_naming_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("keep me")
    r = _cli("train", "adding", *_sets(ADDING), "--out", str(f))
    assert r.exit_code == 2
    _one_error_line(r, str(f), "is a file")
    assert f.read_text() == "keep me"


@pytest.mark.parametrize(
    "command",
    [
        ["translate", "RUN", "hello"],
        ["predict", "RUN", "hello"],
        ["evaluate", "RUN"],
        ["generate", "RUN"],
        ["export", "RUN", "--onnx", "m.onnx"],
        ["resume", "RUN"],
        ["diagnose", "RUN"],
    ],
)
def test_a_run_directory_that_does_not_exist(tmp_path, command):
    missing = str(tmp_path / "no-such-run")
    r = _cli(*[missing if a == "RUN" else a for a in command])
    assert r.exit_code == 2, r.output
    _one_error_line(r, missing, "is not a run directory: it does not exist")


def test_predict_file_with_binary_content(tmp_path):
    f = tmp_path / "blob.bin"
    f.write_bytes(b"\xff\x00\xfe\x80" * 8)
    r = _cli("predict", str(tmp_path / "run"), "--file", str(f))
    assert r.exit_code == 2
    _one_error_line(r, str(f), "UTF-8")
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"abc\x00def\n")
    r = _cli("predict", str(tmp_path / "run"), "--file", str(nul))
    assert r.exit_code == 2
    _one_error_line(r, str(nul), "NUL")


def test_a_byte_order_mark_is_not_read_as_text(tmp_path, monkeypatch):
    import io

    from rnnkit.commands.predict import _file_lines, _lines

    f = tmp_path / "bom.txt"
    f.write_bytes("\ufeff我爱北京\r\nsecond\r\n".encode())
    assert _file_lines(f) == (["我爱北京", "second"], "")
    monkeypatch.setattr("sys.stdin", io.StringIO("\ufeffhello\nworld\n"))
    assert _lines(None, None) == ["hello", "world"]


def _write_csv(path, rows) -> None:
    path.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))


@pytest.mark.parametrize("case", ["no rows", "one label"])
def test_classify_data_with_no_rows_or_one_label(tmp_path, case):
    data = tmp_path / "reviews.csv"
    rows = [] if case == "no rows" else [(f"a good film {i}", "pos") for i in range(20)]
    _write_csv(data, rows)
    r = _cli(
        "train",
        "sentiment",
        *_sets([f'task.data="{data}"', "trainer.log.tensorboard=false"]),
        "--out",
        str(tmp_path / "run"),
    )
    assert r.exit_code == 2
    _one_error_line(r, str(data))


def test_tagging_on_an_empty_conll_file(tmp_path):
    f = tmp_path / "empty.txt"
    f.write_text("")
    r = _cli(
        "train",
        "tagging",
        *_sets([f'task.train="{f}"', f'task.test="{f}"']),
        "--out",
        str(tmp_path / "run"),
    )
    assert r.exit_code == 2
    _one_error_line(r, str(f))


@pytest.mark.parametrize(
    "exc, code, needles",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/runs/x/ckpt"), 1, ["/runs/x/ckpt"]),
        (OSError(errno.EROFS, "Read-only file system", "/ro/run"), 1, ["/ro/run", "Read-only"]),
        (PermissionError(errno.EACCES, "Permission denied", "/root/run"), 2, ["/root/run"]),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/data/dir"), 2, ["/data/dir"]),
        (KeyError("unknown task 'nope'; known tasks: adding"), 2, ["unknown task 'nope'"]),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), 2, ["UTF-8"]),
    ],
)
def test_top_level_handler_one_line_and_exit_code(monkeypatch, tmp_path, exc, code, needles):
    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(tasks, "task_names", boom)  # `rnnkit tasks` has no handler of its own
    r = _cli("tasks")
    assert r.exit_code == code
    _one_error_line(r, *needles)
    assert "[Errno" not in r.output


def test_runtime_os_error_during_training_exits_1(monkeypatch, tmp_path):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run"))

    monkeypatch.setattr(run, "train", full)
    r = _cli("train", "adding", *_sets(ADDING), "--out", str(tmp_path / "run"))
    assert r.exit_code == 1
    _one_error_line(r, "No space left on device", str(tmp_path / "run"))


def test_debug_keeps_the_traceback(monkeypatch, tmp_path):
    def boom(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/x")

    monkeypatch.setattr(run, "diagnose", boom)
    r = _cli("--debug", "diagnose", str(tmp_path))
    assert isinstance(r.exception, OSError) and r.exception.errno == errno.ENOSPC
    r = _cli("diagnose", str(tmp_path), env={"RNNKIT_DEBUG": "1"})
    assert isinstance(r.exception, OSError)
    r = _cli("diagnose", str(tmp_path), env={"RNNKIT_DEBUG": ""})
    assert r.exit_code == 1 and "error: /runs/x: No space left on device" in r.output


def test_typer_exit_and_bugs_pass_through(monkeypatch, tmp_path):
    def leave(*args, **kwargs):
        raise typer.Exit(code=3)

    monkeypatch.setattr(run, "diagnose", leave)
    r = _cli("diagnose", str(tmp_path))
    assert r.exit_code == 3 and "error:" not in r.output

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(run, "diagnose", bug)
    r = _cli("diagnose", str(tmp_path))
    assert isinstance(r.exception, ZeroDivisionError)  # a bug keeps its traceback


# ---- findings 8 and 9: generate's --temperature and --length --------------------------------


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--length", "-1"], "--length"),
        (["--temperature", "nan"], "--temperature"),
        (["--temperature", "inf"], "--temperature"),
        (["--temperature", "-0.5"], "--temperature"),
        (["--top-p", "nan"], "--top-p"),
    ],
)
def test_generate_refuses_bad_options_before_printing(tmp_path, args, needle):
    r = _cli("generate", str(tmp_path / "run"), "--prime", "PRIME", *args)
    assert r.exit_code == 2
    _one_error_line(r, needle)
    assert "PRIME" not in r.stdout


def test_sampling_refuses_non_finite_temperature_and_negative_length():
    logits = torch.zeros(2, 5)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="temperature"):
            sample_next(logits, bad)
    assert sample_next(logits, 0.0).shape == (2,)

    class Step:
        def step(self, tokens, state):
            return torch.zeros(tokens.shape[0], 5), state

    prime = torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="length"):
        generate(Step(), prime, -1)
    with pytest.raises(ValueError, match="temperature"):
        generate(Step(), prime, 0, temperature=float("nan"))
    assert generate(Step(), prime, 0).shape == (1, 2)


# ---- findings 8 and 9: the remaining tracebacks, one sentence each (exit 2) -----------------


def test_batch_size_larger_than_the_data(tmp_path):
    out = tmp_path / "run"
    r = _cli("train", "adding", *_sets([*ADDING, "trainer.batch_size=64"]), "--out", str(out))
    assert r.exit_code == 2
    _one_error_line(r, "batch_size 64 exceeds the 16 sequences", "trainer.batch_size")


def test_config_json_naming_an_unknown_task(adding_run, tmp_path):
    bogus = tmp_path / "bogus"
    shutil.copytree(adding_run, bogus)
    config = json.loads((bogus / "config.json").read_text())
    (bogus / "config.json").write_text(json.dumps({**config, "task": "bogus"}))
    for command in ("evaluate", "resume"):
        r = _cli(command, str(bogus))
        assert r.exit_code == 2, (command, r.output)
        _one_error_line(r, "unknown task 'bogus'")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{garbage", "invalid JSON"),
        ("[1, 2]", "a JSON list"),
        ('{"task": "adding"}', "no 'trainer'"),
    ],
)
def test_a_damaged_config_json_is_named(adding_run, tmp_path, text, needle):
    damaged = tmp_path / "damaged"
    shutil.copytree(adding_run, damaged)
    (damaged / "config.json").write_text(text)
    for command in ("evaluate", "resume"):
        r = _cli(command, str(damaged))
        assert r.exit_code == 2, (command, r.output)
        _one_error_line(r, "config.json: not a run configuration", needle)


def test_evaluate_refuses_what_it_would_ignore(adding_run, tmp_path):
    r = _cli("evaluate", str(adding_run), "--set", "task.n_test=4")
    assert r.exit_code == 2
    _one_error_line(r, "task.n_test is fixed by the trained run", "no [task] setting")
    r = _cli("evaluate", str(adding_run), "--set", "task.bem=5")
    assert r.exit_code == 2
    _one_error_line(r, "task.bem: unknown key of the 'adding' task")
    r = _cli("evaluate", str(adding_run), "--split", "val", "--data", str(tmp_path / "x.csv"))
    assert r.exit_code == 2
    _one_error_line(r, "--split val and --data", "give one")
    r = _cli("evaluate", str(adding_run), "--confusion", str(tmp_path / "c.txt"))
    assert r.exit_code == 2
    _one_error_line(r, "--confusion", "name a .png file")


@pytest.fixture
def toy_dataset(tmp_path, monkeypatch):
    """A registered dataset ``toy`` made of one local artifact file, and that file."""
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "cache"))
    artifact_file = tmp_path / "toy-1.0.tar.gz"
    artifact_file.write_bytes(b"toy artifact")
    artifact = Artifact("pypi", "toy==1.0", artifact_file.name, sha256_of(artifact_file))
    info = registry.get("japanese-ner").info
    toy = registry.DatasetInfo(**{**info.__dict__, "name": "toy", "artifacts": (artifact,)})

    def convert(paths, out):
        (out / "train.txt").write_bytes(paths["toy"].read_bytes())
        return {"train": 1}

    monkeypatch.setitem(registry._REGISTRY, "toy", registry.Recipe(toy, convert))
    return artifact_file


def test_fetch_from_a_missing_file_or_a_folder(toy_dataset, tmp_path):
    missing = tmp_path / "elsewhere" / toy_dataset.name
    r = _cli("data", "fetch", "toy", "--from", str(missing))
    assert r.exit_code == 2
    _one_error_line(r, str(missing), "no such file")
    folder = tmp_path / "folder" / toy_dataset.name
    folder.mkdir(parents=True)
    r = _cli("data", "fetch", "toy", "--from", str(folder))
    assert r.exit_code == 2
    _one_error_line(r, str(folder), "not a regular file")
    assert registry.load_report("toy") is None


def test_fetch_from_a_corrupt_file_is_refused_even_when_already_fetched(toy_dataset, tmp_path):
    r = _cli("data", "fetch", "toy", "--from", str(toy_dataset))
    assert r.exit_code == 0, r.output
    corrupt = tmp_path / "corrupt" / toy_dataset.name
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"toy artifacT")
    r = _cli("data", "fetch", "toy", "--from", str(corrupt))
    assert r.exit_code == 2  # was exit 0, the file silently ignored
    _one_error_line(r, str(corrupt), "SHA-256", "refusing")
    r = _cli("data", "fetch", "toy", "--from", str(toy_dataset))  # the right file: still fine
    assert r.exit_code == 0, r.output


def test_predict_with_standard_input_closed(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", "predict", str(tmp_path / "run")],
        preexec_fn=lambda: os.close(0),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == "error: standard input is closed; give TEXT or --file FILE"


def test_corrupt_checkpoint_is_one_sentence_naming_the_file(adding_run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(adding_run, broken)
    (weights,) = (broken / "checkpoints").glob("step-*/model.safetensors")
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # one flipped byte in the weights, the header intact
    weights.write_bytes(bytes(data))
    before = sorted(p.name for p in (broken / "checkpoints").iterdir())
    for args in (
        ["evaluate", str(broken)],
        ["evaluate", str(broken), "--which", "latest"],
        ["predict", str(broken), "some text"],
        ["generate", str(broken), "--length", "3"],
        ["resume", str(broken)],
        ["diagnose", str(broken)],
    ):
        r = _cli(*args)
        assert r.exit_code == 2, (args, r.output)
        _one_error_line(r, str(weights.parent), "model.safetensors", "corrupt")
    # resume refused rather than starting over: the run directory is as it was
    assert sorted(p.name for p in (broken / "checkpoints").iterdir()) == before
    assert weights.read_bytes() == bytes(data)
    # the same from Python: the refusal lives in the run functions, not in the CLI
    import rnnkit
    from rnnkit.tasks import run as runs
    from rnnkit.training.checkpoint import CheckpointError

    for call in (lambda: rnnkit.load(broken), lambda: runs.resume(broken)):
        with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupt"):
            call()
    assert sorted(p.name for p in (broken / "checkpoints").iterdir()) == before
