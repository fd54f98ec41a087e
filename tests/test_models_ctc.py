"""CTCRecognizer and CTC decoding against brute force over every path, on tiny posteriors
and tiny models; the PairCodec options the recognizer needs (standardizer, no <eos>, .npy)."""

from __future__ import annotations

import itertools
import json
import math
import random
import time

import numpy as np
import pytest
import torch

import _training_helpers  # noqa: F401  (one torch thread)
from rnnkit.ctc_decoding import best_path, collapse, prefix_beam_search
from rnnkit.data.batches import PairBatch
from rnnkit.data.codec import PairCodec, Standardizer, codec_from_json
from rnnkit.data.errors import DataFormatError
from rnnkit.data.tokenizers import WordTokenizer
from rnnkit.data.vocab import Vocab
from rnnkit.models import CTCRecognizer, CTCRecognizerConfig


def _paths(log_y: torch.Tensor):
    """Every path pi of (S, V) posteriors with its log-probability sum_s log y_s(pi_s)."""
    s, v = log_y.shape
    for path in itertools.product(range(v), repeat=s):
        yield path, float(sum(log_y[t, k] for t, k in enumerate(path)))


def _labellings(log_y: torch.Tensor) -> dict[tuple[int, ...], float]:
    """p(l | x) of every labelling l, summed over its paths (the definition)."""
    total: dict[tuple[int, ...], float] = {}
    for path, lp in _paths(log_y):
        key = tuple(collapse(path))
        total[key] = total.get(key, 0.0) + math.exp(lp)
    return total


def _posteriors(gen: torch.Generator, s: int, v: int, scale: float = 2.0) -> torch.Tensor:
    return (scale * torch.randn(s, v, generator=gen, dtype=torch.float64)).log_softmax(-1)


def _model(seed=0, **kw) -> CTCRecognizer:
    torch.manual_seed(seed)
    cfg = {"cell": "gru", "hidden_size": 4, "num_layers": 1, "target_vocab_size": 4}
    cfg.update(kw)
    if "image_channels" not in kw:
        cfg.setdefault("source_features", 3)
    return CTCRecognizer(CTCRecognizerConfig(**cfg))


def test_collapse_merges_repeats_then_drops_blanks():
    assert collapse([1, 1, 0, 1, 2, 0, 2, 2]) == [1, 1, 2, 2]
    assert collapse([0, 0]) == [] and collapse([3]) == [3]


def test_best_path_equals_the_labelling_of_the_most_probable_path():
    gen = torch.Generator().manual_seed(0)
    rows = [_posteriors(gen, 5, 3) for _ in range(20)]
    for log_y in rows:
        path = max(_paths(log_y), key=lambda p: p[1])[0]
        assert best_path(log_y) == [collapse(path)]
    # a padded batch: each row over its own frames only
    lengths = torch.tensor([5, 3, 1])
    batch = torch.stack(rows[:3])
    batch[1, 3:] = batch[0, 3:]  # padding that would change the answer if it were read
    found = best_path(batch, lengths)
    for b, n in enumerate(lengths.tolist()):
        assert found[b] == best_path(rows[b][:n])[0]


def test_wide_prefix_beam_search_finds_the_most_probable_labelling_with_its_probability():
    gen = torch.Generator().manual_seed(1)
    for _ in range(25):
        log_y = _posteriors(gen, 5, 3)
        total = _labellings(log_y)
        ranked = sorted(total, key=lambda k: -total[k])
        found = prefix_beam_search(log_y, beam=64, n_best=3)  # more prefixes than there are
        assert [tuple(ids) for ids, _ in found] == ranked[:3]
        for ids, score in found:
            assert score == pytest.approx(math.log(total[tuple(ids)]), abs=1e-9)


def test_best_path_is_not_the_most_probable_labelling_but_beam_search_finds_it():
    # two frames, blank 0.6 each: the path (blank, blank) is the likeliest (0.36), yet "a"
    # owns three paths (a a, a -, - a) worth 0.16 + 0.24 + 0.24 = 0.64
    log_y = torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64).log()
    assert best_path(log_y) == [[]]
    ids, score = prefix_beam_search(log_y, beam=2)[0]
    assert ids == [1] and score == pytest.approx(math.log(0.64))


