"""LanguageModel: carried state is exact, tied weights, training, checkpoints, generation."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

import _training_helpers  # noqa: F401  (one torch thread)
import rnnkit
from rnnkit.cli import app
from rnnkit.config import ConfigError
from rnnkit.decoding import generate
from rnnkit.models import LanguageModel, LanguageModelConfig, ModelContractError
from rnnkit.tasks import get_task, run
from rnnkit.tasks.lm import LMTaskConfig, stream_batch
from rnnkit.training.bptt import detach_state
from rnnkit.training.checkpoint import load_model

CORPUS = "the cat sat on the mat. " * 40


def small(cell="lstm", seed=0, **kw) -> LanguageModel:
    torch.manual_seed(seed)
    fields = {"vocab_size": 11, "embedding_size": 6, "hidden_size": 8, "num_layers": 2}
    return LanguageModel(LanguageModelConfig(cell=cell, **{**fields, **kw})).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_step_and_prime_equal_the_full_forward(cell):
    model = small(cell)
    x = torch.randint(0, 11, (3, 9))
    full, final = model(x)  # (3, 9, V)
    logits, state = model.prime(x[:, :4])
    torch.testing.assert_close(logits, full[:, 3])
    for t in range(4, 9):
        logits, state = model.step(x[:, t], state)
        torch.testing.assert_close(logits, full[:, t])
    for a, b in zip(state, final, strict=True) if cell == "lstm" else [(state, final)]:
        torch.testing.assert_close(a, b)


def test_chunks_with_carried_state_equal_one_long_forward():
    model = small("gru")
    batch = stream_batch(torch.randint(0, 11, (200,)).tolist(), 4)  # (4, 49)
    whole = model.loss(batch)[0].detach()
    state, total = None, 0.0
    for chunk in batch.time_chunks(10):
        loss, _, state = model.carry_loss(chunk, state)
        state = detach_state(state)
        total += float(loss.detach()) * chunk.n_targets
    assert total / batch.n_targets == pytest.approx(float(whole), rel=1e-5)
    with torch.no_grad():  # the chunked evaluation path gives the same loss
        chunked = LanguageModel.from_config({**model.get_config(), "eval_chunk": 7})
        chunked.load_state_dict(model.state_dict())
        loss, metrics = chunked.loss(batch)
    assert float(loss) == pytest.approx(float(whole), rel=1e-5)
    assert metrics["bpc"] == pytest.approx(float(whole) / math.log(2), rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(float(whole)), rel=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_trace_gives_the_loss_of_loss_in_eval_mode(cell):
    model = small(cell, dropout=0.3, tie_weights=True).double()  # eval: dropout is off
    batch = stream_batch(torch.randint(0, 11, (61,)).tolist(), 3)  # (3, 19)
    loss, _ = model.loss(batch)
    traced, tr = model.trace(batch)
    torch.testing.assert_close(traced, loss, rtol=1e-12, atol=0)
    assert len(tr.hidden) == 2 and len(tr.hidden[1]) == batch.steps  # 2 layers, every step
    top = tr.state[0] if cell == "lstm" else tr.state
    torch.testing.assert_close(tr.hidden[1][-1], top[1])  # the last step's state, layer 2
    traced.backward()  # the trace is in the graph: diagnostics differentiate through it
    assert model.embedding.weight.grad is not None


def test_tied_weights_are_one_parameter():
    model = small(tie_weights=True, hidden_size=8, embedding_size=6)
    assert model.head.weight is model.embedding.weight
    assert model.proj is not None  # H != D needs the projection
    names = [n for n, _ in model.named_parameters()]
    assert "head.weight" not in names  # shared parameters are listed once
    untied = small(tie_weights=False)
    n_tied = sum(p.numel() for p in model.parameters())
    n_untied = sum(p.numel() for p in untied.parameters())
    assert n_untied - n_tied == 11 * 8 - 8 * 6 - 6  # head (V, H) vs proj (D, H) + bias
    x = torch.randint(0, 11, (2, 5))
    model.train()
    loss, _ = model.loss(stream_batch(x.flatten().tolist(), 2))
    loss.backward()  # one gradient reaches the shared matrix from both uses
    assert model.embedding.weight.grad is model.head.weight.grad


@pytest.mark.parametrize("tie", [True, False])
def test_init_range_draws_embedding_and_output_uniform(tie):
    model = small(tie_weights=tie, init_range=0.1, vocab_size=500, embedding_size=8)
    for w in (model.embedding.weight, model.head.weight):
        assert w.abs().max() <= 0.1 and w.abs().max() > 0.09  # uniform in [-r, r]
        assert w.std().item() == pytest.approx(0.1 / math.sqrt(3), rel=0.1)
    assert torch.count_nonzero(model.head.bias) == 0
    default = small(tie_weights=tie, vocab_size=500, embedding_size=8)
    assert default.embedding.weight.std().item() == pytest.approx(1.0, rel=0.1)  # N(0, 1)


@pytest.mark.parametrize("bad", [-0.1, True, "0.1"])
def test_init_range_refuses_what_is_not_a_number_at_least_zero(bad):
    with pytest.raises(ValueError, match="init_range"):
        small(init_range=bad)


def test_seeded_generation_repeats():
    model = small()
    prime = torch.tensor([[1, 2, 3]])
    a = generate(model, prime, 30, temperature=1.0, seed=5)
    b = generate(model, prime, 30, temperature=1.0, seed=5)
    c = generate(model, prime, 30, temperature=1.0, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (1, 33)


def _tiny_run(tmp_path, **task):
    train_file = tmp_path / "train.txt"
    train_file.write_text(CORPUS)
    val_file = tmp_path / "val.txt"
    val_file.write_text(CORPUS[:240])
    items = [
        f'task.train_files=["{train_file}"]',
        f'task.val_files=["{val_file}"]',
        "task.streams=4",
        "task.eval_streams=2",
        *(f"task.{k}={v}" for k, v in task.items()),
        "model.embedding_size=16",
        'model.cell="gru"',
        "model.hidden_size=32",
        "trainer.epochs=6",
        "trainer.batch_size=4",
        "trainer.tbptt=20",
        "trainer.lr=0.02",
        "trainer.clip_norm=5.0",
        'trainer.log.progress="none"',
        "trainer.log.tensorboard=false",
    ]
    cfg = run.load_run_config("lm", None, items)
    out = tmp_path / "run"
    summary = run.train(cfg, out)
    return out, summary


def test_tiny_corpus_is_learned_and_round_trips(tmp_path):
    out, summary = _tiny_run(tmp_path)
    first, last = summary["history"][0], summary["history"][-1]
    # 9 distinct characters: a uniform guess costs ln 13 = 2.56 nats; the text is periodic
    assert last["val_loss"] < 0.3 < first["train_loss"]
    assert last["val_bpc"] == pytest.approx(last["val_loss"] / math.log(2))
    path = run.checkpoint_path(out)
    model = load_model(path).eval()
    assert isinstance(model, LanguageModel)
    again = LanguageModel.from_config(model.get_config())
    again.load_state_dict(model.state_dict())
    x = torch.randint(0, model.config.vocab_size, (2, 7))
    torch.testing.assert_close(again(x)[0], model(x)[0])
    lm = rnnkit.load(out)
    assert not lm.training and lm.codec is not None
    text = lm.generate("the cat", 48, temperature=0)
    assert text.startswith(" sat on the mat. the cat sat on")
    streamed: list[str] = []
    sampled = lm.generate("the", 30, temperature=0.8, seed=3, on_text=streamed.append)
    assert "".join(streamed) == sampled
    assert sampled == lm.generate("the", 30, temperature=0.8, seed=3)
    assert not lm.training  # generate leaves the mode as it found it


def test_cli_generate(tmp_path):
    out, _ = _tiny_run(tmp_path)
    runner = CliRunner()
    args = ["generate", str(out), "--prime", "the mat", "--length", "20", "--temperature", "0"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("the mat. the cat sat on")
    r = runner.invoke(app, [*args[:-2], "--temperature", "1", "--top-k", "3", "--seed", "1"])
    assert r.exit_code == 0 and r.output.startswith("the mat")
    r = runner.invoke(app, ["generate", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "is not a run directory: it does not exist" in r.output
    r = runner.invoke(app, ["generate", str(out), "--prime", ""])
    assert r.exit_code == 2 and "holds no token" in r.output
    # characters the vocabulary lacks are read as <unk>, and said so on stderr
    r = runner.invoke(app, ["generate", str(out), "--prime", "the 猫", "--length", "3"])
    assert r.exit_code == 0 and r.stdout.startswith("the 猫")
    assert "note: --prime holds '猫', not in the vocabulary: read as <unk>" in r.stderr

    # a language model continues text; it has nothing to predict for raw input
    r = runner.invoke(app, ["predict", str(out), "the cat"])
    assert r.exit_code == 2
    assert r.output.strip() == (
        f"error: {out} is a language model: it has no predict(inputs) for raw input; "
        "it continues text: use `rnnkit generate`"
    )
    with pytest.raises(ModelContractError, match="no codec"):
        LanguageModel(rnnkit.load(out).config).generate("the", 5)  # no codec: no text


def test_word_level_task(tmp_path):
    data = get_task("lm").prepare(
        LMTaskConfig(
            train_files=(str(_write(tmp_path / "t.txt", CORPUS)),),
            val_files=(str(_write(tmp_path / "v.txt", CORPUS[:96])),),
            tokenizer="word",
            streams=2,
            eval_streams=1,
        ),
        0,
        None,
    )
    assert data.fixed == {"vocab_size": 4 + 6}  # the cat sat on mat .
    assert len(data.codec.encode("the cat sat on the mat.")) == 7  # words, not characters
    assert data.train.inputs.shape[0] == 2
    torch.testing.assert_close(data.train.inputs[:, 1:], data.train.targets[:, :-1])


@pytest.mark.parametrize("tokenizer", ["word", "whitespace"])
def test_generation_never_draws_what_training_never_targets(tmp_path, tokenizer):
    """<pad> and <bos> are never drawn, nor <eos> unless line breaks are <eos> tokens (the
    whitespace tokenizer): even from a model whose head prefers them by far."""
    data = get_task("lm").prepare(
        LMTaskConfig(
            train_files=(str(_write(tmp_path / "t.txt", CORPUS)),),
            val_files=(str(_write(tmp_path / "v.txt", CORPUS[:96])),),
            tokenizer=tokenizer,
            streams=2,
            eval_streams=1,
        ),
        0,
        None,
    )
    codec = data.codec
    model = LanguageModel(
        LanguageModelConfig(vocab_size=len(codec.vocab), embedding_size=8, hidden_size=8),
        codec,
    )
    v = codec.vocab
    specials = [v.pad_id, v.bos_id, v.eos_id]
    with torch.no_grad():
        model.head.bias[specials] = 50.0  # p(special) ~ 1 without the ban
    drawn, real = [], codec.piece

    def piece(token: int) -> str:
        drawn.append(token)
        return real(token)

    object.__setattr__(codec, "piece", piece)  # the codec is a frozen dataclass
    model.generate("the cat", length=40, seed=0)
    assert len(drawn) == 40
    if tokenizer == "word":
        assert not set(drawn) & set(specials)
    else:  # <eos> is a line break here: allowed, and then nearly always drawn
        assert set(drawn) == {v.eos_id}


def _write(path, text):
    path.write_text(text)
    return path


def test_windows_cut_the_streams_into_rows():
    batch = stream_batch(list(range(50)), 2, window=6)  # streams 0..24 and 25..49
    assert batch.inputs.shape == (8, 6)
    assert batch.inputs[4].tolist() == [25, 26, 27, 28, 29, 30]  # second stream's first row
    torch.testing.assert_close(batch.targets, batch.inputs + 1)
    with pytest.raises(ValueError, match="window=30"):
        stream_batch(list(range(50)), 2, window=30)


@pytest.mark.parametrize(("key", "value"), [("embedding_size", 16), ("tie_weights", True)])
def test_model_keys_are_unknown_in_the_task_table(key, value):
    setting = f"{key}={str(value).lower()}"
    with pytest.raises(ConfigError, match=rf"^task\.{key}: unknown key \(known: dataset, "):
        run.load_run_config("lm", overrides=[f"task.{setting}"])
    assert run.load_run_config("lm", overrides=[f"model.{setting}"]).model == {key: value}
    with pytest.raises(ConfigError, match=r"model\.vocab_size: set by the task from its data"):
        run.load_run_config("lm", overrides=["model.vocab_size=12"])


def test_lm_settings_that_would_be_ignored_are_refused():
    from rnnkit.tasks.lm import LMTaskConfig

    files = {"train_files": ("a.txt",), "val_files": ("b.txt",)}
    with pytest.raises(ValueError, match="dataset='ptb' and train_files: the files replace"):
        LMTaskConfig(dataset="ptb", **files)
    with pytest.raises(ValueError, match="lowercase=true: the sentencepiece tokenizer"):
        LMTaskConfig(tokenizer="sentencepiece", lowercase=True)
    with pytest.raises(ValueError, match="subword_vocab=50 sizes sentencepiece pieces"):
        LMTaskConfig(tokenizer="char", subword_vocab=50)
    LMTaskConfig(tokenizer="sentencepiece", subword_vocab=50)  # read: fine
