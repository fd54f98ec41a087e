"""SequenceClassifier: padding invariance, poolings, heads, checkpoints, learning, errors."""

from __future__ import annotations

import pytest
import torch

from rnnkit.data import Vocab, WordTokenizer
from rnnkit.data.batches import EpochBatches, SequenceBatch
from rnnkit.data.codec import TextCodec
from rnnkit.models import ClassifierConfig, ModelContractError, Prediction, SequenceClassifier
from rnnkit.training import TrainerConfig
from rnnkit.training.checkpoint import load_codec, load_model, locate_checkpoint
from rnnkit.training.trainer import Trainer

V = 12
# ids 4..11 are the words w4..w11 (0..3 are <pad>, <unk>, <bos>, <eos>)
CODEC = TextCodec(
    WordTokenizer(lowercase=True),
    Vocab(["<pad>", "<unk>", "<bos>", "<eos>", *(f"w{i}" for i in range(4, V))]),
    labels=("neg", "pos"),
)


def make_batch(seqs: list[list[int]], labels: list[int]) -> SequenceBatch:
    """Many-to-one layout: ids padded with 0, the label at each sequence's last step."""
    t = max(map(len, seqs))
    ids = torch.zeros(len(seqs), t, dtype=torch.long)
    targets = torch.zeros(len(seqs), t, dtype=torch.long)
    mask = torch.zeros(len(seqs), t, dtype=torch.bool)
    for b, (s, y) in enumerate(zip(seqs, labels, strict=True)):
        ids[b, : len(s)] = torch.tensor(s)
        targets[b, len(s) - 1] = y
        mask[b, len(s) - 1] = True
    return SequenceBatch(ids, targets, mask, torch.tensor([len(s) for s in seqs]))


def model(**kw) -> SequenceClassifier:
    torch.manual_seed(0)
    base = {"vocab_size": V, "embedding_dim": 6, "hidden_size": 5, "positions": 6}
    return SequenceClassifier(ClassifierConfig(**{**base, **kw})).eval()


SEQS = [[3, 4, 5], [6, 7, 8, 9, 10, 11], [2]]

VARIANTS = [
    {"cell": cell, "pooling": pooling, "bidirectional": bi}
    for cell in ("rnn", "lstm", "gru")
    for pooling in ("last", "mean", "max", "attention", "flatten")
    for bi in (False, True)
]


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: "-".join(map(str, kw.values())))
def test_padded_batch_gives_each_sentence_alone(kw):
    m = model(**kw)
    batch = make_batch(SEQS, [0, 1, 0])
    extra = torch.cat([batch.inputs, torch.zeros(3, 4, dtype=torch.long)], dim=1)  # more padding
    together = m(extra, batch.lengths)  # (3, 2)
    for b, s in enumerate(SEQS):
        alone = m(torch.tensor([s]), torch.tensor([len(s)]))
        torch.testing.assert_close(together[b], alone[0], atol=1e-6, rtol=1e-5)


def test_poolings_match_their_definitions():
    ids = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0]])
    lengths = torch.tensor([3, 2])
    for pooling in ("mean", "max", "last"):
        m = model(pooling=pooling, cell="gru")
        out, _ = m.rnn(m.embedding(ids), lengths=lengths)  # (2, 4, H)
        s = m.summarise(ids, lengths)
        for b, n in enumerate(lengths.tolist()):
            valid = out[b, :n]
            want = {"mean": valid.mean(0), "max": valid.amax(0), "last": valid[-1]}[pooling]
            torch.testing.assert_close(s[b], want)


