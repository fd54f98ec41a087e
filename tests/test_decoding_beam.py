"""Batched beam search against greedy decoding, brute-force enumeration and one row at a time."""

import itertools
import math

import pytest
import torch
from torch import nn

from rnnkit.decoding import Hypothesis, beam_search

V, H, EOS = 4, 8, 3  # a vocabulary of 4 tokens, eos among them


class TinyGRU(nn.Module):
    """Embedding + GRUCell + linear, random weights, in float64 (no near-ties from rounding).
    The state is (1, B, H): the module's reorder_state (batch dim 1) applies."""

    flat = False

    def __init__(self, seed: int, scale: float = 3.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = nn.Embedding(V, H)
        self.cell = nn.GRUCell(H, H)
        self.out = nn.Linear(H, V)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.8)
        self.double()
        self.scale, self.calls, self.rows = scale, 0, []

    def step(self, tokens, state):
        self.calls += 1
        self.rows.append(tokens.shape[0])
        if state is None:
            h = torch.zeros(tokens.shape[0], H, dtype=torch.float64)
        else:
            h = state if self.flat else state[0]
        h = self.cell(self.emb(tokens), h)
        return self.out(h) * self.scale, (h if self.flat else h.unsqueeze(0))


class FlatGRU(TinyGRU):
    """The same with a plain (B, H) state and the model's own reorder_state."""

    flat = True

    def reorder_state(self, state, index):
        return state.index_select(0, index)


def tiny(seed: int, flat: bool = False, scale: float = 3.0) -> TinyGRU:
    return (FlatGRU if flat else TinyGRU)(seed, scale)


def row_state(model, state, b):
    if state is None:
        return None
    return state[b : b + 1] if model.flat else state[:, b : b + 1]


def seq_logprob(model, start: int, tokens, state=None) -> float:
    logits, state = model.step(torch.tensor([start]), state)
    total = 0.0
    for i, tok in enumerate(tokens):
        total += logits.log_softmax(-1)[0, tok].item()
        if i < len(tokens) - 1:
            logits, state = model.step(torch.tensor([tok]), state)
    return total


def has_repeated_ngram(tokens, n) -> bool:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))


def enumerate_all(model, start, max_length, alpha, state=None, no_repeat_ngram=0, min_length=0):
    """Every sequence of length <= max_length ending in eos, or of length max_length, with
    eos nowhere else; (normalized, score, tokens), best first."""
    out = []
    for length in range(1, max_length + 1):
        for body in itertools.product([v for v in range(V) if v != EOS], repeat=length - 1):
            for last in range(V):
                seq = (*body, last)
                if last != EOS and length < max_length:
                    continue
                if last == EOS and length - 1 < min_length:
                    continue
                if no_repeat_ngram and has_repeated_ngram(seq, no_repeat_ngram):
                    continue
                s = seq_logprob(model, start, seq, state)
                out.append((s / ((5 + length) / 6) ** alpha, s, list(seq)))
    return sorted(out, key=lambda x: x[0], reverse=True)


def greedy(model, start: int, max_length: int, state=None):
    logits, state = model.step(torch.tensor([start]), state)
    tokens, score = [], 0.0
    for _ in range(max_length):
        logp = logits.log_softmax(-1)[0]
        tok = int(logp.argmax())
        tokens.append(tok)
        score += logp[tok].item()
        if tok == EOS:
            break
        logits, state = model.step(torch.tensor([tok]), state)
    return tokens, score


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_one_equals_greedy(seed):
    model = TinyGRU(seed)
    start = torch.tensor([0, 1, 2])
    hyps = beam_search(model, start, beam_size=1, max_length=12, eos_id=EOS)
    for b in range(3):
        tokens, score = greedy(model, b, 12)
        assert len(hyps[b]) == 1
        assert hyps[b][0].tokens == tokens
        assert math.isclose(hyps[b][0].score, score, rel_tol=1e-9)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
