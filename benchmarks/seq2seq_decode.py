"""Decoding speed of an encoder-decoder: sentences per second for greedy decoding and beam
search at batch 1 and batch 64, and the cost of one decoder step at each output position
(flat when the state carries no prefix: nothing before position t is recomputed at t).

The model is the size of ``configs/translate.toml`` (random weights: speed does not depend on
what it learned); sources of 30 tokens, outputs of exactly ``--length`` tokens (end-of-sentence
forbidden, so every setting decodes the same number of steps).

    python benchmarks/seq2seq_decode.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rnnkit.decoding import beam_search
from rnnkit.models.seq2seq import BOS, EOS, Seq2Seq, Seq2SeqConfig


class NoEos(torch.nn.Module):
    """The model with <eos> never chosen, so every decode runs ``length`` steps."""

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model = model

    def step(self, tokens, state):
        logits, state = self.model.step(tokens, state)
        return logits.index_fill(1, torch.tensor([EOS]), float("-inf")), state

    def reorder_state(self, state, index):
        return self.model.reorder_state(state, index)


def sentences_per_second(model: Seq2Seq, batch: int, beam: int, length: int, rounds: int) -> float:
    g = torch.Generator().manual_seed(batch)
    source = torch.randint(4, model.config.source_vocab_size, (batch, 30), generator=g)
    lengths = torch.full((batch,), 30)
    wrapped = NoEos(model)
    times = []
    with torch.no_grad():
        for _ in range(rounds):
            start = time.perf_counter()
            state = model.encode(source, lengths)
            if beam == 1:
                token = torch.full((batch,), BOS)
                for _ in range(length):
                    logits, state = wrapped.step(token, state)
                    token = logits.argmax(-1)
            else:
                beam_search(wrapped, torch.full((batch,), BOS), beam, length, EOS, state=state)
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def step_cost_by_position(model: Seq2Seq, length: int, rounds: int) -> list[float]:
    """Median microseconds of the decoder step at each position, batch 1, greedy."""
    source = torch.randint(4, model.config.source_vocab_size, (1, 30))
    per_position: list[list[float]] = [[] for _ in range(length)]
    with torch.no_grad():
        for _ in range(rounds):
            state = model.encode(source, torch.tensor([30]))
            token = torch.tensor([BOS])
            for t in range(length):
                start = time.perf_counter()
                logits, state = model.step(token, state)
                per_position[t].append(time.perf_counter() - start)
                token = logits.argmax(-1)
    return [statistics.median(p) * 1e6 for p in per_position]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--length", type=int, default=40, help="output tokens per sentence")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = Seq2SeqConfig(
        source_vocab_size=4000,
        target_vocab_size=4000,
        hidden_size=128,
        embedding_size=128,
        bidirectional=True,
        attention="general",
        share_embeddings=True,
        tie_embeddings=True,
    )
    model = Seq2Seq(config).eval()
    print(f"torch {torch.__version__}, {args.threads} threads, outputs of {args.length} tokens")
    print("batch  beam  sentences/s")
    for batch in (1, 64):
        for beam in (1, 5):
            rate = sentences_per_second(model, batch, beam, args.length, args.rounds)
            print(f"{batch:>5}  {beam:>4}  {rate:>11.1f}")
    cost = step_cost_by_position(model, args.length, max(args.rounds, 9))
    quarter = args.length // 4
    first, last = statistics.median(cost[1:quarter]), statistics.median(cost[-quarter:])
    print(
        f"decoder step, batch 1: positions 2-{quarter}: {first:.0f} us, last {quarter}: "
        f"{last:.0f} us (ratio last/first {last / first:.2f}; 1.00 = no prefix recomputation)"
    )


if __name__ == "__main__":
    main()
