"""Attention: scores as written, masks give padded steps zero weight, gradients check."""

import pytest
import torch

from rnnkit.attention import SCORES, Attention, AttentionPooling, lengths_to_mask


@pytest.mark.parametrize("score", SCORES)
def test_masked_steps_get_zero_weight_and_padding_is_ignored(score):
    torch.manual_seed(0)
    att = Attention(6, 6, score).double()
    q, keys = torch.randn(2, 6, dtype=torch.float64), torch.randn(2, 5, 6, dtype=torch.float64)
    mask = lengths_to_mask(torch.tensor([5, 3]), 5)
    ctx, w = att(q, keys, mask)
    assert torch.allclose(w.sum(1), torch.ones(2, dtype=torch.float64))
    assert (w[1, 3:] == 0).all()
    alone, _ = att(q[1:], keys[1:, :3])
    torch.testing.assert_close(ctx[1:], alone, rtol=0, atol=1e-12)


def test_scores_follow_the_equations():
    torch.manual_seed(1)
    q, keys = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 3, 4, dtype=torch.float64)
    dot = Attention(4, 4, "dot")
    torch.testing.assert_close(dot.scores(q, keys), torch.einsum("bq,bsq->bs", q, keys))
    gen = Attention(4, 4, "general").double()
    expected = torch.einsum("bq,qk,bsk->bs", q, gen.w.weight, keys)
    torch.testing.assert_close(gen.scores(q, keys), expected)
    add = Attention(4, 4, "additive").double()
    hidden = torch.tanh(add.w_query(q)[:, None] + keys @ add.w_key.weight.T + add.w_key.bias)
    torch.testing.assert_close(add.scores(q, keys), (hidden @ add.v.weight.T).squeeze(2))
    cat = Attention(4, 4, "concat", hidden_size=5).double()
    pairs = torch.cat([q[:, None].expand(-1, 3, -1), keys], dim=2)  # [q; k_s]: (B, S, Q + K)
    expected = (torch.tanh(pairs @ cat.w_concat.weight.T) @ cat.v.weight.T).squeeze(2)
    torch.testing.assert_close(cat.scores(q, keys), expected)


def test_gradcheck_and_pooling():
    torch.manual_seed(2)
    att = Attention(3, 4, "additive").double()
    q = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    keys = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    mask = lengths_to_mask(torch.tensor([2, 5]), 5)
    assert torch.autograd.gradcheck(lambda a, b: att(a, b, mask)[0], (q, keys))
    pooled, w = AttentionPooling(4)(keys.float(), mask)
    assert pooled.shape == (2, 4) and (w[0, 2:] == 0).all()


def test_gradcheck_concat_score():
    torch.manual_seed(3)
    att = Attention(3, 4, "concat", hidden_size=6).double()
    q = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    keys = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    mask = lengths_to_mask(torch.tensor([5, 3]), 5)
    assert torch.autograd.gradcheck(lambda a, b: att.scores(a, b), (q, keys))
    assert torch.autograd.gradcheck(lambda a, b: att(a, b, mask)[0], (q, keys))
    weights = {name: p.detach().clone().requires_grad_() for name, p in att.named_parameters()}
    assert set(weights) == {"w_concat.weight", "v.weight"}

    def by_weights(w_c, v):  # the weights as a function of the score's own parameters
        params = {"w_concat.weight": w_c, "v.weight": v}
        return torch.func.functional_call(att, params, (q.detach(), keys.detach(), mask))[1]

    assert torch.autograd.gradcheck(by_weights, (weights["w_concat.weight"], weights["v.weight"]))


@pytest.mark.parametrize("score", SCORES)
def test_precomputed_keys_give_identical_results(score):
    torch.manual_seed(4)
    att = Attention(6, 6, score, hidden_size=7 if score in ("additive", "concat") else None)
    keys, mask = torch.randn(3, 5, 6), lengths_to_mask(torch.tensor([5, 2, 4]), 5)
    values = torch.randn(3, 5, 8)
    projected = att.precompute(keys)
    expected_size = {"dot": 6, "general": 6}.get(score, 7)
    assert projected.shape == (3, 5, expected_size)
    for _ in range(3):  # a decoder's queries over the same keys
        q = torch.randn(3, 6)
        assert torch.equal(att.scores(q, keys, projected=projected), att.scores(q, keys))
        with_it = att(q, keys, mask, values, projected=projected)
        without = att(q, keys, mask, values)
        assert torch.equal(with_it[0], without[0]) and torch.equal(with_it[1], without[1])
        assert with_it[0].shape == (3, 8) and (with_it[1][1, 2:] == 0).all()
    with pytest.raises(ValueError, match=r"projected: expected shape \(3, 5, "):
        att.scores(torch.randn(3, 6), keys, projected=projected[:, :4])


def test_bad_arguments():
    with pytest.raises(ValueError, match="score"):
        Attention(3, 3, "cosine")
    with pytest.raises(ValueError, match="query_size"):
        Attention(3, 4, "dot")
    with pytest.raises(ValueError, match="mask"):
        Attention(3, 3, "dot")(torch.randn(2, 3), torch.randn(2, 4, 3), torch.ones(2, 5).bool())


@pytest.mark.parametrize("score", ["additive", "dot", "general", "concat"])
def test_a_block_of_queries_equals_each_query_alone(score):
    torch.manual_seed(0)
    att = Attention(6, 6, score).double()
    keys = torch.randn(3, 5, 6, dtype=torch.float64)
    queries = torch.randn(3, 4, 6, dtype=torch.float64)  # (B, U, Q)
    mask = torch.arange(5) < torch.tensor([5, 2, 4]).unsqueeze(1)
    context, weights = att(queries, keys, mask)
    for u in range(4):
        c, w = att(queries[:, u], keys, mask)
        torch.testing.assert_close(context[:, u], c)
        torch.testing.assert_close(weights[:, u], w)
    assert (weights[1, :, 2:] == 0).all()
