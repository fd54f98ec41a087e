"""The model contract: require() answers a model that lacks a method with one sentence, the
Trainer checks it when built, and the CLI prints that sentence as its one-line error."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from _training_helpers import LossOnly  # (also: one torch thread)
from rnnkit.cli import app
from rnnkit.data.codec import TextCodec
from rnnkit.data.synthetic import adding_problem
from rnnkit.data.tokenizers import WordTokenizer
from rnnkit.data.vocab import Vocab
from rnnkit.models import (
    Carrying,
    ClassifierConfig,
    LanguageModel,
    LanguageModelConfig,
    ModelContractError,
    Predicting,
    RecurrentModel,
    RecurrentModelConfig,
    SequenceClassifier,
    SequenceTagger,
    Stepping,
    TaggerConfig,
    Traceable,
    Trainable,
    require,
)
from rnnkit.training import LogConfig, Trainer, TrainerConfig


def classifier(codec=None) -> SequenceClassifier:
    return SequenceClassifier(ClassifierConfig(vocab_size=8, embedding_dim=4, hidden_size=4), codec)


def language_model() -> LanguageModel:
    cfg = LanguageModelConfig(vocab_size=8, embedding_size=4, hidden_size=4, num_layers=1)
    return LanguageModel(cfg)


def tagger() -> SequenceTagger:
    return SequenceTagger(TaggerConfig(vocab_size=8, num_tags=3, word_dim=4, hidden_size=4))


def per_step() -> RecurrentModel:
    return RecurrentModel(RecurrentModelConfig(input_size=2, hidden_size=4))


class Adder(torch.nn.Module):
    """Neither trainable nor anything else: no loss, no config."""

    def forward(self, x):
        return x + 1


def _message(model, protocol, **kw) -> str:
    with pytest.raises(ModelContractError) as e:
        require(model, protocol, **kw)
    assert isinstance(e.value, TypeError)  # callers that catch TypeError see it too
    return str(e.value)


@pytest.mark.parametrize(
    ("make", "protocol", "where", "expected"),
    [
        (
            classifier,
            Stepping,
            "runs/sentiment",
            "runs/sentiment is a classifier: it has no next-token step to generate with",
        ),
        (
            tagger,
            Stepping,
            "runs/ner",
            "runs/ner is a tagger: it has no next-token step to generate with",
        ),
        (
            classifier,
            Carrying,
            "",
            "the model is a classifier: it has no carry_loss(batch, state) to carry its state "
            "through truncated BPTT with",
        ),
        (
            Adder,
            Trainable,
            "",
            "the model is an Adder model: it has no loss(batch) and get_config() to train with",
        ),
        (
            LossOnly,
            Traceable,
            "runs/x",
            "runs/x is a LossOnly model: it has no trace(batch) of per-step states to diagnose",
        ),
        (
            language_model,
            Predicting,
            "runs/lm",
            "runs/lm is a language model: it has no predict(inputs) for raw input",
        ),
        (
            per_step,
            Predicting,
            "runs/adding",
            "runs/adding is a per-step model: it has no predict(inputs) for raw input",
        ),
        (
            classifier,
            Predicting,
            "",
            "the model is a classifier: it has no codec to read raw input with (train it "
            "through a task, or give the Trainer codec=)",
        ),
    ],
)
def test_require_says_what_the_model_is_and_lacks(make, protocol, where, expected):
    assert _message(make(), protocol, where=where) == expected


def test_require_passes_models_that_meet_the_protocol():
    lm = language_model()
    for protocol in (Trainable, Carrying, Stepping, Traceable):
        require(lm, protocol)
    for model in (classifier(), tagger(), per_step()):
        require(model, Trainable)
        require(model, Traceable)
    require(per_step(), Carrying)
    codec = TextCodec(WordTokenizer(), Vocab.build([["a", "b"]]), labels=("neg", "pos"))
    require(classifier(codec), Predicting)  # with its codec it reads raw text


def test_require_uses_the_callers_own_phrase():
    message = _message(classifier(), Stepping, where="runs/c", needs="step() to beam-search with")
    assert message == "runs/c is a classifier: it has no step() to beam-search with"


def _trainer_config(tbptt: int = 0) -> TrainerConfig:
    return TrainerConfig(batch_size=4, tbptt=tbptt, log=LogConfig(progress="none"))


def test_trainer_refuses_a_model_without_loss_naming_it():
    with pytest.raises(ModelContractError) as e:
        Trainer(Adder(), _trainer_config(), adding_problem(8, 5, seed=0))
    assert str(e.value) == (
        "the model is an Adder model: it has no loss(batch) and get_config() to train with"
    )


def test_trainer_refuses_truncated_bptt_for_a_classifier_naming_the_setting():
    data = adding_problem(8, 5, seed=0)  # never reached: the model is checked first
    with pytest.raises(ModelContractError) as e:
        Trainer(classifier(), _trainer_config(tbptt=5), data)
    assert str(e.value) == (
        "the model is a classifier: it has no carried state for truncated BPTT "
        "(trainer.tbptt=5); train it with tbptt = 0"
    )
    Trainer(classifier(), _trainer_config(tbptt=0), data)  # full BPTT is fine


def test_cli_train_with_tbptt_on_a_classifier_is_a_one_line_error(tmp_path):
    rows = ["text,label"] + [
        f"{'good fine' if i % 2 else 'bad dull'} film {i},{'pos' if i % 2 else 'neg'}"
        for i in range(40)
    ]
    data = tmp_path / "reviews.csv"
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    sets = [
        f'task.data="{data}"',
        "model.hidden_size=4",
        "model.embedding_dim=4",
        "trainer.batch_size=4",
        "trainer.tbptt=5",
        'trainer.log.progress="none"',
    ]
    args = ["train", "classify", *[a for s in sets for a in ("--set", s)], "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
    assert r.output == (
        "error: the model is a classifier: it has no carried state for truncated BPTT "
        "(trainer.tbptt=5); train it with tbptt = 0\n"
    )
    assert not (out / "config.json").exists()  # refused before the run began: --out is free
