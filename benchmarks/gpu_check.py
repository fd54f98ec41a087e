"""GPU checks in one short run: parity of rnnkit's layers with torch.nn (cuDNN) on CUDA,
float64 gradcheck of the loop kernels on CUDA, and training-step time against cuDNN for the
eager loop, the loop under CUDA graphs and under ``torch.compile``.

    python benchmarks/gpu_check.py --json gpu.json --markdown gpu.md [--compile]
    python benchmarks/gpu_check.py --device cpu --quick      # a dry run of the code paths

Parity: each layer kind (LSTM, GRU, Elman tanh and ReLU; 2 layers, bidirectional,
batch-first; a projected LSTM) with the weights of its torch.nn twin, with and without
unsorted lengths (torch.nn through ``pack_padded_sequence``), on ``backend="auto"`` and
``"loop"``: the largest absolute difference of outputs, final states and every gradient
(loss = sum(out * w) for a fixed random w), in float64 and in float32 (TF32 off).

Speed: one training step (forward, ``out.square().mean()``, backward) at (B, T, I, H) =
(1 and 64, 50, 256, 256); interleaved rounds, medians, each row as a ratio to torch.nn's
cuDNN layer of the same cell in the same run (x > 1: slower than cuDNN). The user's cell is
the LayerNorm LSTM of ``benchmarks/custom_cell.py``; "CUDA graph" rows capture the eager
layer with ``torch.cuda.make_graphed_callables``; ``--compile`` adds
``torch.compile(mode="reduce-overhead")`` (Inductor and CUDA graphs) at the largest batch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit as rk

sys.path.insert(0, str(Path(__file__).parent))
from custom_cell import UserLayerNormLSTMCell

TWINS = {
    "LSTM": (rk.LSTM, nn.LSTM, {}),
    "GRU": (rk.GRU, nn.GRU, {}),
    "RNN tanh": (rk.RNN, nn.RNN, {"nonlinearity": "tanh"}),
    "RNN relu": (rk.RNN, nn.RNN, {"nonlinearity": "relu"}),
    "LSTM proj": (rk.LSTM, nn.LSTM, {"proj_size": 3}),
}


def _maxdiff(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))


def parity(device: str, dtype: torch.dtype) -> list[dict]:
    """Outputs, final states and gradients of each rnnkit layer against its torch.nn twin."""
    rows = []
    T, B, I, H = 7, 5, 4, 6
    for name, (ours, theirs, kw) in TWINS.items():
        for backend in ("auto", "loop"):
            for with_lengths in (False, True):
                torch.manual_seed(0)
                args = dict(num_layers=2, bidirectional=True, batch_first=True, **kw)
                ref = theirs(I, H, **args).to(device, dtype)
                mine = ours(I, H, backend=backend, **args).to(device, dtype)
                mine.load_state_dict(ref.state_dict())
                x = torch.randn(B, T, I, device=device, dtype=dtype)
                lengths = torch.tensor([7, 3, 5, 1, 6]) if with_lengths else None
                xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
                out_a, st_a = mine(xa, lengths=lengths)
                if lengths is None:
                    out_b, st_b = ref(xb)
                else:
                    packed = pack_padded_sequence(
                        xb, lengths, batch_first=True, enforce_sorted=False
                    )
                    out_b, st_b = ref(packed)
                    out_b, _ = pad_packed_sequence(out_b, batch_first=True, total_length=T)
                st_a = st_a if isinstance(st_a, tuple) else (st_a,)
                st_b = st_b if isinstance(st_b, tuple) else (st_b,)
                w = torch.randn_like(out_a)
                loss_a = (out_a * w).sum() + sum(s.sum() for s in st_a)
                loss_b = (out_b * w).sum() + sum(s.sum() for s in st_b)
                ga = torch.autograd.grad(loss_a, [xa, *mine.parameters()])
                gb = torch.autograd.grad(loss_b, [xb, *ref.parameters()])
                rows.append(
                    {
                        "layer": name,
                        "backend": backend,
                        "lengths": with_lengths,
                        "dtype": str(dtype).removeprefix("torch."),
                        "output": _maxdiff([out_a], [out_b]),
                        "state": _maxdiff(st_a, st_b),
                        "gradients": _maxdiff(ga, gb),
                    }
                )
    return rows


def gradchecks(device: str) -> list[dict]:
    """float64 gradcheck (and gradgradcheck) of the loop kernels on the device, padded."""
    rows = []
    for name, cls, kw in (("LSTM", rk.LSTM, {}), ("GRU", rk.GRU, {}), ("RNN", rk.RNN, {})):
        torch.manual_seed(0)
        layer = cls(3, 4, backend="loop", bidirectional=True, **kw).to(device, torch.float64)
        x = torch.randn(5, 3, 3, device=device, dtype=torch.float64, requires_grad=True)
        lengths = torch.tensor([5, 2, 4])
        params = list(layer.parameters())

        names = [n for n, _ in layer.named_parameters()]

        def f(x, *ps, layer=layer, lengths=lengths, names=names):
            params = dict(zip(names, ps, strict=True))
            return torch.func.functional_call(layer, params, (x,), {"lengths": lengths})[0]

        start = time.perf_counter()
        try:
            ok1 = torch.autograd.gradcheck(f, (x, *params))
            ok2 = torch.autograd.gradgradcheck(f, (x, *params))
            err = ""
        except Exception as e:  # report, keep going
            ok1 = ok2 = False
            err = f"{type(e).__name__}: {str(e)[:200]}"
        rows.append(
            {
                "layer": name,
                "gradcheck": ok1,
                "gradgradcheck": ok2,
                "error": err,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    return rows


class OutputOnly(nn.Module):
    """The layer's output alone (CUDA-graph capture takes tensors, not nested states)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)[0]


