"""The helpers of benchmarks/mr_sentiment.py at toy sizes (no training, no dataset)."""

from __future__ import annotations

import numpy as np
import pytest

from _benchmarks import load_benchmark


def test_summarise_reads_single_runs_and_ensembles(tmp_path, capsys):
    log = tmp_path / "a.log"
    log.write_text(
        "  gru-learned fold 0: accuracy 70.00 (epoch 3)\n"
        "  gru-learned fold 1: accuracy 72.00 (epoch 4)\n"
        "gru-learned: 71.00 +- 1.00 over 2 folds, 50 s/fold\n"
        "  gru-learned-x2 fold 0: accuracy 75.00 (members 70.00 74.00, epochs 3 4)\n"
    )
    load_benchmark("mr_sentiment").summarise([log])
    out = capsys.readouterr().out
    assert "| gru-learned | 2 | 71.00 | 1.00 | - | 50 |" in out
    assert "| gru-learned-x2 | 1 | 75.00 | - | 72.00 | - |" in out


def test_combine_averages_every_member_of_the_named_runs(tmp_path, capsys):
    y = np.array([1, 0, 1, 0])
    np.save(tmp_path / "labels-fold0.npy", y)
    right = np.array([[0.4, 0.6], [0.6, 0.4], [0.4, 0.6], [0.6, 0.4]])  # all correct, weakly
    wrong = np.array([[0.9, 0.1], [0.6, 0.4], [0.6, 0.4], [0.6, 0.4]])  # first one wrong, strongly
    np.save(tmp_path / "a-fold0.npy", np.stack([right, right]))
    np.save(tmp_path / "b-fold0.npy", np.stack([wrong]))
    mr = load_benchmark("mr_sentiment")
    mr.combine(tmp_path, ["a"])
    assert "ensemble of a: 100.00" in capsys.readouterr().out
    mr.combine(tmp_path, ["a", "b"])  # first: (0.4 + 0.4 + 0.9) / 3 > 0.5 for class 0
    out = capsys.readouterr().out
    assert "fold 0: 3 members, accuracy 75.00" in out and "ensemble of a + b: 75.00" in out
    with pytest.raises(SystemExit, match="no fold has saved probabilities"):
        mr.combine(tmp_path, ["c"])
