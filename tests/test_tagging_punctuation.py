import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnkit.data.punctuation import (
    CASES,
    PUNCTS,
    apply_case,
    build_punctuation,
    case_class,
    normalise,
    restore,
    units,
    words_and_labels,
    write_conll,
)
from rnnkit.data.readers import read_conll
from rnnkit.tasks import get_task
from rnnkit.tasks.tagging import TaggingConfig


def test_labels_hand_computed():
    lab = words_and_labels("Why, Romeo?  The LORD said: go.")
    assert lab.words == ["why", "romeo", "the", "lord", "said", "go"]
    assert lab.cases == ["cap", "cap", "cap", "upper", "lower", "lower"]
    assert lab.puncts == [",", "?", "none", "none", ":", "."]
    assert lab.inexact == []
    assert lab.tags()[0] == "cap|,"


def test_quotes_dashes_and_runs_of_marks():
    lab = words_and_labels('"Don\'t -- stop!?" said I (twice)... 42;')
    assert lab.words == ["don't", "stop", "said", "i", "twice", "42"]
    assert lab.cases == ["cap", "lower", "lower", "cap", "lower", "lower"]
    assert lab.puncts == ["none", "!", "none", "none", ".", ";"]
    assert normalise('"Don\'t -- stop!?" said I (twice)... 42;') == (
        "Don't stop! said I twice. 42;"
    )


def test_mixed_case_words_are_reported():
    lab = words_and_labels("Old McDonald had an iPhone")
    assert lab.inexact == [1, 4]
    assert case_class("McDonald") == ("cap", False)
    assert case_class("iPhone") == ("lower", False)
    assert case_class("NATO") == ("upper", True)
    assert case_class("I") == ("cap", True)


def test_restore_errors_name_the_field():
    with pytest.raises(ValueError, match="equally long"):
        restore(["a"], [], ["none"])
    with pytest.raises(ValueError, match="punct: expected"):
        restore(["a"], ["lower"], ["-"])
    with pytest.raises(ValueError, match="case: expected"):
        apply_case("a", "title")


word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6)


@given(st.lists(st.tuples(word, st.sampled_from(CASES), st.sampled_from(PUNCTS)), max_size=10))
def test_labels_are_exact_by_construction(items):
    # a one-letter word has no upper class distinct from cap
    items = [(w, "cap" if c == "upper" and len(w) == 1 else c, p) for w, c, p in items]
    words, cases, puncts = (list(x) for x in zip(*items, strict=True)) if items else ([], [], [])
    text = restore(words, cases, puncts)
    lab = words_and_labels(text)
    assert (lab.words, lab.cases, lab.puncts, lab.inexact) == (words, cases, puncts, [])
    assert normalise(text) == text


def test_write_conll_feeds_the_tagging_task(tmp_path):
    f = tmp_path / "punct.txt"
    texts = [
        "In the beginning God created the heaven and the earth.",
        "",
        "Old McDonald",
        "O Romeo, Romeo! wherefore art thou Romeo?",
    ]
    assert write_conll(f, units(texts)) == 2  # the empty text and the McDonald one are dropped
    sentences = read_conll(f, tag_column=3)
    assert sentences[1].tokens[:3] == ["o", "romeo", "romeo"]
    assert sentences[1].tags[:3] == ["cap|none", "cap|,", "cap|!"]
    data = get_task("tagging").prepare(
        TaggingConfig(train=str(f), val=str(f), test=str(f), column="2"), 0, None
    )
    assert data.codec.tags == ("!", ",", ".", "?", "none")  # sorted
    assert data.codec.scheme == "" and data.fixed["scheme"] == ""  # not span tags: accuracy only


def test_units_cut_long_texts():
    pieces = units(["One, two three. Four five six seven."], max_words=3)
    assert [p.words for p in pieces] == [
        ["one", "two", "three"],
        ["four", "five", "six"],
        ["seven"],
    ]
    assert pieces[0].puncts == [",", "none", "."]
    assert units(["Old McDonald"], drop_inexact=False)[0].inexact == [1]


def test_build_from_fetched_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "data"))
    plays = tmp_path / "data" / "shakespeare"
    bible = tmp_path / "data" / "bible-en-es"
    plays.mkdir(parents=True)
    bible.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (plays / f"{split}.txt").write_text(
            "HAMLET\n\nHAMLET.\nTo be, or not to be,\nthat is the question.\n\n\nEXIT.\n"
        )
        (bible / f"{split}.tsv").write_text(
            "id\ten\tes\nGen.1.1\tIn the beginning God created.\tEn el principio.\n"
        )
    counts = build_punctuation("shakespeare", tmp_path / "plays")
    assert counts == {"train": 3, "valid": 3, "test": 3}
    speech = read_conll(tmp_path / "plays" / "train.conll", tag_column=3)[1]
    assert speech.tokens[:3] == ["hamlet", "to", "be"]
    assert speech.tags[:4] == ["upper|.", "cap|none", "lower|,", "lower|none"]
    assert build_punctuation("bible-en-es", tmp_path / "bible")["test"] == 1
    with pytest.raises(ValueError, match="source: expected"):
        build_punctuation("quran", tmp_path / "x")
