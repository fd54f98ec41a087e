"""One generated token of a language model, in microseconds per token (greedy decoding from a
fresh state), interleaved rounds, medians:

* ``stepping``: ``LanguageModel.step`` inside ``with rnnkit.layers.stepping(model):``, the
  weights packed once (what rnnkit's decoders do);
* ``step``: ``LanguageModel.step`` on its own, transposing the weights at each call;
* ``nn.*Cell loop``: the obvious hand-written loop, one ``torch.nn.LSTMCell`` (``GRUCell``,
  ``RNNCell``) per layer holding the same weights;
* ``nn.* per step``: ``torch.nn.LSTM`` (...) called on a one-step sequence each token;
* ``forward of one step``: rnnkit's own layer ``forward`` on a one-step sequence each token;
* ``sequence call``: the whole sequence in one ``forward`` (teacher forcing), per token: the
  floor that stepping cannot reach, since it cannot batch the input products over time;
* control: the ``nn.*Cell loop`` timed a second time, the noise of this run.

All share the model's embedding and output layer, so only the recurrence differs. The
target of the performance issue: rnnkit's decoding step at most the nn.*Cell loop's time
(loop/stepping >= 1.00) at B = 1 and B = 64 for the 2-layer H = 512 LM, every cell.

    python benchmarks/lm_step.py --hidden 512 --layers 2 --threads 2
    python benchmarks/lm_step.py --cells rnn --profile   # where a token's time goes
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import torch
from torch import nn

from rnnkit.bench import cpu_name
from rnnkit.layers import stepping
from rnnkit.models import LanguageModel, LanguageModelConfig

TORCH_CELL = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}
TORCH_LAYER = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def per_token(step, batch: int, tokens: int, context=None) -> float:
    token, state = torch.full((batch,), 5), None
    start = time.perf_counter()
    with torch.no_grad(), context if context is not None else contextlib.nullcontext():
        for _ in range(tokens):
            logits, state = step(token, state)
            token = logits.argmax(-1)
    return (time.perf_counter() - start) / tokens * 1e6


def build(cell: str, hidden: int, layers: int, vocab: int):
    """The model and the step functions to time, all on the model's weights."""
    torch.manual_seed(0)
    config = LanguageModelConfig(
        vocab_size=vocab, cell=cell, embedding_size=64, hidden_size=hidden, num_layers=layers
    )
    model = LanguageModel(config).eval()
    rnn = model.rnn
    head = lambda h: model._logits(model._out(h))  # noqa: E731 - the model's own output layer

    cells = nn.ModuleList()
    for k in range(layers):
        kw = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        c = TORCH_CELL[cell](64 if k == 0 else hidden, hidden, **kw)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(c, name).data.copy_(getattr(rnn, f"{name}_l{k}"))
        cells.append(c)
    kw = {"nonlinearity": "tanh"} if cell == "rnn" else {}
    layer = TORCH_LAYER[cell](64, hidden, layers, batch_first=True, **kw)
    layer.load_state_dict(rnn.state_dict())

    def cell_loop(tokens, state):
        x = model.embedding(tokens)
        state = state or [None] * layers
        new = []
        for c, s in zip(cells, state, strict=True):
            s = c(x, s)
            x = s[0] if isinstance(s, tuple) else s
            new.append(s)
        return head(x), new

    def torch_per_step(tokens, state):
        out, state = layer(model.embedding(tokens).unsqueeze(1), state)
        return head(out[:, -1]), state

    def forward_step(tokens, state):
        logits, state = model(tokens.unsqueeze(1), state)  # (B, 1, V)
        return logits[:, -1], state

    return model, cell_loop, torch_per_step, forward_step


def check_equal(model, cell_loop, batch: int) -> float:
    """Largest difference of the logits of 20 greedy tokens: rnnkit stepping vs the cell
    loop."""
    worst = 0.0
    a = b = torch.full((batch,), 5)
    sa = sb = None
    with torch.no_grad(), stepping(model):
        for _ in range(20):
            la, sa = model.step(a, sa)
            lb, sb = cell_loop(b, sb)
            worst = max(worst, (la - lb).abs().max().item())
            a, b = la.argmax(-1), lb.argmax(-1)
    return worst


