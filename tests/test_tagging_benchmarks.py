"""The helpers of benchmarks/punctuation.py at toy sizes (no training, no dataset)."""

from __future__ import annotations

import pytest

from _benchmarks import load_benchmark
from rnnkit.data.punctuation import words_and_labels


def test_sample_is_seeded_and_reaches_the_word_count():
    p = load_benchmark("punctuation")
    units = [words_and_labels(" ".join(["a"] * n)) for n in range(1, 21)]  # 210 words
    first = p.sample(units, 50, seed=3)
    assert sum(len(u.words) for u in first) >= 50
    assert sum(len(u.words) for u in first[:-1]) < 50  # stops at the first unit past 50
    assert [len(u.words) for u in p.sample(units, 50, seed=3)] == [len(u.words) for u in first]
    assert [len(u.words) for u in p.sample(units, 50, seed=4)] != [len(u.words) for u in first]
    assert p.sample(units, 0, seed=3) == units  # 0: everything, in order


def test_baselines_and_scores():
    p = load_benchmark("punctuation")
    train = [words_and_labels("Why, Romeo? The LORD said: go, go."), words_and_labels("go now")]
    words = [x.words for x in train]
    gold = {"case": [x.cases for x in train], "punct": [x.puncts for x in train]}
    test_words = [["go", "romeo", "unseen"]]
    test_gold = {"case": [["lower", "cap", "cap"]], "punct": [[",", "?", "none"]]}

    majority = p.majority_predict(gold, test_words)
    assert majority == {"case": [["lower"] * 3], "punct": [["none"] * 3]}
    s = p.score(test_gold, majority)
    assert s["case"]["macro_f1_non_majority"] == 0.0 and s["punct"]["accuracy"] == 1 / 3

    # "go": lower 3 times; followed by ",", "." and nothing once each -> the tie goes to the
    # more frequent mark overall ("none"); "romeo" seen once: cap, "?"; unseen: majority
    per_word = p.word_majority_predict(words, gold, test_words)
    assert per_word == {"case": [["lower", "cap", "lower"]], "punct": [["none", "?", "none"]]}
    s = p.score(test_gold, per_word)
    assert s["case"]["per_class"]["cap"]["recall"] == 0.5
    assert s["case"]["macro_f1_non_majority"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert s["punct"]["per_class"]["?"]["f1"] == 1.0
    assert "| word-majority |" in p.tables([{"model": "word-majority", "scores": s, "info": {}}])
