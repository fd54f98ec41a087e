"""The CRF against brute-force enumeration of every tag path."""

import itertools

import pytest
import torch

from rnnkit.crf import LinearChainCRF, allowed_transitions

K, T = 3, 4


def brute_force(crf, emissions, n):
    """Scores of every path of length n of one sequence (emissions (T, K))."""
    trans, start, end = crf._scores()
    scores = {}
    for path in itertools.product(range(crf.num_tags), repeat=n):
        s = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
        s = s + sum(trans[a, b] for a, b in itertools.pairwise(path))
        scores[path] = s
    return scores


def setup(seed=0, constraints=None, k=K):
    torch.manual_seed(seed)
    crf = LinearChainCRF(k, constraints).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    emissions = torch.randn(3, T, k, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    return crf, emissions, mask


def test_partition_equals_brute_force():
    crf, emissions, mask = setup()
    log_z = crf.log_partition(emissions, mask)
    for b, n in enumerate(mask.sum(1).tolist()):
        scores = torch.stack(list(brute_force(crf, emissions[b], n).values()))
        torch.testing.assert_close(log_z[b], torch.logsumexp(scores, 0), rtol=0, atol=1e-10)


def test_viterbi_equals_brute_force_best_path():
    for seed in range(5):
        crf, emissions, mask = setup(seed)
        paths = crf.decode(emissions, mask)
        for b, n in enumerate(mask.sum(1).tolist()):
            scores = brute_force(crf, emissions[b], n)
            assert tuple(paths[b]) == max(scores, key=lambda p: scores[p].item())


def test_score_and_nll_match_enumeration():
    crf, emissions, mask = setup(1)
    tags = torch.tensor([[0, 2, 1, 1], [2, 2, 0, 0], [1, 0, 0, 0]])
    nll = crf.nll(emissions, tags, mask)
    for b, n in enumerate(mask.sum(1).tolist()):
        scores = brute_force(crf, emissions[b], n)
        stacked = torch.stack(list(scores.values()))
        expected = torch.logsumexp(stacked, 0) - scores[tuple(tags[b, :n].tolist())]
        torch.testing.assert_close(nll[b], expected, rtol=0, atol=1e-10)
    assert (nll > 0).all()


def test_nll_gradcheck():
    crf, emissions, mask = setup(2)
    tags = torch.randint(0, K, (3, T))
    emissions.requires_grad_()
    assert torch.autograd.gradcheck(lambda e: crf.nll(e, tags, mask), (emissions,))


BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_bio_constraints_are_respected_by_decoding():
    constraints = allowed_transitions(BIO, "BIO")
    allowed, start, _ = constraints
    assert not allowed[0, 2] and allowed[1, 2] and allowed[2, 2] and not allowed[3, 2]
    assert not start[2] and start[1]
    for seed in range(10):
        crf, emissions, mask = setup(seed, constraints, k=len(BIO))
        emissions[:, :, 2] += 3.0  # tempt the decoder towards I-PER everywhere
        for path in crf.decode(emissions, mask):
            assert BIO[path[0]] != "I-PER" and BIO[path[0]] != "I-LOC"
            for a, b in itertools.pairwise(path):
                assert allowed[a, b], (BIO[a], BIO[b])


def test_bioes_constraints():
    tags = ["O", "B-X", "I-X", "E-X", "S-X"]
    allowed, start, end = allowed_transitions(tags, "BIOES")
    i = {t: n for n, t in enumerate(tags)}
    assert allowed[i["B-X"], i["E-X"]] and allowed[i["I-X"], i["I-X"]]
    assert not allowed[i["B-X"], i["O"]] and not allowed[i["O"], i["E-X"]]
    assert allowed[i["E-X"], i["S-X"]] and not allowed[i["B-X"], i["S-X"]]
    assert not start[i["E-X"]] and not end[i["B-X"]] and end[i["S-X"]]


def test_bad_input_errors():
    with pytest.raises(ValueError, match="num_tags"):
        LinearChainCRF(0)
    with pytest.raises(ValueError, match="tags"):
        allowed_transitions(["O", "X-PER"], "BIO")
    with pytest.raises(ValueError, match="scheme"):
        allowed_transitions(["O"], "BILOU")
    crf = LinearChainCRF(3)
    with pytest.raises(ValueError, match="mask"):
        crf.decode(torch.randn(2, 4, 3), torch.zeros(2, 4, dtype=torch.bool))