def test_flatten_sets_every_position_side_by_side_with_zeros_past_the_end():
    m = model(pooling="flatten", bidirectional=True, cell="lstm")
    assert m.out.in_features == 6 * 10  # P positions of H' = 2 x 5
    ids, lengths = torch.tensor([[3, 4, 5, 0], [6, 7, 8, 9]]), torch.tensor([3, 4])
    out, _ = m.rnn(m.embedding(ids), lengths=lengths)  # (2, 4, 10)
    s = m.summarise(ids, lengths).view(2, 6, 10)
    torch.testing.assert_close(s[0, :3], out[0, :3])
    torch.testing.assert_close(s[1, :4], out[1])
    assert s[0, 3:].abs().max() == 0 and s[1, 4:].abs().max() == 0
    seven = torch.tensor([[3, 4, 5, 6, 7, 8, 9]])  # longer than P = 6: the 7th is not read
    out, _ = m.rnn(m.embedding(seven), lengths=torch.tensor([7]))
    torch.testing.assert_close(m.summarise(seven, torch.tensor([7]))[0], out[0, :6].flatten())
    with pytest.raises(ValueError, match="positions must be >= 1 with pooling 'flatten'"):
        model(pooling="flatten", positions=0)


def test_bidirectional_last_joins_forward_end_and_backward_start():
    m = model(pooling="last", bidirectional=True, cell="lstm")
    ids, lengths = torch.tensor([[3, 4, 5, 0]]), torch.tensor([3])
    out, _ = m.rnn(m.embedding(ids), lengths=lengths)  # (1, 4, 2H)
    h = 5
    want = torch.cat([out[0, 2, :h], out[0, 0, h:]])
    torch.testing.assert_close(m.summarise(ids, lengths)[0], want)


def test_attention_weights_ignore_padding():
    m = model(pooling="attention")
    with torch.no_grad():
        m.pool.query.normal_()
    ids, lengths = torch.tensor([[3, 4, 0, 0]]), torch.tensor([2])
    out, _ = m.rnn(m.embedding(ids), lengths=lengths)
    _, weights = m.pool(out, torch.tensor([[True, True, False, False]]))
    assert weights[0, 2:].abs().max() == 0
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0))


def test_one_hot_and_sigmoid_head_probabilities():
    m = model(embedding_dim=0, head="sigmoid")
    assert m.out.out_features == 1
    labels, probs = m.classify(torch.tensor([[3, 4], [5, 0]]), torch.tensor([2, 1]))
    assert probs.shape == (2, 2)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    assert labels.tolist() == (probs[:, 1] > 0.5).long().tolist()


def test_load_vectors_copies_rows_and_zeroes_padding():
    m = model()
    w = torch.arange(V * 6, dtype=torch.float32).view(V, 6)
    m.load_vectors(w)
    assert torch.equal(m.embedding.weight[3], w[3])
    assert m.embedding.weight[0].abs().sum() == 0
    with pytest.raises(ValueError, match="weight shape"):
        m.load_vectors(torch.zeros(V, 7))
    with pytest.raises(ValueError, match="one-hot"):
        model(embedding_dim=0).load_vectors(w)


def toy_data(n: int, seed: int) -> SequenceBatch:
    """Label 1 when token 2 ('good') occurs before any 3 ('bad') decides; else 0.

    Each sentence has filler tokens 4..11 and exactly one of {2, 3} at a random position.
    """
    g = torch.Generator().manual_seed(seed)
    seqs, labels = [], []
    for _ in range(n):
        length = int(torch.randint(3, 9, (1,), generator=g))
        s = torch.randint(4, V, (length,), generator=g).tolist()
        y = int(torch.randint(0, 2, (1,), generator=g))
        s[int(torch.randint(0, length, (1,), generator=g))] = 2 if y else 3
        seqs.append(s)
        labels.append(y)
    return make_batch(seqs, labels)


