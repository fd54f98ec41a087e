"""ONNX export (rnnkit.export, `rnnkit export`): every layer kind and the trained models,
run with onnxruntime on other batch and time sizes than the export's and compared with
PyTorch within 1e-5."""

from __future__ import annotations

import csv
import random
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import _training_helpers  # noqa: F401  (one torch thread)
import rnnkit
import rnnkit as rk
from rnnkit.cli import app
from rnnkit.data.batches import SequenceBatch
from rnnkit.export import OnnxExportError, layer_graph, max_abs_diff, onnx_ready, run_onnx, to_onnx
from rnnkit.models import (
    ClassifierConfig,
    LanguageModel,
    LanguageModelConfig,
    ModelContractError,
    SequenceClassifier,
    SequenceTagger,
    TaggerConfig,
)
from rnnkit.models.seq2seq import BOS, Seq2Seq, Seq2SeqConfig

onnx = pytest.importorskip("onnx")  # both come with the dev extra (and the onnx extra)
pytest.importorskip("onnxruntime")

TOL = 1e-5
LAYERS = {
    "lstm": lambda **kw: rk.LSTM(3, 5, **kw),
    "gru": lambda **kw: rk.GRU(3, 5, **kw),
    "rnn-tanh": lambda **kw: rk.RNN(3, 5, **kw),
    "rnn-relu": lambda **kw: rk.RNN(3, 5, nonlinearity="relu", **kw),
}


def _close(got, want) -> float:
    diff = max_abs_diff(got, want)
    assert diff <= TOL, diff
    return diff


# -- layers -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("stack", ["1-layer", "2-layer-bidirectional"])
@pytest.mark.parametrize("lengths", [True, False])
def test_layer_exports_with_dynamic_batch_and_time(kind, stack, lengths, tmp_path):
    torch.manual_seed(0)
    deep = stack != "1-layer"
    layer = LAYERS[kind](num_layers=2 if deep else 1, bidirectional=deep, batch_first=deep)
    path = tmp_path / "layer.onnx"
    [done] = to_onnx(layer_graph(layer, lengths=lengths), path)  # checked at batch 3, time 7
    assert done.max_abs_diff <= TOL
    ops = {node.op_type for node in onnx.load(path).graph.node}
    assert {"lstm": "LSTM", "gru": "GRU"}.get(kind, "RNN") in ops and "Loop" not in ops
    # another size again, with every length below the time size, in a shuffled order
    x = torch.randn(5, 11, 3) if deep else torch.randn(11, 5, 3)
    feeds = {"x": x}
    n = torch.tensor([4, 9, 1, 10, 6])
    if lengths:
        feeds["lengths"] = n
    with torch.no_grad():
        out, state = layer(x, lengths=n if lengths else None)
    state = state if isinstance(state, tuple) else (state,)
    _close(run_onnx(path, feeds), (out, *state))
    if lengths:  # padded steps are zeros, as in PyTorch
        got = torch.from_numpy(run_onnx(path, feeds)[0])
        assert got[2, 1:].abs().max() == 0 if deep else got[1:, 2].abs().max() == 0


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_layer_with_initial_state_time_major(kind, tmp_path):
    torch.manual_seed(1)
    layer = LAYERS[kind](num_layers=2, bidirectional=True)
    graph = layer_graph(layer, lengths=True, state=True)
    [done] = to_onnx(graph, tmp_path / "s.onnx")
    assert done.input_names == ("x", "lengths", "h0", "c0")[: 4 if kind == "lstm" else 3]
    inputs = graph.inputs(4, 9)
    with torch.no_grad():
        want = graph.forward(*inputs)
    _close(run_onnx(done.path, dict(zip(graph.input_names, inputs, strict=True))), want)


def test_export_context_restores_backend_and_mode():
    layer = rk.GRU(3, 4, backend="loop")
    model = torch.nn.Sequential(layer).train()
    with onnx_ready(model):
        assert layer.backend == "torch" and not model.training
    assert layer.backend == "loop" and model.training


