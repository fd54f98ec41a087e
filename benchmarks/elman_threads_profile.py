"""The Elman layer's unpadded inference at (B, T, I, H) = (32, 100, 128, 256), the row that
reads 0.75 at two threads on the Xeon (docs/RESULTS.md): torch.nn and rnnkit's loop at one
and two threads (interleaved medians, ms), then the loop's operator profile at two threads.

    python benchmarks/elman_threads_profile.py
"""

from __future__ import annotations

import torch
from torch import nn
from torch.profiler import profile

import rnnkit as rk
from rnnkit.bench import cpu_name, interleaved


def main() -> None:
    torch.manual_seed(0)
    ref = nn.RNN(128, 256, batch_first=True)
    loop = rk.RNN(128, 256, batch_first=True, backend="loop")
    loop.load_state_dict(ref.state_dict())
    x = torch.randn(32, 100, 128)

    def at(threads, layer):
        def call():
            torch.set_num_threads(threads)
            layer(x)

        return call

    calls = {
        f"{name} {n} thread(s)": at(n, m)
        for n in (2, 1)
        for name, m in (("torch.nn", ref), ("loop", loop))
    }
    print(cpu_name())
    with torch.no_grad():
        for name, seconds in interleaved(calls, 21).items():
            print(f"{name}: {1e3 * seconds:.2f} ms")
        torch.set_num_threads(2)
        with profile() as prof:
            for _ in range(10):
                loop(x)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()
