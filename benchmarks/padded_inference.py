"""Padded batches against torch.nn: the 12 padded rows of the layer benchmark (LSTM, GRU,
Elman at the four (B, T, I, H)), random lengths in 1..T (the first row at T, as `rnnkit
bench layers`), batch first; inference, or with ``--train`` a training step (forward and
backward of the outputs' sum: the weights' gradients).

    python benchmarks/padded_inference.py --threads 1
    python benchmarks/padded_inference.py --threads 2 --rounds 15 --json padded-2.json
    python benchmarks/padded_inference.py --threads 1 --train

Columns, each torch.nn's median time over the implementation's (above 1: faster than
torch.nn): rnnkit ``auto``; the ``loop`` backend, whose compiled kernels run padded
batches in the packed layout (`rnnkit.kernels.packed`: only valid positions projected,
stepped, written and, in training, kept for backward); ``masked``, the same loop through
the masked kernels on the full (T, B) grid (the path before the packed layout: sorted
copy, full-size buffers zeroed, a gather back); ``torch.nn again``, a second torch.nn
layer (the noise on every ratio). torch.nn is what its users write:
pack_padded_sequence(enforce_sorted=False), the layer, pad_packed_sequence. All are timed in
turns within every round (interleaved).
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit as rk
from rnnkit.bench import interleaved, machine_line
from rnnkit.bench.layers import CONFIGS

KINDS = {"lstm": (rk.LSTM, nn.LSTM), "gru": (rk.GRU, nn.GRU), "rnn": (rk.RNN, nn.RNN)}
COLUMNS = ("auto", "loop", "masked", "torch.nn again")


def _masked_only(layer):
    layer._runs_packed = lambda x: False  # the masked kernels, as before
    return layer


def compare(
    kind: str, batch: int, steps: int, inputs: int, hidden: int, rounds: int, train: bool = False
) -> dict:
    torch.manual_seed(0)
    lengths = torch.randint(1, steps + 1, (batch,))
    lengths[0] = steps
    x = torch.randn(batch, steps, inputs)
    ours, theirs = KINDS[kind]
    ref, again = theirs(inputs, hidden, batch_first=True), theirs(inputs, hidden, batch_first=True)
    again.load_state_dict(ref.state_dict())
    layers = {
        "auto": ours(inputs, hidden, batch_first=True),
        "loop": ours(inputs, hidden, batch_first=True, backend="loop"),
        "masked": _masked_only(ours(inputs, hidden, batch_first=True, backend="loop")),
    }
    for layer in layers.values():
        layer.load_state_dict(ref.state_dict())

    def torch_nn(module):
        def call():
            seq = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            return pad_packed_sequence(module(seq)[0], batch_first=True, total_length=steps)[0]

        return call

    calls = {"torch.nn": torch_nn(ref)}
    calls.update({name: (lambda m=m: m(x, lengths=lengths)[0]) for name, m in layers.items()})
    calls["torch.nn again"] = torch_nn(again)
    with torch.no_grad():
        expected = calls["torch.nn"]()
        for name in ("auto", "loop", "masked"):  # the same numbers, before timing them
            torch.testing.assert_close(calls[name](), expected, rtol=0, atol=1e-4)
    if train:
        modules = {"torch.nn": ref, **layers, "torch.nn again": again}

        def step(name, call):
            def run():
                modules[name].zero_grad(set_to_none=True)
                call().sum().backward()

            return run

        calls = {name: step(name, call) for name, call in calls.items()}
        median = interleaved(calls, rounds)
    else:
        with torch.no_grad():
            median = interleaved(calls, rounds)
    return {
        "kind": kind,
        "train": train,
        "config": [batch, steps, inputs, hidden],
        "torch_nn_ms": 1e3 * median["torch.nn"],
        "ratio": {name: median["torch.nn"] / median[name] for name in COLUMNS},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train", action="store_true", help="time a training step")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    machine = machine_line()
    print(machine)
    print("| cell | B, T, I, H | torch.nn ms | " + " | ".join(COLUMNS) + " |")
    print("|---|---|---|" + "---|" * len(COLUMNS))
    rows = []
    for kind in args.kinds:
        for config in CONFIGS:
            row = compare(kind, *config, rounds=args.rounds, train=args.train)
            rows.append(row)
            cells = " | ".join(f"{row['ratio'][c]:.2f}" for c in COLUMNS)
            print(
                f"| {kind} | {', '.join(map(str, config))} | {row['torch_nn_ms']:.1f} | {cells} |",
                flush=True,
            )
    for column in COLUMNS:
        values = [r["ratio"][column] for r in rows]
        print(f"{column}: min {min(values):.2f}, median {statistics.median(values):.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "args": vars(args), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
