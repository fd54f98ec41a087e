"""Attention: scores as written, masks give padded steps zero weight, gradients check."""

import pytest
import torch

from rnnkit.attention import Attention, AttentionPooling, lengths_to_mask


@pytest.mark.parametrize("score", ["additive", "dot", "general"])
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


def test_gradcheck_and_pooling():
    torch.manual_seed(2)
    att = Attention(3, 4, "additive").double()
    q = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    keys = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    mask = lengths_to_mask(torch.tensor([2, 5]), 5)
    assert torch.autograd.gradcheck(lambda a, b: att(a, b, mask)[0], (q, keys))
    pooled, w = AttentionPooling(4)(keys.float(), mask)
    assert pooled.shape == (2, 4) and (w[0, 2:] == 0).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="score"):
        Attention(3, 3, "cosine")
    with pytest.raises(ValueError, match="query_size"):
        Attention(3, 4, "dot")
    with pytest.raises(ValueError, match="mask"):
        Attention(3, 3, "dot")(torch.randn(2, 3), torch.randn(2, 4, 3), torch.ones(2, 5).bool())
