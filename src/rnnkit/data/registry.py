"""The dataset registry: recipes that fetch a dataset once, verify and convert it.

A recipe is a :class:`DatasetInfo` (where the data comes from, its license, citation,
converted format and split rule) plus a ``convert`` function that turns the verified
artifacts into plain split files. :func:`fetch` runs it once into
``data_home() / name``, writing ``meta.json`` beside the split files::

    fetch("japanese-ner").splits      # {"train": 400, "valid": 50, "test": 50}
    dataset_dir("japanese-ner")       # ~/.cache/rnnkit/japanese-ner
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rnnkit.data.fetching import (
    Artifact,
    LocalFileError,
    data_home,
    fetch_artifact,
    verify_local,
)

# (artifact paths keyed by package name, output directory) -> items per split
Converter = Callable[[dict[str, Path], Path], dict[str, int]]


@dataclass(frozen=True)
class DatasetInfo:
    """What ``rnnkit data info`` prints about a dataset."""

    name: str  # registry key, e.g. "japanese-ner"
    title: str  # one line
    task: str  # the application it serves
    artifacts: tuple[Artifact, ...]  # registry files it is made from
    inside: str  # which files inside the artifacts
    size: str  # what the data holds, in words
    license: str
    citation: str
    files: str  # the converted format: file names and layout
    splits: str  # how the splits are made and which unit is kept whole


@dataclass(frozen=True)
class Recipe:
    info: DatasetInfo
    convert: Converter


@dataclass(frozen=True)
class FetchReport:
    """The result of :func:`fetch`, also stored as ``meta.json``."""

    name: str
    path: str  # the dataset directory
    splits: dict[str, int]  # items per split
    bytes: int  # size of the converted files
    download_bytes: int  # size of the verified artifacts
    seconds: float  # wall time of the fetch that made it
    sha256: dict[str, str]  # artifact file -> verified digest


_REGISTRY: dict[str, Recipe] = {}


def register(info: DatasetInfo) -> Callable[[Converter], Converter]:
    """Decorator: register ``convert`` as the recipe for ``info.name``."""

    def wrap(convert: Converter) -> Converter:
        if info.name in _REGISTRY:
            raise ValueError(f"dataset {info.name!r} registered twice")
        _REGISTRY[info.name] = Recipe(info, convert)
        return convert

    return wrap


def _load_recipes() -> None:
    from rnnkit.data import datasets

    for module in pkgutil.iter_modules(datasets.__path__):
        importlib.import_module(f"{datasets.__name__}.{module.name}")


def names() -> list[str]:
    """All registered dataset names, sorted."""
    _load_recipes()
    return sorted(_REGISTRY)


def get(name: str) -> Recipe:
    """The recipe for ``name``; a KeyError lists the known names."""
    _load_recipes()
    if name not in _REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def dataset_dir(name: str) -> Path:
    """Where ``name`` lives once fetched (whether or not it has been)."""
    return data_home() / name


def load_report(name: str) -> FetchReport | None:
    """The ``meta.json`` of a fetched dataset, or ``None`` when it is not fetched."""
    meta = dataset_dir(name) / "meta.json"
    if not meta.exists():
        return None
    return FetchReport(**json.loads(meta.read_text("utf-8")))


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _locals(recipe: Recipe, from_files: Sequence[Path]) -> dict[str, Path]:
    """The ``--from`` files by artifact name, each checked: the right name, a regular file,
    the recorded SHA-256 (whether or not the dataset is already in the cache)."""
    wanted = {a.filename: a for a in recipe.info.artifacts}
    found = {}
    for path in from_files:
        if path.name not in wanted:
            raise LocalFileError(
                f"{path}: expected one of {sorted(wanted)} for "
                f"{recipe.info.name}, found {path.name}"
            )
        verify_local(path, wanted[path.name])
        found[path.name] = path
    return found


def fetch(name: str, *, from_files: Sequence[str | Path] = (), force: bool = False) -> FetchReport:
    """Fetch, verify and convert ``name`` into the cache, unless already there.

    Args:
        name: A registered dataset.
        from_files: Artifact files the user already has, used instead of downloading
            (matched by file name, verified by SHA-256).
        force: Rebuild even when the dataset is already in the cache.
    """
    recipe = get(name)
    start = time.perf_counter()
    local = _locals(recipe, [Path(p) for p in from_files])  # verified even when cached
    existing = load_report(name)
    if existing is not None and not force:
        return existing
    paths = {a.package: fetch_artifact(a, local.get(a.filename)) for a in recipe.info.artifacts}
    out = dataset_dir(name)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        splits = recipe.convert(paths, partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    report = FetchReport(
        name=name,
        path=str(out),
        splits=splits,
        bytes=_dir_bytes(partial),
        download_bytes=sum(p.stat().st_size for p in paths.values()),
        seconds=round(time.perf_counter() - start, 2),
        sha256={a.filename: a.sha256 for a in recipe.info.artifacts},
    )
    (partial / "meta.json").write_text(json.dumps(asdict(report), indent=2) + "\n", "utf-8")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return report


def describe(name: str) -> str:
    """The text of ``rnnkit data info NAME``."""
    info = get(name).info
    lines = [
        f"{info.name}: {info.title}",
        f"  task:     {info.task}",
        *[f"  source:   {a.describe()}" for a in info.artifacts],
        f"  sha256:   {', '.join(a.sha256[:16] + '…' for a in info.artifacts)}",
        f"  inside:   {info.inside}",
        f"  size:     {info.size}",
        f"  license:  {info.license}",
        f"  citation: {info.citation}",
        f"  files:    {info.files}",
        f"  splits:   {info.splits}",
    ]
    report = load_report(name)
    if report is None:
        lines.append(f"  status:   not fetched (rnnkit data fetch {name})")
    else:
        counts = ", ".join(f"{k} {v:,}" for k, v in report.splits.items())
        lines.append(
            f"  status:   fetched to {report.path}: {counts}; {report.bytes / 1e6:.1f} MB converted"
        )
    return "\n".join(lines)
