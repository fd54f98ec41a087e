"""Memory of a training step: rnnkit's backends against torch.nn.

    python benchmarks/memory.py
    python benchmarks/memory.py --kinds gru --lengths yes

For each cell kind and (B, T, I, H) of the layer benchmark, with and without random lengths,
one forward + backward of a one-layer batch-first layer (loss: the sum of the outputs) is
measured two ways, each a count of bytes, not a timing (the figures repeat exactly):

- saved: the bytes of the tensors autograd keeps for backward (``saved_tensors_hooks``;
  each storage counted once), what the forward pass holds on to until backward;
- peak: the highest CPU memory allocated above what was allocated before the step, over
  the forward and backward passes (torch.profiler's memory events, summed in order).

Ratios are rnnkit's bytes over torch.nn's (below 1: rnnkit uses less); torch.nn is what its
users write (pack_padded_sequence with lengths). ``masked`` is the ``loop`` backend through the
masked kernels on the full (T, B) grid, the path padded batches took before the packed layout
(`rnnkit.kernels.packed`); without lengths it is the ``loop`` column again.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.profiler import ProfilerActivity, profile

import rnnkit as rk
from rnnkit.bench import cpu_name
from rnnkit.bench.layers import CONFIGS

KINDS = {"lstm": (rk.LSTM, nn.LSTM), "gru": (rk.GRU, nn.GRU), "rnn": (rk.RNN, nn.RNN)}
IMPLS = ("torch.nn", "auto", "loop", "masked")


def _saved_bytes(step) -> int:
    """Bytes autograd saves for backward during ``step()`` (a storage counted once)."""
    seen: dict[int, int] = {}

    def pack(t):
        if isinstance(t, torch.Tensor) and t.layout == torch.strided and t.device.type == "cpu":
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step()
    loss.backward()
    return sum(seen.values())


def _peak_bytes(step) -> int:
    """The highest allocation above the start over a forward and backward pass."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step().backward()
    level = peak = 0
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    for event in sorted(events, key=lambda e: e.start_ns()):  # allocations > 0, frees < 0
        level += event.nbytes()
        peak = max(peak, level)
    return peak


def measure(kind, batch, steps, inputs, hidden, with_lengths) -> dict:
    torch.manual_seed(0)
    lengths = torch.randint(1, steps + 1, (batch,)) if with_lengths else None
    if lengths is not None:
        lengths[0] = steps
    ours, theirs = KINDS[kind]
    ref = theirs(inputs, hidden, batch_first=True)
    layers = {"torch.nn": ref}
    for name in IMPLS[1:]:
        backend = "loop" if name == "masked" else name
        layers[name] = ours(inputs, hidden, batch_first=True, backend=backend)
        layers[name].load_state_dict(ref.state_dict())
    layers["masked"]._runs_packed = lambda x: False  # the masked kernels on the (T, B) grid
    x = torch.randn(batch, steps, inputs, requires_grad=True)

    def step_of(name):
        module = layers[name]

        def step():
            if name != "torch.nn":
                return module(x, lengths=lengths)[0].sum()
            if lengths is None:
                return module(x)[0].sum()
            seq = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            return pad_packed_sequence(module(seq)[0], batch_first=True)[0].sum()

        return step

    row = {"kind": kind, "config": [batch, steps, inputs, hidden], "lengths": with_lengths}
    for name in IMPLS:
        step_of(name)().backward()  # warm-up: one-off buffers, the compiled kernels
        row[name] = {"saved": _saved_bytes(step_of(name)), "peak": _peak_bytes(step_of(name))}
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--lengths", nargs="+", default=["no", "yes"], choices=["no", "yes"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{cpu_name()}; torch {torch.__version__}; one training step, bytes (MiB)")
    print(
        "| cell | B, T, I, H | lengths | torch.nn saved | torch.nn peak "
        "| auto saved | auto peak | loop saved | loop peak | masked saved | masked peak |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for kind in args.kinds:
        for config in CONFIGS:
            for flag in args.lengths:
                row = measure(kind, *config, flag == "yes")
                rows.append(row)
                ref = row["torch.nn"]
                cells = [f"{ref['saved'] / 2**20:.1f}", f"{ref['peak'] / 2**20:.1f}"]
                for name in IMPLS[1:]:
                    for what in ("saved", "peak"):
                        cells.append(f"{row[name][what] / ref[what]:.2f}")
                print(f"| {kind} | {', '.join(map(str, config))} | {flag} | {' | '.join(cells)} |")
    for name in IMPLS[1:]:
        for what in ("saved", "peak"):
            ratios = [r[name][what] / r["torch.nn"][what] for r in rows]
            print(
                f"{name} {what}/torch.nn: min {min(ratios):.2f}, "
                f"median {statistics.median(ratios):.2f}, max {max(ratios):.2f}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_name(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
