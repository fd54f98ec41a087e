"""Layer throughput against torch.nn, measured in the same run.

For every cell kind, configuration (B, T, I, H), with and without random lengths, and for
training (forward + backward) and inference, the implementations are timed in turns
(interleaved over rounds after a warm-up), so that noise from the machine touches them
alike. The figure of merit is the median time of each, turned into tokens/s (valid,
unpadded tokens) and into a ratio to torch.nn (above 1: faster than torch.nn).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.layers import GRU, LSTM, RNN

__all__ = ["CONFIGS", "Row", "run", "time_config"]

#: (B, T, I, H): the issue's four configurations
CONFIGS = [(32, 100, 128, 256), (64, 50, 256, 512), (1, 1000, 64, 128), (128, 35, 650, 650)]
KINDS = {"lstm": (LSTM, nn.LSTM), "gru": (GRU, nn.GRU), "rnn": (RNN, nn.RNN)}
#: "torch.nn again" is a second torch.nn layer timed like the first: its ratio, which
#: should be 1, shows how much the machine's noise moves a ratio in this run.
IMPLS = ("torch.nn", "auto", "torch", "loop", "torch.nn again")


@dataclass
class Row:
    """The measurements of one (kind, config, lengths, mode)."""

    kind: str
    B: int
    T: int
    I: int
    H: int
    lengths: bool
    mode: str  # "train" or "infer"
    seconds: dict[str, float] = field(default_factory=dict)  # median per implementation
    tokens_per_s: dict[str, float] = field(default_factory=dict)
    ratio: dict[str, float] = field(default_factory=dict)  # torch.nn's time / this one's


def _torch_nn_call(module: nn.Module, x, lengths):
    """What a torch.nn user writes: pack when there are lengths, unpack after."""
    if lengths is None:
        return module(x)[0]
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    return pad_packed_sequence(module(packed)[0], batch_first=True, total_length=x.shape[1])[0]


def _make_calls(kind, B, T, I, H, lengths, mode) -> dict[str, Callable[[], None]]:
    ours_cls, ref_cls = KINDS[kind]
    ref = ref_cls(I, H, batch_first=True)
    again = ref_cls(I, H, batch_first=True)
    again.load_state_dict(ref.state_dict())
    modules = {"torch.nn": ref}
    for backend in ("auto", "torch", "loop"):
        layer = ours_cls(I, H, batch_first=True, backend=backend)
        layer.load_state_dict(ref.state_dict())
        modules[backend] = layer
    modules["torch.nn again"] = again
    x = torch.randn(B, T, I, requires_grad=mode == "train")

    def call(name):
        module = modules[name]

        def run_once():
            with torch.set_grad_enabled(mode == "train"):
                if name.startswith("torch.nn"):
                    out = _torch_nn_call(module, x, lengths)
                else:
                    out = module(x, lengths=lengths)[0]
                if mode == "train":
                    out.sum().backward()

        return run_once

    return {name: call(name) for name in modules}


def time_config(
    kind, B, T, I, H, with_lengths, mode, rounds=5, warmup=1, seed=0, min_seconds=0.05
) -> Row:
    """Median seconds per call of every implementation, timed in interleaved rounds."""
    torch.manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,)) if with_lengths else None
    if lengths is not None:
        lengths[0] = T
    calls = _make_calls(kind, B, T, I, H, lengths, mode)
    # warm-up, which also sizes each timing to at least min_seconds (short calls repeat)
    repeats = {}
    for name, fn in calls.items():
        for _ in range(max(warmup, 1)):
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
        repeats[name] = max(1, math.ceil(min_seconds / max(elapsed, 1e-6)))
    reps = max(repeats.values())  # the same count for all, so their work stays alike
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            start = time.perf_counter()
            for _ in range(reps):
                fn()
            times[name].append((time.perf_counter() - start) / reps)
    tokens = int(lengths.sum()) if lengths is not None else B * T
    row = Row(kind, B, T, I, H, with_lengths, mode)
    for name, ts in times.items():
        row.seconds[name] = statistics.median(ts)
        row.tokens_per_s[name] = tokens / row.seconds[name]
    for name in calls:
        row.ratio[name] = row.seconds["torch.nn"] / row.seconds[name]
    return row


def run(
    kinds=("lstm", "gru", "rnn"),
    configs=CONFIGS,
    modes=("train", "infer"),
    lengths=(False, True),
    rounds=5,
    warmup=1,
    json_path=None,
    progress=None,
) -> list[Row]:
    """The full sweep; ``progress(row)`` is called after each measurement."""
    rows = []
    for kind in kinds:
        for B, T, I, H in configs:
            for with_lengths in lengths:
                for mode in modes:
                    row = time_config(kind, B, T, I, H, with_lengths, mode, rounds, warmup)
                    rows.append(row)
                    if progress is not None:
                        progress(row)
    if json_path is not None:
        from rnnkit.bench import cpu_name, gemm_peak

        meta = {
            "cpu": cpu_name(),
            "gemm_gflops": round(gemm_peak(), 1),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "rounds": rounds,
            "warmup": warmup,
        }
        with open(json_path, "w") as f:
            json.dump({"meta": meta, "rows": [asdict(r) for r in rows]}, f, indent=1)
    return rows


def markdown(rows: list[Row]) -> str:
    """A Markdown table: tokens/s of torch.nn and the ratio of each rnnkit backend."""
    lines = [
        "| cell | B | T | I | H | lengths | mode | torch.nn tok/s | auto | torch | loop "
        "| torch.nn again |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.kind} | {r.B} | {r.T} | {r.I} | {r.H} | {'yes' if r.lengths else 'no'} | "
            f"{r.mode} | {r.tokens_per_s['torch.nn']:,.0f} | {r.ratio['auto']:.2f} | "
            f"{r.ratio['torch']:.2f} | {r.ratio['loop']:.2f} | {r.ratio['torch.nn again']:.2f} |"
        )
    return "\n".join(lines)
