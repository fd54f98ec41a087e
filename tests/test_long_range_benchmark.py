"""Smoke test of benchmarks/long_range.py at toy sizes: table, JSON, PNGs, RESULTS section."""

from __future__ import annotations

import json

import _training_helpers  # noqa: F401  (one torch thread)
from _benchmarks import load_benchmark


def test_long_range_toy_run(tmp_path, capsys):
    lr = load_benchmark("long_range")
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nkept text\n")
    argv = [
        "--tasks",
        "adding",
        "copy",
        "--lengths",
        "6",
        "--cells",
        "rnn",
        "gru",
        "--budget",
        "5",
        "--copy-budget",
        "5",
        "--max-steps",
        "4",
        "--eval-every",
        "2",
        "--hidden",
        "4",
        "--boom-batches",
        "3",
        "--figures",
        str(tmp_path),
        "--results",
        str(results),
    ]
    assert lr.main(argv) == 0
    data = json.loads((tmp_path / "long_range.json").read_text())
    assert [(r["task"], r["cell"]) for r in data["results"]] == [
        ("adding", "rnn"),
        ("adding", "gru"),
        ("copy", "rnn"),
        ("copy", "gru"),
    ]
    assert all(r["steps"] == 4 and len(r["grad_norms_init"]) == 6 for r in data["results"][:2])
    assert data["exploding"]["clip"]["clip_norm"] == 1.0
    for name in (
        "long_range_grad_norms_adding_T6.png",
        "long_range_curves_copy.png",
        "long_range_exploding.png",
    ):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    text = results.read_text()
    assert "kept text" in text and text.count("<!-- long_range:start -->") == 1
    assert "| adding | 6 | gru |" in text
    (tmp_path / "long_range_exploding.png").unlink()
    assert lr.main([*argv, "--replot"]) == 0
    assert (tmp_path / "long_range_exploding.png").exists()
    assert lr.main(argv) == 0  # a second run replaces the section instead of appending
    assert results.read_text().count("<!-- long_range:start -->") == 1
    assert "| adding | 6 | rnn |" in capsys.readouterr().out