def test_beam_one_equals_best_path_on_peaked_posteriors():
    """With K = 1 the search keeps one prefix, which follows the best path when every frame
    gives its top class at least 0.9, as a trained model's frames do (not in general: a
    frame of 0.55 can make them differ, the case above)."""
    gen = torch.Generator().manual_seed(2)
    for _ in range(100):
        s, v = 8, 4
        top = torch.randint(0, v, (s,), generator=gen)
        logits = 0.3 * torch.randn(s, v, generator=gen, dtype=torch.float64)
        logits[torch.arange(s), top] += 6.0  # top class >= 0.9 on every frame
        log_y = logits.log_softmax(-1)
        assert float(log_y.exp().max(-1).values.min()) >= 0.9
        assert prefix_beam_search(log_y, beam=1)[0][0] == best_path(log_y)[0]


def test_decoding_refuses_bad_arguments_naming_them():
    log_y = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="beam: expected an integer >= 1, got 0"):
        prefix_beam_search(log_y, beam=0)
    with pytest.raises(ValueError, match="n_best: expected 1 to beam=2, got 3"):
        prefix_beam_search(log_y, beam=2, n_best=3)
    with pytest.raises(ValueError, match=r"log_probs: expected \(B, S, V\)"):
        best_path(torch.zeros(3))


def test_loss_equals_minus_log_of_the_brute_force_sum_over_alignments():
    model = _model(seed=3).double().eval()
    gen = torch.Generator().manual_seed(3)
    source = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64)
    lengths = torch.tensor([4, 3])
    target = torch.tensor([[1, 1], [2, 0]])  # "a a" needs a blank between: 3 frames at least
    target_lengths = torch.tensor([2, 1])
    batch = PairBatch(source, lengths, target, target_lengths)
    loss, metrics = model.loss(batch)
    assert metrics == {}
    log_y = model(source, lengths)  # (B, S, V)
    nll = []
    for b in range(2):
        total = _labellings(log_y[b, : int(lengths[b])].detach())
        nll.append(-math.log(total[tuple(target[b, : int(target_lengths[b])].tolist())]))
    assert float(loss.detach()) == pytest.approx(sum(nll) / 3, abs=1e-10)  # per target token


def test_an_unalignable_row_costs_zero_and_a_blank_in_a_target_is_refused():
    model = _model().double()
    x = torch.randn(1, 2, 3, dtype=torch.float64)
    short = PairBatch(x, torch.tensor([2]), torch.tensor([[1, 1]]), torch.tensor([2]))
    loss, _ = model.loss(short)  # "a a" needs 3 frames: infinite, zeroed
    assert float(loss.detach()) == 0.0
    bad = PairBatch(x, torch.tensor([2]), torch.tensor([[0]]), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"target: .* holds the blank \(id 0\)"):
        model.loss(bad)
    v = model.config.target_vocab_size
    for label in (v, 10**6, -1):  # torch's CTC kernel reads memory out of bounds on these
        bad = PairBatch(x, torch.tensor([2]), torch.tensor([[label, 9]]), torch.tensor([1]))
        with pytest.raises(ValueError, match=rf"labels must be in 1\.\.{v - 1} .* got {label}"):
            model.loss(bad)
    fine = PairBatch(x, torch.tensor([2]), torch.tensor([[1, 10**6]]), torch.tensor([1]))
    model.loss(fine)  # past target_lengths: padding, never read
    with pytest.raises(ValueError, match=r"source_lengths: expected integers, got torch.float32"):
        model(x, torch.tensor([2.7]))


@pytest.mark.parametrize("source", ["frames", "image"])
def test_a_padded_batch_equals_each_row_alone(source):
    """Loss, posteriors and decoding of rows padded together equal those of each row alone."""
    gen = torch.Generator().manual_seed(4)
    if source == "frames":
        model = _model(seed=4, hidden_size=6, num_layers=2).eval()
        x = torch.randn(3, 7, 3, generator=gen)
    else:
        model = _model(seed=4, image_channels=1, image_height=4, conv_channels=2).eval()
        x = torch.rand(3, 1, 4, 7, generator=gen)
    lengths = torch.tensor([7, 4, 2])
    target = torch.tensor([[1, 2, 3], [2, 2, 0], [3, 0, 0]])
    target_lengths = torch.tensor([3, 2, 1])
    batch = PairBatch(x, lengths, target, target_lengths)
    loss, _ = model.loss(batch)
    y = model.posteriors(batch)
    assert float(y[1, 4:].abs().sum()) == 0.0  # padding has no probabilities
    per_row = 0.0
    for b in range(3):
        n = int(lengths[b])
        alone = PairBatch(
            x[b : b + 1, :n] if source == "frames" else x[b : b + 1, ..., :n],
            lengths[b : b + 1],
            target[b : b + 1, : int(target_lengths[b])],
            target_lengths[b : b + 1],
        )
        row_loss = model.loss(alone)[0].detach()
        per_row += float(row_loss) * int(target_lengths[b])
        torch.testing.assert_close(model.posteriors(alone)[0], y[b, :n], atol=1e-6, rtol=1e-5)
        assert model.decode(alone, beam=3) == [model.decode(batch, beam=3)[b]]
        assert model.decode(alone) == [model.decode(batch)[b]]
    assert float(loss.detach()) * 6 == pytest.approx(per_row, rel=1e-5)


