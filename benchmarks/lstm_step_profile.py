"""Where the loop backend's LSTM inference spends its time, against torch.nn's.

    python benchmarks/lstm_step_profile.py                # (B, T, I, H) = (32, 100, 128, 256)
    python benchmarks/lstm_step_profile.py --threads 1

Times, interleaved over rounds (medians): torch.nn's LSTM; rnnkit's loop backend; and the
loop's parts on their own: the input projection of all steps (one oneDNN product), the T
per-step recurrent products (oneDNN with the packed weight over the whole batch, as the
compiled kernel calls them on one thread or under 16 rows a thread) and the compiled kernel
(products plus element-wise steps; with more rows it runs one block of rows per thread, each
with one-thread products). Inference, no lengths.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import rnnkit as rk
from rnnkit.kernels import ext
from rnnkit.kernels.common import Linear


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shape", type=int, nargs=4, default=[32, 100, 128, 256], metavar="B T I H")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=25)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if not ext.available():
        raise SystemExit(f"the compiled kernels are needed: {ext.why_not()}")
    batch, steps, inputs, hidden = args.shape
    torch.manual_seed(0)
    x = torch.randn(steps, batch, inputs)
    ref = torch.nn.LSTM(inputs, hidden)
    loop = rk.LSTM(inputs, hidden, backend="loop")
    loop.load_state_dict(ref.state_dict())
    w_ih, w_hh = ref.weight_ih_l0.detach(), ref.weight_hh_l0.detach()
    bias = (ref.bias_ih_l0 + ref.bias_hh_l0).detach()
    h0 = torch.zeros(batch, hidden)
    packed = ext.packed(w_hh, batch)
    xp = Linear(w_ih, steps * batch, bias)(x.flatten(0, 1)).unflatten(0, (steps, batch))
    ops = ext.ops()

    def products():
        for _ in range(steps):
            torch.ops.mkldnn._linear_pointwise(h0, packed, None, "none", [], "")

    calls = {
        "torch.nn": lambda: ref(x),
        "loop backend": lambda: loop(x),
        "input projection": lambda: Linear(w_ih, steps * batch, bias)(x.flatten(0, 1)),
        "per-step products": products,
        "compiled kernel": lambda: ops.lstm_forward(xp, h0, h0, w_hh, packed, None, 0, [], False),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.no_grad():
        for _ in range(args.rounds + 3):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t[3:]) for name, t in times.items()}
    print(f"LSTM inference (B, T, I, H) = {tuple(args.shape)}, {args.threads} thread(s)")
    for name, t in median.items():
        print(f"  {name:18s} {1e3 * t:7.2f} ms")
    if len(ops.row_blocks(batch, [], steps)) == 2:  # one block: the products above
        elementwise = median["compiled kernel"] - median["per-step products"]
        print(f"  element-wise steps (kernel - products) {1e3 * elementwise:.2f} ms")
    else:  # the kernel runs one block of rows per thread, each with one-thread products
        print("  (the kernel splits the batch between threads: its products are not those above)")
    print(f"  torch.nn / loop backend: {median['torch.nn'] / median['loop backend']:.2f}")


if __name__ == "__main__":
    main()
