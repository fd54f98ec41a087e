"""SequenceTagger: padding invariance, character features, learning, checkpoint config."""

import dataclasses

import pytest
import torch

from rnnkit.data.batches import SequenceBatch
from rnnkit.data.codec import TaggingCodec
from rnnkit.data.vocab import Vocab
from rnnkit.models import ModelContractError, SequenceTagger, Tagged, TaggerConfig


def make_batch(words, tags, chars=None):
    lengths = torch.tensor([len(w) for w in words])
    steps = int(lengths.max())
    inputs = torch.zeros(len(words), steps, dtype=torch.long)
    targets = torch.zeros(len(words), steps, dtype=torch.long)
    for b, (w, t) in enumerate(zip(words, tags, strict=True)):
        inputs[b, : len(w)], targets[b, : len(t)] = torch.tensor(w), torch.tensor(t)
    if chars is not None:
        width = max(len(c) for seq in chars for c in seq)
        ch = torch.zeros(len(words), steps, width, dtype=torch.long)
        for b, seq in enumerate(chars):
            for t, c in enumerate(seq):
                ch[b, t, : len(c)] = torch.tensor(c)
        inputs = torch.cat([inputs.unsqueeze(2), ch], dim=2)
    mask = torch.arange(steps) < lengths.unsqueeze(1)
    return SequenceBatch(inputs, targets, mask, lengths)


CONFIGS = [
    TaggerConfig(
        vocab_size=12, num_tags=3, word_dim=8, hidden_size=6, dropout=0.0, decoder="softmax"
    ),
    TaggerConfig(
        vocab_size=12,
        num_tags=3,
        word_dim=8,
        hidden_size=6,
        dropout=0.0,
        decoder="crf",
        char_vocab_size=7,
        char_dim=4,
        char_hidden=3,
        cell="gru",
        num_layers=2,
    ),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["softmax", "crf-chars"])
def test_padded_batch_equals_each_sentence_alone(config):
    torch.manual_seed(0)
    model = SequenceTagger(config).double().eval()
    words = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10]]
    tags = [[0, 1, 2, 0, 1], [1, 1], [2, 0, 0]]
    chars = [[[1, 2], [3], [4, 5, 6], [1], [2]], [[3, 3], [4]], [[5], [6, 1], [2]]]
    use_chars = chars if config.char_vocab_size else None
    batch = make_batch(words, tags, use_chars)
    s = model.emissions(batch)
    paths = model.decode(batch)
    for b in range(3):
        alone = make_batch([words[b]], [tags[b]], [chars[b]] if use_chars else None)
        n = len(words[b])
        torch.testing.assert_close(s[b, :n], model.emissions(alone)[0, :n], rtol=0, atol=1e-12)
        assert paths[b] == model.decode(alone)[0]
        assert len(paths[b]) == n


def test_learns_a_context_dependent_tagging():
    """Tag 1 marks a word whose left neighbour is word 1 and tag 2 one whose right
    neighbour is word 2: only a bidirectional model can get both."""
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(1)
    sentences = [
        torch.randint(
            1, 6, (int(torch.randint(3, 9, (1,), generator=gen)),), generator=gen
        ).tolist()
        for _ in range(200)
    ]

    def tag(s, t):
        if t > 0 and s[t - 1] == 1:
            return 1
        if t + 1 < len(s) and s[t + 1] == 2:
            return 2
        return 0

    tags = [[tag(s, t) for t in range(len(s))] for s in sentences]
    batch = make_batch(sentences, tags)
    for decoder in ("softmax", "crf"):
        model = SequenceTagger(
            TaggerConfig(
                vocab_size=6, num_tags=3, word_dim=8, hidden_size=16, dropout=0.0, decoder=decoder
            )
        )
        opt = torch.optim.Adam(model.parameters(), lr=0.03)
        for _ in range(60):
            opt.zero_grad()
            loss, _ = model.loss(batch)
            loss.backward()
            opt.step()
        paths = model.decode(batch)  # one tag id per word; the mask covers every word
        predicted = torch.tensor([tag for path in paths for tag in path])
        accuracy = (predicted == batch.targets[batch.mask]).float().mean().item()
        assert accuracy > 0.97, (decoder, accuracy)