@pytest.mark.parametrize("flat", [False, True])
def test_large_beam_equals_brute_force(alpha, flat):
    L = 4
    model = tiny(7, flat, scale=1.5)
    expected = enumerate_all(model, 1, L, alpha)
    assert len(expected) == 1 + 3 + 9 + 27 + 27 * 3  # 40 ending in eos, 81 at max_length
    model.calls = 0
    hyps = beam_search(
        model, torch.tensor([1]), beam_size=V**L, max_length=L, eos_id=EOS, length_penalty=alpha
    )[0]
    assert model.calls <= L  # one step per time step
    assert len(hyps) == len(expected)  # every sequence once: no duplicate from the first step
    assert hyps[0].tokens == expected[0][2]
    for h, (norm, s, tokens) in zip(hyps, expected, strict=True):
        assert h.tokens == tokens
        assert math.isclose(h.score, s, rel_tol=1e-9)
        assert math.isclose(h.normalized, norm, rel_tol=1e-9)
    top = beam_search(
        model,
        torch.tensor([1]),
        beam_size=V**L,
        max_length=L,
        eos_id=EOS,
        length_penalty=alpha,
        n_best=5,
    )[0]
    assert [h.tokens for h in top] == [e[2] for e in expected[:5]]


def test_length_penalty_changes_the_ranking():
    """The model's best hypothesis differs between alpha 0 and 0.6 (so the test above checks
    the GNMT penalty itself, not only summed log-probabilities)."""
    model = TinyGRU(seed=7, scale=1.5)
    rank0 = [e[2] for e in enumerate_all(model, 1, 4, 0.0)]
    rank6 = [e[2] for e in enumerate_all(model, 1, 4, 0.6)]
    assert rank0[:10] != rank6[:10]


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_batch_equals_rows_alone(flat, alpha):
    model = tiny(3, flat)
    g = torch.Generator().manual_seed(11)
    h0 = torch.randn(3, H, generator=g, dtype=torch.float64)
    state = h0 if flat else h0.unsqueeze(0)
    start = torch.tensor([2, 0, 1])
    kw = dict(beam_size=3, max_length=8, eos_id=EOS, length_penalty=alpha, n_best=2)
    model.rows = []
    batched = beam_search(model, start, state=state, **kw)
    assert model.rows[0] == 3 and set(model.rows[1:]) == {9}  # B rows, then B*K together
    for b in range(3):
        alone = beam_search(model, start[b : b + 1], state=row_state(model, state, b), **kw)[0]
        assert [h.tokens for h in batched[b]] == [h.tokens for h in alone]
        for x, y in zip(batched[b], alone, strict=True):
            assert math.isclose(x.score, y.score, rel_tol=1e-9)
    with_none = beam_search(model, start, **kw)
    for b in range(3):
        alone = beam_search(model, start[b : b + 1], **kw)[0]
        assert [h.tokens for h in with_none[b]] == [h.tokens for h in alone]


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_limit_per_row_decodes_each_row_as_alone_with_its_limit(alpha):
    model = tiny(5, scale=0.5)  # flat distributions: rows run to their limits
    start, limits = torch.tensor([2, 0, 1]), [2, 7, 4]
    kw = dict(beam_size=3, eos_id=EOS, length_penalty=alpha, n_best=3)
    batched = beam_search(model, start, max_length=limits, **kw)
    assert max(len(h.tokens) for h in batched[1]) == 7
    for b in range(3):
        alone = beam_search(model, start[b : b + 1], max_length=limits[b], **kw)[0]
        assert [h.tokens for h in batched[b]] == [h.tokens for h in alone]
        for x, y in zip(batched[b], alone, strict=True):
            assert math.isclose(x.score, y.score, rel_tol=1e-9)
    with pytest.raises(ValueError, match=r"max_length: expected an integer or one per row \(3\)"):
        beam_search(model, start, max_length=[2, 3], **kw)
    with pytest.raises(ValueError, match="max_length"):
        beam_search(model, start, max_length=[2, 0, 3], **kw)