def speed(
    device: str, batches: list[int], steps: int, size: int, rounds: int, compile_: bool
) -> list[dict]:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rows = []
    for batch in batches:
        torch.manual_seed(0)
        x = torch.randn(batch, steps, size, device=device)
        models: dict[str, tuple[str, nn.Module]] = {}

        def add(label, base, module, models=models):
            models[label] = (base, module.to(device))

        for cell, (ours, theirs, kw) in list(TWINS.items())[:3]:
            add(f"nn.{cell} (cuDNN)", cell, OutputOnly(theirs(size, size, batch_first=True)))
            add(f"rk.{cell} auto", cell, OutputOnly(ours(size, size, batch_first=True, **kw)))
            add(
                f"rk.{cell} loop",
                cell,
                OutputOnly(ours(size, size, batch_first=True, backend="loop", **kw)),
            )
        add("control: nn.LSTM again", "LSTM", OutputOnly(nn.LSTM(size, size, batch_first=True)))
        # rk.LSTM as before flatten_parameters kept one buffer: cuDNN copies the weights per call
        apart = OutputOnly(rk.LSTM(size, size, batch_first=True)).to(device)
        for w in apart.layer._flat_weights:
            w.data = w.data.clone()
        models["rk.LSTM auto, weights apart"] = ("LSTM", apart)
        add(
            "user LN-LSTM loop",
            "LSTM",
            OutputOnly(rk.Recurrent(UserLayerNormLSTMCell(size, size), batch_first=True)),
        )
        if device.startswith("cuda"):
            for label, make in (
                (
                    "rk.LSTM loop, CUDA graph",
                    lambda: rk.LSTM(size, size, batch_first=True, backend="loop"),
                ),
                (
                    "user LN-LSTM loop, CUDA graph",
                    lambda: rk.Recurrent(UserLayerNormLSTMCell(size, size), batch_first=True),
                ),
            ):
                try:
                    graphed = torch.cuda.make_graphed_callables(OutputOnly(make()).to(device), (x,))
                    models[label] = ("LSTM", graphed)
                except Exception as e:
                    rows.append(
                        {"B": batch, "layer": label, "error": f"{type(e).__name__}: {str(e)[:300]}"}
                    )
        if compile_:
            for label, make in (
                (
                    "rk.LSTM loop, torch.compile reduce-overhead",
                    lambda: rk.LSTM(size, size, batch_first=True, backend="loop"),
                ),
                (
                    "user LN-LSTM loop, torch.compile reduce-overhead",
                    lambda: rk.Recurrent(UserLayerNormLSTMCell(size, size), batch_first=True),
                ),
            ):
                mode = "reduce-overhead" if device.startswith("cuda") else None
                models[label] = (
                    "LSTM",
                    torch.compile(OutputOnly(make()).to(device), mode=mode, fullgraph=True),
                )

        def step(m, x=x):
            if isinstance(m, nn.Module):
                m.zero_grad(set_to_none=True)
            if device.startswith("cuda"):
                torch.compiler.cudagraph_mark_step_begin()  # a new iteration for CUDA graphs
            sync()
            start = time.perf_counter()
            m(x).square().mean().backward()
            sync()
            return time.perf_counter() - start

        times: dict[str, list[float]] = {}
        first: dict[str, float] = {}
        for label, (_, m) in list(models.items()):
            try:
                first[label] = step(m)  # warm-up, compilation
                for _ in range(3):
                    step(m)
                times[label] = []
            except Exception as e:
                rows.append(
                    {"B": batch, "layer": label, "error": f"{type(e).__name__}: {str(e)[:300]}"}
                )
                del models[label]
        for _ in range(rounds):
            for label, (_, m) in models.items():
                times[label].append(step(m))
        for label, (base, _) in models.items():
            med = statistics.median(times[label])
            ref = statistics.median(times[f"nn.{base} (cuDNN)"])
            rows.append(
                {
                    "B": batch,
                    "T": steps,
                    "I": size,
                    "H": size,
                    "layer": label,
                    "ms": round(med * 1e3, 3),
                    "x_cudnn": round(med / ref, 2),
                    "first_call_s": round(first[label], 1),
                }
            )
            print(rows[-1], flush=True)
    return rows