def test_layers_onnx_cannot_run_are_refused_in_one_sentence(tmp_path):
    with pytest.raises(OnnxExportError, match="proj_size > 0: ONNX's LSTM operator"):
        to_onnx(rk.LSTM(3, 5, proj_size=2), tmp_path / "p.onnx")
    tagger = SequenceTagger(TaggerConfig(vocab_size=9, num_tags=3, cell="lstm-ln", word_dim=4))
    with pytest.raises(
        OnnxExportError, match="runs RegularizedLSTMCell, which ONNX has no recurrent operator"
    ):
        to_onnx(tagger, tmp_path / "t.onnx")
    with pytest.raises(ModelContractError, match="names no ONNX graphs"):
        to_onnx(torch.nn.Linear(2, 2), tmp_path / "l.onnx")
    with pytest.raises(TypeError, match=r"model: expected a model, got the path .*rnnkit\.load"):
        to_onnx(tmp_path / "run", tmp_path / "r.onnx")  # loading a run is the layer above's


def test_max_abs_diff_counts_equal_infinities_as_equal():
    inf = float("inf")
    assert max_abs_diff([np.array([-inf, 1.0])], [torch.tensor([-inf, 1.5])]) == 0.5
    assert max_abs_diff([np.array([inf])], [torch.tensor([-inf])]) == inf
    assert max_abs_diff([np.array([float("nan")])], [torch.tensor([0.0])]) == inf
    assert max_abs_diff([np.zeros(2)], [torch.zeros(3)]) == inf


def test_a_float64_model_is_refused_before_a_file_is_written(tmp_path):
    with pytest.raises(OnnxExportError, match=r"\['torch.float64'\]: .* export model.float\(\)"):
        to_onnx(rk.GRU(3, 4).double(), tmp_path / "g.onnx")
    assert not (tmp_path / "g.onnx").exists()


def test_missing_onnxruntime_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(
        OnnxExportError, match=r"onnxruntime is not installed: pip install 'rnnkit\[onnx\]'"
    ):
        to_onnx(rk.GRU(3, 4), tmp_path / "g.onnx")
    [done] = to_onnx(rk.GRU(3, 4), tmp_path / "g.onnx", check=False)
    assert done.max_abs_diff is None and done.path.stat().st_size > 0


# -- models -------------------------------------------------------------------------------
@pytest.mark.parametrize("pooling", ["last", "attention", "frames", "wide", "frames-wide"])
def test_classifier_logits(pooling, tmp_path):
    torch.manual_seed(2)
    frames = pooling.startswith("frames")
    kw = {"input_features": 3} if frames else {"vocab_size": 20, "embedding_dim": 6}
    if pooling == "wide":  # the wide part's hashed n-grams in the graph
        kw |= {"wide_ngrams": 3, "wide_buckets": 40}
    if pooling == "frames-wide":  # the summary statistics in the graph
        kw |= {"wide_summary": True}
    pool = {"frames": "mean", "wide": "max", "frames-wide": "last"}.get(pooling, pooling)
    config = ClassifierConfig(**kw, hidden_size=8, num_layers=2, bidirectional=True, pooling=pool)
    model = SequenceClassifier(config)
    if model.wide is not None:  # non-zero rows and scales, so the n-grams count
        with torch.no_grad():
            model.wide.weight[1:].normal_()
            model.wide_scale.uniform_(-2, 2)
    if model.wide_stats is not None:
        with torch.no_grad():
            model.wide_stats.weight.normal_()
            model.set_statistics_scale(torch.randn(19), torch.rand(19) + 0.5)
    [done] = to_onnx(model, tmp_path / "c.onnx")
    assert done.input_names == ("ids", "lengths") and done.max_abs_diff <= TOL
    # a padded batch longer than its longest sequence: padding changes nothing
    ids = torch.randn(4, 12, 3) if frames else torch.randint(1, 20, (4, 12))
    lengths = torch.tensor([3, 9, 1, 5])
    with torch.no_grad():
        want = model(ids, lengths)
    _close(run_onnx(done.path, {"ids": ids, "lengths": lengths}), [want])


