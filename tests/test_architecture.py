"""The layering rules, checked on the source: no import cycle, nothing below imports from
above, generic code names no task, and a task's own dependencies load only when it runs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from _training_helpers import subprocess_env

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "rnnkit"


def _module(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """rnnkit modules ``path`` imports (module-level statements only, or all)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # module-level if/try blocks too, not `if TYPE_CHECKING:`
        nodes = [
            n
            for top in tree.body
            if not isinstance(top, ast.FunctionDef | ast.ClassDef) and not _type_checking(top)
            for n in ast.walk(top)
        ]
    out = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            out.update(n for n in names if n.startswith("rnnkit"))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("rnnkit"))
    return out


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for target in _imports(path, top_level_only):
            while target not in modules and "." in target:  # `from pkg import name`
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def test_no_import_cycle_at_import_time():
    graph = _graph(top_level_only=True)
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycle = [*stack[stack.index(node) :], node]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for nxt in graph[node]:
            # a package's __init__ importing its own submodules is not a cycle
            if not nxt.startswith(node + "."):
                visit(nxt, [*stack, node])
        done.add(node)

    for node in graph:
        visit(node, [])


_CORE_ABOVE = ("rnnkit.models", "rnnkit.data", "rnnkit.training", "rnnkit.tasks")
FORBIDDEN = {  # a layer -> the layers above it, which it must never import (lazily included)
    "rnnkit.cells": (*_CORE_ABOVE, "rnnkit.diagnostics"),
    "rnnkit.layers": (*_CORE_ABOVE, "rnnkit.diagnostics"),
    # the compiled kernels are a leaf: the layers tell them which cell they run
    "rnnkit.kernels": (
        *_CORE_ABOVE,
        "rnnkit.diagnostics",
        "rnnkit.cells",
        "rnnkit.layers",
        "rnnkit.unroll",
    ),
    # diagnostics reads runs (training's logs), so everything below training stays clear of it
    "rnnkit.data": (
        "rnnkit.models",
        "rnnkit.training",
        "rnnkit.tasks",
        "rnnkit.commands",
        "rnnkit.diagnostics",
    ),
    "rnnkit.models": (
        "rnnkit.training",
        "rnnkit.tasks",
        "rnnkit.commands",
        "rnnkit.cli",
        "rnnkit.diagnostics",
    ),
    "rnnkit.decoding": ("rnnkit.training", "rnnkit.tasks", "rnnkit.commands", "rnnkit.diagnostics"),
    "rnnkit.diagnostics": ("rnnkit.tasks", "rnnkit.commands", "rnnkit.cli", "rnnkit.api"),
    "rnnkit.training": ("rnnkit.tasks", "rnnkit.commands", "rnnkit.cli", "rnnkit.api"),
    "rnnkit.tasks": ("rnnkit.commands", "rnnkit.cli"),
    # the models import export for their ONNX graphs: loading a run is not export's to do
    "rnnkit.export": (
        "rnnkit.training",
        "rnnkit.tasks",
        "rnnkit.commands",
        "rnnkit.cli",
        "rnnkit.api",
        "rnnkit.diagnostics",
    ),
}


def test_nothing_below_imports_from_above():
    bad = []
    for name, edges in _graph(top_level_only=False).items():
        for layer, above in FORBIDDEN.items():
            if name == layer or name.startswith(layer + "."):
                bad += [f"{name} imports {t}" for t in edges if t.startswith(above)]
    assert not bad, bad


TASK_NAMES = re.compile(
    r"""["'](adding|copy|classify|sentiment|lm|tagging|translate|caption|classify-series"""
    r"""|similarity|recommend|recognize|speech|ctc|pianoroll|chorales|melody)["']"""  # by name
    r"|\b(classify|sentiment|tagging|tagger|classifier|language model)\b"
    r"|tasks\.(adding|copy|classify|lm|tagging|translate|caption|series|similarity|recommend"
    r"|recognize|music|melody)\b|adding_problem|copy_memory"
)
GENERIC = ["tasks/run.py", "tasks/base.py", "cli.py", "commands/train.py", "commands/predict.py"]


def test_generic_code_names_no_task():
    files = [PKG / f for f in GENERIC] + sorted((PKG / "training").glob("*.py"))
    found = []
    for f in files:
        for i, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if TASK_NAMES.search(code):
                found.append(f"{f.relative_to(PKG)}:{i}: {line.strip()}")
    assert not found, found


def test_synthetic_task_trains_without_other_tasks_dependencies(tmp_path):
    """`rnnkit train adding` needs none of seqeval, sentencepiece, music21, pandas, ..."""
    blocked = ["seqeval", "sentencepiece", "music21", "pandas", "pyreadr", "pysword", "sklearn"]
    args = ["train", "adding", "--out", str(tmp_path / "run")]
    for item in (
        "task.seq_len=4",
        "task.n_train=16",
        "task.n_val=8",
        "task.n_test=8",
        "trainer.epochs=1",
        "trainer.batch_size=8",
        "trainer.log.tensorboard=false",
    ):
        args += ["--set", item]
    fake = tmp_path / "missing"  # packages that fail to import, as when not installed
    for name in blocked:
        (fake / name).mkdir(parents=True)
        (fake / name / "__init__.py").write_text(f"raise ModuleNotFoundError('no {name}')\n")
    env = subprocess_env()
    env["PYTHONPATH"] = f"{fake}:{env['PYTHONPATH']}"
    done = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "done: 1 epochs" in done.stdout
