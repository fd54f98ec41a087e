"""A user's own cell against torch.nn.LSTM: training-step time (forward and backward).

The cell is a LayerNorm LSTM written as a user would write it, subclassing
``rnnkit.CellBase`` with ``nn.Linear`` and ``nn.LayerNorm`` modules (below), run by
``rk.Recurrent`` (the per-step loop with autograd); beside it the same cell with its step
split (``project_input`` for the state-free work of all steps at once, ``recurrent_step``
for the rest, as ``rnnkit.CellBase`` documents), the same cell with its
``forward`` wrapped in ``torch.compile`` (``--compile``), the cell run in compiled runs of K
unrolled steps as a user can write it (``--compile-steps K``, :class:`CompiledRuns`: one graph
forward and backward per run; compiling takes minutes), rnnkit's built-in
``RegularizedLSTMCell(layer_norm=True)``, and the plain ``rk.LSTM``. Interleaved rounds,
medians, ratio to ``torch.nn.LSTM`` in the same run (the issue's target: a user's cell at most
1.3x nn.LSTM's training time at B >= 32 on CPU).

    python benchmarks/custom_cell.py --batch 32 64 --threads 1 [--compile] [--gemm]
    python benchmarks/custom_cell.py --batch 32 64 --threads 1 --compile-steps 25
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import rnnkit as rk
from rnnkit.bench import cpu_name
from rnnkit.cells_regularized import RegularizedLSTMCell


class UserLayerNormLSTMCell(rk.CellBase):
    r"""Ba et al.'s LayerNorm LSTM as a user writes it:
    a = LN(W_ih x_t + b) + LN(W_hh h_{t-1}), c_t = σ(f) c + σ(i) tanh(g),
    h_t = σ(o) tanh(LN(c_t))."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        gates = 4 * hidden_size
        self.ih = nn.Linear(input_size, gates)
        self.hh = nn.Linear(hidden_size, gates, bias=False)
        self.ln_ih, self.ln_hh = nn.LayerNorm(gates), nn.LayerNorm(gates)
        self.ln_c = nn.LayerNorm(hidden_size)

    @property
    def state_size(self) -> int:
        return 2

    def forward(self, x, state):
        h, c = state
        a = self.ln_ih(self.ih(x)) + self.ln_hh(self.hh(h))
        i, f, g, o = a.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(self.ln_c(c))
        return h, (h, c)

    def get_config(self):
        return {"input_size": self.input_size, "hidden_size": self.hidden_size}


class UserSplitLayerNormLSTMCell(UserLayerNormLSTMCell):
    r"""The same cell with its step split, as CellBase documents for speed: the state-free
    LN(W_ih x_t + b) of all T steps in one product (``project_input``), the rest per step
    (``recurrent_step``)."""

    def project_input(self, x):
        return self.ln_ih(self.ih(x))  # (T, B, 4H), or (B, 4H) for one step

    def recurrent_step(self, xp, state):
        h, c = state
        a = xp + self.ln_hh(self.hh(h))
        i, f, g, o = a.chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(self.ln_c(c))
        return h, (h, c)

    def forward(self, x, state):
        return self.recurrent_step(self.project_input(x), state)


