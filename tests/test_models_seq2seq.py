"""Seq2Seq: teacher forcing equals stepping, attention masks, padding, decoding, learning."""

from __future__ import annotations

import itertools

import pytest
import torch

import _training_helpers  # noqa: F401  (one torch thread)
from rnnkit.data.batches import PairBatch
from rnnkit.decoding import beam_search
from rnnkit.models.contract import Stepping, Trainable
from rnnkit.models.seq2seq import BOS, EOS, Seq2Seq, Seq2SeqConfig

ATTENTION = ("none", "bahdanau", "dot", "general", "concat")


def _model(**kw) -> Seq2Seq:
    torch.manual_seed(0)
    base = {
        "source_vocab_size": 12,
        "target_vocab_size": 11,
        "hidden_size": 8,
        "embedding_size": 6,
    }
    return Seq2Seq(Seq2SeqConfig(**{**base, **kw})).eval()


def _source(b=3, s=5, vocab=12):
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, vocab, (b, s), generator=g)
    lengths = torch.tensor([s, 3, 4][:b])
    tgt = torch.randint(4, 11, (b, 4), generator=g)
    return src, lengths, tgt


@pytest.mark.parametrize(
    ("attention", "cell", "input_feed"),
    [
        (a, c, f)
        for a in ATTENTION
        for c in ("lstm", "gru", "rnn")
        for f in (True, False)
        if f or a not in ("none", "bahdanau")
    ],
)
def test_stepping_equals_teacher_forcing(attention, cell, input_feed):
    m = _model(attention=attention, cell=cell, num_layers=2, input_feed=input_feed)
    src, lengths, tgt = _source()
    logits, weights = m(src, lengths, tgt)  # (B, U, V)
    state = m.encode(src, lengths)
    inputs = torch.cat([torch.full((3, 1), BOS), tgt[:, :-1]], 1)
    stepped = []
    for t in range(tgt.shape[1]):
        out, state = m.step(inputs[:, t], state)
        stepped.append(out)
    stepped = torch.stack(stepped, 1)
    keep = [i for i in range(11) if i not in (0, BOS)]  # step never emits <pad>, <bos>
    torch.testing.assert_close(stepped[..., keep], logits[..., keep])
    assert torch.isinf(stepped[..., BOS]).all()
    if attention == "none":
        assert weights is None
    else:
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
        assert (weights[1, :, 3:] == 0).all() and (weights[2, :, 4:] == 0).all()


@pytest.mark.parametrize("attention", ATTENTION)
def test_padded_batch_equals_each_source_alone(attention):
    m = _model(attention=attention, bidirectional=True, num_layers=2)
    src, lengths, tgt = _source()
    logits, _ = m(src, lengths, tgt)
    decoded = m.decode(src, lengths, max_length=6)
    beams = m.decode(src, lengths, beam=3, n_best=2, max_length=6)
    for b in range(3):
        n = int(lengths[b])
        alone, _ = m(src[b : b + 1, :n], lengths[b : b + 1], tgt[b : b + 1])
        torch.testing.assert_close(alone, logits[b : b + 1])
        (alone_greedy,) = m.decode(src[b : b + 1, :n], lengths[b : b + 1], max_length=6)
        # the same tokens; scores equal up to rounding (a batch of one steps with weights
        # laid out for matrix-vector products: rnnkit.layers.stepping)
        assert [h[0] for h in alone_greedy] == [h[0] for h in decoded[b]]
        for (_, s1), (_, s2) in zip(alone_greedy, decoded[b], strict=True):
            assert s1 == pytest.approx(s2, rel=1e-5, abs=1e-5)
        again = m.decode(src[b : b + 1, :n], lengths[b : b + 1], beam=3, n_best=2, max_length=6)
        assert [h[0] for h in again[0]] == [h[0] for h in beams[b]]


@pytest.mark.parametrize("beam", [1, 3])
def test_the_default_length_limit_is_each_sources_own(beam):
    """Without max_length a source's output is limited to 2 n + 10 tokens of its own length
    n, not of its batch's longest: it decodes as it does alone, whatever its batchmates."""
    m = _model(attention="general", target_vocab_size=5)
    with torch.no_grad():
        m.head.bias[EOS] -= 4.0  # <eos> unlikely, so that outputs reach their limits
    src, lengths, _ = _source()
    rows = m.decode(src, lengths, beam=beam, n_best=beam)
    assert any(len(h[0]) > 2 * int(lengths.min()) + 10 - 1 for h in rows[0])  # a long one
    for b in range(3):
        n = int(lengths[b])
        (alone,) = m.decode(src[b : b + 1, :n], lengths[b : b + 1], beam=beam, n_best=beam)
        assert [h[0] for h in alone] == [h[0] for h in rows[b]]
        assert all(len(h[0]) <= 2 * n + 10 for h in rows[b])
        for (_, s1), (_, s2) in zip(alone, rows[b], strict=True):
            assert s1 == pytest.approx(s2, rel=1e-5, abs=1e-5)


