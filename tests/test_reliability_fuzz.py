"""Fuzz tests (issue 18): no input makes a reader, the run-config loader or the checkpoint
loader fail with anything but its documented error.

* readers and reader options that tests/test_data_fuzz.py does not reach: ``check_file`` (the
  ``rnnkit data check`` dispatch) for every format, ``read_table``/``read_jsonl`` with random
  columns, delimiters and ``allow_empty``, ``read_tagged_jsonl`` with random JSON values,
  ``read_conll`` with random ``tag_column``/``column_names``/``fixed_width``, ``read_fasta``
  with other alphabets, structured ``.ts`` and word2vec headers (huge and negative numbers),
  and ``read_scores`` for the suffixes the other file skips: a result or ``DataFormatError``;
* ``load_run_config`` for every task with random TOML files (and bytes that are not UTF-8) and
  random ``key=value`` overrides over the real keys: a ``RunConfig`` or a ``ConfigError`` /
  ``ValueError`` whose message is one non-empty line naming a key or the file;
* ``load_model``/``load_codec`` on a real checkpoint with bytes flipped, files truncated,
  deleted or replaced, JSON values replaced (with a stale, a rewritten or no manifest): a
  model/codec or a ``CheckpointError`` naming the checkpoint.

The example counts are small so the file runs in seconds; CI runs it with the unit tests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.config import ConfigError
from rnnkit.data.codec import SymbolCodec
from rnnkit.data.errors import DataFormatError
from rnnkit.data.readers import (
    DNA,
    IUPAC_DNA,
    PROTEIN,
    read_conll,
    read_fasta,
    read_jsonl,
    read_scores,
    read_table,
    read_tagged_jsonl,
    read_ts,
)
from rnnkit.data.readers.check import FORMATS, check_file
from rnnkit.data.representations import read_vectors
from rnnkit.models import RecurrentModel, RecurrentModelConfig
from rnnkit.tasks import task_names
from rnnkit.tasks.base import get_task
from rnnkit.tasks.run import RunConfig, load_run_config
from rnnkit.training import checkpoint as ckpt
from rnnkit.training.checkpoint import CheckpointError, load_codec, load_model, save_checkpoint
from rnnkit.training.config import TrainerConfig


def fuzz(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# ---- readers ------------------------------------------------------------------------------

PIECES = [
    "\t",
    "\n",
    "\r\n",
    ",",
    ";",
    "|",
    ":",
    '"',
    "'",
    " ",
    "a",
    "B-X",
    "O",
    "1",
    "-1",
    "1e999",
    "NaN",
    "99999999999999999999999",
    "text",
    "label",
    "tokens",
    "tags",
    "{",
    "}",
    "[",
    "]",
    ">",
    "@data",
    "é",
    "\x00",
    "\ufeff",
]


def texty() -> st.SearchStrategy[bytes]:
    """Random bytes, or text assembled from format-ish pieces (UTF-8, or latin-1 encoded)."""
    text = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
    return st.one_of(
        st.binary(max_size=200),
        text.map(lambda t: t.encode("utf-8")),
        text.map(lambda t: t.encode("latin-1", "replace")),
    )


def read_ok(suffix: str, content: bytes, reader: Callable[[Path], object]) -> object | None:
    """Run ``reader`` on ``content``: a result, or a DataFormatError that names the file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(content)
        try:
            return reader(path)
        except DataFormatError as exc:
            assert str(path) in str(exc)
            assert str(exc).strip()
            return None


SUFFIX = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl", "tagged-jsonl": ".jsonl"}
SUFFIX.update({"conll": ".conll", "conllu": ".conllu", "parallel": ".tsv", "text": ".txt"})
SUFFIX.update({"fasta": ".fa", "ts": ".ts", "score": ".abc"})
COLUMNS = st.lists(st.sampled_from(["text", "label", "a", "", "1", "é", " "]), max_size=3)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "score"])
@fuzz(25)
@given(content=texty(), columns=COLUMNS, skip_bad=st.booleans())
def test_check_file(fmt: str, content: bytes, columns: list[str], skip_bad: bool) -> None:
    result = read_ok(SUFFIX[fmt], content, lambda p: check_file(p, fmt, columns, skip_bad=skip_bad))
    if result is not None:
        count, skipped = result  # type: ignore[misc]
        assert count >= 0 and all(isinstance(e, DataFormatError) for e in skipped)


