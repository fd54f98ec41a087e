"""Inference with onnxruntime against PyTorch, on the graphs `rnnkit export` writes.

    python benchmarks/onnx_inference.py --threads 1 --json onnx.json

Two workloads at batch 1 and 32: the recurrent layer of the sentiment classifier
(configs/sentiment.toml: a bidirectional LSTM, 100 inputs, 100 hidden per direction) on a
padded batch of T steps with lengths, and one step of the Shakespeare character language
model (configs/shakespeare_char.toml: LSTM, embedding 64, hidden 256, 1 layer; V tokens).
Each is exported with rnnkit.export.to_onnx (checked against PyTorch there), then PyTorch
(the layer's default backend, no_grad, eval) and an onnxruntime session (CPU, the same
thread count) run the same inputs, interleaved over rounds of ``--calls`` calls each; the
table gives the median time per call and PyTorch's time over onnxruntime's (> 1: onnxruntime
is faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import rnnkit as rk
from rnnkit.export import example_lengths, layer_graph, onnx_session, to_onnx
from rnnkit.models import LanguageModel, LanguageModelConfig


def _timed(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def compare(torch_call, onnx_call, rounds: int, calls: int) -> tuple[float, float]:
    """Median seconds per call of each, interleaved (one warm-up round not counted)."""
    times: dict[str, list[float]] = {"torch": [], "onnx": []}
    with torch.no_grad():
        for r in range(rounds + 1):
            for name, call in (("torch", torch_call), ("onnx", onnx_call)):
                t = _timed(call, calls)
                if r:
                    times[name].append(t)
    return statistics.median(times["torch"]), statistics.median(times["onnx"])


def layer_case(folder: Path, batch: int, steps: int, threads: int):
    """The classifier's BiLSTM on a padded batch: (torch call, onnxruntime call)."""
    torch.manual_seed(0)
    layer = rk.LSTM(100, 100, bidirectional=True, batch_first=True).eval()
    to_onnx(layer_graph(layer), folder / "layer.onnx")
    x = torch.randn(batch, steps, 100)
    lengths = example_lengths(batch, steps) if batch > 1 else torch.tensor([steps])
    session = onnx_session(folder / "layer.onnx", threads)
    feeds = {"x": x.numpy(), "lengths": lengths.numpy()}
    return (lambda: layer(x, lengths=lengths)), (lambda: session.run(None, feeds))


def step_case(folder: Path, batch: int, vocab: int, threads: int):
    """One language-model step from a carried state: (torch call, onnxruntime call)."""
    torch.manual_seed(0)
    config = LanguageModelConfig(vocab_size=vocab, embedding_size=64, hidden_size=256, num_layers=1)
    model = LanguageModel(config).eval()
    to_onnx(model, folder / "step.onnx")
    tokens = torch.randint(0, vocab, (batch,))
    h, c = torch.randn(1, batch, 256) * 0.5, torch.randn(1, batch, 256) * 0.5
    session = onnx_session(folder / "step.onnx", threads)
    feeds = {"tokens": tokens.numpy(), "h": h.numpy(), "c": c.numpy()}
    return (lambda: model.step(tokens, (h, c))), (lambda: session.run(None, feeds))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--steps", type=int, default=40, help="T of the classifier's padded batch")
    p.add_argument("--vocab", type=int, default=65, help="V of the language model")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for batch in args.batches:
            cases = {
                f"classifier BiLSTM 100->2x100, T={args.steps}, lengths": (
                    layer_case(folder, batch, args.steps, args.threads),
                    20,
                ),
                f"LM step, LSTM 64->256, V={args.vocab}": (
                    step_case(folder, batch, args.vocab, args.threads),
                    200,
                ),
            }
            for name, ((torch_call, onnx_call), calls) in cases.items():
                t, o = compare(torch_call, onnx_call, args.rounds, calls)
                times = {"torch_us": t * 1e6, "onnxruntime_us": o * 1e6, "speedup": t / o}
                rows.append({"workload": name, "batch": batch, **times})
    print("| workload | batch | PyTorch (us/call) | onnxruntime (us/call) | PyTorch / ORT |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['workload']} | {r['batch']} | {r['torch_us']:,.0f} | "
            f"{r['onnxruntime_us']:,.0f} | {r['speedup']:.2f}x |"
        )
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