def test_gradcheck_float64_through_frames_and_output_layer():
    model = _model(seed=5, hidden_size=3, cell="lstm").double()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 3])
    target, target_lengths = torch.tensor([[1, 2], [3, 0]]), torch.tensor([2, 1])
    weight = model.head.weight.detach().clone().requires_grad_(True)
    del model.head.weight  # the output layer's W becomes an input of the checked function

    def loss(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        model.head.weight = w
        return model.loss(PairBatch(x, lengths, target, target_lengths))[0]

    assert torch.autograd.gradcheck(loss, (x, weight), eps=1e-6, atol=1e-6)


def _toy(n: int, seed: int) -> tuple[PairBatch, list[list[int]]]:
    """Labels 1-3, each shown as 2-3 one-hot frames, sometimes a silent frame before it."""
    rng = random.Random(seed)
    sources, targets = [], []
    for _ in range(n):
        labels = [rng.randint(1, 3) for _ in range(rng.randint(1, 4))]
        frames = []
        for k in labels:
            frames += [[0.0] * 3] * rng.randint(0, 1)
            frames += [[float(k == j) for j in (1, 2, 3)]] * rng.randint(2, 3)
        sources.append(torch.tensor(frames))
        targets.append(labels)
    s, u = max(len(x) for x in sources), max(len(t) for t in targets)
    x, y = torch.zeros(n, s, 3), torch.zeros(n, u, dtype=torch.long)
    for i, (f, t) in enumerate(zip(sources, targets, strict=True)):
        x[i, : len(f)], y[i, : len(t)] = f, torch.tensor(t)
    x += 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    lengths = torch.tensor([len(f) for f in sources])
    return PairBatch(x, lengths, y, torch.tensor([len(t) for t in targets])), targets


def test_a_tiny_model_learns_to_transcribe_a_toy_signal_quickly():
    start = time.perf_counter()
    model = _model(seed=0, hidden_size=16)
    train, _ = _toy(512, 0)
    test, refs = _toy(200, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        loss, _ = model.loss(train.rows(torch.randint(0, 512, (32,), generator=gen)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    greedy = model.decode(test)
    beam = model.decode(test, beam=4)
    assert sum(h == r for h, r in zip(greedy, refs, strict=True)) / len(refs) > 0.9
    assert sum(h == r for h, r in zip(beam, refs, strict=True)) / len(refs) > 0.9
    assert time.perf_counter() - start < 30


def test_config_round_trips_and_errors_name_the_setting():
    model = _model(hidden_size=5, num_layers=2)
    again = CTCRecognizer.from_config(json.loads(json.dumps(model.get_config())))
    assert again.get_config() == model.get_config()
    assert again.kind == "recognizer"
    cases = [
        ({"source_features": 0}, "exactly one of source_features"),
        ({"image_channels": 1, "image_height": 0}, "exactly one of source_features"),
        (
            {"target_vocab_size": 1},
            r"target_vocab_size must be >= 2 \(the blank and a label\), got 1",
        ),
        ({"conv_channels": 8}, "conv_channels=8 sizes the image encoder"),
        ({"cell": "tree"}, "cell must be one of"),
    ]
    for change, message in cases:
        cfg = {"target_vocab_size": 4, "source_features": 3, **change}
        with pytest.raises(ValueError, match=message):
            CTCRecognizerConfig(**cfg)
    with pytest.raises(ValueError, match="image_height must be >= 1"):
        CTCRecognizerConfig(target_vocab_size=4, image_channels=1)
    with pytest.raises(ValueError, match=r"source: expected frames \(B, S, 3\), got \(2, 5\)"):
        _model().decode(
            PairBatch(torch.zeros(2, 5), torch.tensor([5, 5]), torch.zeros(2, 1), torch.ones(2))
        )


# ---- the codec -----------------------------------------------------------------------------
def _codec(**kw) -> PairCodec:
    tok = WordTokenizer()
    return PairCodec(tok, Vocab.build([["1", "2", "3"]]), source_kind="frames", **kw)


def test_codec_standardizes_frames_leaves_eos_off_and_round_trips():
    frames = [np.array([[1.0, 10.0], [3.0, 10.0]]), np.array([[2.0, 10.0]])]
    std = Standardizer.fit(frames)
    codec = _codec(standardizer=std, target_eos=False)
    batch = codec.batch(frames, ["1 2", "3"])
    assert batch.target_lengths.tolist() == [2, 1]  # no <eos>
    z = batch.source[0, :2]
    assert z[:, 0].tolist() == pytest.approx([-1.2247, 1.2247], abs=1e-4)
    assert z[:, 1].tolist() == [0.0, 0.0]  # a constant feature: sigma 1
    again = codec_from_json(json.loads(json.dumps(codec.to_json())))
    assert again.to_json() == codec.to_json() and again.standardizer == std
    assert torch.equal(again.batch(frames, ["1 2", "3"]).source, batch.source)
    old = codec.to_json()
    del old["standardizer"], old["target_eos"]  # a codec.json written before the options
    loaded = codec_from_json(old)
    assert loaded.standardizer is None and loaded.target_eos
    assert loaded.encode_target("1 2")[-1] == loaded.target_vocab.eos_id
    with pytest.raises(ValueError, match="frames: expected 2 features per step, got 3"):
        codec.source_batch([np.zeros((4, 3))])
    with pytest.raises(ValueError, match="standardizer: applies to feature frames"):
        PairCodec(codec.target_tokenizer, codec.target_vocab, source_kind="image", standardizer=std)
    with pytest.raises(ValueError, match="codec: its targets end with <eos>"):
        CTCRecognizer(CTCRecognizerConfig(target_vocab_size=7, source_features=2), _codec())


def test_codec_reads_npy_and_npz_sources_and_names_the_file_on_bad_input(tmp_path):
    codec = _codec(target_eos=False)
    one, many = tmp_path / "one.npy", tmp_path / "many.npy"
    np.save(one, np.ones((5, 2), dtype=np.float32))
    np.save(many, np.zeros((3, 4, 2)))
    assert [a.shape for a in codec.read_inputs(one)] == [(5, 2)]
    assert [a.shape for a in codec.read_inputs(many)] == [(4, 2)] * 3
    np.savez(tmp_path / "two.npz", a=np.ones((2, 2)), b=np.ones((7, 2)))
    assert [a.shape for a in codec.read_inputs(tmp_path / "two.npz")] == [(2, 2), (7, 2)]
    (tmp_path / "text.npy").write_text("4 1 7\n")
    np.save(tmp_path / "objects.npy", np.array([np.ones(2), np.ones(3)], dtype=object))
    np.save(tmp_path / "flat.npy", np.ones(4))
    np.save(tmp_path / "nan.npy", np.array([[np.nan, 1.0]]))
    np.save(tmp_path / "huge.npy", np.array([[1e39, 1.0]]))  # inf as float32
    (tmp_path / "lines.jsonl").write_text('{"pixels": [[1]]}\n')
    for name, message in (
        ("missing.npy", "no such file"),
        ("huge.npy", "holds numbers beyond float32's range"),
        ("lines.jsonl", r"this run reads frames from NumPy \.npy or \.npz files, not \.jsonl"),
        ("text.npy", "not a NumPy .npy or .npz file"),
        ("objects.npy", "not a NumPy .npy or .npz file"),
        ("flat.npy", r"expected numbers of shape \(S, D\) or \(N, S, D\), got float64 \(4,\)"),
        ("nan.npy", "holds NaN or infinite values"),
    ):
        with pytest.raises(DataFormatError, match=f"^{tmp_path / name}: {message}"):
            codec.read_inputs(tmp_path / name)
    images = PairCodec(codec.target_tokenizer, codec.target_vocab, source_kind="image")
    np.save(tmp_path / "strips.npy", np.zeros((2, 8, 24)))
    assert [a.shape for a in images.read_inputs(tmp_path / "strips.npy")] == [(8, 24)] * 2
