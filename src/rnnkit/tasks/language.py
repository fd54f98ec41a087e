"""The ``lm`` task: a :class:`LanguageModel` on a registered dataset or plain-text files.

The text of each split is tokenized (characters, words or sentencepiece subwords), encoded
with a vocabulary built on the training split, and laid out as ``streams`` parallel streams
(:func:`rnnkit.data.batching.batchify_stream`): row b of the (B, N // B) id matrix continues
where row b of the previous truncated-BPTT chunk ended, so the trainer (with
``trainer.batch_size = task.streams`` and ``trainer.tbptt = k``) carries the state across
the whole epoch (or, with ``window`` = W, through rows of W steps cut from the streams)::

    inputs  = streams[:, :-1]   # (B, L - 1)
    targets = streams[:, 1:]    # (B, L - 1), the next token at every position

The tokenizer and the vocabulary travel in the checkpoint's ``vocab.json``, which is all
:func:`load_text_codec` needs to turn text into ids and back for ``rnnkit generate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from rnnkit.config import to_dict
from rnnkit.data.batching import batchify_stream
from rnnkit.data.readers.text import read_text
from rnnkit.data.registry import dataset_dir, fetch, load_report
from rnnkit.data.tokenizers import (
    CharTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    WordTokenizer,
    tokenizer_from_config,
)
from rnnkit.data.vocab import Vocab
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.tasks.registry import TaskData, TaskSpec, register_task
from rnnkit.training.batch import SequenceBatch

SPLIT_FILES = {"train": "train.txt", "val": "valid.txt", "test": "test.txt"}


@dataclass(frozen=True)
class LMTaskConfig:
    dataset: str = "shakespeare"  # registered dataset with {train,valid,test}.txt
    train_files: tuple[str, ...] = ()  # plain-text files instead of the dataset
    val_files: tuple[str, ...] = ()  # validation text (required with train_files)
    test_files: tuple[str, ...] = ()  # test text (the validation text when empty)
    tokenizer: Literal["char", "word", "sentencepiece"] = "char"  # unit of the model
    lowercase: bool = False  # lower-case the text first (char and word tokenizers)
    max_vocab: int = 10_000  # vocabulary size limit, specials included
    subword_vocab: int = 2000  # sentencepiece pieces
    streams: int = 64  # B, parallel training streams (set trainer.batch_size to this)
    window: int = 0  # > 0: cut the training streams into rows of this many steps
    eval_streams: int = 16  # parallel streams for validation and test
    embedding_size: int = 64  # D
    tie_weights: bool = False  # share the embedding as the output matrix

    def __post_init__(self) -> None:
        for name in ("max_vocab", "subword_vocab", "streams", "eval_streams", "embedding_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.window < 0:
            raise ValueError(f"window must be >= 0, got {self.window}")
        if self.train_files and not self.val_files:
            raise ValueError("train_files needs val_files too")


def split_texts(cfg: LMTaskConfig) -> dict[str, str]:
    """The text of each split, from the files or from the (fetched once) dataset."""
    if cfg.train_files:
        files = {"train": cfg.train_files, "val": cfg.val_files}
        files["test"] = cfg.test_files or cfg.val_files
        return {s: "".join(read_text(f) for f in fs) for s, fs in files.items()}
    if load_report(cfg.dataset) is None:
        fetch(cfg.dataset)
    root = dataset_dir(cfg.dataset)
    return {s: read_text(root / f) for s, f in SPLIT_FILES.items()}


def make_tokenizer(cfg: LMTaskConfig, train_text: str, seed: int) -> Tokenizer:
    if cfg.tokenizer == "char":
        return CharTokenizer(lowercase=cfg.lowercase)
    if cfg.tokenizer == "word":
        return WordTokenizer(lowercase=cfg.lowercase)
    lines = train_text.splitlines()
    return SentencePieceTokenizer.train(lines, vocab_size=cfg.subword_vocab, seed=seed)


def stream_batch(ids: list[int], streams: int, window: int = 0) -> SequenceBatch:
    """``ids`` laid out as ``streams`` rows of next-token pairs (see module docstring).

    With ``window`` > 0 each stream is cut into rows of ``window`` steps (the remainder
    dropped): (B, L - 1) -> (B * n, window). The state then starts from zeros at every row,
    so the model also learns to start from the zero state, as generation does.
    """
    s = batchify_stream(torch.tensor(ids, dtype=torch.int64), streams)  # (B, L)
    x, y = s[:, :-1], s[:, 1:]  # (B, L - 1)
    if window:
        n = x.shape[1] // window
        if n < 1:
            raise ValueError(f"window={window} is longer than the {x.shape[1]} steps per stream")
        x = x[:, : n * window].reshape(-1, window)  # (B * n, W)
        y = y[:, : n * window].reshape(-1, window)
    b, t = x.shape
    mask = torch.ones(b, t, dtype=torch.bool)
    return SequenceBatch(x, y, mask, torch.full((b,), t, dtype=torch.int64))


def build_lm(cfg: LMTaskConfig, seed: int) -> TaskData:
    texts = split_texts(cfg)
    tokenizer = make_tokenizer(cfg, texts["train"], seed)
    tokens = {s: tokenizer.tokenize(t) for s, t in texts.items()}
    vocab = Vocab.build([tokens["train"]], max_size=cfg.max_vocab)
    ids = {s: vocab.encode(t) for s, t in tokens.items()}
    return TaskData(
        train=stream_batch(ids["train"], cfg.streams, cfg.window),
        val=stream_batch(ids["val"], cfg.eval_streams),
        test=stream_batch(ids["test"], cfg.eval_streams),
        model_shape={
            "vocab_size": len(vocab),
            "embedding_size": cfg.embedding_size,
            "tie_weights": cfg.tie_weights,
        },
        vocab={"tokens": vocab.tokens, "tokenizer": tokenizer.to_config()},
    )


def build_lm_model(model: Any, data: TaskData, seed: int) -> LanguageModel:
    """The model from the run's [model] section and the task's shape (unused keys ignored)."""
    fields = {**to_dict(model), **data.model_shape}
    names = LanguageModelConfig.__dataclass_fields__
    return LanguageModel(LanguageModelConfig(**{k: v for k, v in fields.items() if k in names}))


@dataclass(frozen=True)
class TextCodec:
    tokenizer: Tokenizer  # text <-> token strings
    vocab: Vocab  # token strings <-> ids

    def encode(self, text: str) -> list[int]:
        return self.vocab.encode(self.tokenizer.tokenize(text))

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.detokenize(self.vocab.decode(ids))


def load_text_codec(vocab_json: dict[str, Any]) -> TextCodec:
    """The tokenizer and vocabulary saved by the ``lm`` task in a checkpoint."""
    if "tokenizer" not in vocab_json:
        raise ValueError("this checkpoint has no tokenizer: it is not a language model run")
    return TextCodec(tokenizer_from_config(vocab_json["tokenizer"]), Vocab(vocab_json["tokens"]))


register_task(
    TaskSpec("lm", LMTaskConfig, build_lm, "language model on text", build_model=build_lm_model)
)


def generate_text(
    run_dir: str | Path,
    prime: str,
    length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    which: str = "best",
    on_text: Any = None,
) -> str:
    """Continue ``prime`` by ``length`` tokens with the run's checkpoint; returns the new text.

    ``on_text(piece)`` receives each new token's text as it is drawn (streaming).
    """
    from rnnkit.decoding import generate
    from rnnkit.tasks.run import checkpoint_path
    from rnnkit.training.checkpoint import load_model, load_vocab

    path = checkpoint_path(run_dir, which)
    vocab_json = load_vocab(path)
    if vocab_json is None:
        raise ValueError(f"{path} has no vocabulary: it is not a language model run")
    codec = load_text_codec(vocab_json)
    model = load_model(path).eval()
    ids = codec.encode(prime)
    if not ids:
        raise ValueError("prime must hold at least one token")
    pieces: list[str] = []
    sep = "" if isinstance(codec.tokenizer, CharTokenizer) else " "  # between word pieces

    def emit(token: torch.Tensor) -> None:
        piece = sep + codec.decode([int(token[0])])
        pieces.append(piece)
        if on_text is not None:
            on_text(piece)

    generate(
        model,
        torch.tensor([ids]),
        length,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        on_token=emit,
    )
    return "".join(pieces)
