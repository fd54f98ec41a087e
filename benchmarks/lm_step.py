"""One generated token of a language model: `LanguageModel.step` (the layer's cells stepped
directly, `Recurrent.step`) against running the layer's `forward` on a one-step sequence (what
`step` did before, where `backend="auto"` sends each call to a fused kernel that repacks its
weights), interleaved, median microseconds per token, greedy decoding from a fresh state.

    python benchmarks/lm_step.py --hidden 512 --layers 2 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rnnkit.models import LanguageModel, LanguageModelConfig


def per_token(step, tokens: int) -> float:
    token, state = torch.tensor([5]), None
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(tokens):
            logits, state = step(token, state)
            token = logits.argmax(-1)
    return (time.perf_counter() - start) / tokens * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=90)
    ap.add_argument("--tokens", type=int, default=200, help="tokens per timed run")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = LanguageModelConfig(
        vocab_size=args.vocab,
        cell=args.cell,
        embedding_size=64,
        hidden_size=args.hidden,
        num_layers=args.layers,
    )
    model = LanguageModel(config).eval()

    def forward_step(tokens, state):
        logits, state = model(tokens.unsqueeze(1), state)  # (B, 1, V)
        return logits[:, -1], state

    times: dict[str, list[float]] = {"forward of one step": [], "LanguageModel.step": []}
    for _ in range(args.rounds):
        times["forward of one step"].append(per_token(forward_step, args.tokens))
        times["LanguageModel.step"].append(per_token(model.step, args.tokens))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k}: median {v:,.0f} us per token")
    print(f"step is {med['forward of one step'] / med['LanguageModel.step']:.2f}x faster")


if __name__ == "__main__":
    main()
