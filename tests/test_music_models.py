"""The music models and baselines against hand computations: the piano-roll NLL in float64
with the textbook LSTM, padded batches against rows alone, sampling, the melody model's
start and end, Kneser-Ney and the piano-roll baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import _training_helpers  # noqa: F401  (one torch thread)
from rnnkit import reference
from rnnkit.data.codec import MelodyCodec, PianoRollCodec
from rnnkit.data.tokenizers import MusicTokenizer
from rnnkit.data.vocab import Vocab
from rnnkit.models.language_model import LanguageModelConfig
from rnnkit.models.melody import MelodyModel
from rnnkit.models.pianoroll import PianoRollConfig, PianoRollModel
from rnnkit.tasks.melody import KneserNey, batch
from rnnkit.tasks.music import marginal, marginal_nll, repeat_nll, transposed

P = 5


def _model(seed: int = 0, **kw) -> PianoRollModel:
    torch.manual_seed(seed)
    kw = {"pitches": P, "hidden_size": 3, "backend": "loop", **kw}
    return PianoRollModel(PianoRollConfig(**kw), PianoRollCodec(60, P, 0.5)).eval()


def _rolls(lengths, seed=0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(t, P, generator=g) < 0.4 for t in lengths]


def test_nll_per_frame_equals_a_hand_computation_in_float64():
    model = _model().double()
    roll = _rolls([4])[0]
    b = model.codec.batch([roll])
    loss, metrics = model.loss(b)
    sd = {k: v.numpy() for k, v in model.rnn.state_dict().items()}
    params = {k: sd[f"{k}_l0"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    y = roll.double().numpy()  # (T, P)
    xs = np.vstack([np.zeros((1, P)), y[:-1]])  # the frame before each frame, zeros first
    hs, _ = reference.forward("lstm", params, xs, (np.zeros(3), np.zeros(3)))  # (T, H)
    z = hs @ model.head.weight.detach().numpy().T + model.head.bias.detach().numpy()  # (T, P)
    s = reference.sigmoid(z)
    nll = -(y * np.log(s) + (1 - y) * np.log(1 - s)).sum(1)  # NLL_t, summed over pitches
    assert loss.dtype == torch.float64
    assert abs(loss.item() - nll.mean()) < 1e-12
    assert abs(metrics["nll_per_frame"] - nll.mean()) < 1e-12


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_padded_batch_gives_each_roll_its_loss_alone(cell):
    model = _model(cell=cell, num_layers=2).double()
    rolls = _rolls([3, 7, 5])
    together = model.codec.batch(rolls)
    loss, _ = model.loss(together)
    alone = [(model.loss(model.codec.batch([r]))[0].item(), r.shape[0]) for r in rolls]
    assert abs(loss.item() * 15 - sum(v * n for v, n in alone)) < 1e-10
    logits, _ = model(together.inputs)
    for i, r in enumerate(rolls):
        one, _ = model(model.codec.batch([r]).inputs)
        torch.testing.assert_close(logits[i, : r.shape[0]], one[0], rtol=0, atol=1e-12)


def test_step_matches_the_sequence_and_sampling_is_repeatable():
    model = _model(num_layers=2)
    roll = _rolls([6])[0]
    logits, _ = model(model.codec.batch([roll]).inputs)  # (1, 6, P)
    state, frame = None, torch.zeros(1, P)
    for t in range(6):
        z, state = model.step(frame, state)
        torch.testing.assert_close(z, logits[:, t], rtol=1e-5, atol=1e-6)
        frame = roll[t : t + 1].float()
    streamed: list[str] = []
    text = model.generate("60.62 -", 8, temperature=0.9, seed=3, on_text=streamed.append)
    assert "".join(streamed) == text and len(text.split()) == 8
    assert text == model.generate("60.62 -", 8, temperature=0.9, seed=3)
    greedy = model.sample(roll, 4, temperature=0.0)  # frame t: the pitches with z > 0
    z, _ = model(torch.cat([torch.zeros(1, P), roll.float()]).unsqueeze(0))
    torch.testing.assert_close(greedy[0], z[0, -1] > 0)
    with pytest.raises(ValueError, match="top_k: a piano-roll model draws every pitch"):
        model.generate("", 4, top_k=3)
    with pytest.raises(ValueError, match="frame 1 '99'"):
        model.generate("99", 4)


def _melody_model() -> MelodyModel:
    vocab = Vocab.build([["p60_1.0", "p62_1.0", "p64_1.0", "r_1.0"]])
    torch.manual_seed(0)
    config = LanguageModelConfig(vocab_size=len(vocab), embedding_size=4, hidden_size=6)
    return MelodyModel(config, MelodyCodec(MusicTokenizer(), vocab)).eval()


def test_melody_rows_padding_and_generation_from_bos_to_eos():
    model = _melody_model().double()
    melodies = [["p60_1.0", "p62_1.0"], ["p64_1.0", "r_1.0", "p60_1.0", "p60_1.0", "p62_1.0"]]
    b = batch(model.codec, melodies)
    v = model.codec.vocab
    assert b.inputs[0, :3].tolist() == [v.bos_id, v["p60_1.0"], v["p62_1.0"]]
    assert b.targets[0, :3].tolist() == [v["p60_1.0"], v["p62_1.0"], v.eos_id]
    assert b.lengths.tolist() == [3, 6] and b.mask.sum() == 9  # the end is an event
    loss, _ = model.loss(b)
    alone = [model.loss(batch(model.codec, [m]))[0].item() * (len(m) + 1) for m in melodies]
    assert abs(loss.item() * 9 - sum(alone)) < 1e-10
    with torch.no_grad():
        model.head.bias.zero_()
        model.head.bias[v.eos_id] = 50.0  # the end is certain after any event
    assert model.generate("p60_1.0", 20, seed=0) == ""  # stops at the first <eos>
    with torch.no_grad():
        model.head.bias[v.eos_id] = -50.0
        model.head.bias[v["p64_1.0"]] = 50.0
    streamed: list[str] = []
    assert model.generate("", 3, seed=0, on_text=streamed.append) == " p64_1.0" * 3
    assert streamed == [" p64_1.0"] * 3


def test_kneser_ney_is_a_distribution_and_matches_a_hand_count():
    seqs = [[2, 4, 5, 4, 3], [2, 4, 4, 6, 3], [2, 5, 4, 3]]
    for order in (0, 1, 2, 3):
        kn = KneserNey(seqs, order, vocab_size=6)  # ids 1..6 can be predicted
        for history in ([2], [2, 4], [4, 4], [9, 9, 9]):
            total = sum(kn.prob(w, history) for w in range(1, 7))
            assert abs(total - 1) < 1e-12, (order, history)
    # order 0: continuation counts are the raw counts; D = n1 / (n1 + 2 n2)
    kn = KneserNey(seqs, 0, vocab_size=6)
    counts = {4: 5, 5: 2, 3: 3, 6: 1}  # targets after <bos>: 11 in all
    n1, n2 = 1, 1  # one id seen once (6), one twice (5)
    d = n1 / (n1 + 2 * n2)
    expected = (counts[4] - d + d * 4 / 6) / 11
    assert abs(kn.prob(4, []) - expected) < 1e-12
    nll = -sum(math.log(kn.prob(w, [])) for s in seqs for w in s[1:]) / 11
    assert abs(kn.nll(seqs) - nll) < 1e-12


def test_piano_roll_baselines_by_hand():
    codec = PianoRollCodec(60, 2, 1.0)
    train = codec.batch([codec.encode("60 60 60.61 -")])
    m = marginal(train)  # (on + 1) / (frames + 2)
    torch.testing.assert_close(m, torch.tensor([4 / 6, 2 / 6], dtype=torch.float64))
    test = codec.batch([codec.encode("60 61")])
    want = -(math.log(4 / 6) + math.log(1 - 2 / 6) + math.log(1 - 4 / 6) + math.log(2 / 6)) / 2
    assert abs(marginal_nll(m, test) - want) < 1e-12
    w = 0.8  # second frame: p = w * previous + (1 - w) * m
    p60, p61 = w + (1 - w) * 4 / 6, (1 - w) * 2 / 6
    second = -(math.log(1 - p60) + math.log(p61))
    first = -(math.log(4 / 6) + math.log(1 - 2 / 6))
    assert abs(repeat_nll(m, w, test) - (first + second) / 2) < 1e-12
    roll = codec.encode("60 61")
    assert transposed(roll, 0) is roll
    torch.testing.assert_close(transposed(roll[:1], 1), codec.encode("61"))
    with pytest.raises(ValueError, match=r"transposed by \+1 semitones, a note leaves"):
        transposed(roll, 1)
