"""Seq2SeqEnsemble: the averaged step, beam search against brute force, the loss, padding,
refusals, and ``rnnkit evaluate / translate --ensemble`` on runs."""

from __future__ import annotations

import copy
import itertools
import json
import random
import shutil

import pytest
import torch
from typer.testing import CliRunner

import _training_helpers  # noqa: F401  (one torch thread)
import rnnkit
from rnnkit.cli import app
from rnnkit.data.batches import PairBatch
from rnnkit.models import Seq2SeqEnsemble
from rnnkit.models.contract import Ensembling, ModelContractError, Stepping, Trainable
from rnnkit.models.seq2seq import BOS, EOS, Seq2Seq, Seq2SeqConfig


def _model(seed: int, **kw) -> Seq2Seq:
    torch.manual_seed(seed)
    base = {"source_vocab_size": 12, "target_vocab_size": 7, "hidden_size": 8}
    return Seq2Seq(Seq2SeqConfig(embedding_size=6, **{**base, **kw})).eval()


def _pair():
    """Two different members: another seed, cell, attention and depth."""
    return _model(0, attention="general"), _model(1, attention="bahdanau", cell="gru", num_layers=2)


def _source():
    g = torch.Generator().manual_seed(3)
    return torch.randint(4, 12, (3, 5), generator=g), torch.tensor([5, 3, 4])


@torch.no_grad()
def test_a_step_is_the_renormalised_mean_of_the_members_log_probabilities():
    a, b = _pair()
    ens = a.ensemble([b])
    assert isinstance(ens, Seq2SeqEnsemble)
    assert isinstance(ens, Stepping) and isinstance(a, Ensembling)
    src, lengths = _source()
    state, sa, sb = ens.encode(src, lengths), a.encode(src, lengths), b.encode(src, lengths)
    tokens = torch.full((3,), BOS)
    for t in range(4):
        logp, state = ens.step(tokens, state)
        la, sa = a.step(tokens, sa)
        lb, sb = b.step(tokens, sb)
        mean = (la.log_softmax(-1) + lb.log_softmax(-1)) / 2
        want = mean - mean.logsumexp(-1, keepdim=True)
        torch.testing.assert_close(logp, want)
        assert torch.isneginf(logp[:, [0, BOS]]).all()  # <pad>, <bos> never emitted
        torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3))
        tokens = torch.tensor([4 + t, 5, EOS])


@torch.no_grad()
def test_an_ensemble_of_one_model_twice_decodes_and_scores_as_the_model():
    a = _model(0, attention="general")
    ens = a.ensemble([copy.deepcopy(a)])
    src, lengths = _source()
    for beam in (1, 3):
        mine, theirs = ens.decode(src, lengths, beam, beam), a.decode(src, lengths, beam, beam)
        for row_e, row_a in zip(mine, theirs, strict=True):
            assert [ids for ids, _ in row_e] == [ids for ids, _ in row_a]
            assert [s for _, s in row_e] == pytest.approx([s for _, s in row_a], abs=1e-5)
    batch = PairBatch(src, lengths, torch.randint(4, 7, (3, 4)), torch.tensor([4, 2, 3]))
    (loss_e, m_e), (loss_a, m_a) = ens.loss(batch), a.loss(batch)
    torch.testing.assert_close(loss_e, loss_a)
    assert m_e == pytest.approx(m_a)


@torch.no_grad()
def test_beam_search_on_an_ensemble_equals_brute_force():
    """The best output of up to 3 tokens, enumerated under the members' averaged step."""
    a, b = _pair()
    ens = a.ensemble([b])
    src, lengths = _source()
    src, lengths = src[:1], lengths[:1]
    state0 = (a.encode(src, lengths), b.encode(src, lengths))
    best, best_score = None, -float("inf")
    words = [1, 3, 4, 5, 6]  # <unk>, <eos> and three words
    for n in range(1, 4):
        for seq in itertools.product(words, repeat=n):
            if EOS in seq[:-1] or (n < 3 and seq[-1] != EOS):
                continue
            sa, sb = state0
            total = 0.0
            for prev, tok in zip((BOS, *seq[:-1]), seq, strict=True):
                la, sa = a.step(torch.tensor([prev]), sa)
                lb, sb = b.step(torch.tensor([prev]), sb)
                mean = (la.log_softmax(-1) + lb.log_softmax(-1)) / 2
                total += float((mean - mean.logsumexp(-1, keepdim=True))[0, tok])
            if total > best_score:
                best, best_score = list(seq), total
    found = ens.decode(src, lengths, beam=125, max_length=3)[0][0]
    assert found[0] == [t for t in best if t != EOS]
    assert found[1] == pytest.approx(best_score, abs=1e-4)


@torch.no_grad()
def test_a_padded_batch_decodes_as_each_source_alone():
    ens = _pair()[0].ensemble([_pair()[1]])
    src, lengths = _source()
    together = ens.decode(src, lengths, beam=3, n_best=2, max_length=8)
    for i in range(3):
        n = int(lengths[i])
        alone = ens.decode(src[i : i + 1, :n], lengths[i : i + 1], 3, 2, max_length=8)[0]
        assert [ids for ids, _ in alone] == [ids for ids, _ in together[i]]
        assert [s for _, s in alone] == pytest.approx([s for _, s in together[i]], abs=1e-5)