def markdown(report: dict) -> str:
    lines = [f"device: {report['device']}; torch {report['torch']}; cuDNN {report['cudnn']}", ""]
    lines += [
        "| layer | backend | lengths | dtype | output | state | gradients |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["parity"]:
        lines.append(
            f"| {r['layer']} | {r['backend']} | {r['lengths']} | {r['dtype']} | "
            f"{r['output']:.1e} | {r['state']:.1e} | {r['gradients']:.1e} |"
        )
    lines += ["", "| layer | gradcheck | gradgradcheck | error |", "|---|---|---|---|"]
    for r in report["gradcheck"]:
        lines.append(f"| {r['layer']} | {r['gradcheck']} | {r['gradgradcheck']} | {r['error']} |")
    lines += ["", "| B | layer | ms per training step | x cuDNN (same cell) |", "|---|---|---|---|"]
    for r in report["speed"]:
        if "error" in r:
            lines.append(f"| {r['B']} | {r['layer']} | failed: {r['error']} | |")
        else:
            lines.append(f"| {r['B']} | {r['layer']} | {r['ms']:.3f} | {r['x_cudnn']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="small sizes (a dry run)")
    ap.add_argument("--compile", action="store_true", help="add torch.compile rows")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument(
        "--sections",
        nargs="+",
        default=["parity", "gradcheck", "speed"],
        choices=["parity", "gradcheck", "speed"],
    )
    ap.add_argument("--batches", type=int, nargs="+", help="speed: batch sizes (1 64)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    torch.backends.cudnn.allow_tf32 = False  # parity in float32: no TF32 inside cuDNN
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    report = {
        "device": name,
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version() if dev.type == "cuda" else None,
    }
    print(report, flush=True)

    def save() -> None:  # after every section: a run stopped at its time limit keeps the rest
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
        if args.markdown:
            args.markdown.write_text(markdown(report))

    report["parity"], report["gradcheck"], report["speed"] = [], [], []
    if "parity" in args.sections:
        report["parity"] = parity(args.device, torch.float64) + parity(args.device, torch.float32)
    worst = {}
    for r in report["parity"]:
        key = r["dtype"]
        worst[key] = max(worst.get(key, 0.0), r["output"], r["state"], r["gradients"])
    print("parity, largest difference by dtype:", worst, flush=True)
    save()
    if "gradcheck" in args.sections:
        report["gradcheck"] = gradchecks(args.device)
        print(report["gradcheck"], flush=True)
        save()
    sizes = (
        dict(steps=5, size=8, rounds=3)
        if args.quick
        else dict(steps=50, size=256, rounds=args.rounds)
    )
    batches = args.batches or ([1, 4] if args.quick else [1, 64])
    for batch in batches if "speed" in args.sections else []:
        report["speed"] += speed(
            args.device, [batch], compile_=args.compile and batch == batches[-1], **sizes
        )
        save()
    print(markdown(report))


if __name__ == "__main__":
    main()
