"""benchmarks/layers_summary.py on a hand-made bench file."""

from __future__ import annotations

from _benchmarks import load_benchmark


def _row(kind, batch, mode, auto, torch_, loop, again=1.0):
    ratio = {"torch.nn": 1.0, "auto": auto, "torch": torch_, "loop": loop, "torch.nn again": again}
    return {
        "kind": kind,
        "B": batch,
        "T": 10,
        "I": 4,
        "H": 8,
        "lengths": False,
        "mode": mode,
        "ratio": ratio,
    }


def test_summary_counts_the_misses_of_each_target():
    rows = [
        _row("lstm", 32, "train", 1.0, 1.0, 0.6, 0.9),
        _row("gru", 32, "infer", 0.9, 1.0, 1.2),
        _row("rnn", 1, "train", 3.0, 1.0, 0.5, 1.2),  # B = 1: outside the loop's target
    ]
    lines = load_benchmark("layers_summary").summarise(rows)
    assert lines[0] == (
        "auto: median 1.00, min 0.90 over 3 rows; at B >= 32 median 0.95, min 0.90 over 2 rows"
    )
    assert "  auto at or above 0.95 in 2 of 3 rows" in lines
    assert "  below: gru infer (32, 10, 4, 8) no lengths: 0.900" in lines
    assert "  loop at or above 0.7 in 1 of 2 rows with B >= 32" in lines
    assert "  below: lstm train (32, 10, 4, 8) no lengths: 0.600" in lines
    assert not any("rnn train" in line for line in lines)
    assert lines[-1] == "torch.nn again (noise): 0.90-1.20"


def test_several_runs_are_merged_by_per_row_medians():
    summary = load_benchmark("layers_summary")
    runs = [
        [_row("lstm", 32, "train", 0.90, 1.0, 0.80), _row("gru", 32, "infer", 1.2, 1.0, 1.2)],
        [_row("gru", 32, "infer", 1.1, 1.0, 1.3), _row("lstm", 32, "train", 0.99, 1.0, 0.60)],
        [_row("lstm", 32, "train", 0.97, 1.0, 0.75), _row("gru", 32, "infer", 1.0, 1.0, 1.1)],
    ]
    merged = summary.median_rows(runs)
    assert [r["kind"] for r in merged] == ["lstm", "gru"]
    assert merged[0]["ratio"]["auto"] == 0.97 and merged[0]["ratio"]["loop"] == 0.75
    assert merged[1]["ratio"]["auto"] == 1.1 and merged[1]["ratio"]["loop"] == 1.2
    assert summary.spread(runs) == [
        "  auto lstm train (32, 10, 4, 8) no lengths: 0.90, 0.99, 0.97",
        "  loop lstm train (32, 10, 4, 8) no lengths: 0.80, 0.60, 0.75",
    ]
