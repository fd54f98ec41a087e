"""Music encodings: a chorale through music21 into a piano roll and back, the event tokens,
the codecs' JSON, and the chorale split by tune."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rnnkit.data.codec import MelodyCodec, PianoRollCodec, codec_from_json
from rnnkit.data.datasets.music import chorale_splits, incipit, riemenschneider, tunes
from rnnkit.data.music_io import REST, parts_to_roll, roll_to_parts
from rnnkit.data.readers import read_scores
from rnnkit.data.tokenizers import MusicTokenizer, tokenizer_from_config
from rnnkit.data.vocab import Vocab

# Two 4/4 bars of four voices that never cross, double or repeat a pitch: quarters, eighths,
# a half note, and a rest in the bass (the lowest voice, so ranks still name the voices).
CHORALE = {
    "Soprano": [(72, 1.0), (74, 0.5), (76, 0.5), (77, 1.0), (76, 1.0), (74, 2.0), (72, 2.0)],
    "Alto": [(67, 1.0), (69, 1.0), (67, 2.0), (65, 1.0), (64, 1.0), (67, 2.0)],
    "Tenor": [(64, 1.0), (65, 1.0), (64, 0.5), (62, 0.5), (60, 1.0), (59, 2.0), (64, 2.0)],
    "Bass": [(48, 1.0), (REST, 1.0), (45, 2.0), (43, 2.0), (48, 2.0)],
}


def _write_musicxml(parts: dict, path: Path) -> Path:
    import music21

    score = music21.stream.Score()
    for name, events in parts.items():
        part = music21.stream.Part()
        part.partName = name
        part.append(music21.meter.TimeSignature("4/4"))
        for pitch, ql in events:
            part.append(
                music21.note.Rest(quarterLength=ql)
                if pitch == REST
                else music21.note.Note(pitch, quarterLength=ql)
            )
        score.insert(0, part)
    score.write("musicxml", fp=str(path))
    return path


def test_a_chorale_round_trips_through_music21_and_the_piano_roll(tmp_path):
    [score] = read_scores(_write_musicxml(CHORALE, tmp_path / "chorale.musicxml"))
    assert score.parts == CHORALE  # music21 wrote and read what we built
    codec = PianoRollCodec(low=40, pitches=40, frame=0.5, part_names=tuple(CHORALE))
    roll = codec.roll(list(score.parts.values()))  # (T, P) = (16 eighths, 40 pitches)
    assert roll.shape == (16, 40)
    on = [sorted(40 + int(k) for k in torch.nonzero(frame).flatten()) for frame in roll]
    assert on[0] == [48, 64, 67, 72] and on[1] == [48, 64, 67, 72]  # a quarter: two frames
    assert on[2] == [65, 69, 74] and on[3] == [65, 69, 76]  # bass rests; soprano eighths
    assert on[5] == [45, 62, 67, 77] and on[7] == [45, 60, 67, 76]
    # back: the frames as text, parts by rank, written as MIDI and MusicXML through music21
    text = codec.decode(roll)
    assert text.split()[:3] == ["48.64.67.72", "48.64.67.72", "65.69.74"]
    torch.testing.assert_close(codec.encode(text), roll)
    written = codec.write_sample(text, tmp_path / "back.mid", title="round trip")
    assert [p.name for p in written] == ["back.mid", "back.musicxml", "back.png"]
    for path in written[:2]:
        [again] = read_scores(path)
        assert list(again.parts.values()) == list(CHORALE.values()), path.name
    [xml] = read_scores(written[1])
    assert list(xml.parts) == list(CHORALE)  # the codec's part names


def test_roll_sampling_rules():
    # a note sounds in the frames whose start it covers; a note inside one frame is lost
    parts = [[(60, 0.75), (62, 0.25), (64, 1.0)]]
    roll = parts_to_roll(parts, 60, 5, 0.5)  # frames at 0, 0.5, 1.0, 1.5
    assert [[60 + int(k) for k in torch.nonzero(f).flatten()] for f in roll] == [
        [60],
        [60],
        [64],
        [64],
    ]
    # a repeated note reads back as one held note; silence as a rest in every part
    assert roll_to_parts(parts_to_roll([[(60, 0.5), (60, 0.5)]], 60, 1, 0.5), 60, 0.5) == [
        [(60, 1.0)]
    ]
    assert roll_to_parts(torch.zeros(2, 3, dtype=torch.bool), 60, 1.0) == [[(REST, 2.0)]]
    with pytest.raises(ValueError, match=r"pitch 80 \(part 1, quarter 0\) is outside .* 60-64"):
        parts_to_roll([[(80, 1.0)]], 60, 5, 0.5)


def test_piano_roll_codec_batch_text_and_json():
    codec = PianoRollCodec(60, 4, 1.0, ("Top", "Bottom"))
    a = codec.encode("60.63 61 -")
    b = codec.encode("62")
    batch = codec.batch([a, b])
    assert batch.inputs.shape == (2, 3, 4) and batch.lengths.tolist() == [3, 1]
    assert not batch.inputs[:, 0].any()  # nothing before the first frame
    torch.testing.assert_close(batch.inputs[0, 1:], a[:-1])  # frame t - 1 in, frame t out
    torch.testing.assert_close(batch.targets[0], a)
    assert batch.mask.tolist() == [[True, True, True], [True, False, False]]
    assert codec_from_json(codec.to_json()) == codec
    for bad in ("60.64", "C4", "60..61"):
        with pytest.raises(ValueError, match=r"expected MIDI pitches 60-63 joined by dots"):
            codec.encode(bad)
    with pytest.raises(ValueError, match="within 0-127"):
        PianoRollCodec(120, 20, 1.0)
    with pytest.raises(ValueError, match=r"ending in \.mid or \.midi"):
        codec.sample_paths("song.wav")


@pytest.mark.parametrize(
    "event",
    [
        (70, 1.0),
        (REST, 0.5),
        (60, 0.25),
        (0, 0.125),
        (127, 1.5),
        (64, 1 / 3),
        (62, 2 / 3),
        (55, 1 / 6),
        (67, 3.0),
        (REST, 4.0),
        (72, 0.75),
    ],
)
def test_music_tokens_round_trip(event):
    token = MusicTokenizer.token(*event)
    assert MusicTokenizer.event(token) == event  # the exact float back
    assert MusicTokenizer().tokenize(token) == [token]


def test_music_tokenizer_keeps_tokens_whole_and_refuses_others():
    tok = MusicTokenizer()
    text = "p70_1.0 r_0.5  p64_1/3\np62_0.25"
    tokens = tok.tokenize(text)
    assert tokens == ["p70_1.0", "r_0.5", "p64_1/3", "p62_0.25"]
    assert tok.tokenize(tok.detokenize(tokens)) == tokens
    assert MusicTokenizer.token(69, 1 / 3) == "p69_1/3" and MusicTokenizer.token(-1, 2) == "r_2.0"
    assert isinstance(tokenizer_from_config(tok.to_config()), MusicTokenizer)
    assert tok.tokenize("p70_1 r_2") == ["p70_1.0", "r_2.0"]  # written as token() writes
    for bad in ("p70_1 . 0", ".", "p128_1.0", "p70_0", "x70_1.0", "p70_1/0", "r_.5"):
        word = bad.split()[-1] if bad != "p70_1 . 0" else "."
        with pytest.raises(ValueError, match=rf"music token {word!r}: expected a note such as"):
            tok.tokenize(f"p60_1.0 {bad}")
    with pytest.raises(ValueError, match="pitch"):
        MusicTokenizer.token(200, 1.0)
    with pytest.raises(ValueError, match="quarter_length"):
        MusicTokenizer.token(60, 0.0)


def test_melody_codec_json_and_events(tmp_path):
    tok = MusicTokenizer()
    vocab = Vocab.build([["p60_1.0", "p62_0.5", "r_0.5"]])
    codec = MelodyCodec(tok, vocab)
    again = codec_from_json(codec.to_json())
    assert isinstance(again, MelodyCodec) and again.vocab.tokens == vocab.tokens
    assert again.decode(again.encode("p60_1.0 r_0.5")) == "p60_1.0 r_0.5"
    assert codec.events("p60_1.0 r_0.5") == [(60, 1.0), (REST, 0.5)]
    written = codec.write_sample(
        "p60_1.0 p62_0.5 r_0.5 p64_1/3 p65_1/3 p67_1/3", tmp_path / "m.mid"
    )
    [score] = read_scores(written[0])
    assert [p for p, _ in next(iter(score.parts.values())) if p != REST] == [60, 62, 64, 65, 67]
    assert written[2].stat().st_size > 0  # the piano roll
    with pytest.raises(ValueError, match="no note"):
        codec.write_sample("r_1.0", tmp_path / "r.mid")


def test_chorales_split_by_tune_keeps_a_melody_in_one_split():
    scale = [(60 + i, 1.0) for i in (0, 2, 4, 5, 7, 9, 11, 12, 14)]
    assert incipit(scale) == (2, 2, 1, 2, 2, 2, 1, 2)
    assert incipit([(60, 1.0), (60, 1.0), (REST, 1.0), (62, 1.0)]) == (2,)  # repeats merged
    up5 = [(p + 5, d) for p, d in scale]  # the same tune in another key
    other = [(72 - i, 1.0) for i in range(9)]
    ids = ["bwv1", "bwv2", "bwv3", "bwv4", "bwv5"]
    titles = {"bwv3": "Jesu, meine Freude", "bwv4": "Jesu, meine Freude"}
    found = tunes(ids, [scale, up5, other, list(reversed(scale)), other[:2]], titles)
    assert found == ["bwv1", "bwv1", "bwv3", "bwv3", "bwv5"]  # incipit, title, too short
    names = chorale_splits([f"t{i // 3}" for i in range(30)], [True] * 27 + [False] * 3)
    by_tune = {}
    for i, name in enumerate(names):
        by_tune.setdefault(i // 3, set()).add(name)
    assert all(len(s) == 1 for s in by_tune.values())  # whole tunes
    assert sorted(names[:27].count(s) for s in ("train", "valid", "test")) == [6, 6, 15]


def test_the_riemenschneider_table_holds_371_chorales():
    table = riemenschneider()  # BWV file name -> (Riemenschneider numbers, title)
    assert len({n for numbers, _ in table.values() for n in numbers}) == 371
    assert len(table) == 353  # some harmonisations carry two numbers
    assert table["bwv269"] == ([1], "Aus meines Herzens Grunde")