def test_tagger_emissions_and_viterbi_in_pytorch(tmp_path):
    torch.manual_seed(3)
    config = TaggerConfig(
        vocab_size=30, num_tags=5, char_vocab_size=10, bigram_vocab_size=12, word_dim=6,
        char_dim=4, char_hidden=3, hidden_size=8, bigram_dim=4,
    )  # fmt: skip
    model = SequenceTagger(config).eval()
    [done] = to_onnx(model, tmp_path / "t.onnx")
    assert done.output_names == ("emissions",) and done.max_abs_diff <= TOL
    inputs, lengths = model.onnx_graphs()[0].inputs(4, 10)
    s = torch.from_numpy(run_onnx(done.path, {"inputs": inputs, "lengths": lengths})[0])
    mask = torch.arange(10) < lengths.unsqueeze(1)
    batch = SequenceBatch(inputs, torch.zeros(4, 10, dtype=torch.long), mask, lengths)
    _close([s.numpy()], [model.emissions(batch).detach()])
    assert model.crf.decode(s, mask) == model.decode(batch)  # Viterbi on the ONNX emissions


@pytest.mark.parametrize("cell", ["lstm", "gru-adaptive", "lstm-ln"])
def test_language_model_step_generates_as_pytorch(cell, tmp_path):
    torch.manual_seed(4)
    kw = {"adaptive_cutoffs": (10,)} if cell == "gru-adaptive" else {}
    config = LanguageModelConfig(
        vocab_size=30, embedding_size=6, hidden_size=8, cell=cell.split("-a")[0], **kw
    )
    model = LanguageModel(config).eval()
    [done] = to_onnx(model, tmp_path / "lm.onnx")
    names = ("tokens", "h", "c") if cell.startswith("lstm") else ("tokens", "h")
    assert done.input_names == names and done.max_abs_diff <= TOL
    # greedy decoding, five steps from a zero state, with the state carried through ONNX
    tokens = torch.tensor([1, 7, 20])
    state = tuple(torch.zeros(2, 3, 8) for _ in names[1:])
    torch_tokens, torch_state = tokens, None
    for _ in range(5):
        logits, *state = run_onnx(done.path, dict(zip(names, (tokens, *state), strict=True)))
        state = tuple(torch.from_numpy(s) for s in state)
        with torch.no_grad():
            want, torch_state = model.step(torch_tokens, torch_state)
        _close([logits], [want])
        tokens = torch.from_numpy(logits).argmax(-1)
        torch_tokens = want.argmax(-1)
        assert torch.equal(tokens, torch_tokens)


@pytest.mark.parametrize("attention", ["general", "bahdanau", "none"])
def test_encoder_decoder_greedy_decoding_through_onnx(attention, tmp_path):
    torch.manual_seed(5)
    config = Seq2SeqConfig(
        target_vocab_size=12, source_vocab_size=15, embedding_size=6, hidden_size=8,
        attention=attention,
    )  # fmt: skip
    model = Seq2Seq(config).eval()
    encoder, step = to_onnx(model, tmp_path / "s2s.onnx")
    assert encoder.path.name == "s2s.encoder.onnx" and step.path.name == "s2s.decoder_step.onnx"
    assert max(encoder.max_abs_diff, step.max_abs_diff) <= TOL
    source, lengths = torch.randint(4, 15, (3, 9)), torch.tensor([9, 4, 6])
    found = run_onnx(encoder.path, {"source": source, "source_lengths": lengths})
    state = dict(zip(encoder.output_names, found, strict=True))
    torch_state = model.encode(source, lengths)
    tokens, rows = torch.full((3,), BOS), []
    for _ in range(6):  # greedy decoding, with the state carried through ONNX
        feeds = {k: torch.from_numpy(v) for k, v in state.items()}
        logits, *new = run_onnx(step.path, {"tokens": tokens, **feeds})
        for name, value in zip(step.output_names[1:], new, strict=True):
            state[name.removesuffix("_next")] = value
        with torch.no_grad():
            want, torch_state = model.step(tokens, torch_state)
        _close([logits], [want])
        tokens = torch.from_numpy(logits).argmax(-1)
        rows.append(tokens)
    decoded = model.decode(source, lengths, max_length=6)
    for got, best in zip(torch.stack(rows, 1).tolist(), decoded, strict=True):
        assert got[: len(best[0][0])] == best[0][0]