def reference_beam(model, start, state, K, max_length, alpha, n_best, ngram=0, min_length=0):
    """One row, plain lists, no early stop: the K best candidates of the 2K best are kept
    (eos among the K best finishes a hypothesis); at max_length the live beams finish."""
    logits, state = model.step(torch.tensor([start]), state)
    beams, finished = [([], 0.0, logits, state)], []
    for t in range(max_length):
        cands = []
        for k, (tokens, score, logits, _) in enumerate(beams):
            logp = logits.log_softmax(-1)[0].tolist()
            for v in range(V):
                if v == EOS and t < min_length:
                    continue
                if ngram and has_repeated_ngram([*tokens, v], ngram):
                    continue
                cands.append((score + logp[v], k, v))
        cands.sort(key=lambda c: c[0], reverse=True)
        live = []
        for i, (score, k, v) in enumerate(cands[: 2 * K]):
            tokens = [*beams[k][0], v]
            if v == EOS:
                if i < K:
                    finished.append((score / ((5 + t + 1) / 6) ** alpha, score, tokens))
            elif len(live) < K:
                live.append((tokens, score, k))
        if t == max_length - 1:
            for tokens, score, _ in live:
                finished.append((score / ((5 + t + 1) / 6) ** alpha, score, tokens))
            break
        if not live:
            break
        beams = [
            (tokens, score, *model.step(torch.tensor([tokens[-1]]), beams[k][3]))
            for tokens, score, k in live
        ]
    finished.sort(key=lambda f: f[0], reverse=True)
    return finished[:n_best]


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.5])
@pytest.mark.parametrize(("K", "ngram", "min_length"), [(1, 0, 0), (2, 0, 0), (3, 2, 2)])
def test_small_beams_equal_a_plain_reference(alpha, K, ngram, min_length):
    """Pruned beams (K << V**L) against an unbatched reference without any early stop: the
    stop rule is exact, so stopping a row early must not change its n best."""
    for seed in range(4):
        model = tiny(seed, flat=seed % 2 == 1, scale=2.0)
        g = torch.Generator().manual_seed(seed)
        h0 = torch.randn(3, H, generator=g, dtype=torch.float64)
        state = h0 if model.flat else h0.unsqueeze(0)
        start = torch.tensor([0, 1, 2])
        kw = dict(length_penalty=alpha, no_repeat_ngram=ngram, min_length=min_length)
        hyps = beam_search(model, start, K, 7, EOS, state=state, **kw)
        for b in range(3):
            ref = reference_beam(
                model, b, row_state(model, state, b), K, 7, alpha, K, ngram, min_length
            )
            assert [h.tokens for h in hyps[b]] == [r[2] for r in ref], (seed, b)
            for h, (norm, score, _) in zip(hyps[b], ref, strict=True):
                assert math.isclose(h.score, score, rel_tol=1e-9)
                assert math.isclose(h.normalized, norm, rel_tol=1e-9)


def test_rows_finish_early_and_stop():
    """A model that always says eos: every row ends at the first step, the loop stops."""
    table = torch.full((V, V), -10.0)
    table[:, EOS] = 10.0

    class Markov:
        calls = 0

        def step(self, tokens, state):
            self.calls += 1
            return table[tokens], None

    model = Markov()
    hyps = beam_search(model, torch.tensor([0, 1]), beam_size=2, max_length=20, eos_id=EOS)
    assert hyps[0][0].tokens == hyps[1][0].tokens == [EOS]
    assert model.calls < 5


def test_length_penalty_keeps_searching_past_a_short_eos():
    """eos first is likely (0.6), but 1 1 1 ... is almost certain after it: with alpha = 2
    the long hypothesis ranks first, so the row must not stop at the early eos (the bound of a
    live beam uses lp(max_length), not the next length)."""
    table = torch.full((V, V), -30.0, dtype=torch.float64)
    table[0, EOS], table[0, 1] = math.log(0.6), math.log(0.4)
    table[1, 1], table[1, EOS] = math.log(0.99), math.log(0.01)

    class Markov:
        def step(self, tokens, state):
            return table[tokens], None

    short = beam_search(Markov(), torch.tensor([0]), 1, 10, EOS)[0]
    assert short[0].tokens == [EOS]
    long = beam_search(Markov(), torch.tensor([0]), 1, 10, EOS, length_penalty=2.0)[0]
    assert long[0].tokens == [1] * 10
    assert math.isclose(long[0].score, math.log(0.4) + 9 * math.log(0.99), rel_tol=1e-9)
    assert math.isclose(long[0].normalized, long[0].score / 2.5**2, rel_tol=1e-9)


