"""Typed configuration: frozen dataclasses loaded from TOML, overridden by ``key=value``.

A configuration is a tree of frozen dataclasses. :func:`from_dict` builds one from the nested
dict that ``tomllib`` gives, checking every key and the type of every value; an unknown key or
a value of the wrong type raises :class:`ConfigError` naming the dotted key::

    @dataclass(frozen=True)
    class Opt:
        lr: float = 0.1  # learning rate

    from_dict(Opt, {"lr": 0.01}, prefix="trainer")    # Opt(lr=0.01)
    from_dict(Opt, {"lr": "fast"}, prefix="trainer")  # ConfigError: trainer.lr: expected
                                                      #   float, got 'fast'

Overrides use dotted keys, ``--set trainer.lr=0.001``; the value is parsed as TOML (so
``true``, ``3``, ``"adam"`` and ``[0.9, 0.99]`` work) and falls back to a bare string.
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration key is unknown or its value is invalid; the message names the key."""


def parse_value(text: str) -> Any:
    """Parse an override's value as a TOML value, or return it as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of nested ``data`` with each ``a.b.c=value`` override set in it."""
    out = _deep_copy(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. trainer.lr=0.001")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = parse_value(text.strip())
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a nested dict; a syntax error, text that is not UTF-8 or a path
    that is not a file names the file (a missing file stays a FileNotFoundError)."""
    if Path(path).is_dir():
        raise ConfigError(f"{path}: is a folder, not a TOML file")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from e


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, checking keys and value types recursively."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or '<root>'}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{_join(prefix, key)}: unknown key (known: {known})")
    kwargs = {}
    for name in fields:
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], _join(prefix, name))
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        named = not prefix or str(e).startswith(f"{prefix}.")  # the message names the key
        raise ConfigError(str(e) if named else f"{prefix}.{e}") from e
    return obj


def check_table(
    cls: type, data: Mapping[str, Any], prefix: str, fixed: Iterable[str] = ()
) -> dict[str, Any]:
    """Check a table of ``cls`` fields before ``cls`` can be built: every key must be a field
    and not one of ``fixed`` (set elsewhere), every value of the field's type. Returns the
    table with values coerced (lists to tuples...); building ``cls`` later checks the rest."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or '<root>'}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    fixed = set(fixed)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    out = {}
    for key, value in data.items():
        if key in fixed:
            raise ConfigError(f"{_join(prefix, key)}: set by the task from its data; remove it")
        if key not in names:
            known = ", ".join(sorted(n for n in names if n not in fixed))
            raise ConfigError(f"{_join(prefix, key)}: unknown key (known: {known})")
        out[key] = _coerce(hints[key], value, _join(prefix, key))
    return out


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass tree as plain nested dicts and lists (JSON and TOML friendly)."""
    return _plain(dataclasses.asdict(obj))


def replace_in(obj: T, overrides: Iterable[str]) -> T:
    """Return ``obj`` with dotted ``key=value`` overrides applied and re-validated."""
    return from_dict(type(obj), apply_overrides(to_dict(obj), overrides))


def is_set(obj: Any, name: str) -> bool:
    """Whether field ``name`` of the dataclass instance ``obj`` differs from its default
    (a setting the user gave, for checks that refuse one the rest of the config ignores)."""
    field = next(f for f in dataclasses.fields(obj) if f.name == name)
    return getattr(obj, name) != field.default


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_types(obj: Any) -> None:
    """Check every field of the dataclass instance ``obj`` against its annotation, as
    :func:`from_dict` does for TOML (a ConfigError naming the field: ``bidirectional="false"``
    from Python is refused, not read as true), and store the normal form (ints of float
    fields as floats, lists of tuple fields as tuples), also in a frozen dataclass."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        normal = _coerce(hints[f.name], value, f.name)
        if normal is not value:
            object.__setattr__(obj, f.name, normal)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)  # type: ignore[arg-type]
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: expected one of {list(choices)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
        item_types = args if origin is tuple and Ellipsis not in args else (args[:1] or (Any,))
        items = [
            _coerce(item_types[min(i, len(item_types) - 1)], v, f"{key}[{i}]")
            for i, v in enumerate(value)
        ]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected int, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected float, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return dict(value)
    raise ConfigError(f"{key}: unsupported field type {tp!r}")


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
