"""The ``classify`` task (alias ``sentiment``): a :class:`SequenceClassifier` on labelled text.

The ``[task]`` table names the data: a CSV/TSV/JSONL file with a text and a label column
(split 80/10/10, seeded, identical texts kept together), or a registry dataset
(``movie-reviews``, ``rotten-tomatoes``: their own train/valid/test files, fetched on first
use)::

    data = get_task("classify").prepare(ClassifyConfig(data="reviews.csv"), 0, None)
    data.codec.labels       # ('neg', 'pos'): label ids in sorted order

The codec (tokenizer, vocabulary, label names) is saved in every checkpoint, so
``rnnkit.load(run).predict(["a witty film"])`` classifies raw text from the run alone. The
model's own settings (embedding size, direction, pooling, head, cell) sit in ``[model]``
(:class:`~rnnkit.models.ClassifierConfig`); pretrained vectors and Naive Bayes columns, which
come from data, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnkit.config import ConfigError
from rnnkit.data import Vocab, WordTokenizer, build_embedding, nb_log_count_ratios, read_vectors
from rnnkit.data.batches import SequenceBatch
from rnnkit.data.codec import TextCodec
from rnnkit.data.readers import read_columns
from rnnkit.data.registry import dataset_dir, fetch, get, load_report, names
from rnnkit.data.representations import vectors_file
from rnnkit.data.splits import by_split, group_split
from rnnkit.models.classifier import SequenceClassifier
from rnnkit.tasks.base import Task, TaskData

SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}


@dataclass(frozen=True)
class ClassifyConfig:
    data: str = "rotten-tomatoes"  # labelled .csv/.tsv/.jsonl file, or a dataset name
    text_column: str = "text"  # column (field) holding the text
    label_column: str = "label"  # column (field) holding the label
    lowercase: bool = True  # lower-case before tokenizing into words
    split_clitics: bool = False  # does n't, it 's: as GloVe/word2vec vocabularies tokenize
    max_vocab: int = 20_000  # vocabulary size, specials included (from the training split)
    min_freq: int = 1  # fewest training occurrences a word needs
    max_len: int = 0  # keep only the first max_len tokens (0: all)
    vectors: str = ""  # word2vec/GloVe text file or table, "glove-100d", "spacy-vectors-300d"
    nb_columns: int = 0  # the first embedding columns start at each word's NB log-count ratio
    wide_nb: bool = False  # scale the wide part's n-grams by their NB log-count ratio (NBSVM)
    wide_nb_start: bool = False  # with wide_nb: the wide part starts as the NB classifier

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("data must name a labelled file or a dataset, got ''")
        for name in ("max_vocab", "min_freq"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_len", "nb_columns"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def read_labelled(path: str | Path, text_column: str, label_column: str) -> tuple[list, list]:
    """Texts and label strings of a CSV/TSV (header line) or JSONL file."""
    texts, labels = read_columns(path, [text_column, label_column], "labelled file")
    return texts, labels


def _splits(cfg: ClassifyConfig, seed: int) -> dict[str, tuple[list, list]]:
    path = Path(cfg.data)
    if path.suffix and not path.is_file():
        raise FileNotFoundError(f"task.data: no such labelled file: {path}")
    if not path.is_file():
        if cfg.data not in names():
            raise ValueError(f"task.data={cfg.data!r} is neither a file nor a dataset ({names()})")
        info = get(cfg.data).info
        if ".tsv" not in info.files:  # no labelled text: say which task reads it
            hint = (
                "use the classify-series task"
                if ".ts:" in info.files or ".fasta:" in info.files
                else "give a labelled file, or a text-classification dataset"
            )
            raise ValueError(
                f"task.data={cfg.data!r}: dataset {cfg.data} ({info.task}) holds no labelled "
                f"text; {hint}"
            )
        if load_report(cfg.data) is None:
            fetch(cfg.data)
        folder = dataset_dir(cfg.data)
        out = {}
        for split, stem in SPLIT_FILES.items():
            f = folder / f"{stem}.tsv"
            if not f.is_file():
                raise ValueError(
                    f"task.data={cfg.data!r}: dataset {cfg.data} has no {f.name} of labelled "
                    "text; give a labelled file, or a text-classification dataset"
                )
            out[split] = read_labelled(f, cfg.text_column, cfg.label_column)
        return out
    texts, labels = read_labelled(path, cfg.text_column, cfg.label_column)
    assigned = group_split([t.lower() for t in texts], seed=seed)  # train/valid/test names
    parts = {
        k: by_split(list(zip(texts, labels, strict=True)), assigned).get(v, [])
        for k, v in SPLIT_FILES.items()
    }
    return {k: ([t for t, _ in rows], [y for _, y in rows]) for k, rows in parts.items()}


def labelled_batch(ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> SequenceBatch:
    """The many-to-one layout: each label at its sequence's last step, the only marked step."""
    n, t = ids.shape[:2]
    steps = torch.arange(n)
    targets = torch.zeros(n, t, dtype=torch.long)
    mask = torch.zeros(n, t, dtype=torch.bool)
    targets[steps, lengths - 1] = labels
    mask[steps, lengths - 1] = True
    return SequenceBatch(ids, targets, mask, lengths)


