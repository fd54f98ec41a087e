import pytest
from hypothesis import given
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities

from rnnkit.tagging import convert, detect_scheme, spans, spans_to_tags, split_tag, tag_set

IO = ["I-PER", "I-PER", "O", "O", "I-LOC", "I-LOC", "O"]
BIO = ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"]
BIOES = ["B-PER", "E-PER", "O", "O", "B-LOC", "E-LOC", "O"]
SPANS = [("PER", 0, 2), ("LOC", 4, 6)]


@pytest.mark.parametrize("tags", [IO, BIO, BIOES])
def test_spans_of_each_scheme(tags):
    assert spans(tags) == SPANS


@pytest.mark.parametrize(
    ("source", "scheme", "expected"),
    [
        (BIO, "IO", IO),
        (BIO, "BIOES", BIOES),
        (BIOES, "BIO", BIO),
        (IO, "BIO", BIO),
        (IO, "BIOES", BIOES),
        (BIOES, "IO", IO),
    ],
)
def test_convert_between_schemes(source, scheme, expected):
    assert convert(source, scheme) == expected


def test_single_token_spans_and_adjacent_same_type():
    tags = ["B-PER", "B-PER", "I-PER", "O", "B-ORG"]
    assert spans(tags) == [("PER", 0, 1), ("PER", 1, 3), ("ORG", 4, 5)]
    assert convert(tags, "BIOES") == ["S-PER", "B-PER", "E-PER", "O", "S-ORG"]
    # IO cannot separate two adjacent PER spans: they merge into one
    assert spans(convert(tags, "IO")) == [("PER", 0, 3), ("ORG", 4, 5)]


def test_ill_formed_sequences_follow_conlleval():
    # I- after O opens a span; a type change closes the open span
    assert spans(["O", "I-PER", "I-LOC", "E-LOC"]) == [("PER", 1, 2), ("LOC", 2, 4)]
    # E- after O opens (and closes) a span; B- after B- of the same type starts anew
    assert spans(["E-PER", "B-LOC", "B-LOC"]) == [("PER", 0, 1), ("LOC", 1, 2), ("LOC", 2, 3)]


def test_bad_tags_name_the_tag_and_position():
    with pytest.raises(ValueError, match=r"'X-PER' at position 1"):
        spans(["O", "X-PER"])
    with pytest.raises(ValueError, match="'B-'"):
        split_tag("B-")
    with pytest.raises(ValueError, match="scheme"):
        convert(BIO, "IOB1")


def test_spans_to_tags_rejects_overlaps_and_out_of_range():
    with pytest.raises(ValueError, match="overlaps"):
        spans_to_tags([("A", 0, 2), ("B", 1, 3)], 4)
    with pytest.raises(ValueError, match="outside"):
        spans_to_tags([("A", 2, 5)], 4)


def test_detect_scheme_and_tag_set():
    assert detect_scheme(IO) == "IO"
    assert detect_scheme(BIO) == "BIO"
    assert detect_scheme(BIOES) == "BIOES"
    assert tag_set(["PER", "LOC"], "BIO") == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert len(tag_set(["PER"], "BIOES")) == 5


tags_strategy = st.lists(
    st.sampled_from(["O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B", "E-B", "S-B"]), max_size=12
)


@given(tags_strategy)
def test_spans_agree_with_seqeval(tags):
    expected = [(kind, start, end + 1) for kind, start, end in get_entities(tags)]
    assert spans(tags) == expected


@given(tags_strategy, st.sampled_from(["BIO", "BIOES"]))
def test_conversion_preserves_spans(tags, scheme):
    converted = convert(tags, scheme)
    assert spans(converted) == spans(tags)
    assert detect_scheme(converted) == (scheme if spans(tags) else "IO")
    assert convert(convert(converted, "BIOES"), scheme) == converted
