"""Sampling filters, generation with a carried state, and beam search against brute force."""

import itertools
import math

import pytest
import torch

from rnnkit.decoding import beam_search, generate, sample_next


class MarkovModel:
    """A toy model: the next-token logits depend on the last token only (a table)."""

    def __init__(self, table):
        self.table = table  # (V, V) logits
        self.calls = 0

    def step(self, tokens, state):
        self.calls += 1
        return self.table[tokens], None


def test_greedy_top_k_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert sample_next(logits, temperature=0).item() == 0
    g = torch.Generator().manual_seed(0)
    drawn = {sample_next(logits, top_k=2, generator=g).item() for _ in range(200)}
    assert drawn == {0, 1}
    drawn = {sample_next(logits, top_p=0.7, generator=g).item() for _ in range(200)}
    assert drawn == {0, 1}  # 0.5 < 0.7, 0.5 + 0.3 reaches it: token 2 and 3 are dropped
    drawn = {sample_next(logits, top_p=0.5, generator=g).item() for _ in range(50)}
    assert drawn == {0}


def test_temperature_sharpens():
    logits = torch.log(torch.tensor([[0.6, 0.4]])).expand(4000, 2)
    g = torch.Generator().manual_seed(1)
    cold = sample_next(logits, temperature=0.25, generator=g).float().mean().item()
    warm = sample_next(logits, temperature=1.0, generator=g).float().mean().item()
    assert cold < warm  # mean index = share of token 1, rarer when colder
    assert abs(warm - 0.4) < 0.04


def test_generate_is_repeatable_streams_and_does_constant_work_per_token():
    torch.manual_seed(0)
    model = MarkovModel(torch.randn(6, 6))
    prime = torch.tensor([[1, 2, 3]])
    streamed = []
    a = generate(model, prime, length=20, seed=5, on_token=streamed.append)
    assert model.calls == 3 + 19  # one step per primed and per new token (the last unused)
    b = generate(model, prime, length=20, seed=5)
    assert torch.equal(a, b) and a.shape == (1, 23)
    assert torch.equal(torch.cat(streamed), a[0, 3:])


def test_generate_stops_at_eos():
    table = torch.full((3, 3), -10.0)
    table[:, 2] = 10.0  # always emit token 2
    out = generate(MarkovModel(table), torch.tensor([[0], [1]]), length=10, eos_id=2)
    assert out.shape == (2, 2)


def test_beam_search_equals_brute_force():
    torch.manual_seed(3)
    V, L = 4, 3
    model = MarkovModel(torch.randn(V, V))
    hyps = beam_search(model, torch.tensor([0]), beam_size=V**L, max_length=L)[0]
    logp = model.table.log_softmax(-1)
    best = max(
        itertools.product(range(V), repeat=L),
        key=lambda p: sum(logp[a, b] for a, b in itertools.pairwise((0, *p))).item(),
    )
    assert tuple(hyps[0].tokens) == best
    expected = sum(logp[a, b] for a, b in itertools.pairwise((0, *best))).item()
    assert math.isclose(hyps[0].score, expected, rel_tol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        sample_next(torch.zeros(1, 3), temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        sample_next(torch.zeros(1, 3), top_p=0)
    with pytest.raises(ValueError, match="prime"):
        generate(MarkovModel(torch.zeros(2, 2)), torch.tensor([1]), 3)
