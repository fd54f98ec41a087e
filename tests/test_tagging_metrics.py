import pytest

from rnnkit.tagging import label_scores, macro_f1, span_scores, token_accuracy

GOLD = [
    ["B-PER", "I-PER", "O", "B-LOC", "O"],
    ["B-ORG", "O", "B-PER", "O"],
]
PRED = [
    ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"],  # PER right; LOC boundary wrong
    ["B-ORG", "O", "B-LOC", "O"],  # ORG right; PER predicted as LOC
]


def test_span_scores_hand_computed():
    scores = span_scores(GOLD, PRED)
    # gold spans: PER x2, LOC x1, ORG x1; predicted: PER x1, LOC x2, ORG x1; correct: PER, ORG
    assert scores.overall.precision == pytest.approx(2 / 4)
    assert scores.overall.recall == pytest.approx(2 / 4)
    assert scores.overall.f1 == pytest.approx(0.5)
    assert scores.overall.support == 4
    assert set(scores.per_type) == {"LOC", "ORG", "PER"}
    per = scores.per_type["PER"]
    assert (per.precision, per.recall, per.support) == (1.0, 0.5, 2)
    assert per.f1 == pytest.approx(2 / 3)
    loc = scores.per_type["LOC"]
    assert (loc.precision, loc.recall, loc.f1, loc.support) == (0.0, 0.0, 0.0, 1)
    assert scores.per_type["ORG"].f1 == 1.0
    table = scores.table()
    assert table.splitlines()[-1].split() == ["overall", "0.5000", "0.5000", "0.5000", "4"]


def test_span_scores_schemes_score_the_same_spans():
    bioes_gold = [["B-PER", "E-PER", "O", "S-LOC", "O"], ["S-ORG", "O", "S-PER", "O"]]
    assert span_scores(bioes_gold, PRED) == span_scores(GOLD, PRED)


def test_span_scores_no_spans_and_perfect():
    empty = span_scores([["O", "O"]], [["O", "O"]])
    assert (empty.overall.f1, empty.per_type) == (0.0, {})
    assert span_scores(GOLD, GOLD).overall.f1 == 1.0


def test_token_accuracy_hand_computed():
    # 9 tokens; wrong: position 4 of sentence 0, position 2 of sentence 1
    assert token_accuracy(GOLD, PRED) == pytest.approx(7 / 9)
    assert token_accuracy([["NOUN", "VERB"]], [["NOUN", "NOUN"]]) == 0.5


def test_misaligned_inputs_are_named():
    with pytest.raises(ValueError, match="sequence 1: gold has 4 tags but pred has 3"):
        span_scores(GOLD, [PRED[0], ["O", "O", "O"]])
    with pytest.raises(ValueError, match="2 sequences but pred has 1"):
        token_accuracy(GOLD, PRED[:1])
    with pytest.raises(ValueError, match="no tokens"):
        token_accuracy([[]], [[]])


def test_label_scores_equal_sklearn_per_label():
    from sklearn.metrics import precision_recall_fscore_support

    gold = [["none", ",", "."], ["none", "none", "?", "none", "."]]
    pred = [["none", ".", "."], [",", "none", ".", "none", "."]]
    labels = ["none", ",", ".", "?", "!"]  # "!" never occurs: all zeros, support 0
    scores = label_scores(gold, pred, labels)
    assert list(scores) == labels
    flat_g = [x for row in gold for x in row]
    flat_p = [x for row in pred for x in row]
    p, r, f, s = precision_recall_fscore_support(
        flat_g, flat_p, labels=labels, average=None, zero_division=0
    )
    for i, label in enumerate(labels):
        got = scores[label]
        assert got.precision == pytest.approx(p[i]) and got.recall == pytest.approx(r[i])
        assert got.f1 == pytest.approx(f[i]) and got.support == s[i]
    assert scores["."].precision == 2 / 4 and scores["."].recall == 1.0  # 4 predicted, 2 gold
    # macro F1 over the non-majority labels: mean of ",", ".", "?", "!" F1
    assert macro_f1(scores, exclude=("none",)) == pytest.approx(sum(f[1:]) / 4)
    assert set(label_scores(gold, pred)) == {"none", ",", ".", "?"}
    with pytest.raises(ValueError, match="no labels left"):
        macro_f1(scores, exclude=tuple(labels))
    with pytest.raises(ValueError, match="sequence 0"):
        label_scores([["a"]], [["a", "b"]])
