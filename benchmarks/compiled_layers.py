"""torch.compile of rnnkit's layers: the compiled kernels' custom ops in the graph, against
the portable route (cells unrolled with autograd, what export and jit.trace capture) and
torch.nn, for one training step (forward, backward of the outputs' sum) at one (B, T, I, H).

    python benchmarks/compiled_layers.py --threads 1
    python benchmarks/compiled_layers.py --threads 1 --kinds gru --shape 32 100 128 256

Columns, torch.nn eager's median time over each one's (above 1: faster than torch.nn):
rnnkit eager (``backend="auto"``); ``torch.compile`` of it (inductor, ``fullgraph=True``),
whose graph calls ``rnnkit::*_train`` and ``rnnkit::*_grad`` (rnnkit.kernels.library);
``compiled, unrolled``: the same compile forced onto the portable route (the only route before
the custom ops); torch.nn compiled (``torch._dynamo.config.allow_rnn = True``: by default
dynamo refuses torch.nn's RNN layers under ``fullgraph=True``); torch.nn again (the noise).
All timed in turns within every round, after each compiled module's first call (its
compilation).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import rnnkit as rk
from rnnkit.bench import interleaved, machine_line

KINDS = {"lstm": (rk.LSTM, nn.LSTM), "gru": (rk.GRU, nn.GRU), "rnn": (rk.RNN, nn.RNN)}


def _step(module, x):
    def call():
        out, _ = module(x)
        out.sum().backward()

    return call


def _compiled(module, x, unrolled: bool):
    """torch.compile(module), called once (compiled)."""
    if unrolled:
        module._captured_ops = lambda x: False  # the portable route
    compiled = torch.compile(module, fullgraph=True)
    _step(compiled, x)()
    return compiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--shape", type=int, nargs=4, default=[32, 50, 128, 256])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch, steps, inputs, hidden = args.shape
    print(machine_line())
    print(f"(B, T, I, H) = {tuple(args.shape)}, one layer, batch first, training step\n")
    print(
        "| layer | rnnkit eager | rnnkit compiled | compiled, unrolled | torch.nn compiled "
        "| torch.nn again |"
    )
    print("|---|---|---|---|---|---|")
    for kind in args.kinds:
        ours, theirs = KINDS[kind]
        torch.manual_seed(0)
        x = torch.randn(batch, steps, inputs, requires_grad=True)
        modules = {"torch.nn": theirs(inputs, hidden, batch_first=True)}
        modules["torch.nn again"] = theirs(inputs, hidden, batch_first=True)
        modules["rnnkit eager"] = ours(inputs, hidden, batch_first=True)
        ops = _compiled(ours(inputs, hidden, batch_first=True), x, unrolled=False)
        torch._dynamo.reset()
        unrolled = _compiled(ours(inputs, hidden, batch_first=True), x, unrolled=True)
        torch._dynamo.reset()
        torch._dynamo.config.allow_rnn = True  # else dynamo refuses torch.nn's RNN layers
        nn_compiled = torch.compile(theirs(inputs, hidden, batch_first=True), fullgraph=True)
        calls = {name: _step(m, x) for name, m in modules.items()}
        calls["rnnkit compiled"] = _step(ops, x)
        calls["compiled, unrolled"] = _step(unrolled, x)
        calls["torch.nn compiled"] = _step(nn_compiled, x)
        t = interleaved(calls, args.rounds)
        ref = t["torch.nn"]
        cols = [
            "rnnkit eager",
            "rnnkit compiled",
            "compiled, unrolled",
            "torch.nn compiled",
            "torch.nn again",
        ]
        ratios = " | ".join(f"{ref / t[c]:.2f}" for c in cols)
        print(f"| {kind} | {ratios} |", flush=True)
        torch._dynamo.reset()


if __name__ == "__main__":
    main()
