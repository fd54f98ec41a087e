"""The classify-series task: readers of every series format, the codec, the splits, the
baselines, the classifier on frames, and the CLI's answers to bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import _training_helpers  # noqa: F401  (one torch thread)
from rnnkit.cli import app
from rnnkit.config import ConfigError
from rnnkit.data.codec import SeriesCodec, Standardizer, codec_from_json
from rnnkit.data.errors import DataFormatError
from rnnkit.data.readers import write_fasta, write_ts
from rnnkit.data.readers.series import read_series
from rnnkit.data.vocab import Vocab
from rnnkit.models.classifier import ClassifierConfig, SequenceClassifier, frame_statistics
from rnnkit.tasks.series import (
    SeriesConfig,
    check,
    init_model,
    linear_baseline,
    prepare,
    read_splits,
    stratified_split,
    summary_features,
)


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


# ---- readers ---------------------------------------------------------------------------
def test_every_format_reads_the_same_cases(tmp_path):
    a = np.array([[0.5, 2.0], [1.5, -1.0], [3.0, 0.25]], dtype=np.float32)
    b = np.array([[1.0, 1.0]], dtype=np.float32)
    write_ts(
        tmp_path / "x.ts", [a, b], ["up", "down"], problem_name="T", class_labels=["up", "down"]
    )
    (tmp_path / "x.csv").write_text('sequence,label\n"0.5,2 1.5,-1 3,0.25",up\n"1,1",down\n')
    (tmp_path / "x.tsv").write_text("label\tsequence\nup\t0.5,2 1.5,-1 3,0.25\ndown\t1,1\n")
    rows = [{"sequence": a.tolist(), "label": "up"}, {"sequence": [[1, 1]], "label": "down"}]
    (tmp_path / "x.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    for name in ("x.ts", "x.csv", "x.tsv", "x.jsonl"):
        found = read_series(tmp_path / name)
        assert found.kind == "frames" and found.labels == ["up", "down"], name
        np.testing.assert_array_equal(found.items[0], a)
        np.testing.assert_array_equal(found.items[1], b)
    np.save(tmp_path / "x.npy", a)
    found = read_series(tmp_path / "x.npy", labelled=False)
    np.testing.assert_array_equal(found.items[0], a)
    np.save(tmp_path / "many.npy", np.stack([a, a + 1]))
    assert len(read_series(tmp_path / "many.npy", labelled=False)) == 2
    # univariate: one number per step
    (tmp_path / "u.csv").write_text("sequence,label\n1 2 3,a\n")
    assert read_series(tmp_path / "u.csv").items[0].shape == (3, 1)


def test_symbols_from_fasta_csv_and_jsonl(tmp_path):
    write_fasta(tmp_path / "d.fasta", [("s1", "class=ei", "ACGT"), ("s2", "class=n", "GGA")])
    (tmp_path / "d.csv").write_text("sequence,label\nACGT,ei\nGGA,n\n")
    (tmp_path / "d.jsonl").write_text(
        '{"sequence": "ACGT", "label": "ei"}\n{"sequence": "GGA", "label": "n"}\n'
    )
    for name in ("d.fasta", "d.csv", "d.jsonl"):
        found = read_series(tmp_path / name)
        assert (found.kind, found.items, found.labels) == ("symbols", ["ACGT", "GGA"], ["ei", "n"])
    write_fasta(tmp_path / "t.fasta", [("s1", "type=ei", "ACGT")])
    assert read_series(tmp_path / "t.fasta", label_field="type").labels == ["ei"]


@pytest.mark.parametrize(
    ("name", "text", "line", "words"),
    [
        ("mixed.csv", "sequence,label\n1 2,a\nACGT,b\n", 3, "expected frames like the first row"),
        ("nolabel.csv", "sequence,label\n1 2,\n", 2, "non-empty 'label'"),
        ("ragged.jsonl", '{"sequence": [[1, 2], [3]], "label": "a"}\n', 1, "equal-length"),
        ("nan.jsonl", '{"sequence": [1, 1e400], "label": "a"}\n', 1, "finite number"),
        ("widths.csv", 'sequence,label\n1 2,a\n"1,2 3,4",b\n', 3, "different widths"),
        ("ragged.csv", 'sequence,label\n"1,2 3",a\n"1,2 3,4",b\n', 2, "different counts"),
        ("cols.csv", "seq,label\n1,a\n", 1, "missing ['sequence']"),
        ("dict.jsonl", '{"sequence": {"a": 1}, "label": "a"}\n', 1, "string of symbols"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, name, text, line, words):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataFormatError) as err:
        read_series(tmp_path / name)
    assert f"{name}:{line}:" in str(err.value) and words in str(err.value)


def test_bad_files_are_refused_without_running_code(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError, match="no pickled objects"):
        read_series(tmp_path / "obj.npy", labelled=False)
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    with pytest.raises(DataFormatError, match="has no labels"):
        read_series(tmp_path / "x.npy")
    (tmp_path / "x.txt").write_text("1 2 3\n")
    with pytest.raises(DataFormatError, match="expected a file ending in"):
        read_series(tmp_path / "x.txt")
    write_fasta(tmp_path / "n.fasta", [("s1", "", "ACGT")])
    with pytest.raises(DataFormatError, match=r"n\.fasta:1: expected 'class=LABEL'"):
        read_series(tmp_path / "n.fasta")


# ---- codec -----------------------------------------------------------------------------
def test_standardizer_uses_training_statistics_and_round_trips():
    train = [np.array([[1.0, 10.0], [3.0, 10.0]]), np.array([[5.0, 10.0]])]
    std = Standardizer.fit(train)
    assert std.mean == pytest.approx((3.0, 10.0))
    assert std.std == pytest.approx((np.std([1, 3, 5]), 1.0))  # a constant feature: 1
    codec = SeriesCodec(("a", "b"), standardizer=std)
    x, lengths = codec.batch([train[0], train[1]])
    assert x.shape == (2, 2, 2) and lengths.tolist() == [2, 1]
    torch.testing.assert_close(
        x[1, 0], torch.tensor([(5 - 3) / np.std([1, 3, 5]), 0.0], dtype=torch.float32)
    )
    assert x[1, 1].abs().sum() == 0  # padding stays zero
    again = codec_from_json(json.loads(json.dumps(codec.to_json())))
    assert again == codec
    with pytest.raises(ValueError, match="expected 2 features per step, got 3"):
        codec.encode(np.zeros((4, 3)))
    with pytest.raises(
        ValueError, match=r"^valid.ts: data row 2: label 'c' is not among the trained labels"
    ):
        codec.label_ids(["a", "c"], "valid.ts")
    with pytest.raises(ValueError, match=r"row 1: label 'd' .* \(unknown labels: \['c', 'd'\]\)"):
        codec.label_ids(["d", "a", "c"], "valid.ts")


def test_a_frames_model_names_a_case_that_is_not_numbers(tmp_path):
    codec = SeriesCodec(("a", "b"), standardizer=Standardizer((0.0,), (1.0,)))
    f = tmp_path / "new.csv"
    f.write_text('sequence\n"0.1 0.2 abc"\n"0.3 0.4 x"\n')  # no case is numbers
    with pytest.raises(ValueError, match=r"new.csv: this model reads frames of numbers .* "
                       r"the file's first case is not: '0.1 0.2 abc'"):  # fmt: skip
        codec.read_inputs(f)


def test_symbol_codec_and_its_files(tmp_path):
    vocab = Vocab.build([list("ACGT")])
    codec = SeriesCodec(("ei", "n"), vocab=vocab)
    ids, lengths = codec.batch(["ACGT", "GN"])
    assert ids.dtype == torch.long and lengths.tolist() == [4, 2]
    assert ids[1, 1] == vocab.unk_id and ids[1, 2] == vocab.pad_id
    assert codec_from_json(codec.to_json()) == codec
    # lower case reads as the FASTA reader reads it; no known symbol at all is refused
    torch.testing.assert_close(codec.batch(["acgt"])[0], codec.batch(["ACGT"])[0])
    with pytest.raises(ValueError, match="none of the symbols of 'HELLO' is among the trained"):
        codec.batch(["hello"])
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="holds frames, but this model reads symbols"):
        codec.read_inputs(tmp_path / "x.npy")


# ---- splits and baselines ----------------------------------------------------------------
def test_stratified_split_takes_a_share_of_every_label():
    labels = ["a"] * 50 + ["b"] * 10 + ["c"] * 2 + ["d"]
    held = stratified_split(labels, 0.2, seed=3)
    counts = {y: int(sum(h for h, z in zip(held, labels, strict=True) if z == y)) for y in "abcd"}
    assert counts == {"a": 10, "b": 2, "c": 1, "d": 0}
    assert (held == stratified_split(labels, 0.2, seed=3)).all()
    assert not (held == stratified_split(labels, 0.2, seed=4)).all()


def test_linear_baseline_separates_separable_classes():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    (pred,) = linear_baseline(x[:150], y[:150], [x[150:]])
    assert float((pred == y[150:]).double().mean()) >= 0.96


def _toy_ts(tmp_path, n=60, name="toy"):
    rng = np.random.default_rng(0)
    labels = [str(k % 3) for k in range(n)]
    series = [
        np.cos(np.arange(rng.integers(4, 9))[:, None] * (1 + int(y)) * [1.0, 0.5]) * 4 + 7
        for y in labels
    ]
    path = tmp_path / f"{name}.ts"
    write_ts(path, series, labels, problem_name="Toy", class_labels=["0", "1", "2"])
    return path, series, labels


def test_prepare_a_single_file_holds_cases_out_and_fits_on_training_only(tmp_path):
    path, _, _ = _toy_ts(tmp_path)
    cfg = SeriesConfig(data=str(path), valid_fraction=0.25, test_fraction=0.2)
    data = prepare(cfg, 0, None)
    assert data.train.size + data.val.size + data.test.size == 60
    assert (data.test.size, data.val.size) == (12, 12)  # 20% of 60; 25% of the other 48
    assert data.fixed == {
        "num_classes": 3,
        "input_features": 2,
        "vocab_size": 0,
        "padding_idx": 0,
        "positions": int(data.train.lengths.max()),
    }
    assert set(data.baseline) == {"accuracy", "linear_accuracy"}
    # statistics come from the training cases alone
    train_frames = torch.cat([data.train.inputs[b, :n] for b, n in enumerate(data.train.lengths)])
    torch.testing.assert_close(train_frames.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    again = prepare(cfg, 0, data.codec)  # a saved codec reproduces the batches
    torch.testing.assert_close(again.test.inputs, data.test.inputs)


def test_check_refuses_embedding_keys_for_numbers(tmp_path):
    path, _, _ = _toy_ts(tmp_path)
    with pytest.raises(ConfigError, match=r"model\.embedding_dim: .* holds numbers"):
        check(SeriesConfig(data=str(path)), {"embedding_dim": 8})
    write_fasta(tmp_path / "d.fasta", [("s1", "class=a", "ACGT"), ("s2", "class=b", "GGCA")])
    check(SeriesConfig(data=str(tmp_path / "d.fasta")), {"embedding_dim": 0})  # symbols: fine
    for name, value in (("label_field", "kind"), ("sequence_column", "x"), ("valid_fraction", 0.3)):
        cfg = SeriesConfig(data=str(path), test=str(path), valid=str(path), **{name: value})
        with pytest.raises(ConfigError, match=f"task.{name}=.* does not apply"):
            check(cfg, {})
    with pytest.raises(ConfigError, match=r"task\.standardize=False does not apply"):
        check(SeriesConfig(data=str(tmp_path / "d.fasta"), standardize=False), {})
    check(SeriesConfig(data=str(path), valid_fraction=0.3), {})  # carved: it applies


# ---- the classifier on frames ----------------------------------------------------------
@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
def test_padded_frames_equal_each_case_alone(pooling):
    torch.manual_seed(0)
    cfg = ClassifierConfig(
        input_features=3, num_classes=4, hidden_size=5, pooling=pooling, bidirectional=True
    )
    model = SequenceClassifier(cfg).eval()
    cases = [torch.randn(n, 3) for n in (6, 2, 4)]
    x = torch.zeros(3, 6, 3)
    for b, c in enumerate(cases):
        x[b, : len(c)] = c
    x[1, 2:] = 9.0  # padding values must not matter
    together = model(x, torch.tensor([6, 2, 4]))
    for b, c in enumerate(cases):
        alone = model(c.unsqueeze(0), torch.tensor([len(c)]))
        torch.testing.assert_close(together[b : b + 1], alone, atol=1e-6, rtol=1e-5)


def test_frames_classifier_gradcheck_float64():
    torch.manual_seed(0)
    cfg = ClassifierConfig(input_features=2, num_classes=3, hidden_size=3, pooling="mean")
    model = SequenceClassifier(cfg).double()
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 3])
    assert torch.autograd.gradcheck(lambda t: model(t, lengths), (x,))


# ---- the wide part over summary statistics ----------------------------------------------
def test_frame_statistics_are_each_cases_own_and_the_textbook_ones():
    g = torch.Generator().manual_seed(0)
    cases = [torch.randn(n, 3, generator=g, dtype=torch.float64) for n in (5, 1, 3)]
    x = torch.full((3, 5, 3), 7.0, dtype=torch.float64)  # padding values must not matter
    for b, c in enumerate(cases):
        x[b, : len(c)] = c
    phi = frame_statistics(x, torch.tensor([5, 1, 3]))
    assert phi.shape == (3, 19)
    for b, c in enumerate(cases):
        a = c.numpy()
        want = np.concatenate(
            [a.mean(0), a.std(0), a.min(0), a.max(0), a[0], a[-1], [np.log(len(a))]]
        )
        np.testing.assert_allclose(phi[b].numpy(), want, rtol=1e-12, atol=1e-12)
    big = frame_statistics(x.float() * 1e20, torch.tensor([5, 1, 3]))  # squares beyond float32
    assert big.dtype == torch.float32 and torch.isfinite(big).all()
    torch.testing.assert_close(big[:, :-1].double(), phi[:, :-1] * 1e20, rtol=1e-6, atol=1e14)


def _wide_model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = ClassifierConfig(input_features=3, num_classes=4, hidden_size=5, wide_summary=True, **kw)
    return SequenceClassifier(cfg)


def test_wide_summary_is_the_linear_model_on_summary_statistics():
    """With the RNN's readout at zero the model is W_w ((phi - mu) / sigma): the logits equal
    that linear map computed by hand, on a padded batch."""
    model = _wide_model(pooling="mean").double().eval()
    assert model.wide_stats is not None and not model.wide_stats.weight.any()  # zero start
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, 3, generator=g, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4])
    mu, sigma = torch.randn(19, generator=g).double(), torch.rand(19, generator=g).double() + 0.5
    sigma[4] = 0.0  # a constant statistic is read as sigma = 1
    model.set_statistics_scale(mu, sigma)
    w = torch.randn(4, 19, generator=g, dtype=torch.float64)
    with torch.no_grad():
        model.wide_stats.weight.copy_(w)
        model.out.weight.zero_()
        model.out.bias.zero_()
    phi = frame_statistics(x, lengths)
    want = ((phi - mu) / torch.where(sigma > 0, sigma, 1.0)) @ w.T
    torch.testing.assert_close(model(x, lengths), want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"mean and std must be \(19,\)"):
        model.set_statistics_scale(mu[:3], sigma[:3])
    with pytest.raises(ValueError, match=r"std must be >= 0, got -1\.0"):
        model.set_statistics_scale(mu, -torch.ones(19))
    with pytest.raises(ValueError, match="must be finite numbers"):
        model.set_statistics_scale(mu * float("nan"), sigma)
    model.set_statistics_scale([0.0] * 19, [1.0] * 19)  # lists are tensors too
    for x, lengths, words in (
        (torch.zeros(2, 5), [3, 5], r"x: expected frames \(B, T, D\)"),
        (torch.zeros(2, 5, 3), [3, 7], r"lengths: expected values in 1\.\.5, got min 3, max 7"),
        (torch.zeros(2, 5, 3), [0, 5], "got min 0"),
        (torch.zeros(2, 5, 3), [5], r"lengths: expected shape \(2,\)"),
    ):
        with pytest.raises(ValueError, match=words):
            frame_statistics(x, lengths)


def test_wide_summary_padded_equals_alone_and_gradcheck():
    model = _wide_model(pooling="max", bidirectional=True).double().eval()
    with torch.no_grad():
        model.wide_stats.weight.normal_()
    cases = [torch.randn(n, 3, dtype=torch.float64) for n in (6, 2, 4)]
    x = torch.full((3, 6, 3), -5.0, dtype=torch.float64)
    for b, c in enumerate(cases):
        x[b, : len(c)] = c
    together = model(x, torch.tensor([6, 2, 4]))
    for b, c in enumerate(cases):
        alone = model(c.unsqueeze(0), torch.tensor([len(c)]))
        torch.testing.assert_close(together[b : b + 1], alone, rtol=1e-12, atol=1e-12)
    x = x[:2, :4].clone().requires_grad_(True)
    lengths = torch.tensor([4, 3])
    assert torch.autograd.gradcheck(lambda t: model(t, lengths), (x,))
    assert torch.autograd.gradcheck(
        lambda w: torch.nn.functional.linear(frame_statistics(x.detach(), lengths), w),
        (model.wide_stats.weight.detach().clone().requires_grad_(True),),
    )


def test_wide_summary_needs_frames():
    with pytest.raises(ValueError, match=r"wide_summary=True: .* token ids \(vocab_size=9\)"):
        ClassifierConfig(vocab_size=9, wide_summary=True)
    with pytest.raises(ValueError, match="no wide_summary part"):
        SequenceClassifier(ClassifierConfig(input_features=2)).set_statistics_scale(
            torch.zeros(13), torch.ones(13)
        )


def test_task_scales_the_wide_part_with_the_training_statistics(tmp_path):
    path, _, _ = _toy_ts(tmp_path)
    cfg = SeriesConfig(data=str(path))
    data = prepare(cfg, 0, None)
    model = SequenceClassifier(
        ClassifierConfig(hidden_size=4, wide_summary=True, **data.fixed)
    ).double()
    init_model(model, data, cfg, 0)
    phi = frame_statistics(data.train.inputs.double(), data.train.lengths)
    torch.testing.assert_close(model.stats_mean, phi.mean(0))
    std = phi.std(0, unbiased=False)
    torch.testing.assert_close(model.stats_std, torch.where(std > 0, std, 1.0))
    # the linear baseline reads the same statistics of the raw cases
    train = read_splits(cfg, 0)["train"]
    torch.testing.assert_close(summary_features(data.codec, train.items, None), phi)
    plain = SequenceClassifier(ClassifierConfig(hidden_size=4, **data.fixed))
    init_model(plain, data, cfg, 0)  # nothing to set


def test_config_needs_exactly_one_input_kind():
    with pytest.raises(ValueError, match=r"exactly one of vocab_size .* and input_features"):
        ClassifierConfig(vocab_size=5, input_features=3)
    with pytest.raises(ValueError, match="exactly one of vocab_size"):
        ClassifierConfig()
    with pytest.raises(ValueError, match="freeze_embedding: frames"):
        ClassifierConfig(input_features=3, freeze_embedding=True)
    model = SequenceClassifier(ClassifierConfig(input_features=3))
    with pytest.raises(ValueError, match=r"inputs must be frames \(B, T, 3\)"):
        model(torch.zeros(1, 4, 2), torch.tensor([4]))


# ---- the task end to end, and bad input through the CLI ---------------------------------
def test_learns_toy_series_and_reports_through_the_cli(tmp_path):
    path, series, labels = _toy_ts(tmp_path, n=90)
    run = tmp_path / "run"
    code, out = _cli(
        "train",
        "classify-series",
        "--set",
        f'task.data="{path}"',
        "--set",
        "model.hidden_size=16",
        "--set",
        'model.pooling="mean"',
        "--set",
        "trainer.epochs=25",
        "--set",
        "trainer.batch_size=8",
        "--set",
        "trainer.lr=0.01",
        "--set",
        "trainer.log.tensorboard=false",
        "--out",
        str(run),
    )
    assert code == 0, out
    code, out = _cli("evaluate", str(run), "--confusion", str(tmp_path / "c.png"))
    assert code == 0, out
    metrics = json.loads(out)
    assert metrics["accuracy"] >= 0.9 and metrics["baseline_accuracy"] < 0.5
    assert (tmp_path / "c.png").stat().st_size > 1000
    np.save(tmp_path / "one.npy", series[1])
    code, out = _cli("predict", str(run), "--file", str(tmp_path / "one.npy"))
    assert code == 0 and out.split("\t")[0] == labels[1], out
    for bad, words in (
        (tmp_path / "missing.npy", "no such file"),
        (tmp_path / "x.txt", "expected a file ending in"),
    ):
        (tmp_path / "x.txt").write_text("1 2\n")
        code, out = _cli("predict", str(run), "--file", str(bad))
        assert code == 2 and words in out and "Traceback" not in out, out
    np.save(tmp_path / "wide.npy", np.zeros((4, 5)))
    code, out = _cli("predict", str(run), "--file", str(tmp_path / "wide.npy"))
    assert code == 2 and "wide.npy: frames: expected 2 features per step, got 5" in out, out
    # a test file with a label the run never saw: the file is named
    (tmp_path / "new.csv").write_text('sequence,label\n"1,2 3,4",zzz\n')
    code, out = _cli("evaluate", str(run), "--data", str(tmp_path / "new.csv"))
    assert code == 2 and "new.csv" in out and "label 'zzz'" in out, out


def test_a_dataset_of_another_kind_is_named(monkeypatch, tmp_path):
    code, out = _cli(
        "train", "classify-series", "--set", 'task.data="shakespeare"', "--out", str(tmp_path / "r")
    )
    assert code == 2 and "holds no labelled sequences" in out and "Traceback" not in out
    code, out = _cli(
        "train", "classify-series", "--set", 'task.data="nowhere.ts"', "--out", str(tmp_path / "r")
    )
    assert code == 2 and "no such file: nowhere.ts" in out, out


def test_the_text_classifier_points_series_datasets_to_this_task(tmp_path):
    code, out = _cli("train", "classify", "--set", 'task.data="dna-splice"', "--out", str(tmp_path))
    assert code == 2 and "holds no labelled text; use the classify-series task" in out, out
