"""The ``lm`` task: a :class:`LanguageModel` on a registered dataset or plain-text files.

The text of each split is tokenized (characters, words, whitespace-separated tokens with
``<eos>`` at line ends, or sentencepiece subwords), encoded
with a vocabulary built on the training split, and laid out as ``streams`` parallel streams
(:func:`rnnkit.data.batching.batchify_stream`): row b of the (B, N // B) id matrix continues
where row b of the previous truncated-BPTT chunk ended, so the trainer (with
``trainer.batch_size = task.streams`` and ``trainer.tbptt = k``) carries the state across
the whole epoch (or, with ``window`` = W, through rows of W steps cut from the streams)::

    inputs  = streams[:, :-1]   # (B, L - 1)
    targets = streams[:, 1:]    # (B, L - 1), the next token at every position

The tokenizer and the vocabulary (a :class:`~rnnkit.data.codec.TextCodec`) travel in every
checkpoint, which is all ``rnnkit generate`` and ``rnnkit.load(run).generate(...)`` need;
``evaluate`` and ``diagnose`` encode the text with it (a sentencepiece model is never trained
twice). The model's own settings (embedding size, tied weights, cell) sit in ``[model]``
(:class:`~rnnkit.models.LanguageModelConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from rnnkit.config import is_set
from rnnkit.data.batches import SequenceBatch
from rnnkit.data.batching import batchify_stream
from rnnkit.data.codec import TextCodec
from rnnkit.data.readers.text import read_text
from rnnkit.data.registry import dataset_dir, fetch, load_report
from rnnkit.data.tokenizers import (
    CharTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    WhitespaceTokenizer,
    WordTokenizer,
)
from rnnkit.data.vocab import Vocab
from rnnkit.models.language_model import LanguageModel
from rnnkit.tasks.base import Task, TaskData

SPLIT_FILES = {"train": "train.txt", "val": "valid.txt", "test": "test.txt"}


@dataclass(frozen=True)
class LMTaskConfig:
    dataset: str = "shakespeare"  # registered dataset with {train,valid,test}.txt
    train_files: tuple[str, ...] = ()  # plain-text files instead of the dataset
    val_files: tuple[str, ...] = ()  # validation text (required with train_files)
    test_files: tuple[str, ...] = ()  # test text (the validation text when empty)
    # unit of the model; "whitespace": pre-tokenized text, a line break is <eos> (PTB)
    tokenizer: Literal["char", "word", "whitespace", "sentencepiece"] = "char"
    lowercase: bool = False  # lower-case the text first (all but sentencepiece)
    max_vocab: int = 10_000  # vocabulary size limit, specials included
    subword_vocab: int = 2000  # sentencepiece pieces
    streams: int = 64  # B, parallel training streams (set trainer.batch_size to this)
    window: int = 0  # > 0: cut the training streams into rows of this many steps
    eval_streams: int = 16  # parallel streams for validation and test

    def __post_init__(self) -> None:
        for name in ("max_vocab", "subword_vocab", "streams", "eval_streams"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.window < 0:
            raise ValueError(f"window must be >= 0, got {self.window}")
        if self.train_files and not self.val_files:
            raise ValueError("train_files needs val_files too")
        if self.train_files and is_set(self, "dataset"):
            raise ValueError(
                f"dataset={self.dataset!r} and train_files: the files replace the dataset; "
                "give one of them"
            )
        if self.lowercase and self.tokenizer == "sentencepiece":
            raise ValueError(
                "lowercase=true: the sentencepiece tokenizer reads the text as it is; remove "
                "it, or lower-case the files"
            )
        if is_set(self, "subword_vocab") and self.tokenizer != "sentencepiece":
            raise ValueError(
                f"subword_vocab={self.subword_vocab} sizes sentencepiece pieces, not "
                f"tokenizer={self.tokenizer!r}: remove it"
            )
        if not self.train_files and (self.val_files or self.test_files):
            raise ValueError(
                f"val_files and test_files go with train_files; without them the splits are "
                f"dataset={self.dataset!r}'s own (task.train_files is empty)"
            )


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
    if cfg.tokenizer == "whitespace":
        return WhitespaceTokenizer(lowercase=cfg.lowercase)
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


def prepare(cfg: LMTaskConfig, seed: int, codec: TextCodec | None = None) -> TaskData:
    texts = split_texts(cfg)
    if codec is None:
        tokenizer = make_tokenizer(cfg, texts["train"], seed)
        vocab = Vocab.build([tokenizer.tokenize(texts["train"])], max_size=cfg.max_vocab)
        codec = TextCodec(tokenizer, vocab)
    ids = {s: codec.encode(t) for s, t in texts.items()}
    where = {
        "train": ", ".join(cfg.train_files) or f"dataset {cfg.dataset!r}, train",
        "val": ", ".join(cfg.val_files) or f"dataset {cfg.dataset!r}, valid",
        "test": ", ".join(cfg.test_files or cfg.val_files) or f"dataset {cfg.dataset!r}, test",
    }
    streams = {"train": cfg.streams, "val": cfg.eval_streams, "test": cfg.eval_streams}
    batches = {}
    for split, text_ids in ids.items():
        try:
            batches[split] = stream_batch(
                text_ids, streams[split], cfg.window if split == "train" else 0
            )
        except ValueError as e:  # an empty or tiny file: name it and its split
            raise ValueError(f"{where[split]} ({split} split): {e}") from None
    return TaskData(
        train=batches["train"],
        val=batches["val"],
        test=batches["test"],
        codec=codec,
        fixed={"vocab_size": len(codec.vocab)},
    )


TASK = Task(
    "lm",
    "language model on text (characters, words or subwords)",
    LMTaskConfig,
    LanguageModel,
    prepare,
    fixed=("vocab_size",),
    eval_keys=("eval_streams",),
)
