"""The parity and benchmark commands, through typer's CliRunner."""

import json

from typer.testing import CliRunner

from rnnkit.cli import app

runner = CliRunner()


def test_parity_command_reports_all_within_tolerance():
    result = runner.invoke(
        app, ["parity", "--kind", "gru", "--backend", "loop", "--dtype", "float64"]
    )
    assert result.exit_code == 0, result.output
    assert "48/48 configurations within tolerance" in result.output


def test_bench_layers_quick_writes_json(tmp_path):
    path = tmp_path / "bench.json"
    result = runner.invoke(
        app,
        [
            "bench",
            "layers",
            "--quick",
            "--kind",
            "rnn",
            "--rounds",
            "1",
            "--warmup",
            "0",
            "--json",
            str(path),
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(path.read_text())
    assert len(figures["rows"]) == 4  # lengths no/yes x train/infer
    for row in figures["rows"]:
        assert set(row["ratio"]) == {"torch.nn", "auto", "torch", "loop", "torch.nn again"}
        assert all(v > 0 for v in row["tokens_per_s"].values())


def test_version():
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and result.output.strip()