def profile_tables(cell: str, hidden: int, layers: int, vocab: int, batch: int, tokens: int):
    """Where a token's time goes: torch.profiler's operator table (self CPU time) for rnnkit's
    stepping and for the cell loop, ``tokens`` tokens each after a warm-up."""
    from torch.profiler import profile

    model, cell_loop, _, _ = build(cell, hidden, layers, vocab)
    for name, fn in (("stepping", model.step), ("cell loop", cell_loop)):
        context = stepping(model) if name == "stepping" else contextlib.nullcontext()
        token = torch.full((batch,), 5)
        with torch.no_grad(), context:
            state = None
            for _ in range(10):
                _, state = fn(token, None)
            with profile() as prof:
                state = None
                for _ in range(tokens):
                    _, state = fn(token, state)
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) / tokens
        print(f"{cell} B={batch} {name}: {total:,.0f} us of operator time per token")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="lstm,gru,rnn")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=90)
    ap.add_argument("--tokens", type=int, default=100, help="tokens per timed run")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the table here too")
    ap.add_argument(
        "--profile", action="store_true", help="print operator profiles instead of timing"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.profile:
        for cell in args.cells.split(","):
            for batch in map(int, args.batches.split(",")):
                profile_tables(cell, args.hidden, args.layers, args.vocab, batch, args.tokens)
        return
    print(
        f"{cpu_name()}, torch {torch.__version__}, {args.threads} thread(s), "
        f"{args.layers} x H={args.hidden}, vocab {args.vocab}, {args.tokens} tokens x "
        f"{args.rounds} rounds"
    )
    rows = []
    head = (
        f"{'cell':5} {'B':>3} | {'stepping':>8} {'step':>7} {'cell loop':>9} {'nn per step':>11} "
        f"{'fwd 1 step':>10} {'sequence':>8} | {'loop/stepping':>13} {'control':>7} "
        f"{'max diff':>8}"
    )
    print(head)
    print("-" * len(head))
    for cell in args.cells.split(","):
        model, cell_loop, torch_per_step, forward_step = build(
            cell, args.hidden, args.layers, args.vocab
        )
        for batch in map(int, args.batches.split(",")):
            diff = check_equal(model, cell_loop, batch)
            seq = torch.randint(0, args.vocab, (batch, args.tokens))
            fns = {
                "stepping": model.step,
                "step": model.step,
                "cell loop": cell_loop,
                "nn per step": torch_per_step,
                "fwd 1 step": forward_step,
                "control": cell_loop,
            }
            times: dict[str, list[float]] = {k: [] for k in (*fns, "sequence")}
            for _ in range(args.rounds):
                for name, fn in fns.items():
                    context = stepping(model) if name == "stepping" else None
                    times[name].append(per_token(fn, batch, args.tokens, context))
                start = time.perf_counter()
                with torch.no_grad():
                    model(seq)
                times["sequence"].append((time.perf_counter() - start) / args.tokens * 1e6)
            med = {k: statistics.median(v) for k, v in times.items()}
            row = {"cell": cell, "batch": batch, **{k: round(v, 1) for k, v in med.items()}}
            row["loop_over_stepping"] = round(med["cell loop"] / med["stepping"], 3)
            row["control_ratio"] = round(med["cell loop"] / med["control"], 3)
            row["max_diff"] = diff
            rows.append(row)
            print(
                f"{cell:5} {batch:>3} | {med['stepping']:>8,.0f} {med['step']:>7,.0f} "
                f"{med['cell loop']:>9,.0f} "
                f"{med['nn per step']:>11,.0f} {med['fwd 1 step']:>10,.0f} "
                f"{med['sequence']:>8,.0f} | {row['loop_over_stepping']:>13.2f} "
                f"{row['control_ratio']:>7.2f} {diff:>8.1e}"
            )
    print("times in microseconds per token; loop/stepping > 1: rnnkit's decoding step is faster")
    if args.json:
        meta = {"cpu": cpu_name(), "torch": torch.__version__, **vars(args)}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
