"""Codecs: every kind through to_json / codec_from_json (through real JSON, as codec.json is
written and read) gives the same codec and the same batches; errors name what is wrong."""

from __future__ import annotations

import json

import pytest
import torch

from rnnkit.data.batches import SequenceBatch
from rnnkit.data.codec import (
    CODECS,
    FeatureCodec,
    SymbolCodec,
    TaggingCodec,
    TextCodec,
    codec_from_json,
)
from rnnkit.data.tokenizers import CharTokenizer, SentencePieceTokenizer, WordTokenizer
from rnnkit.data.vocab import Vocab

CORPUS = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
    "dogs and cats are sitting together",
    "a witty, moving film",
    "dull and tedious",
] * 4
TEXTS = ["the cats are sitting", "a dull dog", "", "zebras!"]


def again(codec):
    """``codec`` written as codec.json is and read back."""
    return codec_from_json(json.loads(json.dumps(codec.to_json())))


def text_codec(kind: str, **kw) -> TextCodec:
    if kind == "word":
        tokenizer = WordTokenizer(lowercase=True, normalize_numbers=True, split_clitics=True)
    elif kind == "char":
        tokenizer = CharTokenizer(lowercase=True)
    else:
        tokenizer = SentencePieceTokenizer.train(CORPUS, vocab_size=40, model_type="bpe")
    vocab = Vocab.build([tokenizer.tokenize(t) for t in CORPUS], max_size=30)
    return TextCodec(tokenizer, vocab, **kw)


@pytest.mark.parametrize("kind", ["word", "char", "sentencepiece"])
def test_text_codec_round_trips(kind):
    codec = text_codec(kind, labels=("neg", "pos"), max_len=4)
    back = again(codec)
    assert type(back) is TextCodec and type(back.tokenizer) is type(codec.tokenizer)
    assert back.to_json() == codec.to_json() and back.to_json()["kind"] == "text"
    assert back.vocab == codec.vocab and back.labels == ("neg", "pos") and back.max_len == 4
    ids, lengths = codec.batch(TEXTS)
    ids2, lengths2 = back.batch(TEXTS)
    assert torch.equal(ids, ids2) and torch.equal(lengths, lengths2)
    assert ids.dtype == torch.long and int(lengths.max()) <= 4  # max_len kept
    assert lengths[2] == 1 and ids[2, 0] == codec.vocab.unk_id  # an empty text is [<unk>]
    for text in TEXTS:
        assert back.encode(text) == codec.encode(text)
        assert back.decode(codec.encode(text)) == codec.decode(codec.encode(text))
    assert torch.equal(back.label_ids(["pos", "neg"], "x"), torch.tensor([1, 0]))


def test_sentencepiece_codec_carries_its_model_and_pieces_join_into_text():
    codec = text_codec("sentencepiece")
    back = again(codec)
    text = "the cats are sitting"
    assert back.tokenizer.tokenize(text) == codec.tokenizer.tokenize(text)
    ids = back.encode(text)
    assert len(ids) > len(text.split())  # subwords: "cats" is more than one piece
    # generation emits one piece at a time: word boundaries come from the pieces themselves
    assert "".join(back.piece(i) for i in ids) == " " + back.decode(ids) == " " + text


def test_word_and_char_pieces():
    word, char = text_codec("word"), text_codec("char")
    ids = word.encode("the cat sat")
    assert [word.piece(i) for i in ids] == [" the", " cat", " sat"]
    ids = char.encode("a cat")
    assert "".join(char.piece(i) for i in ids) == "a cat"


def test_label_ids_error_names_where_and_the_label():
    codec = text_codec("word", labels=("neg", "pos"))
    with pytest.raises(ValueError) as e:
        codec.label_ids(["pos", "meh", "neg"], "reviews.csv (test split)")
    message = str(e.value)
    assert message.startswith("reviews.csv (test split): ")
    assert "'meh'" in message and "['neg', 'pos']" in message


def tagging_codec(chars: bool) -> TaggingCodec:
    sentences = [["Mary", "went", "to", "Paris"], ["John", "left"]]
    words = Vocab.build(sentences)
    char_vocab = Vocab.build([list(w) for s in sentences for w in s]) if chars else None
    return TaggingCodec(words, ("O", "B-PER", "B-LOC"), char_vocab, max_word_len=4, scheme="BIO")


@pytest.mark.parametrize("chars", [True, False])
def test_tagging_codec_round_trips(chars):
    codec = tagging_codec(chars)
    back = again(codec)
    assert type(back) is TaggingCodec and back.to_json() == codec.to_json()
    assert back.words == codec.words and back.tags == codec.tags and back.scheme == "BIO"
    assert (back.chars == codec.chars) if chars else back.chars is None
    text = "Mary went to Rome, then left."
    assert back.tokenize(text) == codec.tokenize(text)
    assert back.tokenize(text) == ["Mary", "went", "to", "Rome", ",", "then", "left", "."]
    sentences = [["Mary", "went", "to", "Rome"], ["Johnny", "left"]]
    tags = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]  # B-ORG: unseen, not scored
    for with_tags in (tags, None):
        a, b = codec.batch(sentences, with_tags), back.batch(sentences, with_tags)
        assert isinstance(a, SequenceBatch)
        for name in ("inputs", "targets", "mask", "lengths"):
            assert torch.equal(getattr(a, name), getattr(b, name))
    batch = codec.batch(sentences, tags)
    assert batch.inputs.shape == ((2, 4, 1 + 4) if chars else (2, 4))
    assert batch.mask.tolist() == [[True] * 4, [False, True, False, False]]
    if chars:
        assert batch.inputs[1, 0, 1:].tolist() == codec.chars.encode(list("John"))  # 4 kept


def test_symbol_and_feature_codecs_round_trip():
    symbols = SymbolCodec(("<blank>", "1", "2", "<recall>"))
    back = again(symbols)
    assert back == symbols and back.decode(torch.tensor([3, 1, 0])) == ["<recall>", "1", "<blank>"]
    features = FeatureCodec(("value", "marker"))
    assert again(features) == features and again(features).names == ("value", "marker")
    assert {"text", "tagging", "symbols", "features"} <= set(CODECS)


@pytest.mark.parametrize("data", [{"kind": "bogus", "names": []}, {"names": ["x"]}, ["x"]])
def test_unknown_kind_is_an_error_naming_it(data):
    with pytest.raises(ValueError) as e:
        codec_from_json(data)
    kind = data.get("kind") if isinstance(data, dict) else None
    assert f"codec kind {kind!r} is unknown" in str(e.value)
    assert "known kinds: [" in str(e.value) and "'tagging'" in str(e.value)


def test_word_detokenize_joins_opening_and_closing_marks():
    from rnnkit.data.tokenizers import WordTokenizer

    tok = WordTokenizer()
    for text in ("¿Quién es este?", "¡Ay de ti, Corazín!", "Y dijo: ¿Dónde estás (tú)?"):
        assert tok.detokenize(tok.tokenize(text)) == text