def encode_labelled(codec: TextCodec, texts: Sequence[str], labels: Sequence[str], where: str):
    """The :func:`labelled_batch` of texts and label names through ``codec``."""
    ids, lengths = codec.batch(texts)
    return labelled_batch(ids, lengths, codec.label_ids(labels, where))


def build_codec(cfg: ClassifyConfig, train_texts: list[str], train_labels: list[str]):
    tokenizer = WordTokenizer(lowercase=cfg.lowercase, split_clitics=cfg.split_clitics)
    vocab = Vocab.build(
        (tokenizer.tokenize(t) for t in train_texts), max_size=cfg.max_vocab, min_freq=cfg.min_freq
    )
    classes = sorted(set(train_labels))
    if len(classes) < 2:
        raise ValueError(f"task.data={cfg.data!r}: expected >= 2 labels, found {classes}")
    for name in ("nb_columns", "wide_nb"):
        if getattr(cfg, name) and len(classes) != 2:
            raise ValueError(f"task.{name}: the log-count ratio needs 2 labels, found {classes}")
    return TextCodec(tokenizer, vocab, tuple(classes), cfg.max_len)


def prepare(cfg: ClassifyConfig, seed: int, codec: TextCodec | None = None) -> TaskData:
    splits = _splits(cfg, seed)
    if not splits["train"][0]:
        distinct = len({t.lower() for part in splits.values() for t in part[0]})
        raise ValueError(
            f"task.data={cfg.data!r}: the training split is empty: the {distinct} distinct "
            "texts (the split keeps copies of a text together, case ignored) are too few to "
            "fill training, validation and test splits; give more distinct texts"
        )
    codec = codec or build_codec(cfg, *splits["train"])
    batches = {s: encode_labelled(codec, t, y, s) for s, (t, y) in splits.items()}
    train_y = batches["train"].targets[batches["train"].mask]
    majority = int(torch.bincount(train_y, minlength=len(codec.labels)).argmax())
    test_y = batches["test"].targets[batches["test"].mask]
    baseline = {"accuracy": float((test_y == majority).float().mean())} if len(test_y) else {}
    fixed = {
        "vocab_size": len(codec.vocab),
        "num_classes": len(codec.labels),
        "padding_idx": codec.vocab.pad_id,
        "positions": int(batches["train"].lengths.max()),  # what "flatten" pooling reads
    }
    return TaskData(batches["train"], batches["val"], batches["test"], codec, fixed, baseline)