@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_learns_a_toy_task_and_round_trips_through_a_checkpoint(tmp_path, head):
    torch.manual_seed(0)
    m = SequenceClassifier(
        ClassifierConfig(vocab_size=V, embedding_dim=8, hidden_size=16, cell="gru", head=head)
    )
    cfg = TrainerConfig(epochs=6, batch_size=16, lr=0.02)
    train, val = toy_data(320, 1), toy_data(100, 2)
    trainer = Trainer(
        m,
        cfg,
        EpochBatches(train, 16, seed=0),
        EpochBatches(val, 50, shuffle=False, drop_last=False),
        run_dir=tmp_path,
        codec=CODEC,
    )
    trainer.fit()
    m.eval()
    predicted, _ = m.classify(val.inputs, val.lengths)
    acc = float((predicted == SequenceClassifier.labels(val)).float().mean())
    assert acc >= 0.95
    path = locate_checkpoint(tmp_path / "checkpoints", "latest")
    loaded = load_model(path)
    assert isinstance(loaded, SequenceClassifier)
    assert loaded.config == m.config
    torch.testing.assert_close(loaded(val.inputs, val.lengths), m(val.inputs, val.lengths))
    assert load_codec(path).to_json() == CODEC.to_json()  # the codec travels: raw text in


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"vocab_size": 0}, "vocab_size"),
        ({"num_classes": 1}, "num_classes"),
        ({"embedding_dim": -1}, "embedding_dim"),
        ({"cell": "tcn"}, "cell"),
        ({"pooling": "sum"}, "pooling"),
        ({"head": "sigmoid", "num_classes": 3}, "sigmoid"),
        ({"dropout": 1.0}, "dropout"),
        ({"padding_idx": 99}, "padding_idx"),
        ({"wide_ngrams": -1}, "wide_ngrams and wide_buckets must be >= 0, got -1 and 0"),
        ({"wide_ngrams": 1, "wide_buckets": 9}, r"wide_buckets=9 hashes .* got 1"),
        (
            {"vocab_size": 0, "input_features": 3, "wide_ngrams": 2},
            r"wide_ngrams=2: the wide part reads token ids",
        ),
    ],
)
def test_bad_config_names_the_argument(kw, match):
    with pytest.raises(ValueError, match=match):
        ClassifierConfig(**{"vocab_size": V, **kw})


def test_bad_inputs_are_refused():
    m = model()
    with pytest.raises(ValueError, match="ids"):
        m(torch.zeros(2, 3), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match="lengths"):
        m(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 3]))


@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_predict_reads_raw_text_through_the_codec(head):
    m = SequenceClassifier(model(head=head).config, CODEC).train()
    texts = ["w4 W5 w6", "w7", "", "w11 unknown w9"]
    out = m.predict(texts)
    assert m.training  # the mode is left as it was (predict runs in eval mode)
    m.eval()
    ids, lengths = CODEC.batch(texts)
    assert ids[3].tolist() == [11, 1, 9] and lengths[2] == 1  # <unk>; "" reads as [<unk>]
    labels, probs = m.classify(ids, lengths)
    assert [p.text for p in out] == texts
    assert [p.label for p in out] == [CODEC.labels[k] for k in labels.tolist()]
    for b, p in enumerate(out):
        assert p.probability == pytest.approx(float(probs[b].max())) and p.probability >= 0.5
        assert str(p) == f"{p.label}\t{p.probability:.4f}\t{p.text}"  # the CLI's line
    single = m.predict("w7")
    assert isinstance(single, Prediction) and single == out[1]
    assert m.predict(texts, batch_size=3) == out  # batches of 3 and 1 rows: same answers


def test_predict_without_a_codec_says_what_is_missing():
    with pytest.raises(ModelContractError, match="is a classifier: it has no codec"):
        model().predict(["w4 w5"])


@pytest.mark.parametrize(
    "kw",
    [{"pooling": "attention", "bidirectional": True}, {"bidirectional": True}, {"cell": "rnn"}],
)
def test_trace_gives_the_loss_of_loss_in_eval_mode(kw):
    m = model(dropout=0.4, **kw).double()  # eval mode: dropout off
    batch = make_batch(SEQS, [0, 1, 1])
    loss, _ = m.loss(batch)
    traced, tr = m.trace(batch)
    torch.testing.assert_close(traced, loss, rtol=1e-12, atol=0)
    assert len(tr.hidden[0]) == max(map(len, SEQS))  # one record per step
    traced.backward()
    assert m.out.weight.grad is not None