def test_config_round_trip_and_constraints():
    config = TaggerConfig(vocab_size=5, num_tags=3, tags=("O", "B-X", "I-X"), scheme="BIO")
    model = SequenceTagger(config)
    again = SequenceTagger.from_config(model.get_config())
    again.load_state_dict(model.state_dict())
    assert again.config == config
    assert not bool(model.crf.allowed[0, 2])  # no I-X after O


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_tags": 0}, "num_tags"),
        ({"decoder": "mlp"}, "decoder"),
        ({"tags": ("O",)}, "tags"),
        ({"scheme": "BIO"}, "scheme"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TaggerConfig(**{"vocab_size": 5, "num_tags": 3, **kwargs})


@pytest.mark.parametrize("decoder", ["softmax", "crf"])
def test_unidirectional_tagger_reads_only_the_past(decoder):
    """bidirectional=False: the emission scores of word t do not change with later words
    (a bidirectional tagger's do), and the output layer reads H, not 2H, features."""
    torch.manual_seed(0)
    kw = {"vocab_size": 12, "num_tags": 3, "word_dim": 8, "hidden_size": 6, "dropout": 0.0}
    uni = SequenceTagger(TaggerConfig(**kw, decoder=decoder, bidirectional=False))
    bi = SequenceTagger(TaggerConfig(**kw, decoder=decoder))
    assert uni.out.in_features == 6 and bi.out.in_features == 12
    a = make_batch([[3, 4, 5, 6, 7]], [[0] * 5])
    b = make_batch([[3, 4, 5, 9, 2]], [[0] * 5])  # same first three words
    torch.testing.assert_close(uni.emissions(a)[:, :3], uni.emissions(b)[:, :3], rtol=0, atol=0)
    assert not torch.allclose(bi.emissions(a)[:, :3], bi.emissions(b)[:, :3])
    assert not torch.allclose(uni.emissions(a)[:, 3:], uni.emissions(b)[:, 3:])
    again = SequenceTagger.from_config(uni.get_config())
    assert again.config.bidirectional is False and again.out.in_features == 6


@pytest.mark.parametrize("config", CONFIGS, ids=["softmax", "crf-chars"])
def test_trace_gives_the_loss_of_loss_in_eval_mode(config):
    torch.manual_seed(0)
    config = dataclasses.replace(config, dropout=0.5)  # off in eval mode
    model = SequenceTagger(config).double().eval()
    chars = [[[1, 2], [3], [4, 5, 6], [1], [2]], [[3, 3], [4]], [[5], [6, 1], [2]]]
    batch = make_batch(
        [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10]],
        [[0, 1, 2, 0, 1], [1, 1], [2, 0, 0]],
        chars if config.char_vocab_size else None,
    )
    loss, _ = model.loss(batch)
    traced, tr = model.trace(batch)
    torch.testing.assert_close(traced, loss, rtol=1e-12, atol=0)
    assert len(tr.hidden) == 2 * config.num_layers and len(tr.hidden[0]) == 5  # both directions
    traced.backward()
    assert model.out.weight.grad is not None


TAGS = ("O", "B-PER", "I-PER", "B-LOC")


def _codec(chars: bool) -> TaggingCodec:
    words = Vocab.build([["John", "lives", "in", "Paris", "."]])
    letters = Vocab.build([list("JohnlivesinParis.")]) if chars else None
    return TaggingCodec(words, TAGS, letters, max_word_len=5, scheme="BIO")


@pytest.mark.parametrize("chars", [False, True])
def test_predict_tags_raw_text_through_the_codec(chars):
    torch.manual_seed(0)
    codec = _codec(chars)
    config = TaggerConfig(
        vocab_size=len(codec.words),
        num_tags=len(TAGS),
        char_vocab_size=len(codec.chars) if chars else 0,
        tags=TAGS,
        scheme="BIO",
        word_dim=6,
        hidden_size=5,
        char_dim=3,
        char_hidden=2,
    )
    model = SequenceTagger(config, codec)
    with torch.no_grad():  # B-LOC's emission outweighs everything else at every word
        model.out.bias.copy_(torch.tensor([0.0, 0.0, -50.0, 50.0]))
    texts = ["John lives in Paris.", "Unseen, words"]
    out = model.predict(texts)
    assert model.training  # the mode is restored
    assert [t.tokens for t in out] == [
        ["John", "lives", "in", "Paris", "."],
        ["Unseen", ",", "words"],
    ]
    batch = codec.batch([t.tokens for t in out])
    assert out[0].tags == model.tag_rows(batch)[0] and len(out[1].tags) == 3
    assert all(tag == "B-LOC" for t in out for tag in t.tags)
    assert out[1].spans == [("LOC", 0, 1), ("LOC", 1, 2), ("LOC", 2, 3)]
    single = model.predict("John lives in Paris.")
    assert isinstance(single, Tagged) and single == out[0]
    assert str(out[1]) == (
        "Unseen  B-LOC\n,       B-LOC\nwords   B-LOC\n\n"
        "LOC\t0-1\tUnseen\nLOC\t1-2\t,\nLOC\t2-3\twords"
    )  # the CLI's lines: word and tag, a blank line, then TYPE<TAB>start-end<TAB>words
    with pytest.raises(ValueError, match="text 2: no words to tag"):
        model.predict(["John", " "])
    with pytest.raises(ModelContractError, match="is a tagger: it has no codec"):
        SequenceTagger(config).predict("John")