def test_the_loss_is_the_cross_entropy_of_the_combined_distribution():
    a, b = _pair()
    ens = a.ensemble([b])
    src, lengths = _source()
    target = torch.tensor([[4, 5, 6, EOS], [5, EOS, 0, 0], [6, 6, EOS, 0]])
    batch = PairBatch(src, lengths, target, torch.tensor([4, 2, 3]))
    loss, metrics = ens.loss(batch)
    want, n = 0.0, 0
    with torch.no_grad():  # each row alone, from the members' teacher-forced logits
        for i in range(3):
            s, u = int(lengths[i]), int(batch.target_lengths[i])
            args = (src[i : i + 1, :s], lengths[i : i + 1], target[i : i + 1, :u])
            mean = (a(*args)[0].log_softmax(-1) + b(*args)[0].log_softmax(-1)) / 2
            logp = mean - mean.logsumexp(-1, keepdim=True)  # (1, u, V)
            want -= float(logp[0].gather(1, target[i, :u, None]).sum())
            n += u
    assert float(loss.detach()) == pytest.approx(want / n, abs=1e-5)  # no label smoothing here
    assert metrics["perplexity"] == pytest.approx(torch.tensor(want / n).exp().item(), rel=1e-5)
    loss.backward()  # gradients reach every member
    assert all(p.grad is not None for p in a.parameters() if p.requires_grad)
    assert b.head.weight.grad is not None


def test_an_ensemble_refuses_members_that_cannot_be_combined():
    a = _model(0)
    with pytest.raises(ValueError, match=r"target_vocab_size is 9, members\[0\]'s 7"):
        a.ensemble([_model(1, target_vocab_size=9)])
    with pytest.raises(ValueError, match="at least 2 models, got 1"):
        Seq2SeqEnsemble([a])
    with pytest.raises(ModelContractError, match=r"members\[1\]: a .* is not an encoder-decoder"):
        Seq2SeqEnsemble([a, torch.nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="state: an ensemble steps from the tuple"):
        a.ensemble([_model(1)]).step(torch.tensor([BOS]), None)
    assert isinstance(a.ensemble([_model(1)]), Trainable) is False  # evaluated, not trained


# ---- runs: rnnkit evaluate / translate --ensemble -----------------------------------------

WORDS = ["red", "green", "blue", "cat", "dog", "bird"]


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _train(tmp, name: str, words: list[str], seed: int):
    rng = random.Random(seed)
    data = tmp / f"{name}.tsv"
    with data.open("w") as f:
        f.write("source\ttarget\n")
        for _ in range(60):
            w = rng.choices(words, k=rng.randint(2, 4))
            f.write(f"{' '.join(w)}\t{' '.join(reversed(w))}\n")
    out = tmp / name
    rnnkit.train(
        "translate",
        out,
        overrides=[
            'task.dataset=""',
            f'task.train="{data}"',
            f'task.valid="{data}"',
            f'task.test="{data}"',
            "model.hidden_size=12",
            "model.embedding_size=8",
            "trainer.epochs=2",
            "trainer.batch_size=8",
            "trainer.lr=0.02",
            "trainer.log.tensorboard=false",
            f"seed={seed}",
        ],
    )
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ensemble")
    a = _train(tmp, "a", WORDS, 0)
    twin = tmp / "twin"
    shutil.copytree(a, twin)  # the same model in another run directory
    other = _train(tmp, "other", WORDS[:4], 1)  # another vocabulary
    return a, twin, other


def test_evaluate_with_a_twin_run_scores_as_the_run_alone(runs):
    a, twin, _ = runs
    code, alone = _cli("evaluate", str(a), "--set", "task.metrics=['bleu','exact']")
    assert code == 0, alone
    code, both = _cli(
        "evaluate", str(a), "--ensemble", str(twin), "--set", "task.metrics=['bleu','exact']"
    )
    assert code == 0, both
    alone, both = json.loads(alone), json.loads(both)
    assert set(both) == set(alone) and {"loss", "bleu", "exact"} <= set(both)
    for k in alone:
        assert both[k] == pytest.approx(alone[k], abs=1e-5), k
    code, out = _cli("translate", str(a), "red cat dog", "--ensemble", str(twin), "--beam", "3")
    assert code == 0, out
    assert out.strip() == rnnkit.load(a).translate("red cat dog", beam=3).text
    model = rnnkit.load_ensemble([a, twin])
    assert isinstance(model, Seq2SeqEnsemble) and model.codec is not None


def test_evaluate_ensemble_refuses_runs_that_do_not_fit(runs, tmp_path):
    a, _, other = runs
    code, out = _cli("evaluate", str(a), "--ensemble", str(other))
    assert code != 0 and "codec (vocabularies, tokenizers) differs" in out and str(other) in out
    code, out = _cli("evaluate", str(a), "--ensemble", str(a))
    assert code != 0 and "already in the ensemble" in out
    code, out = _cli("evaluate", str(a), "--ensemble", str(tmp_path / "nowhere"))
    assert code != 0 and "nowhere" in out and "Traceback" not in out
    classifier = tmp_path / "clf"
    rnnkit.train(
        "classify",
        classifier,
        records=[(f"{w} film {i}", w) for i in range(10) for w in ("good", "bad")],
        overrides=["trainer.epochs=1", "trainer.batch_size=4", "trainer.log.tensorboard=false"],
    )
    code, out = _cli("evaluate", str(classifier), "--ensemble", str(a))
    assert code != 0 and "has no ensemble(others)" in out, out