def test_check_file_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format="):
        check_file(tmp_path / "x", "xml")


@fuzz(40)
@given(
    rows=st.lists(
        st.lists(st.sampled_from(["text", "label", "a", "", '"', "x y", "é"]), max_size=4)
    ),
    delimiter=st.sampled_from([",", "\t", ";", "|", None]),
    columns=COLUMNS,
    allow_empty=COLUMNS,
    skip_bad=st.booleans(),
    suffix=st.sampled_from([".csv", ".tsv", ".tab", ".txt"]),
)
def test_read_table_options(
    rows: list[list[str]],
    delimiter: str | None,
    columns: list[str],
    allow_empty: list[str],
    skip_bad: bool,
    suffix: str,
) -> None:
    sep = delimiter or ","
    content = "\n".join(sep.join(r) for r in rows).encode()
    read_ok(
        suffix,
        content,
        lambda p: read_table(
            p, columns, delimiter=delimiter, allow_empty=allow_empty, skip_bad=skip_bad
        ),
    )


JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),
    st.text(max_size=5),
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = st.sampled_from(["text", "label", "tokens", "tags", "a", ""])


def json_lines(keys: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    obj = st.dictionaries(keys, JSON, max_size=4)
    line = st.one_of(obj.map(json.dumps), JSON.map(json.dumps), st.just(""), st.just("{"))
    return st.lists(line, max_size=5).map(lambda ls: "\n".join(ls).encode())


@fuzz(40)
@given(
    content=json_lines(FIELDS),
    fields=st.lists(FIELDS, max_size=3),
    allow_empty=st.lists(FIELDS, max_size=2),
    skip_bad=st.booleans(),
)
def test_read_jsonl_structured(
    content: bytes, fields: list[str], allow_empty: list[str], skip_bad: bool
) -> None:
    read_ok(
        ".jsonl",
        content,
        lambda p: read_jsonl(p, fields, allow_empty=allow_empty, skip_bad=skip_bad),
    )


@fuzz(40)
@given(
    content=json_lines(FIELDS),
    tokens_field=FIELDS,
    tags_field=FIELDS,
    skip_bad=st.booleans(),
)
def test_read_tagged_jsonl_structured(
    content: bytes, tokens_field: str, tags_field: str, skip_bad: bool
) -> None:
    read_ok(
        ".jsonl",
        content,
        lambda p: read_tagged_jsonl(
            p, tokens_field=tokens_field, tags_field=tags_field, skip_bad=skip_bad
        ),
    )


CONLL_LINE = st.lists(
    st.sampled_from(["EU", "B-ORG", "O", "NN", "-DOCSTART-", "x", "é"]), max_size=5
)


@fuzz(40)
@given(
    lines=st.lists(CONLL_LINE, max_size=8),
    sep=st.sampled_from([" ", "\t", "  "]),
    tag_column=st.integers(-6, 6),
    column_names=st.none()
    | st.lists(st.sampled_from(["token", "pos", "tag", "x", ""]), max_size=5),
    fixed_width=st.booleans(),
    skip_bad=st.booleans(),
)
def test_read_conll_options(
    lines: list[list[str]],
    sep: str,
    tag_column: int,
    column_names: list[str] | None,
    fixed_width: bool,
    skip_bad: bool,
) -> None:
    content = "\n".join(sep.join(line) for line in lines).encode()
    read_ok(
        ".conll",
        content,
        lambda p: read_conll(
            p,
            tag_column=tag_column,
            column_names=column_names,
            fixed_width=fixed_width,
            skip_bad=skip_bad,
        ),
    )


@fuzz(30)
@given(
    content=st.lists(
        st.sampled_from([">s1 d", ">", "> ", "ACGT", "acgu", "MKV*", "NNN-", ";c", "", "X", "é"]),
        max_size=8,
    ).map(lambda ls: "\n".join(ls).encode()),
    alphabet=st.sampled_from([DNA, IUPAC_DNA, PROTEIN, "", "acgt", "é"]),
    skip_bad=st.booleans(),
)
def test_read_fasta_alphabets(content: bytes, alphabet: str, skip_bad: bool) -> None:
    read_ok(".fasta", content, lambda p: read_fasta(p, alphabet=alphabet, skip_bad=skip_bad))


NUMBER = st.sampled_from(
    ["0", "1", "2", "-1", "3", "1e999", "nan", "99999999999999999999", "", "x", "1.5"]
)


@fuzz(40)
@given(
    header=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "@problemName",
                    "@timeStamps",
                    "@missing",
                    "@univariate",
                    "@dimensions",
                    "@equalLength",
                    "@seriesLength",
                    "@classLabel",
                    "@targetLabel",
                    "@bogus",
                ]
            ),
            st.sampled_from(["true", "false", "T", "true a b"]) | NUMBER,
        ),
        max_size=7,
    ),
    cases=st.lists(st.lists(st.lists(NUMBER | st.just("?"), max_size=3), max_size=3), max_size=3),
    label=st.sampled_from(["a", "b", "", "1"]),
    skip_bad=st.booleans(),
)
def test_read_ts_structured(
    header: list[tuple[str, str]],
    cases: list[list[list[str]]],
    label: str,
    skip_bad: bool,
) -> None:
    head = "\n".join(f"{k} {v}" for k, v in header)
    body = "\n".join(":".join(",".join(d) for d in case) + f":{label}" for case in cases)
    content = f"{head}\n@data\n{body}\n".encode()
    read_ok(".ts", content, lambda p: read_ts(p, skip_bad=skip_bad))


