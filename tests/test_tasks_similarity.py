"""Sentence similarity: the bible-paraphrase recipe on SWORD modules written here, the
siamese encoder (padded batches equal sentences alone, the loss equals its formula), the
metrics against brute force, the TF-IDF baseline by hand, and the task's file reading."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import _training_helpers  # noqa: F401  (one torch thread)
from rnnkit.data import Vocab, WordTokenizer
from rnnkit.data.batches import EpochBatches, TwinBatch
from rnnkit.data.codec import TextCodec, codec_from_json
from rnnkit.data.datasets.bible_paraphrase import clean_kjv, paraphrase_pairs
from rnnkit.data.errors import DataFormatError
from rnnkit.data.readers import read_table
from rnnkit.models.siamese import SiameseConfig, SiameseEncoder, split_pair
from rnnkit.tasks import similarity as sim
from test_data_recipes import convert, make_deb, write_ztext_module

# ---- the recipe ------------------------------------------------------------------------------


def _bible_debs(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(3)
    lengths = rng.integers(3, 30, size=12)
    web = {("Gen", 1, v + 1): f"<w>g{v}</w> " + "word " * n for v, n in enumerate(lengths)}
    kjv = {("Gen", 1, v + 1): f"g{v} " + "verb " * n for v, n in enumerate(lengths)}
    # Exod 1: the KJV numbering is shifted by one verse -> the chapter is dropped
    web |= {("Exod", 1, v + 1): "word " * n for v, n in enumerate(lengths)}
    kjv |= {("Exod", 1, v + 2): "verb " * n for v, n in enumerate(lengths[:-1])}
    web |= {
        ("Matt", 1, 1): "Yahweh spoke to Moses, saying,",
        ("Matt", 1, 2): "Yahweh spoke to Moses, saying,",
        ("Matt", 1, 3): "Abraham became the father of Isaac. " * 6,  # merged: dropped
        ("Matt", 1, 4): "Jesus wept.",
    }
    kjv |= {
        ("Matt", 1, 1): "\u00b6 And the \\nd LORD spake unto Moses, saying,",
        ("Matt", 1, 2): "And the LORD spake unto Moses, saying,",
        ("Matt", 1, 3): "Abraham begat Isaac.",
        ("Matt", 1, 4): "<w lemma='x'>Jesus</w><w>wept</w>.",
    }
    web |= {("Mark", 1, v): f"mark verse {v} in the web" for v in range(1, 4)}
    kjv |= {("Mark", 1, v): f"mark verse {v} in the kjv" for v in range(1, 4)}
    debs = {}
    for package, name, verses in (("web", "engWEB2015eb", web), ("kjv", "engKJV2006eb", kjv)):
        members = write_ztext_module(tmp_path / package, name, verses)
        debs[f"sword-text-{package}"] = make_deb(tmp_path / f"{package}.deb", members)
    return debs


def test_bible_paraphrase_recipe_on_sword_modules(tmp_path):
    debs = _bible_debs(tmp_path)
    counts = convert("bible-paraphrase", debs, tmp_path / "out")
    split_of, rows = {}, {}
    for split in counts:
        for r in read_table(tmp_path / "out" / f"{split}.tsv", ["id", "text_a", "text_b", "label"]):
            rows[r["id"]] = r
            split_of.setdefault(r["id"].split(".")[0], set()).add(split)
    assert all(len(s) == 1 for s in split_of.values())  # a book is in one split
    assert sorted(split_of) == ["Gen", "Mark", "Matt"]  # Exod: numbered differently
    positives = {k.split("/")[0] for k, r in rows.items() if r["label"] == "1"}
    assert "Matt.1.3" not in positives and len(positives) == 12 + 3 + 3
    for ident, r in rows.items():
        a, b = ident.split("/")
        assert r["label"] == ("1" if a == b else "0")
        assert a.rsplit(".", 1)[0] == b.rsplit(".", 1)[0]  # negatives from the same chapter
        assert r["text_a"] == rows[f"{a}/{a}"]["text_a"]  # the WEB verse of a
        assert r["text_b"] == rows[f"{b}/{b}"]["text_b"]  # the KJV text of b
    for verse in positives:  # one negative each: every chapter has other distinct verses
        assert sum(k.startswith(verse + "/") for k in rows) == 2
    assert rows["Matt.1.1/Matt.1.1"]["text_b"] == "And the LORD spake unto Moses, saying,"
    assert rows["Matt.1.4/Matt.1.4"]["text_b"] == "Jesus wept."
    # the repeated formula (Matt 1:1 and 1:2 in both texts) is no negative of its twin
    assert "Matt.1.1/Matt.1.2" not in rows and "Matt.1.2/Matt.1.1" not in rows
    again = convert("bible-paraphrase", debs, tmp_path / "again")
    assert again == counts
    for split in counts:  # seeded: the same files
        assert (tmp_path / "out" / f"{split}.tsv").read_text() == (
            tmp_path / "again" / f"{split}.tsv"
        ).read_text()


def test_paraphrase_pairs_negatives_per_positive_and_seed():
    verses = [(f"Ps.{c}.{v}", f"web {c} {v}", f"kjv {c} {v}") for c in (1, 2) for v in range(1, 8)]
    rows = paraphrase_pairs(verses, negatives=3, seed=5)
    assert rows == paraphrase_pairs(verses, negatives=3, seed=5)
    assert rows != paraphrase_pairs(verses, negatives=3, seed=6)
    assert len(rows) == 14 * 4
    for ident, _, b, label in rows:
        x, y = ident.split("/")
        assert (label == "1") == (x == y) and x.split(".")[1] == y.split(".")[1]
        assert b == f"kjv {y.split('.')[1]} {y.split('.')[2]}"
    # a two-verse chapter gives fewer negatives than asked
    assert len(paraphrase_pairs(verses[:2], negatives=3)) == 2 * 2
    with pytest.raises(ValueError, match="negatives must be >= 0"):
        paraphrase_pairs(verses, negatives=-1)


def test_kjv_cleaning():
    assert clean_kjv("\u00b6 And the \\nd LORD said,  go.") == "And the LORD said, go."


# ---- the model -------------------------------------------------------------------------------


def _model(**kw) -> SiameseEncoder:
    torch.manual_seed(0)
    config = SiameseConfig(vocab_size=20, embedding_dim=6, hidden_size=5, **kw)
    return SiameseEncoder(config).double().eval()


CONFIGS = [
    {"cell": "lstm", "pooling": "last"},
    {"cell": "gru", "pooling": "mean", "bidirectional": True},
    {"cell": "lstm", "pooling": "last", "bidirectional": True, "num_layers": 2},
    {"cell": "rnn", "pooling": "max", "similarity": "cosine"},
]


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: "-".join(map(str, kw.values())))
def test_padded_batches_encode_as_each_sentence_alone(kw):
    model = _model(**kw)
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([5, 1, 3, 7])
    ids = torch.zeros(4, 9, dtype=torch.long)  # padded beyond the longest, too
    for i, n in enumerate(lengths.tolist()):
        ids[i, :n] = torch.randint(4, 20, (n,), generator=g)
    padded = model.encode(ids, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = model.encode(ids[i : i + 1, :n], lengths[i : i + 1])
        torch.testing.assert_close(padded[i : i + 1], alone, rtol=0, atol=1e-12)
    # a pair batch (both sides in one call) gives the similarity of the vectors alone
    order = torch.tensor([2, 0, 3, 1])
    y = model(ids, lengths, ids[order, :8], lengths[order])
    torch.testing.assert_close(y, model.similarity(padded, padded[order]), rtol=0, atol=1e-12)
    vectors = model.sentence_vectors(ids, lengths, batch_size=3)
    torch.testing.assert_close(vectors, padded, rtol=0, atol=1e-12)


@pytest.mark.parametrize("similarity", ["manhattan", "cosine"])
@pytest.mark.parametrize("objective", ["bce", "mse"])
def test_loss_is_its_formula(similarity, objective):
    model = _model(similarity=similarity, objective=objective)
    ids = torch.tensor([[4, 5, 6], [7, 8, 0], [9, 0, 0]])
    lengths = torch.tensor([3, 2, 1])
    other = torch.tensor([2, 0, 1])  # no sentence paired with itself
    labels = torch.tensor([1.0, 0.0, 1.0])
    batch = TwinBatch(ids, lengths, ids[other], lengths[other], labels)
    loss, metrics = model.loss(batch)
    s_a, s_b = model.encode(ids, lengths), model.encode(ids[other], lengths[other])
    if similarity == "manhattan":
        y = torch.exp(-(s_a - s_b).abs().sum(-1))
    else:
        y = (1 + torch.nn.functional.cosine_similarity(s_a, s_b)) / 2
    if objective == "bce":
        want = torch.nn.functional.binary_cross_entropy(y, batch.labels.double())
    else:
        want = ((y - batch.labels) ** 2).mean()
    torch.testing.assert_close(loss, want, rtol=1e-10, atol=1e-12)
    right = ((y >= 0.5) == (batch.labels > 0.5)).double().mean()
    assert metrics["accuracy"] == pytest.approx(float(right))
    loss.backward()  # finite gradients reach the shared embedding
    assert torch.isfinite(model.embedding.weight.grad).all()
    assert float(model.embedding.weight.grad.abs().sum()) > 0


def test_pair_lengths_past_their_ids_are_refused():
    model = _model(**CONFIGS[0])
    a, b = torch.tensor([[4, 5, 6]]), torch.tensor([[4, 5, 6, 7, 8]])
    with pytest.raises(ValueError, match=r"a_lengths: expected values in 1\.\.3 .* max 5"):
        model(a, torch.tensor([5]), b, torch.tensor([5]))
    with pytest.raises(ValueError, match=r"b_lengths: expected values in 1\.\.5 .* min 0"):
        model(a, torch.tensor([3]), b, torch.tensor([0]))
    with pytest.raises(ValueError, match=r"b: expected ids \(B, T\) with b_lengths \(B,\)"):
        model(a, torch.tensor([3]), b, torch.tensor([5, 5]))


def test_config_errors_name_the_key():
    for kw, named in (
        ({"similarity": "l2"}, "similarity: expected one of ['manhattan', 'cosine'], got 'l2'"),
        ({"threshold": 1.0}, "threshold must be in (0, 1)"),
        ({"pooling": "attention"}, "pooling: expected one of"),
    ):
        with pytest.raises(ValueError, match=re.escape(named)):
            SiameseConfig(vocab_size=5, **kw)


def test_split_pair_forms():
    assert split_pair("a cat ||| a kitten", "x") == ("a cat", "a kitten")
    assert split_pair("a | b\tc", "x") == ("a | b", "c")
    assert split_pair(("one", "two"), "x") == ("one", "two")
    for bad in ("no separator", "a ||| b ||| c", "a\tb\tc", " ||| b"):
        with pytest.raises(ValueError, match="input 3: expected two texts separated by"):
            split_pair(bad, "input 3")


# ---- metrics against brute force ---------------------------------------------------------------


def test_roc_auc_equals_pair_count():
    rng = random.Random(0)
    for _ in range(20):
        n = rng.randint(2, 40)
        scores = torch.tensor([rng.choice([0.1, 0.2, 0.5, 0.7, rng.random()]) for _ in range(n)])
        labels = torch.tensor([float(rng.random() < 0.4) for _ in range(n)])
        pos = [float(s) for s, y in zip(scores, labels, strict=True) if y == 1]
        neg = [float(s) for s, y in zip(scores, labels, strict=True) if y == 0]
        if not pos or not neg:
            assert math.isnan(sim.roc_auc(scores, labels))
            continue
        brute = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
        assert sim.roc_auc(scores, labels) == pytest.approx(brute, abs=1e-12)


def test_best_threshold_is_the_best_of_all():
    rng = random.Random(1)
    for _ in range(30):
        n = rng.randint(1, 25)
        scores = torch.tensor([round(rng.random(), 1) for _ in range(n)])
        labels = torch.tensor([float(rng.random() < 0.5) for _ in range(n)])
        t = sim.best_threshold(scores, labels)
        grid = [-1.0, 2.0, *(float(s) for s in scores)]
        best = max(sim.accuracy(scores, labels, g) for g in grid)  # every split of the scores
        assert sim.accuracy(scores, labels, t) == pytest.approx(best)


def test_candidate_sets_and_recall():
    keys = ["a", "b", "a", "c", "d", "e", "f"]
    sets = sim.candidate_sets(keys, 4, seed=3)
    assert sets == sim.candidate_sets(keys, 4, seed=3)
    for i, chosen in enumerate(sets):
        assert chosen[0] == i and len(set(chosen)) == len(chosen) == 4
        assert all(keys[j] != keys[i] for j in chosen[1:])  # a copy of the partner is no rival
    assert all(len(c) == 6 for c in sim.candidate_sets(keys, 100, seed=0)[:1])  # all 5 others
    assert sim.recall_at_1([[0.9, 0.1, 0.5], [0.3, 0.3], [0.2, 0.4], [1.0]]) == pytest.approx(1 / 3)


def _toy_pairs() -> tuple[list[str], list[str], list[float]]:
    a = ["the cat sat", "the dog ran", "a bird sang", "the cat ran"]
    b = ["a cat sat", "the dog sat", "a bird sang loudly", "the bird sat"]
    return a, b, [1.0, 1.0, 1.0, 0.0]


def _codec(texts) -> TextCodec:
    tok = WordTokenizer(lowercase=True)
    return TextCodec(tok, Vocab.build(tok.tokenize(t) for t in texts), sim.LABELS)


def test_tfidf_by_hand():
    a, b, y = _toy_pairs()
    codec = _codec(a + b)
    train = sim.pair_batch(codec, a, b, y)
    idf = sim.fit_idf(train)
    n = 8  # distinct training texts
    df = {"the": 5, "cat": 3, "sat": 4, "bird": 3, "loudly": 1}
    for word, d in df.items():
        assert idf[codec.vocab.encode([word])[0]] == pytest.approx(math.log((1 + n) / (1 + d)) + 1)
    test = sim.pair_batch(codec, ["the cat", "zebra"], ["the cat sat", "the cat"], [1.0, 0.0])
    scores, _ = sim.tfidf_scores(test, idf, sim.SimilarityConfig(), candidates=False)
    w = {t: idf[codec.vocab.encode([t])[0]] for t in ("the", "cat", "sat")}
    want = (w["the"] ** 2 + w["cat"] ** 2) / (
        math.hypot(w["the"], w["cat"]) * math.hypot(w["the"], w["cat"], w["sat"])
    )
    assert float(scores[0]) == pytest.approx(want) and float(scores[1]) == 0.0  # zebra: unknown
    sklearn = pytest.importorskip("sklearn.feature_extraction.text")
    vec = sklearn.TfidfVectorizer(token_pattern=r"\S+").fit(sorted(set(a + b)))
    m = vec.transform(["the cat", "the cat sat"])
    assert float(scores[0]) == pytest.approx(float((m[0] @ m[1].T).toarray()[0, 0]))


def test_baseline_metrics_on_a_toy_split():
    a, b, y = _toy_pairs()
    codec = _codec(a + b)
    batches = {s: sim.pair_batch(codec, a, b, y) for s in ("train", "val", "test")}
    out = sim.tfidf_baseline(batches, sim.SimilarityConfig(candidates=3, candidate_seed=0))
    assert set(out) == {
        f"tfidf_{k}" for k in ("accuracy", "auc", "threshold", "accuracy_tuned", "recall_at_1")
    }
    scores, ranked = sim.tfidf_scores(
        batches["test"], sim.fit_idf(batches["train"]), sim.SimilarityConfig(candidates=3)
    )
    assert out["tfidf_auc"] == pytest.approx(sim.roc_auc(scores, torch.tensor(y)))
    assert len(ranked) == 3 and all(len(r) == 3 for r in ranked)
    assert out["tfidf_recall_at_1"] == pytest.approx(sim.recall_at_1(ranked))


# ---- the task: files, codec, score hook ------------------------------------------------------


def test_bad_label_names_file_line_and_field(tmp_path):
    f = tmp_path / "pairs.tsv"
    f.write_text('text_a\ttext_b\tlabel\nx\ty\t1\n\n"q\nr"\tz\t0\nu\tv\tyes\n')
    with pytest.raises(DataFormatError, match=r"pairs.tsv:6: label: expected 0 or 1, found 'yes'"):
        sim.read_pairs(f, sim.SimilarityConfig())
    j = tmp_path / "pairs.jsonl"
    rows = [{"text_a": "x", "text_b": "y", "label": 1}, {"text_a": "u", "text_b": "v", "label": 2}]
    j.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    with pytest.raises(DataFormatError, match=r"pairs.jsonl:3: label: expected 0 or 1, found '2'"):
        sim.read_pairs(j, sim.SimilarityConfig())
    with pytest.raises(DataFormatError, match=r"pairs.tsv:1: .*missing \['second'\]"):
        sim.read_pairs(f, sim.SimilarityConfig(text_b="second"))


def test_prepare_score_and_codec_round_trip(tmp_path):
    rng = random.Random(0)
    words = ["sun", "moon", "star", "sea", "hill", "tree", "rain", "wind"]
    f = tmp_path / "pairs.csv"
    lines = ["text_a,text_b,label"]
    for _ in range(120):
        x, z = rng.sample(words, 3), rng.sample(words, 3)
        lines += [f"{' '.join(x)},{' '.join(reversed(x))},1", f"{' '.join(x)},{' '.join(z)},0"]
    f.write_text("\n".join(lines) + "\n")
    cfg = sim.SimilarityConfig(data=str(f), candidates=5)
    data = sim.prepare(cfg, 0, None)
    assert data.train.size + data.val.size + data.test.size == 240
    assert data.fixed["vocab_size"] == len(words) + 4
    again = codec_from_json(data.codec.to_json())
    assert again.labels == sim.LABELS and again.vocab.tokens == data.codec.vocab.tokens
    model = SiameseEncoder(SiameseConfig(vocab_size=data.fixed["vocab_size"], hidden_size=4))
    model.codec = data.codec
    scores = sim.score(model, data.test, data)
    assert set(scores) == {"accuracy", "auc", "threshold", "accuracy_tuned", "recall_at_1"}
    y = model(data.test.a, data.test.a_lengths, data.test.b, data.test.b_lengths).detach()
    assert scores["auc"] == pytest.approx(sim.roc_auc(y, data.test.labels), abs=1e-6)
    assert {k.removeprefix("tfidf_") for k in data.baseline} == set(scores)
    # TF-IDF over bags of words cannot tell a sentence from its reversal: AUC 1 on this data
    assert data.baseline["tfidf_auc"] == 1.0
    batches = list(EpochBatches(data.train, 16, seed=0, bucket=True).epoch(0))
    assert all(isinstance(b, TwinBatch) and b.n_targets == 16 for b in batches)
    with pytest.raises(ValueError, match="truncated BPTT"):
        next(data.train.time_chunks(4))
    p = model.predict(["sun moon star ||| star moon sun", ("sea", "hill")])
    assert [x.label in sim.LABELS for x in p] == [True, True]
    assert str(p[0]).endswith("\tsun moon star ||| star moon sun")


def test_unknown_data_is_refused():
    with pytest.raises(FileNotFoundError, match=r"task\.data='movie-reviews'"):
        sim.prepare(sim.SimilarityConfig(data="movie-reviews"), 0, None)
    with pytest.raises(FileNotFoundError, match="no such file of pairs"):
        sim.prepare(sim.SimilarityConfig(data="missing.tsv"), 0, None)


def test_train_from_records(tmp_path):
    """rnnkit.train with (text_a, text_b, label) triples: written as JSONL, read back."""
    import rnnkit

    rng = random.Random(2)
    words = ["sun", "moon", "star", "sea", "hill", "tree"]
    records = []
    for _ in range(60):
        x, z = rng.sample(words, 2), rng.sample(words, 2)
        records += [(" ".join(x), " ".join(reversed(x)), 1), (" ".join(x), " ".join(z), 0)]
    overrides = [
        "model.hidden_size=4",
        "model.embedding_dim=4",
        "trainer.epochs=1",
        "trainer.batch_size=16",
        "trainer.log.tensorboard=false",
    ]
    model = rnnkit.train("siamese", tmp_path / "run", records=records, overrides=overrides)
    assert model.predict(("sun moon", "moon sun")).label in sim.LABELS
    with pytest.raises(ValueError, match=r"records\[0\]: expected a \(text_a, text_b, label\)"):
        sim.store_records([("only", "two")], tmp_path / "bad.jsonl")