def repetitive_model():
    """Markov table that loves 0 -> 1 -> 0 -> 1 ... and eos first."""
    table = torch.full((V, V), -4.0, dtype=torch.float64)
    table[0, 1] = table[1, 0] = 4.0
    table[2, 0] = 4.0
    table[:, EOS] = 3.0

    class Markov:
        def step(self, tokens, state):
            return table[tokens], None

    return Markov()


def test_no_repeat_ngram_and_min_length():
    model = repetitive_model()
    start = torch.tensor([2])
    plain = beam_search(model, start, beam_size=4, max_length=8)[0]
    assert has_repeated_ngram(plain[0].tokens, 2)  # without blocking it repeats
    blocked = beam_search(model, start, beam_size=4, max_length=8, no_repeat_ngram=2)[0]
    assert len(blocked) == 4
    for h in blocked:
        assert not has_repeated_ngram(h.tokens, 2)
    tri = beam_search(model, start, beam_size=4, max_length=8, no_repeat_ngram=3)[0]
    assert all(not has_repeated_ngram(h.tokens, 3) for h in tri)
    assert any(has_repeated_ngram(h.tokens, 2) for h in tri)  # bigrams may repeat under n=3

    early = beam_search(model, start, beam_size=4, max_length=8, eos_id=EOS)[0]
    assert len(early[0].tokens) < 3  # without min_length eos comes early
    for m in (1, 3, 5):
        hyps = beam_search(model, start, beam_size=4, max_length=8, eos_id=EOS, min_length=m)[0]
        assert hyps and all(len(h.tokens) >= m + 1 for h in hyps)
        assert all(EOS not in h.tokens[:m] for h in hyps)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_constraints_equal_brute_force(alpha):
    L = 4
    model = TinyGRU(seed=5, scale=1.5)
    expected = enumerate_all(model, 0, L, alpha, no_repeat_ngram=2, min_length=2)
    hyps = beam_search(
        model,
        torch.tensor([0]),
        beam_size=V**L,
        max_length=L,
        eos_id=EOS,
        length_penalty=alpha,
        no_repeat_ngram=2,
        min_length=2,
    )[0]
    assert [h.tokens for h in hyps] == [e[2] for e in expected]


def test_hypothesis_positional_construction():
    h = Hypothesis([1, 2], -0.5)
    assert h.normalized == -0.5
    assert Hypothesis([1], -1.0, -0.8).normalized == -0.8


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(beam_size=0), "beam_size"),
        (dict(beam_size=2.0), "beam_size"),
        (dict(beam_size=True), "beam_size"),
        (dict(max_length=0), "max_length"),
        (dict(beam_size=2, n_best=3), "n_best"),
        (dict(n_best=0), "n_best"),
        (dict(no_repeat_ngram=-1), "no_repeat_ngram"),
        (dict(min_length=-1), "min_length"),
        (dict(length_penalty=float("nan")), "length_penalty"),
        (dict(eos_id=9), "eos_id"),
    ],
)
def test_bad_arguments(kwargs, name):
    model = TinyGRU(seed=0)
    with pytest.raises(ValueError, match=name) as info:
        beam_search(model, torch.tensor([0]), **kwargs)
    if name == "n_best":
        assert str(kwargs["n_best"]) in str(info.value)


def test_start_must_be_1d():
    with pytest.raises(ValueError, match="start"):
        beam_search(TinyGRU(seed=0), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="start"):
        beam_search(TinyGRU(seed=0), torch.tensor(0))