@fuzz(30)
@given(
    n=NUMBER,
    d=NUMBER,
    rows=st.lists(st.lists(NUMBER | st.sampled_from(["the", "a"]), max_size=4), max_size=4),
    keep=st.none() | st.just(["the"]),
    skip_bad=st.booleans(),
)
def test_read_vectors_headers(
    n: str, d: str, rows: list[list[str]], keep: list[str] | None, skip_bad: bool
) -> None:
    content = (f"{n} {d}\n" + "\n".join(" ".join(r) for r in rows)).encode()
    read_ok(".vec", content, lambda p: read_vectors(p, skip_bad=skip_bad, keep=keep))


ABC = st.lists(
    st.sampled_from(
        ["X:1", "T:t", "M:4/4", "M:0/0", "L:1/8", "L:0", "K:G", "K:Q", "|", "A", "z", "[", "]", "2"]
    ),
    max_size=12,
).map(lambda ls: "\n".join(ls).encode())


@fuzz(10)
@given(
    suffix=st.sampled_from([".xml", ".mxl", ".midi", ".krn", ".abc", ".wav", ""]),
    content=st.binary(max_size=120) | ABC | st.just(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x00"),
)
def test_read_scores_other_suffixes(suffix: str, content: bytes) -> None:
    read_ok(suffix, content, read_scores)


# ---- the run-config loader ------------------------------------------------------------------


def _keys(cls: type, prefix: str) -> list[str]:
    """Dotted keys of dataclass ``cls`` (nested dataclasses expanded)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}"
        out.append(key)
        if dataclasses.is_dataclass(hints[f.name]):
            out += _keys(hints[f.name], key)
    return out


def task_keys(task: str) -> list[str]:
    spec = get_task(task)
    return [
        "seed",
        "task",
        "model",
        "trainer",
        "bogus",
        "trainer.bogus",
        "model.x.y",
        *_keys(TrainerConfig, "trainer"),
        *_keys(spec.config_cls, "task"),
        *_keys(spec.model_config_cls, "model"),
    ]


TOML_VALUES = st.one_of(
    st.integers().map(str),
    st.sampled_from(
        ["0", "-1", "1", "2", "10**9", "99999999999999999999999", "-9223372036854775809"]
    ),
    st.floats().map(repr),
    st.sampled_from(["nan", "inf", "-inf", "+inf", "1e400", "-0.0", "1.5", "0.5", "1e-320"]),
    st.sampled_from(["true", "false", '"lstm"', '"gru"', '"tanh"', '"max"', '"min"', '"cpu"']),
    st.text(max_size=8).map(json.dumps),
    st.text(max_size=8),
    st.sampled_from(["[]", "[1, 2]", "[0.9, 0.99]", '["a"]', "[[1]]", "{}", "{a = 1}", "[1,"]),
    st.sampled_from(['"auto"', "'''x'''", '""', "1979-05-27", "0x10", "0o7", "1_000"]),
)


def check_config_outcome(
    task: str, path: Path | None, overrides: list[str], names: list[str]
) -> None:
    """``load_run_config`` gives a RunConfig or a one-line error naming a key or the file."""
    try:
        cfg = load_run_config(task, path, overrides)
    except ValueError as exc:  # ConfigError included
        msg = str(exc)
        assert msg.strip(), f"empty message from {type(exc).__name__}"
        assert "\n" not in msg.strip(), f"multi-line message: {msg!r}"
        words = {n for name in names for n in (name, *name.split("."))} | {
            "task",
            "model",
            "override",
        }
        if path is not None:
            words.add(str(path))
        assert any(w and w in msg for w in words), f"message names no key or file: {msg!r}"
        return
    assert isinstance(cfg, RunConfig)
    assert cfg.task == get_task(task).name


TASKS = pytest.mark.parametrize("task", task_names())


@TASKS
@fuzz(40)
@given(data=st.data())
def test_config_overrides(task: str, data: st.DataObject) -> None:
    keys = task_keys(task)
    key = st.sampled_from(keys) | st.sampled_from(["", " ", ".", "a..b", "trainer.", "=x"])
    items = data.draw(
        st.lists(
            st.tuples(key, st.sampled_from(["=", "", " = ", "=="]), TOML_VALUES).map("".join),
            max_size=4,
        )
    )
    check_config_outcome(task, None, items, [*items, *(i.partition("=")[0].strip() for i in items)])


def toml_text(keys: list[str]) -> st.SearchStrategy[str]:
    def line(parts: tuple[str, str, str]) -> str:
        kind, key, value = parts
        if kind == "table":
            return f"[{key.rpartition('.')[0] or key}]"
        if kind == "dotted":
            return f"{key} = {value}"
        return f"{key.rpartition('.')[2]} = {value}"

    lines = st.tuples(
        st.sampled_from(["table", "dotted", "bare"]), st.sampled_from(keys), TOML_VALUES
    ).map(line)
    noise = st.sampled_from(["", "#c", "[[trainer]]", "[task", "= 1", "seed = 1\nseed = 2", "\x00"])
    return st.lists(lines | noise, max_size=10).map("\n".join)


@TASKS
@fuzz(40)
@given(data=st.data())
def test_config_files(task: str, data: st.DataObject) -> None:
    keys = task_keys(task)
    text = data.draw(toml_text(keys))
    raw = data.draw(st.sampled_from(["utf-8", "bytes", "latin-1", "bom"]), label="encoding")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.toml"
        if raw == "bytes":
            path.write_bytes(data.draw(st.binary(max_size=100)))
        elif raw == "latin-1":
            path.write_bytes((text + "\nx = 'é'").encode("latin-1", "replace"))
        elif raw == "bom":
            path.write_bytes(b"\xef\xbb\xbf" + text.encode())
        else:
            path.write_text(text, encoding="utf-8")
        overrides = data.draw(
            st.lists(st.tuples(st.sampled_from(keys), TOML_VALUES).map("=".join), max_size=2)
        )
        names = keys + [o.partition("=")[0] for o in overrides]
        check_config_outcome(task, path, overrides, names)


def test_config_folder_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="folder"):
        load_run_config(task_names()[0], tmp_path)
    with pytest.raises(FileNotFoundError):
        load_run_config(task_names()[0], tmp_path / "missing.toml")


# ---- the checkpoint loader ------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "step-1"
    model = RecurrentModel(RecurrentModelConfig(hidden_size=4))
    save_checkpoint(path, model, codec=SymbolCodec(("a", "b")))
    assert load_model(path) is not None and load_codec(path) is not None
    return path


FILES = ["model.json", "model.safetensors", "codec.json"]


def _paths(obj: Any, at: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indices) into a JSON value, the root included."""
    out = [at]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*at, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*at, i))
    return out


