"""BMES word segmentation: tags <-> words, robust reading of ill-formed tags, CRF
constraints, and word precision/recall/F1 with OOV and IV recall as the SIGHAN scorer
reports them, on hand-made cases (and a brute-force check of the CRF constraints)."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rnnkit.crf import LinearChainCRF
from rnnkit.tagging.metrics import word_scores
from rnnkit.tagging.schemes import (
    bmes_spans,
    bmes_to_words,
    bmes_transitions,
    is_bmes,
    words_to_bmes,
)
from rnnkit.tasks.tagging import forward_max_match

WORDS = ["我", "爱", "北京", "天安门"]
TAGS = ["S", "S", "B", "E", "B", "M", "E"]


def test_words_to_tags_and_back():
    assert words_to_bmes(WORDS) == TAGS
    assert bmes_spans(TAGS) == [(0, 1), (1, 2), (2, 4), (4, 7)]
    assert bmes_to_words("我爱北京天安门", TAGS) == WORDS
    assert bmes_to_words(list("我爱北京天安门"), TAGS) == WORDS
    assert bmes_to_words(["New", "York", "is"], ["B", "E", "S"], joiner=" ") == ["New York", "is"]
    assert words_to_bmes([]) == [] and bmes_spans([]) == []


@given(st.lists(st.text(alphabet="甲乙丙丁", min_size=1, max_size=5), max_size=8))
def test_round_trip_of_any_segmentation(words):
    tags = words_to_bmes(words)
    assert len(tags) == sum(map(len, words))
    assert bmes_to_words("".join(words), tags) == words


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["B", "B", "E"], [(0, 1), (1, 3)]),  # a word ends before B even without an E
        (["B", "S"], [(0, 1), (1, 2)]),  # ... and before S
        (["S", "M", "E"], [(0, 1), (1, 3)]),  # M after a closed word starts a new word
        (["E", "E"], [(0, 1), (1, 2)]),  # E after a closed word is a one-character word
        (["B", "M"], [(0, 2)]),  # a word still open at the end ends there
        (["M"], [(0, 1)]),
    ],
)
def test_ill_formed_sequences_still_cover_the_text(tags, spans):
    assert bmes_spans(tags) == spans


@given(st.lists(st.sampled_from("BMES"), min_size=1, max_size=12))
def test_any_tag_sequence_gives_a_segmentation(tags):
    found = bmes_spans(tags)
    assert [s for s, _ in found] == [0, *[e for _, e in found[:-1]]]  # no gaps, no overlaps
    assert found[-1][1] == len(tags)
    # a well-formed sequence is read back exactly
    words = ["x" * (e - s) for s, e in found]
    assert bmes_spans(words_to_bmes(words)) == found


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"tag 'O' at position 1"):
        bmes_spans(["S", "O"])
    with pytest.raises(ValueError, match="word 1: empty"):
        words_to_bmes(["a", ""])
    with pytest.raises(ValueError, match="3 characters but 2 tags"):
        bmes_to_words("abc", ["B", "E"])
    assert is_bmes({"B", "M", "E", "S"}) and is_bmes(["S", "B", "E"])
    assert not is_bmes({"B-PER", "O"}) and not is_bmes({"B", "I", "O"}) and not is_bmes([])


def test_crf_constraints_allow_exactly_the_well_formed_sequences():
    tags = ["B", "M", "E", "S"]
    allowed, start, end = (torch.tensor(x) for x in bmes_transitions(tags))
    crf = LinearChainCRF(4, (allowed, start, end))
    with torch.no_grad():
        crf.transitions.zero_()
        crf.start.zero_()
        crf.end.zero_()
    emissions = torch.zeros(1, 4, 4)
    well_formed = 0
    for path in itertools.product(range(4), repeat=4):  # brute force over all 256 paths
        names = [tags[i] for i in path]
        ok = words_to_bmes(bmes_to_words("abcd", names)) == names
        well_formed += ok
        with torch.no_grad():
            nll = crf.nll(emissions, torch.tensor([path]))
        assert (float(nll) < 100) == ok, names  # forbidden paths cost ~1e4
    # well-formed paths are the compositions of 4 characters into words: 2^3 = 8
    assert well_formed == 8
    nll_ok = crf.nll(emissions, torch.tensor([[0, 2, 3, 3]])).detach()
    assert float(nll_ok) == pytest.approx(torch.log(torch.tensor(8.0)).item(), abs=1e-4)
    # Viterbi never decodes an ill-formed sequence, whatever the emissions
    torch.manual_seed(0)
    for path in crf.decode(torch.randn(16, 7, 4) * 5):
        names = [tags[i] for i in path]
        assert words_to_bmes(bmes_to_words("abcdefg", names)) == names


def test_word_scores_by_character_offsets():
    gold = [["我", "爱", "北京", "天安门"], ["他", "来", "了"]]
    pred = [["我爱", "北京", "天", "安门"], ["他", "来", "了"]]
    s = word_scores(gold, pred)
    # correct: 北京, 他, 来, 了 = 4; predicted 7; gold 7
    assert (s.correct, s.predicted, s.gold) == (4, 7, 7)
    assert s.precision == pytest.approx(4 / 7) and s.recall == pytest.approx(4 / 7)
    assert s.f1 == pytest.approx(4 / 7)
    assert s.oov_rate is None and "oov_recall" not in s.as_dict()


def test_a_word_string_at_another_offset_does_not_count():
    # "ab" is gold at 0-2 and predicted at 2-4: the same string, not the same span
    s = word_scores([["ab", "a", "b"]], [["a", "b", "ab"]])
    assert s.correct == 0 and s.f1 == 0.0


def test_oov_and_iv_recall_as_the_sighan_script():
    lexicon = {"我", "爱", "北京"}  # training words; 天安门 and 广场 are OOV
    gold = [["我", "爱", "北京", "天安门", "广场"]]
    pred = [["我", "爱", "北京", "天安门", "广", "场"]]
    s = word_scores(gold, pred, lexicon)
    assert (s.correct, s.gold, s.predicted) == (4, 5, 6)
    assert s.recall == pytest.approx(4 / 5) and s.precision == pytest.approx(4 / 6)
    assert s.f1 == pytest.approx(2 * (4 / 6) * (4 / 5) / (4 / 6 + 4 / 5))
    assert s.oov_rate == pytest.approx(2 / 5)
    assert s.oov_recall == pytest.approx(1 / 2)  # 天安门 right, 广场 wrong
    assert s.iv_recall == 1.0
    assert s.as_dict() == {
        "word_precision": s.precision,
        "word_recall": s.recall,
        "word_f1": s.f1,
        "oov_rate": s.oov_rate,
        "oov_recall": s.oov_recall,
        "iv_recall": s.iv_recall,
    }
    # OOV is by token occurrence: a repeated OOV word counts each time
    twice = word_scores([["天安门", "天安门"]], [["天安门", "天", "安门"]], lexicon)
    assert (twice.oov_rate, twice.oov_recall, twice.iv_recall) == (1.0, 0.5, 0.0)


def test_word_scores_edge_cases():
    empty = word_scores([[]], [[]], set())
    assert (empty.precision, empty.recall, empty.f1, empty.oov_recall) == (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="sentence 0: gold and predicted words spell"):
        word_scores([["ab"]], [["ac"]])
    with pytest.raises(ValueError, match="gold has 1 sentences but pred has 2"):
        word_scores([["a"]], [["a"], ["b"]])


def test_forward_maximum_matching():
    lexicon = {"北京", "天安门", "天安", "门广"}
    assert forward_max_match(list("北京天安门广场"), lexicon, 3) == ["北京", "天安门", "广", "场"]
    assert forward_max_match(list("北京天安门"), lexicon, 2) == ["北京", "天安", "门"]
    assert forward_max_match([], lexicon, 3) == []
