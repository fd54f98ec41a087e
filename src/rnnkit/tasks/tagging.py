"""The ``tagging`` task: a :class:`SequenceTagger` on CoNLL-2003 or CoNLL-U files.

The ``[task]`` table names the files and the tag column; the word, character and tag
vocabularies (a :class:`~rnnkit.data.codec.TaggingCodec`) are built from the training split
and saved with every checkpoint::

    [task]
    format = "conll"            # or "conllu"
    train = "data/train.txt"
    test = "data/test.txt"      # val defaults to test when not given
    column = "-1"               # conll: tag column index; conllu: "upos" or "deprel"

or a registry dataset in CoNLL form, fetched on first use (``rnnkit data info NAME``)::

    [task]
    dataset = "japanese-ner"    # {train,valid,test}.conll in its dataset directory

The model's own settings (decoder, direction, word and character sizes, cell) sit in
``[model]`` (:class:`~rnnkit.models.TaggerConfig`). Evaluation adds token accuracy and, when
the tags are O/B-/I-/E-/S- typed, span precision, recall and F1 by the conlleval definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from rnnkit.config import ConfigError
from rnnkit.data.batches import SequenceBatch
from rnnkit.data.codec import TaggingCodec
from rnnkit.data.readers import read_conll, read_conllu
from rnnkit.data.vocab import Vocab
from rnnkit.models.tagger import SequenceTagger
from rnnkit.tagging.schemes import detect_scheme
from rnnkit.tasks.base import Task, TaskData

CONLLU_COLUMNS = {"upos": "upos", "deprel": "deprels"}  # column -> UDSentence field


@dataclass(frozen=True)
class TaggingConfig:
    train: str = ""  # training file ("" with `dataset`)
    test: str = ""  # test file (`rnnkit evaluate`) ("" with `dataset`)
    dataset: str = ""  # a registry dataset of {train,valid,test}.conll, e.g. "japanese-ner"
    val: str = ""  # validation file; "" uses the test file
    format: Literal["conll", "conllu"] = "conll"  # CoNLL-2003 columns or CoNLL-U
    column: str = "-1"  # conll: tag column index; conllu: "upos" or "deprel"
    chars: bool = True  # feed each word's characters to the model (its char BiRNN)
    max_word_len: int = 20  # W, characters kept per word
    min_freq: int = 1  # fewest training occurrences for a word to get its own id
    spans: bool = True  # score spans when all tags are O / B-, I-, E-, S- tags (NER, chunks)

    def __post_init__(self) -> None:
        if bool(self.dataset) == bool(self.train and self.test):
            raise ValueError("task: give either `dataset` or both `train` and `test` files")
        if self.dataset and self.format != "conll":
            raise ValueError(f"format: dataset {self.dataset!r} is read as 'conll'")
        if self.format not in ("conll", "conllu"):
            raise ValueError(f"format: expected 'conll' or 'conllu', got {self.format!r}")
        if self.format == "conllu" and self.column not in CONLLU_COLUMNS:
            raise ValueError(f"column: expected one of {list(CONLLU_COLUMNS)}, got {self.column!r}")
        if self.format == "conll" and not re.fullmatch(r"-?\d+", self.column):
            raise ValueError(f"column: expected a column index for conll, got {self.column!r}")
        if self.max_word_len < 1 or self.min_freq < 1:
            raise ValueError("max_word_len and min_freq must be >= 1")


def _is_span_tag(tag: str) -> bool:
    return tag == "O" or re.fullmatch(r"[BIES]-.+", tag) is not None


def read_tagged(path: str, cfg: TaggingConfig) -> list[tuple[list[str], list[str]]]:
    """(tokens, tags) of every sentence of ``path``; DataFormatError names file and line."""
    if cfg.format == "conll":
        return [(s.tokens, s.tags) for s in read_conll(path, tag_column=int(cfg.column))]
    return [(s.forms, getattr(s, CONLLU_COLUMNS[cfg.column])) for s in read_conllu(path)]


def split_files(cfg: TaggingConfig) -> tuple[str, str, str]:
    """(train, val, test) paths; a registry dataset is fetched when not yet on disk."""
    if not cfg.dataset:
        return cfg.train, cfg.val or cfg.test, cfg.test
    from rnnkit.data.registry import dataset_dir, fetch

    root = dataset_dir(cfg.dataset)
    if not (root / "train.conll").exists():
        fetch(cfg.dataset)
    train, val, test = (str(root / f"{split}.conll") for split in ("train", "valid", "test"))
    return train, val, test


def build_codec(cfg: TaggingConfig, train: list[tuple[list[str], list[str]]]) -> TaggingCodec:
    words = Vocab.build((s for s, _ in train), max_size=10**7, min_freq=cfg.min_freq)
    chars = Vocab.build((list(w) for s, _ in train for w in s), max_size=10**6)
    tags = sorted({x for _, ts in train for x in ts}, key=lambda x: (x != "O", x))
    scheme = detect_scheme(tags) if cfg.spans and all(map(_is_span_tag, tags)) else ""
    return TaggingCodec(words, tuple(tags), chars if cfg.chars else None, cfg.max_word_len, scheme)


def prepare(cfg: TaggingConfig, seed: int, codec: TaggingCodec | None = None) -> TaskData:
    files = split_files(cfg)
    splits = [read_tagged(f, cfg) for f in files]
    if not splits[0]:
        raise ValueError(f"{files[0]}: no sentences")
    codec = codec or build_codec(cfg, splits[0])
    train, val, test = (codec.batch([s for s, _ in p], [t for _, t in p]) for p in splits)
    fixed = {
        "vocab_size": len(codec.words),
        "num_tags": len(codec.tags),
        "char_vocab_size": len(codec.chars) if codec.chars is not None else 0,
        "tags": codec.tags,
        "scheme": codec.scheme if codec.scheme != "IO" else "",
    }
    return TaskData(train, val, test, codec, fixed)


def check(cfg: TaggingConfig, model: dict[str, Any]) -> None:
    """Character sizes mean nothing without character input: refuse them then."""
    unused = sorted({"char_dim", "char_hidden"} & set(model)) if not cfg.chars else []
    if unused:
        raise ConfigError(f"model.{unused[0]}: unused without character input (task.chars=false)")


def score(model: SequenceTagger, batch: SequenceBatch, data: TaskData) -> dict[str, float]:
    """Token accuracy, and span precision/recall/F1 overall and per type when spans apply."""
    from rnnkit.tagging.metrics import span_scores, token_accuracy

    names = data.codec.tags
    pred = model.tag_rows(batch)
    gold = [
        [names[int(k)] if m else "O" for k, m in zip(row[:n], keep[:n], strict=True)]
        for row, keep, n in zip(batch.targets, batch.mask, batch.lengths.tolist(), strict=True)
    ]
    out = {"token_accuracy": token_accuracy(gold, pred)}
    if data.codec.scheme:
        scores = span_scores(gold, pred)
        for kind, prf in [("overall", scores.overall), *scores.per_type.items()]:
            out.update({f"{m}_{kind}": getattr(prf, m) for m in ("precision", "recall", "f1")})
    return out


def read_file(cfg: TaggingConfig, path: str, codec: TaggingCodec) -> SequenceBatch:
    """A tagged file in the run's format, encoded with the saved codec."""
    rows = read_tagged(path, cfg)
    return codec.batch([s for s, _ in rows], [t for _, t in rows])


TASK = Task(
    "tagging",
    "sequence tagging (NER, POS, chunking) from CoNLL-2003 or CoNLL-U files",
    TaggingConfig,
    SequenceTagger,
    prepare,
    fixed=("vocab_size", "num_tags", "char_vocab_size", "tags", "scheme"),
    check=check,
    score=score,
    read_file=read_file,
)