def _set(obj: Any, at: tuple, value: Any) -> Any:
    if not at:
        return value
    node = obj
    for k in at[:-1]:
        node = node[k]
    node[at[-1]] = value
    return obj


CONFIG_VALUES = JSON | st.sampled_from(
    [10**12, 10**9, 2**63, -1, 0, 1, 3, 4, 1.5, float("nan"), float("inf"), True, "gru", "rnn"]
)


def reseal(path: Path) -> None:
    """Rewrite model.json's manifest to match the files as they are now (a consistent but
    wrong checkpoint: only the loader's own checks can catch it)."""
    meta = json.loads((path / "model.json").read_text())
    files = {}
    for f in sorted(path.iterdir()):
        if f.name != "model.json" and f.is_file():
            data = f.read_bytes()
            files[f.name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if isinstance(meta.get("manifest"), dict):
        meta["manifest"]["files"] = files
    meta["sha256"] = ckpt._self_checksum(meta)
    (path / "model.json").write_bytes(ckpt._json_bytes(meta))


def strip(path: Path) -> None:
    """Drop the manifest, as in a checkpoint written before manifests existed."""
    meta = json.loads((path / "model.json").read_text())
    meta.pop("manifest", None)
    meta.pop("sha256", None)
    (path / "model.json").write_bytes(ckpt._json_bytes(meta))


def mutate_checkpoint(path: Path, data: st.DataObject) -> None:
    op = data.draw(
        st.sampled_from(["flip", "truncate", "delete", "random", "json", "config"]), label="op"
    )
    name = data.draw(st.sampled_from(FILES), label="file")
    if op == "config" or (op == "json" and not name.endswith(".json")):
        name = "model.json"
    f = path / name
    content = bytearray(f.read_bytes())
    if op == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, len(content) - 1))
            content[at] ^= data.draw(st.integers(1, 255))
        f.write_bytes(bytes(content))
    elif op == "truncate":
        f.write_bytes(bytes(content[: data.draw(st.integers(0, len(content) - 1))]))
    elif op == "delete":
        f.unlink()
    elif op == "random":
        f.write_bytes(data.draw(st.binary(max_size=200)))
    else:
        obj = json.loads(content)
        if op == "config":
            key = data.draw(st.sampled_from([*sorted(obj["config"]), "bogus"]), label="key")
            at: tuple = ("config", key)
            value = data.draw(CONFIG_VALUES, label="value")
        else:
            at = data.draw(st.sampled_from(_paths(obj)), label="at")
            value = data.draw(JSON, label="value")
        f.write_text(json.dumps(_set(obj, at, value)))
    manifest = data.draw(st.sampled_from(["stale", "reseal", "strip"]), label="manifest")
    if manifest != "stale" and (path / "model.json").exists():
        try:
            meta = json.loads((path / "model.json").read_text())
        except (ValueError, UnicodeDecodeError):
            return
        if isinstance(meta, dict):
            (reseal if manifest == "reseal" else strip)(path)


def load_ok(path: Path) -> None:
    for load in (load_model, load_codec):
        try:
            load(path)
        except CheckpointError as exc:
            assert str(path) in str(exc)
        except ValueError as exc:  # the documented refusal of a class outside rnnkit
            assert "model class" in str(exc), repr(exc)


@fuzz(120)
@given(data=st.data())
def test_checkpoint_mutations(pristine: Path, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "step-1"
        shutil.copytree(pristine, path)
        mutate_checkpoint(path, data)
        load_ok(path)


@pytest.mark.parametrize("key", ["hidden_size", "num_layers", "input_size", "output_size"])
@pytest.mark.parametrize("manifest", ["reseal", "strip"])
def test_checkpoint_huge_config_is_refused_cheaply(pristine: Path, key: str, manifest: str) -> None:
    """A config a million (or 10**12) times too big is one error, before any allocation."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "step-1"
        shutil.copytree(pristine, path)
        meta = json.loads((path / "model.json").read_text())
        meta["config"][key] = 10**12
        (path / "model.json").write_text(json.dumps(meta))
        (reseal if manifest == "reseal" else strip)(path)
        with pytest.raises(CheckpointError, match=r"model\.json"):
            load_model(path)
