"""Batch 1 against JAX: GRU and Elman layers at (B, T, I, H) = (1, 1000, 64, 128), training
(forward + backward of the summed outputs) and inference, one thread.

    pip install -c constraints.txt -e ".[bench-jax]"
    python benchmarks/batch1_jax.py
    python benchmarks/batch1_jax.py --rounds 21 --steps 1000

Implementations, timed in turns within every round (interleaved), medians reported as
speed relative to torch.nn (above 1: faster than torch.nn):

- ``torch.nn``: nn.GRU / nn.RNN; ``torch.nn again``: a second one (the noise on every ratio);
- ``rnnkit``: rk.GRU / rk.RNN with ``backend="auto"``, whose compiled kernels form a batch of
  at most 4 rows' per-step products with their own loop over the weight's rows (no library
  call, no tensor view a step; ``csrc/fused.cpp``, ``Product::rows_of_w``);
- ``rnnkit, at::mm``: the same kernels with that loop turned off (``set_direct_max_rows(0)``):
  every step's product through at::mm, as before;
- ``JAX``: the same equations, the input projection of all steps as one product and the
  recurrence as a ``jax.lax.scan``, under ``jax.jit`` (inference) and
  ``jax.jit(jax.grad(...))`` (training), XLA on one thread, from the same weights; each
  call blocks until its result is ready.

Each implementation's outputs are checked against torch.nn's (to 1e-4) before timing.
"""

from __future__ import annotations

import argparse
import os

# XLA's CPU client on one thread, as torch below (set before JAX is imported)
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch import nn

import rnnkit as rk
from rnnkit.bench import interleaved, machine_line
from rnnkit.kernels import ext

COLUMNS = ("rnnkit", "rnnkit, at::mm", "JAX", "torch.nn again")


def _gru_step(w_hh, b_hh, h, gi):
    """torch.nn.GRU's equations (gates r, z, n; b_hn inside r's product), from the step's
    projected input gi = W_ih x_t + b_ih."""
    gh = h @ w_hh.T + b_hh
    i_r, i_z, i_n = jnp.split(gi, 3)
    h_r, h_z, h_n = jnp.split(gh, 3)
    r, z = jax.nn.sigmoid(i_r + h_r), jax.nn.sigmoid(i_z + h_z)
    n = jnp.tanh(i_n + r * h_n)
    h = n + z * (h - n)
    return h, h


def _elman_step(w_hh, b_hh, h, gi):
    h = jnp.tanh(gi + h @ w_hh.T + b_hh)
    return h, h


def _jax_calls(kind, params, x):
    """Jitted inference and training calls over x (T, I), batch 1 (a vector state): the
    input projection of all steps as one product, the recurrence as a lax.scan."""
    step = _gru_step if kind == "gru" else _elman_step
    hidden = params[1].shape[1]

    def run(params, x):
        w_ih, w_hh, b_ih, b_hh = params
        gis = x @ w_ih.T + b_ih  # (T, G*H)
        _, ys = jax.lax.scan(lambda h, gi: step(w_hh, b_hh, h, gi), jnp.zeros(hidden), gis)
        return ys

    infer = jax.jit(run)
    grad = jax.jit(jax.grad(lambda p, x: run(p, x).sum(), argnums=(0, 1)))
    return infer, grad


def compare(kind, steps, inputs, hidden, mode, rounds) -> dict:
    torch.manual_seed(0)
    ours, theirs = {"gru": (rk.GRU, nn.GRU), "rnn": (rk.RNN, nn.RNN)}[kind]
    ref, again = theirs(inputs, hidden, batch_first=True), theirs(inputs, hidden, batch_first=True)
    again.load_state_dict(ref.state_dict())
    layer = ours(inputs, hidden, batch_first=True)
    layer.load_state_dict(ref.state_dict())
    train = mode == "train"
    x = torch.randn(1, steps, inputs, requires_grad=train)
    params = tuple(jnp.asarray(p.detach().numpy()) for p in ref.parameters())
    jx = jnp.asarray(x.detach().numpy()[0])
    infer, grad = _jax_calls(kind, params, jx)
    ops = ext.ops()

    def torch_call(module, direct=True):
        def call():
            before = ops.set_direct_max_rows(4 if direct else 0)
            try:
                with torch.set_grad_enabled(train):
                    out = module(x)[0]
                    if train:
                        out.sum().backward()
                return out
            finally:
                ops.set_direct_max_rows(before)

        return call

    def jax_call():
        if train:
            return jax.block_until_ready(grad(params, jx))
        return jax.block_until_ready(infer(params, jx))

    calls = {
        "torch.nn": torch_call(ref),
        "rnnkit": torch_call(layer),
        "rnnkit, at::mm": torch_call(layer, direct=False),
        "JAX": jax_call,
        "torch.nn again": torch_call(again),
    }
    expected = ref(x)[0].detach().numpy()[0]  # the same numbers, before timing them
    for name in ("rnnkit", "rnnkit, at::mm"):
        got = torch_call(layer, direct=name == "rnnkit")().detach().numpy()[0]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(infer(params, jx)), expected, rtol=0, atol=1e-4)
    median = interleaved(calls, rounds)
    return {
        "kind": kind,
        "mode": mode,
        "torch_nn_ms": 1e3 * median["torch.nn"],
        "ms": {name: 1e3 * m for name, m in median.items()},
        "ratio": {name: median["torch.nn"] / median[name] for name in COLUMNS},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--inputs", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"{machine_line()}; jax {jax.__version__} (XLA CPU, one thread)")
    print(f"B = 1, T = {args.steps}, I = {args.inputs}, H = {args.hidden}")
    print("| cell | mode | torch.nn ms | " + " | ".join(COLUMNS) + " | rnnkit / JAX |")
    print("|---|---|---|" + "---|" * (len(COLUMNS) + 1))
    for kind in ("gru", "rnn"):
        for mode in ("train", "infer"):
            row = compare(kind, args.steps, args.inputs, args.hidden, mode, args.rounds)
            cells = " | ".join(f"{row['ratio'][c]:.2f}" for c in COLUMNS)
            vs_jax = row["ms"]["JAX"] / row["ms"]["rnnkit"]
            print(
                f"| {kind} | {mode} | {row['torch_nn_ms']:.1f} | {cells} | {vs_jax:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