def check(cfg: ClassifyConfig, model: dict[str, Any]) -> None:
    """The vectors and NB columns fill the embedding: refuse them with one-hot inputs."""
    dim = model.get("embedding_dim", SequenceClassifier.config_cls.embedding_dim)
    if (cfg.vectors or cfg.nb_columns) and not dim:
        raise ConfigError("task.vectors and task.nb_columns need model.embedding_dim > 0")
    if cfg.nb_columns >= max(dim, 1) and cfg.nb_columns:
        raise ConfigError(
            f"task.nb_columns={cfg.nb_columns} must be below model.embedding_dim={dim}"
        )
    if cfg.wide_nb and not model.get("wide_ngrams"):
        raise ConfigError("task.wide_nb scales the wide part's n-grams: set model.wide_ngrams > 0")
    if cfg.wide_nb_start and not cfg.wide_nb:
        raise ConfigError("task.wide_nb_start starts from the NB ratios: set task.wide_nb = true")
    if not dim and model.get("freeze_embedding"):
        raise ConfigError("model.freeze_embedding: one-hot inputs (embedding_dim = 0) learn none")


def init_model(model: SequenceClassifier, data: TaskData, cfg: ClassifyConfig, seed: int) -> None:
    """Pretrained vectors into the columns after the NB ones; NB log-count ratios first;
    with ``wide_nb`` the wide part's scales r_g (each n-gram's log-count ratio)."""
    weight = model.embedding.weight if model.config.embedding_dim else None
    nb, vocab = cfg.nb_columns, data.codec.vocab
    train = data.train
    labels = train.targets[train.mask]  # one label per sequence, in order
    if cfg.vectors:
        found = read_vectors(vectors_file(cfg.vectors), keep=set(vocab.tokens))
        emb, _ = build_embedding(vocab, model.config.embedding_dim - nb, found, seed=seed)
        with torch.no_grad():
            weight[:, nb:] = emb.weight
    if cfg.wide_nb:  # r_g over the training split's n-grams; unseen ones never get a u_g
        grams = model.wide_grams(train.inputs, train.lengths)  # (N, G)
        ratios = nb_log_count_ratios(grams, labels, model.wide_scale.numel())
        with torch.no_grad():
            model.wide_scale.copy_(ratios)
        if cfg.wide_nb_start:
            model.start_wide_as_naive_bayes()
    if nb:  # columns 0..nb-1: the training split's log-count ratio, class 1 against class 0
        ratios = nb_log_count_ratios(train.inputs, labels, model.config.vocab_size)
        with torch.no_grad():
            weight[:, :nb] = ratios.unsqueeze(1)
    if weight is not None:
        with torch.no_grad():
            weight[model.config.padding_idx] = 0.0


def read_file(cfg: ClassifyConfig, path: str, codec: TextCodec) -> SequenceBatch:
    """A labelled file read with the run's columns and encoded with the saved codec."""
    texts, labels = read_labelled(path, cfg.text_column, cfg.label_column)
    return encode_labelled(codec, texts, labels, str(path))


def store_records(records: list, path: Path) -> list[str]:
    """Write (text, label) pairs as JSONL at ``path``; the overrides that make the task read it."""
    import json

    lines = []
    for i, record in enumerate(records):
        if not isinstance(record, list | tuple) or len(record) != 2:
            raise ValueError(f"records[{i}]: expected a (text, label) pair, got {record!r}")
        lines.append(json.dumps({"text": str(record[0]), "label": str(record[1])}))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [
        f"task.data={json.dumps(str(path))}",
        'task.text_column="text"',
        'task.label_column="label"',
    ]


TASK = Task(
    "classify",
    "text classification of a labelled CSV/TSV/JSONL file or dataset",
    ClassifyConfig,
    SequenceClassifier,
    prepare,
    fixed=("vocab_size", "num_classes", "padding_idx", "positions"),
    aliases=("sentiment",),
    check=check,
    init_model=init_model,
    read_file=read_file,
    store_records=store_records,
)
