"""The README's Python API example (train a classifier on texts and labels) runs as written."""

import re
from pathlib import Path

import _training_helpers  # noqa: F401  (one torch thread)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_classifier_example_trains_and_predicts(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "rnnkit.train(" in b)
    assert len(example.strip().splitlines()) <= 14  # "in about 10 lines"
    monkeypatch.chdir(tmp_path)  # it writes runs/mine
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert [p.label for p in namespace["model"].predict(["a sharp and dull film"])] == ["pos"]
    assert "label='pos'" in printed and "label='neg'" in printed
    assert (tmp_path / "runs" / "mine" / "checkpoints" / "index.json").exists()