# -- the command on trained runs ------------------------------------------------------------
def _cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _train(task: str, tmp_path, settings: list[str]):
    run = tmp_path / task
    common = ["model.hidden_size=8", "trainer.epochs=1", "trainer.batch_size=8"]
    common.append("trainer.log.tensorboard=false")
    args = [a for item in [*settings, *common] for a in ("--set", item)]
    code, out = _cli("train", task, *args, "--out", str(run))
    assert code == 0, out
    return run


def test_export_command_on_a_trained_classifier(tmp_path):
    rng = random.Random(0)
    words = ["the", "film", "plot", "was", "very"]
    with (tmp_path / "reviews.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for _ in range(40):
            label = rng.choice(["pos", "neg"])
            w.writerow(
                [
                    " ".join([*rng.choices(words, k=3), "great" if label == "pos" else "awful"]),
                    label,
                ]
            )
    run = _train(
        "classify", tmp_path, [f'task.data="{tmp_path / "reviews.csv"}"', "model.embedding_dim=8"]
    )
    code, out = _cli("export", str(run), "--onnx", str(tmp_path / "out" / "sentiment.onnx"))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith(
        f"wrote {tmp_path / 'out' / 'sentiment.onnx'} (classifier: ids, lengths -> logits)"
    )
    diff = float(lines[1].rsplit(" ", 1)[1])
    assert lines[1].startswith("  onnxruntime vs PyTorch at batch 3, time 7") and diff <= TOL
    model = rnnkit.load(run)
    ids, lengths = model.codec.batch(["the film was great", "awful", "very very great plot"])
    with torch.no_grad():
        want = model(ids, lengths)
    _close(run_onnx(tmp_path / "out" / "sentiment.onnx", {"ids": ids, "lengths": lengths}), [want])

    code, out = _cli("export", str(run), "--onnx", str(tmp_path))  # a folder
    assert code == 2 and "is a folder" in out and "Traceback" not in out


def test_export_command_writes_one_file_per_graph_and_refuses_models_without(tmp_path):
    rng = random.Random(1)
    words = ["the", "film", "plot", "was"]
    with (tmp_path / "pairs.tsv").open("w") as f:
        f.write("source\ttarget\n")
        for _ in range(24):
            row = rng.choices(words, k=rng.randint(2, 4))
            f.write(f"{' '.join(row)}\t{' '.join(reversed(row))}\n")
    pairs = tmp_path / "pairs.tsv"
    run = _train(
        "translate",
        tmp_path,
        [
            'task.dataset=""',
            f'task.train="{pairs}"',
            f'task.valid="{pairs}"',
            "model.embedding_size=8",
        ],
    )
    code, out = _cli("export", str(run), "--onnx", str(tmp_path / "mt.onnx"))
    assert code == 0, out
    assert (tmp_path / "mt.encoder.onnx").is_file() and (
        tmp_path / "mt.decoder_step.onnx"
    ).is_file()
    assert out.count("max abs difference") == 2

    run = _train(
        "adding", tmp_path, ["task.seq_len=4", "task.n_train=16", "task.n_val=8", "task.n_test=8"]
    )
    code, out = _cli("export", str(run), "--onnx", str(tmp_path / "a.onnx"))
    assert code == 2 and "it has no ONNX graphs to export" in out and "Traceback" not in out