def test_wide_part_adds_r_times_u_of_each_distinct_ngram():
    m = model(cell="gru", pooling="max", wide_ngrams=2, wide_buckets=13)
    ids, lengths = torch.tensor([[4, 5, 4, 5, 6, 0]]), torch.tensor([5])
    deep = m.out(m.summarise(ids, lengths))
    torch.testing.assert_close(m(ids, lengths), deep)  # u = 0 at the start: the RNN alone
    with torch.no_grad():
        m.wide.weight[1:].normal_()
        m.wide_scale.uniform_(-2, 2)
    grams = {4, 5, 6} | {int(g) for g in m.wide_grams(ids, lengths)[0] if g >= V}
    assert len(grams) == 6  # unigrams 4, 5, 6; bigrams 4-5, 5-4, 5-6 (4-5 twice: once)
    want = deep + sum(m.wide_scale[g] * m.wide.weight[g] for g in grams)
    torch.testing.assert_close(m(ids, lengths), want)
    m(ids, lengths).sum().backward()
    touched = m.wide.weight.grad.abs().sum(1).nonzero().flatten().tolist()
    assert set(touched) == grams  # only the sequence's own n-grams learn


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_wide_part_keeps_padded_batches_equal_to_each_sentence_alone(cell):
    m = model(cell=cell, pooling="mean", bidirectional=True, wide_ngrams=3, wide_buckets=17)
    with torch.no_grad():
        m.wide.weight[1:].normal_()
    batch = make_batch(SEQS, [0, 1, 0])
    extra = torch.cat([batch.inputs, torch.full((3, 4), 7)], dim=1)  # junk past the lengths
    together = m(extra, batch.lengths)
    for b, s in enumerate(SEQS):
        alone = m(torch.tensor([s]), torch.tensor([len(s)]))
        torch.testing.assert_close(together[b], alone[0], atol=1e-6, rtol=1e-5)


def test_wide_part_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    config = ClassifierConfig(vocab_size=V, embedding_dim=8, hidden_size=8, wide_ngrams=2)
    m = SequenceClassifier(config)
    with torch.no_grad():
        m.wide_scale.uniform_(-1, 1)  # the scale r is a buffer the checkpoint keeps
    train, val = toy_data(64, 1), toy_data(20, 2)
    Trainer(
        m, TrainerConfig(epochs=1, batch_size=16), EpochBatches(train, 16, seed=0), None,
        run_dir=tmp_path, codec=CODEC,
    ).fit()  # fmt: skip
    assert m.wide.weight.abs().sum() > 0  # the wide part learned
    m.eval()
    loaded = load_model(locate_checkpoint(tmp_path / "checkpoints", "latest"))
    torch.testing.assert_close(loaded.wide_scale, m.wide_scale)
    torch.testing.assert_close(loaded(val.inputs, val.lengths), m(val.inputs, val.lengths))


@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_wide_part_can_start_as_the_naive_bayes_log_odds(head):
    m = model(cell="gru", head=head, wide_ngrams=2, wide_buckets=13)
    ids, lengths = torch.tensor([[4, 5, 4, 6, 0]]), torch.tensor([4])
    with torch.no_grad():
        m.wide_scale.uniform_(-2, 2)
    m.start_wide_as_naive_bayes()
    deep, z = m.out(m.summarise(ids, lengths)), m(ids, lengths)
    grams = [int(g) for g in m.wide_grams(ids, lengths)[0] if g != 0]
    log_odds = m.wide_scale[grams].sum()  # sum_g r_g: the binarized NB log-odds
    gap = (z - deep)[0]
    torch.testing.assert_close(gap[-1] - gap[0] if head == "softmax" else gap[0], log_odds)
    assert m.wide.weight[0].abs().sum() == 0  # <pad> stays zero
    with pytest.raises(ValueError, match=r"needs a wide part .* got wide_ngrams=0"):
        model().start_wide_as_naive_bayes()


def test_lengths_may_be_a_list_as_for_the_layers():
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(vocab_size=10, hidden_size=4)).eval()
    ids = torch.tensor([[1, 2, 3], [4, 5, 0]])
    torch.testing.assert_close(model(ids, [3, 2]), model(ids, torch.tensor([3, 2])))
