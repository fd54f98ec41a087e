"""Generation speed: carried state (one step per token) against recomputing the prefix.

    python benchmarks/generation_speed.py [--run RUN_DIR] [--length 500] [--rounds 3]

Generates ``length`` new tokens greedily after a 6-token prime, twice per round, interleaved:

- carried: :func:`rnnkit.decoding.generate` with the model's ``step`` (the state after t
  tokens is kept, so token t + 1 costs one recurrent step: O(n) steps in all);
- recompute: the same loop through a wrapper whose ``step`` reruns the model over the whole
  text so far and keeps no recurrent state (O(n^2) steps in all).

Both must produce the same tokens (checked). Prints tokens/s (medians over rounds) and the
ratio, and writes JSON. Without ``--run`` it times a freshly initialised model with the
Shakespeare configuration's shape (1-layer LSTM, H = 384, D = 64, V = 90).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from rnnkit.decoding import generate
from rnnkit.models import LanguageModel, LanguageModelConfig


class Recompute:
    """A decoder view of ``model`` that carries the token history instead of the state."""

    def __init__(self, model: LanguageModel) -> None:
        self.model = model

    def step(self, tokens: torch.Tensor, history: torch.Tensor | None):
        history = tokens[:, None] if history is None else torch.cat([history, tokens[:, None]], 1)
        logits, _ = self.model(history)  # (B, t, V): the whole prefix from the zero state
        return logits[:, -1], history


def timed(model, prime: torch.Tensor, length: int) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = generate(model, prime, length, temperature=0)
    return time.perf_counter() - start, out


def load(run: str | None) -> LanguageModel:
    if run is None:
        torch.manual_seed(0)
        cfg = LanguageModelConfig(vocab_size=90, embedding_size=64, hidden_size=384, num_layers=1)
        return LanguageModel(cfg)
    from rnnkit.api import load as load_run

    return load_run(run)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="run directory of a trained lm (default: fresh model)")
    ap.add_argument("--length", type=int, default=500, help="new tokens per generation")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--json", default="generation_speed.json", help="output JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load(args.run).eval()
    prime = torch.tensor([[5, 6, 7, 8, 9, 10]])  # (1, 6)
    times: dict[str, list[float]] = {"carried": [], "recompute": []}
    for _ in range(args.rounds):
        t_carried, a = timed(model, prime, args.length)
        t_recompute, b = timed(Recompute(model), prime, args.length)
        if not torch.equal(a, b):
            raise AssertionError("carried state and recomputation produced different tokens")
        times["carried"].append(t_carried)
        times["recompute"].append(t_recompute)
    rate = {k: args.length / statistics.median(v) for k, v in times.items()}
    ratio = rate["carried"] / rate["recompute"]
    print(f"| method | tokens/s ({args.length} new tokens, {args.threads} thread(s)) |")
    print("|---|---|")
    for k, v in rate.items():
        print(f"| {k} | {v:,.0f} |")
    print(f"ratio carried / recompute: {ratio:.1f}x")
    result = {"length": args.length, "threads": args.threads, "tokens_per_s": rate}
    result.update({"ratio": ratio, "seconds": times, "model": model.get_config()})
    Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
