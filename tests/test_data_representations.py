"""Tokenizers, Vocab, one-hot and embedding inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rnnkit.data.errors import DataFormatError
from rnnkit.data.representations import (
    NGRAM_PRIME,
    OneHot,
    build_embedding,
    nb_log_count_ratios,
    ngram_ids,
    read_vectors,
)
from rnnkit.data.tokenizers import (
    NUMBER_TOKEN,
    CharTokenizer,
    SentencePieceTokenizer,
    WordTokenizer,
    load_tokenizer,
    save_tokenizer,
    tokenizer_from_config,
)
from rnnkit.data.vocab import SPECIALS, Vocab

TRAIN = [
    f"the {a} cat sat on the {b} mat number {n}"
    for n, (a, b) in enumerate(
        [("black", "red"), ("white", "blue"), ("grey", "green"), ("small", "big")] * 40
    )
]


def test_char_tokenizer() -> None:
    tok = CharTokenizer(lowercase=True)
    assert tok.tokenize("Ab c") == ["a", "b", " ", "c"]
    assert tok.detokenize(tok.tokenize("xy z")) == "xy z"


def test_word_tokenizer_options() -> None:
    text = "In 1999, Ada wrote 3.5 programs - don't panic!"
    assert WordTokenizer().tokenize(text) == [
        "In",
        "1999",
        ",",
        "Ada",
        "wrote",
        "3.5",
        "programs",
        "-",
        "don't",
        "panic",
        "!",
    ]
    tok = WordTokenizer(lowercase=True, normalize_numbers=True)
    assert tok.tokenize(text)[:6] == ["in", NUMBER_TOKEN, ",", "ada", "wrote", NUMBER_TOKEN]
    assert tok.detokenize(["hello", ",", "world", "!"]) == "hello, world!"
    with pytest.raises(ValueError, match="pattern="):
        WordTokenizer(pattern="(")


def test_word_tokenizer_splits_clitics_as_the_treebank() -> None:
    tok = WordTokenizer(lowercase=True, split_clitics=True)
    text = "It\u2019s a film that doesn't, can't and won't; we're sure you'll see Ann's o'clock."
    assert tok.tokenize(text) == [
        "it",
        "'s",
        "a",
        "film",
        "that",
        "does",
        "n't",
        ",",
        "ca",
        "n't",
        "and",
        "wo",
        "n't",
        ";",
        "we",
        "'re",
        "sure",
        "you",
        "'ll",
        "see",
        "ann",
        "'s",
        "o'clock",
        ".",
    ]
    assert WordTokenizer().tokenize("doesn't") == ["doesn't"]  # off by default
    again = tokenizer_from_config(tok.to_config())
    assert again.tokenize("isn't") == ["is", "n't"]


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_sentencepiece_trains_and_round_trips(tmp_path: Path, model_type: str) -> None:
    tok = SentencePieceTokenizer.train(TRAIN, vocab_size=40, model_type=model_type)
    pieces = tok.tokenize("the black cat sat")
    assert tok.detokenize(pieces) == "the black cat sat"
    assert len(pieces) < len("the black cat sat")  # pieces are longer than characters
    save_tokenizer(tok, tmp_path / "tok.json")
    again = load_tokenizer(tmp_path / "tok.json")
    assert again.tokenize("the green mat") == tok.tokenize("the green mat")


def test_tokenizer_configs_round_trip() -> None:
    for tok in (CharTokenizer(), WordTokenizer(lowercase=True, normalize_numbers=True)):
        again = tokenizer_from_config(tok.to_config())
        assert again.to_config() == tok.to_config()
    with pytest.raises(ValueError, match="config type"):
        tokenizer_from_config({"type": "morse"})


def test_vocab_size_limit_min_freq_and_specials() -> None:
    sequences = [["b", "a", "a", "c", "a", "b", "d"]]
    vocab = Vocab.build(sequences, max_size=6, min_freq=1)
    assert vocab.tokens == [*SPECIALS, "a", "b"]  # by count, then alphabetically
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2, 3)
    assert Vocab.build(sequences, min_freq=2).tokens == [*SPECIALS, "a", "b"]
    assert Vocab.build(sequences).tokens == [*SPECIALS, "a", "b", "c", "d"]
    assert Vocab.build([list("zy")], max_size=10_000).tokens[4:] == ["y", "z"]
    ids = vocab.encode(["a", "zzz", "b"], add_bos=True, add_eos=True)
    assert ids == [2, 4, 1, 5, 3]
    assert vocab.decode(ids) == ["a", "<unk>", "b"]
    with pytest.raises(ValueError, match="max_size=3"):
        Vocab.build(sequences, max_size=3)


def test_vocab_json_round_trip_and_unknown_report(tmp_path: Path) -> None:
    vocab = Vocab.build(WordTokenizer().tokenize(t) for t in TRAIN[:100])
    vocab.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json") == vocab
    report = vocab.unknown_report([["the", "purple", "cat", "purple", "dog"]])
    assert (report.tokens, report.unknown) == (5, 3)
    assert report.unknown_types == {"purple": 2, "dog": 1}
    assert report.rate == pytest.approx(0.6)
    assert "3 of 5 tokens unknown" in str(report)


def test_one_hot_is_rnn_input() -> None:
    ids = torch.tensor([[4, 5, 0], [6, 0, 0]])  # (B, T)
    x = OneHot(7, padding_idx=0)(ids)  # (B, T, V)
    assert x.shape == (2, 3, 7)
    assert x[0, 1].tolist() == [0, 0, 0, 0, 0, 1, 0]
    assert x[0, 2].sum() == 0 and x[1, 1:].sum() == 0
    out, _ = torch.nn.RNN(7, 4, batch_first=True)(x)
    assert out.shape == (2, 3, 4)


def write_vectors(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_embedding_from_word2vec_and_glove(tmp_path: Path) -> None:
    vocab = Vocab([*SPECIALS, "cat", "dog", "emu"])
    for header in (["3 2"], []):  # word2vec has a header line, GloVe has none
        path = write_vectors(tmp_path / "v.txt", [*header, "cat 1 2", "dog -1 0.5", "yak 9 9"])
        vectors = read_vectors(path)
        embedding, found = build_embedding(vocab, vectors=vectors, freeze=True)
        assert found == 2
        assert embedding(torch.tensor([[4, 5, 0]])).tolist()[0] == [[1, 2], [-1, 0.5], [0, 0]]
        assert not embedding.weight.requires_grad


def test_read_vectors_keeps_only_the_given_tokens(tmp_path: Path) -> None:
    for header in (["4 2"], []):
        path = write_vectors(
            tmp_path / "v.txt", [*header, "yak 9 9", "cat 1 2", "dog 3 4", "emu 0 1"]
        )
        vectors = read_vectors(path, keep={"dog", "yak", "absent"})
        assert vectors.tokens == ["yak", "dog"]
        assert vectors.matrix.tolist() == [[9, 9], [3, 4]]
        none = read_vectors(path, keep={"absent"})
        assert none.tokens == [] and none.matrix.shape == (0, 2)
    path = write_vectors(tmp_path / "w.txt", ["5 2", "cat 1 2"])  # the count still checked
    with pytest.raises(DataFormatError, match=r"w\.txt:1: header declares 5 vectors, found 1"):
        read_vectors(path, keep={"dog"})


def test_a_vector_table_reads_shared_rows_and_names_bad_lines(tmp_path: Path) -> None:
    import numpy as np

    from rnnkit.data.representations import vector_words

    np.save(tmp_path / "t.npy", np.array([[1, 2], [3, 4]], dtype=np.float32))
    table = tmp_path / "t.tsv"
    table.write_text("12\t1\nthe\t0\nThe\t0\nfilm\t1\n", encoding="utf-8")
    vectors = read_vectors(table)
    assert vectors.tokens == ["12", "the", "The", "film"]
    assert vectors.matrix.tolist() == [[3, 4], [1, 2], [1, 2], [3, 4]]
    kept = read_vectors(table, keep={"film", "absent"})
    assert kept.tokens == ["film"] and kept.matrix.tolist() == [[3, 4]]
    assert vector_words(table, 2) == ["12", "the"]  # a digit word first is no header
    table.write_text("the\t0\nfilm 1\nemu\t7\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"t\.tsv:2: expected 'token<TAB>row'"):
        read_vectors(table)
    assert read_vectors(table, skip_bad=True).tokens == ["the"]
    table.write_text("the\t0\nemu\t7\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"t\.tsv:2: row 7 is outside t\.npy's 2 rows"):
        read_vectors(table, keep={"the"})
    (tmp_path / "t.npy").unlink()
    with pytest.raises(DataFormatError, match=r"needs its rows in t\.npy beside it"):
        read_vectors(table)


def test_vector_row_of_wrong_dimension_names_line(tmp_path: Path) -> None:
    path = write_vectors(tmp_path / "v.txt", ["cat 1 2 3", "dog 1 2", "emu 1 2 3"])
    with pytest.raises(DataFormatError, match=r"v\.txt:2: expected a token and 3 numbers"):
        read_vectors(path)
    assert read_vectors(path, skip_bad=True).tokens == ["cat", "emu"]
    path = write_vectors(tmp_path / "w.txt", ["5 2", "cat 1 2"])
    with pytest.raises(DataFormatError, match=r"w\.txt:1: header declares 5 vectors"):
        read_vectors(path)
    with pytest.raises(ValueError, match="dim=3 differs"):
        build_embedding(
            Vocab(list(SPECIALS)),
            dim=3,
            vectors=read_vectors(write_vectors(tmp_path / "x.txt", ["cat 1 2"])),
        )


def test_nb_log_count_ratios_by_hand() -> None:
    # vocab: 0 pad, 1 "good", 2 "bad", 3 "film"; two positive and two negative sequences
    ids = torch.tensor([[1, 3, 0], [1, 1, 3], [2, 3, 0], [3, 0, 0]])
    labels = torch.tensor([1, 1, 0, 0])
    r = nb_log_count_ratios(ids, labels, 4)
    p = torch.tensor([1.0, 2.0, 0.0, 2.0]) + 1  # sequences containing each id, class 1
    q = torch.tensor([2.0, 0.0, 1.0, 2.0]) + 1  # class 0 (pad counted; its row is zeroed later)
    expected = torch.log(p / p.sum()) - torch.log(q / q.sum())
    torch.testing.assert_close(r, expected)
    assert r[1] > 0 > r[2]  # "good" leans positive, "bad" negative
    with pytest.raises(ValueError, match="two classes"):
        nb_log_count_ratios(ids, torch.tensor([0, 1, 2, 1]), 4)
    with pytest.raises(ValueError, match=r"labels \(N,\)"):
        nb_log_count_ratios(ids, labels[:3], 4)


def _brute_ngrams(seq: list[int], order: int, vocab: int, buckets: int) -> set[int]:
    """The wide part's n-gram rows of one sequence, by the hash's definition."""
    out = set()
    for n in range(1, order + 1):
        for t in range(len(seq) - n + 1):
            if n == 1:
                out.add(seq[t])
                continue
            h = n
            for a in seq[t : t + n]:
                h = (h * NGRAM_PRIME + a) % buckets
            out.add(vocab + h)
    return out


@pytest.mark.parametrize("order", [1, 2, 3])
def test_ngram_ids_are_each_sequences_distinct_ngrams(order) -> None:
    g = torch.Generator().manual_seed(order)
    vocab, buckets, pad = 9, 7, 0  # few buckets: collisions merge n-grams, as the hash says
    lengths = torch.tensor([1, 2, 6, 9, 4])
    ids = torch.randint(1, vocab, (5, 9), generator=g)
    ids[1, :2] = torch.tensor([3, 3])  # a repeat
    grams = ngram_ids(ids, lengths, order, vocab, buckets, pad)
    assert grams.shape == (5, sum(max(9 - n + 1, 0) for n in range(1, order + 1)))
    for b, n in enumerate(lengths.tolist()):
        row = [int(x) for x in grams[b] if x != pad]
        assert len(row) == len(set(row))  # each n-gram once
        assert set(row) == _brute_ngrams(ids[b, :n].tolist(), order, vocab, buckets)
    # what lies past a sequence's length changes nothing
    noisy = ids.clone()
    noisy[torch.arange(9) >= lengths.unsqueeze(1)] = 5
    assert torch.equal(ngram_ids(noisy, lengths, order, vocab, buckets, pad), grams)


def test_ngram_ids_refuse_bad_arguments() -> None:
    ids, lengths = torch.ones(2, 3, dtype=torch.long), torch.tensor([3, 1])
    with pytest.raises(ValueError, match=r"order and buckets must be >= 1, got 0 and 5"):
        ngram_ids(ids, lengths, 0, 4, 5, 0)
    with pytest.raises(ValueError, match=r"expected ids \(B, T\) and lengths \(B,\)"):
        ngram_ids(ids, lengths[:1], 2, 4, 5, 0)