def test_an_empty_target_is_refused():
    m = _model()
    src, lengths, _ = _source()
    with pytest.raises(ValueError, match=r"target: expected token ids \(B, U\) with U >= 1"):
        m(src, lengths, torch.zeros(3, 0, dtype=torch.long))


def test_greedy_scores_keep_float64():
    m = _model(attention="general").double()
    src, lengths, _ = _source()
    (greedy,) = m.decode(src[:1], lengths[:1], max_length=5)
    (beam,) = m.decode(src[:1], lengths[:1], beam=1, no_repeat_ngram=9, max_length=5)
    assert greedy[0][0] == beam[0][0] and greedy[0][1] == pytest.approx(beam[0][1], abs=1e-12)


def test_beam_one_equals_greedy_and_scores_agree():
    m = _model(attention="general")
    src, lengths, _ = _source()
    greedy = m.decode(src, lengths, max_length=7)
    state = m.encode(src, lengths)
    hyps = beam_search(m, torch.full((3,), BOS), 1, 7, EOS, state=state)
    for row, g in zip(hyps, greedy, strict=True):
        tokens = row[0].tokens[:-1] if row[0].tokens[-1:] == [EOS] else row[0].tokens
        assert tokens == g[0][0]
        assert row[0].score == pytest.approx(g[0][1], abs=1e-4)


@torch.no_grad()
def test_beam_search_on_the_model_equals_brute_force():
    """The best output up to 3 tokens (or 3 tokens then cut) equals enumerating them all."""
    m = _model(attention="bahdanau", target_vocab_size=6)
    src, lengths, _ = _source(b=1)
    state = m.encode(src[:, :5], lengths[:1])
    best, best_score = None, -float("inf")
    words = [1, 3, 4, 5]  # <unk>, <eos>, two words (<pad>, <bos> are never emitted)
    for n in range(1, 4):
        for seq in itertools.product(words, repeat=n):
            if EOS in seq[:-1] or (n < 3 and seq[-1] != EOS):
                continue
            s, total = state, 0.0
            for prev, tok in zip((BOS, *seq[:-1]), seq, strict=True):
                logits, s = m.step(torch.tensor([prev]), s)
                total += float(logits.log_softmax(-1)[0, tok])
            if total > best_score:
                best, best_score = list(seq), total
    found = m.decode(src[:, :5], lengths[:1], beam=64, max_length=3)[0][0]
    assert found[0] == [t for t in best if t != EOS]
    assert found[1] == pytest.approx(best_score, abs=1e-4)


def test_source_kinds_images_and_frames():
    torch.manual_seed(0)
    img = Seq2Seq(
        Seq2SeqConfig(image_channels=1, image_height=8, target_vocab_size=9, hidden_size=8)
    ).eval()
    images = torch.rand(2, 1, 8, 24)
    widths = torch.tensor([24, 16])
    tgt = torch.randint(4, 9, (2, 3))
    logits, weights = img(images, widths, tgt)
    alone, _ = img(images[1:, ..., :16], widths[1:], tgt[1:])
    torch.testing.assert_close(alone, logits[1:])  # padding columns never leak into valid ones
    assert weights.shape == (2, 3, 24) and (weights[1, :, 16:] == 0).all()
    with pytest.raises(
        ValueError, match=r"images: expected \(B, 1, 8, W\), .* got \(2, 1, 5, 24\)"
    ):
        img(images[:, :, :5], widths, tgt)
    frames = Seq2Seq(Seq2SeqConfig(source_features=5, target_vocab_size=9, hidden_size=8))
    logits, _ = frames(torch.randn(2, 7, 5), torch.tensor([7, 4]), tgt)
    assert logits.shape == (2, 3, 9)