class UserSplitDenseLayerNormLSTMCell(UserSplitLayerNormLSTMCell):
    """The split cell with ``rk.Linear`` for its two products (a drop-in ``nn.Linear``
    whose large float32 CPU products run through oneDNN where that is faster)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        gates = 4 * hidden_size
        self.ih = rk.Linear(input_size, gates)
        self.hh = rk.Linear(hidden_size, gates, bias=False)


def layers(hidden: int, compiled: bool, compile_steps: int = 0) -> dict[str, nn.Module]:
    out = {
        "nn.LSTM": nn.LSTM(hidden, hidden, batch_first=True),
        "control: nn.LSTM again": nn.LSTM(hidden, hidden, batch_first=True),
        "rk.LSTM": rk.LSTM(hidden, hidden, batch_first=True),
        "user LN-LSTM (loop)": rk.Recurrent(
            UserLayerNormLSTMCell(hidden, hidden), batch_first=True
        ),
        "user LN-LSTM, split step (loop)": rk.Recurrent(
            UserSplitLayerNormLSTMCell(hidden, hidden), batch_first=True
        ),
        "user LN-LSTM, split step, rk.Linear (loop)": rk.Recurrent(
            UserSplitDenseLayerNormLSTMCell(hidden, hidden), batch_first=True
        ),
        "rnnkit LN-LSTM": rk.Recurrent(
            RegularizedLSTMCell(hidden, hidden, layer_norm=True), batch_first=True
        ),
    }
    if compiled:
        layer = rk.Recurrent(UserLayerNormLSTMCell(hidden, hidden), batch_first=True)
        cell = layer.cells[0]
        cell.forward = torch.compile(cell.forward, dynamic=False)
        out["user LN-LSTM, torch.compile(cell.forward)"] = layer
    if compile_steps:
        runs = CompiledRuns(UserLayerNormLSTMCell(hidden, hidden), compile_steps)
        out[f"user LN-LSTM, compiled runs of {compile_steps} steps"] = runs
    return out


class CompiledRuns(nn.Module):
    """A batch-first layer that steps ``cell`` in runs of ``k`` steps, each run one
    ``torch.compile``d function of the k unrolled steps (fused element-wise work, one
    autograd node per run); a recompilation for a shorter last run."""

    def __init__(self, cell: rk.CellBase, k: int):
        super().__init__()
        self.cell, self.k = cell, k
        self.run = torch.compile(self._steps, dynamic=False, fullgraph=True)

    def _steps(self, xs, h, c):
        outs = []
        for t in range(xs.shape[0]):
            out, (h, c) = self.cell(xs[t], (h, c))
            outs.append(out)
        return torch.stack(outs), h, c

    def forward(self, x):
        x = x.transpose(0, 1)  # (T, B, I)
        h = c = x.new_zeros(x.shape[1], self.cell.hidden_size, requires_grad=True)
        outs = []
        for start in range(0, x.shape[0], self.k):
            out, h, c = self.run(x[start : start + self.k], h, c)
            outs.append(out)
        return torch.cat(outs).transpose(0, 1), (h, c)


def gemm_times(batch: int, hidden: int, rounds: int = 200) -> tuple[float, float]:
    """Microseconds of one step's recurrent product (B, H) x (H, 4H) in float32: through
    ``F.linear`` (ATen's BLAS, what a user's ``nn.Linear`` calls) and through oneDNN with the
    weight packed once (what torch's LSTM and rnnkit's kernels use)."""
    h, w = torch.randn(batch, hidden), torch.randn(4 * hidden, hidden)
    packed = torch.ops.mkldnn._reorder_linear_weight(w, batch)
    calls = {
        "blas": lambda: torch.nn.functional.linear(h, w),
        "onednn": lambda: torch.ops.mkldnn._linear_pointwise(h, packed, None, "none", [], ""),
    }
    out = {}
    for name, call in calls.items():
        for _ in range(10):
            call()
        start = time.perf_counter()
        for _ in range(rounds):
            call()
        out[name] = (time.perf_counter() - start) / rounds * 1e6
    return out["blas"], out["onednn"]


def train_step(layer: nn.Module, x: torch.Tensor) -> float:
    layer.zero_grad(set_to_none=True)
    start = time.perf_counter()
    out, _ = layer(x)
    out.square().mean().backward()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--steps", type=int, default=100, help="T")
    ap.add_argument("--hidden", type=int, default=256, help="H, also the input size")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="also time the compiled step")
    ap.add_argument(
        "--compile-steps", type=int, default=0, help="also time compiled runs of K steps"
    )
    ap.add_argument(
        "--gemm", action="store_true", help="also time one step's product: BLAS vs oneDNN"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"{cpu_name()}, torch {torch.__version__}, {args.threads} thread(s), T={args.steps}, "
        f"H={args.hidden}, training step = forward + backward, {args.rounds} rounds"
    )
    for batch in args.batch:
        x = torch.randn(batch, args.steps, args.hidden)
        models = layers(args.hidden, args.compile, args.compile_steps)
        for m in models.values():  # warm-up (and compilation)
            train_step(m, x)
            train_step(m, x)
        times: dict[str, list[float]] = {k: [] for k in models}
        for _ in range(args.rounds):
            for name, m in models.items():
                times[name].append(train_step(m, x))
        base = statistics.median(times["nn.LSTM"])
        print(f"\nB = {batch}")
        print("| layer | ms per step | x nn.LSTM |")
        print("|---|---|---|")
        for name, t in times.items():
            med = statistics.median(t)
            print(f"| {name} | {med * 1e3:.1f} | {med / base:.2f} |")
        if args.gemm:
            blas, onednn = gemm_times(batch, args.hidden)
            print(
                f"one step's product ({batch}, {args.hidden}) x ({args.hidden}, "
                f"{4 * args.hidden}): F.linear (BLAS) {blas:.0f} us, oneDNN packed "
                f"{onednn:.0f} us ({blas / onednn:.2f}x)"
            )


if __name__ == "__main__":
    main()