def test_options_tie_share_bridge_and_layers():
    m = _model(
        source_vocab_size=11,
        share_embeddings=True,
        tie_embeddings=True,
        bridge="zero",
        decoder_layers=3,
        decoder_cell="gru",
        decoder_hidden_size=10,
        label_smoothing=0.1,
    )
    assert m.source_embedding.weight is m.target_embedding.weight is m.head.weight
    src, lengths, tgt = _source(vocab=11)
    state = m.encode(src, lengths)
    assert state.hidden.shape == (3, 3, 10) and not state.hidden.any()
    batch = PairBatch(src, lengths, tgt, torch.tensor([4, 2, 3]))
    loss, metrics = m.train().loss(batch)
    loss.backward()
    assert loss > 0 and 0 <= metrics["accuracy"] <= 1 and metrics["perplexity"] > 1
    assert isinstance(m, Trainable) and isinstance(m, Stepping)


def test_loss_counts_only_valid_target_tokens():
    m = _model(attention="general")
    src, lengths, tgt = _source()
    short = PairBatch(src, lengths, tgt, torch.tensor([2, 2, 2]))
    cut = PairBatch(src, lengths, tgt[:, :2], torch.tensor([2, 2, 2]))
    torch.testing.assert_close(m.loss(short)[0], m.loss(cut)[0])


@pytest.mark.parametrize(
    ("kw", "named"),
    [
        ({"attention": "luong"}, "attention: expected one of ['none', 'bahdanau'"),
        ({"bidirectional": "false"}, "bidirectional: expected true or false, got 'false'"),
        ({"source_features": 3}, "exactly one of source_vocab_size"),
        ({"decoder_cell": "tcn"}, "decoder_cell must be one of"),
        ({"share_embeddings": True}, "share_embeddings=True needs one vocabulary"),
        ({"attention": "dot", "decoder_hidden_size": 5}, "decoder_hidden_size must be 16"),
        ({"label_smoothing": 1.0}, "label_smoothing must be in [0, 1)"),
        ({"attention": "bahdanau", "input_feed": False}, "input_feed=False applies to Luong"),
        ({"conv_channels": 8}, "this source is not an image"),
    ],
)
def test_config_errors_name_the_setting(kw, named):
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace(")", r"\)")):
        Seq2SeqConfig(source_vocab_size=12, target_vocab_size=11, hidden_size=8, **kw)


def test_step_without_an_encoded_state_is_refused():
    with pytest.raises(ValueError, match="state: an encoder-decoder steps from"):
        _model().step(torch.tensor([BOS]), None)


def test_learns_to_reverse_six_tokens():
    """Reversal of 6 random tokens (10 symbols) to >95% exact match in about 15 s on CPU."""
    from rnnkit.training import LogConfig, Trainer, TrainerConfig

    g = torch.Generator().manual_seed(0)

    def data(n: int) -> PairBatch:
        src = torch.randint(4, 14, (n, 6), generator=g)
        tgt = torch.cat([src.flip(1), torch.full((n, 1), EOS)], 1)
        return PairBatch(src, torch.full((n,), 6), tgt, torch.full((n,), 7))

    train, val = data(3000), data(200)
    torch.manual_seed(0)
    m = Seq2Seq(
        Seq2SeqConfig(source_vocab_size=14, target_vocab_size=14, hidden_size=32, embedding_size=16)
    )
    log = LogConfig(progress="none", tensorboard=False)
    Trainer(m, TrainerConfig(epochs=4, batch_size=32, lr=0.01, log=log), train, val).fit()
    out = m.eval().decode(val.source, val.source_lengths)
    exact = sum(o[0][0] == val.target[i, :6].tolist() for i, o in enumerate(out)) / val.size
    assert exact > 0.95


def test_no_repeat_ngram_blocks_repeats_even_greedy():
    m = _model(attention="general")
    src, lengths, _ = _source()
    for beam in (1, 3):
        for row in m.decode(src, lengths, beam=beam, max_length=12, no_repeat_ngram=1):
            tokens = row[0][0]
            assert len(tokens) == len(set(tokens))


def test_loss_equals_torch_cross_entropy_with_label_smoothing():
    m = _model(attention="general", label_smoothing=0.1).train(False)
    src, lengths, tgt = _source()
    tl = torch.tensor([4, 2, 3])
    logits, _ = m(src, lengths, tgt)
    mask = torch.arange(4) < tl.unsqueeze(1)
    want = torch.nn.functional.cross_entropy(logits[mask], tgt[mask], label_smoothing=0.1)
    got, metrics = m.loss(PairBatch(src, lengths, tgt, tl))
    torch.testing.assert_close(got, want)
    nll = torch.nn.functional.cross_entropy(logits[mask], tgt[mask])
    assert metrics["perplexity"] == pytest.approx(float(nll.detach().exp()), rel=1e-5)
