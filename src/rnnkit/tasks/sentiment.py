"""The ``sentiment`` task: a :class:`SequenceClassifier` on any labelled text file.

The ``[task]`` table names the data: a CSV/TSV/JSONL file with a text and a label column
(split 80/10/10, seeded, identical texts kept together), or a registry dataset already
fetched (``movie-reviews``, ``rotten-tomatoes``: their own train/valid/test files)::

    data = get_task("sentiment").build(SentimentConfig(data="reviews.csv"), seed=0)
    data.vocab["labels"]       # ['neg', 'pos']: label ids in sorted order

The checkpoint's ``vocab.json`` carries the tokens, the tokenizer and the label names, so
:class:`TextClassifier` classifies raw text from a run directory alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from rnnkit.data import (
    Vocab,
    WordTokenizer,
    build_embedding,
    nb_log_count_ratios,
    read_vectors,
    tokenizer_from_config,
)
from rnnkit.data.readers import read_jsonl, read_table
from rnnkit.data.registry import dataset_dir, names
from rnnkit.data.splits import by_split, group_split
from rnnkit.models import ClassifierConfig, SequenceClassifier
from rnnkit.tasks.registry import TaskData, TaskSpec, register_task
from rnnkit.training.batch import SequenceBatch

SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}


@dataclass(frozen=True)
class SentimentConfig:
    data: str = "rotten-tomatoes"  # labelled .csv/.tsv/.jsonl file, or a fetched dataset name
    text_column: str = "text"  # column (field) holding the text
    label_column: str = "label"  # column (field) holding the label
    lowercase: bool = True  # lower-case before tokenizing into words
    split_clitics: bool = False  # does n't, it 's: as GloVe/word2vec vocabularies tokenize
    max_vocab: int = 20_000  # vocabulary size, specials included (from the training split)
    min_freq: int = 1  # fewest training occurrences a word needs
    max_len: int = 0  # keep only the first max_len tokens (0: all)
    embedding_dim: int = 100  # D; 0: one-hot inputs
    vectors: str = ""  # word2vec/GloVe text file, or "glove-100d", initialising the embedding
    freeze_embedding: bool = False  # keep the embedding fixed
    nb_columns: int = 0  # more embedding columns, set to each word's NB log-count ratio (2 labels)
    bidirectional: bool = False  # BiRNN encoder
    pooling: Literal["last", "mean", "max", "attention"] = "last"  # summary of the outputs
    head: Literal["softmax", "sigmoid"] = "softmax"  # sigmoid: binary labels only

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("data must name a labelled file or a dataset, got ''")
        for name in ("max_vocab", "min_freq"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_len < 0 or self.embedding_dim < 0 or self.nb_columns < 0:
            raise ValueError("max_len, embedding_dim and nb_columns must be >= 0")
        if self.nb_columns and not self.embedding_dim:
            raise ValueError("nb_columns needs embedded inputs (embedding_dim > 0)")


def read_labelled(path: str | Path, text_column: str, label_column: str) -> tuple[list, list]:
    """Texts and label strings of a CSV/TSV (header line) or JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such labelled file: {path}")
    columns = [text_column, label_column]
    if path.suffix.lower() in (".jsonl", ".json"):
        records = read_jsonl(path, columns)
    else:
        records = read_table(path, columns)
    return [str(r[text_column]) for r in records], [str(r[label_column]) for r in records]


def _splits(cfg: SentimentConfig, seed: int) -> dict[str, tuple[list, list]]:
    path = Path(cfg.data)
    if path.suffix and not path.is_file():
        raise FileNotFoundError(f"no such labelled file: {path}")
    if not path.is_file():
        if cfg.data not in names():
            raise ValueError(f"data={cfg.data!r} is neither a file nor a dataset ({names()})")
        folder = dataset_dir(cfg.data)
        out = {}
        for split, stem in SPLIT_FILES.items():
            f = folder / f"{stem}.tsv"
            if not f.is_file():
                raise FileNotFoundError(f"{f} missing: run `rnnkit data fetch {cfg.data}`")
            out[split] = read_labelled(f, cfg.text_column, cfg.label_column)
        return out
    texts, labels = read_labelled(path, cfg.text_column, cfg.label_column)
    assigned = group_split([t.lower() for t in texts], seed=seed)  # train/valid/test names
    parts = {
        k: by_split(list(zip(texts, labels, strict=True)), assigned).get(v, [])
        for k, v in SPLIT_FILES.items()
    }
    return {k: ([t for t, _ in rows], [y for _, y in rows]) for k, rows in parts.items()}


def encode(
    texts: Sequence[str], tokenizer: Any, vocab: Vocab, max_len: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (N, T) padded with ``<pad>`` and lengths (N,); an empty text gives [<unk>]."""
    seqs = []
    for text in texts:
        ids = vocab.encode(tokenizer.tokenize(text)) or [vocab.unk_id]
        seqs.append(ids[:max_len] if max_len else ids)
    t = max((len(s) for s in seqs), default=1)
    ids = torch.full((len(seqs), t), vocab.pad_id, dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = torch.tensor(s)
    return ids, torch.tensor([len(s) for s in seqs], dtype=torch.long)


def labelled_batch(ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> SequenceBatch:
    """The many-to-one layout: each label at its sequence's last step, the only marked step."""
    n, t = ids.shape
    steps = torch.arange(n)
    targets = torch.zeros(n, t, dtype=torch.long)
    mask = torch.zeros(n, t, dtype=torch.bool)
    targets[steps, lengths - 1] = labels
    mask[steps, lengths - 1] = True
    return SequenceBatch(ids, targets, mask, lengths)


def label_ids(labels: Sequence[str], names_: Sequence[str], where: str) -> torch.Tensor:
    index = {name: i for i, name in enumerate(names_)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(f"{where}: labels {unknown[:5]} not among the trained {list(names_)}")
    return torch.tensor([index[y] for y in labels], dtype=torch.long)


def build_sentiment(cfg: SentimentConfig, seed: int) -> TaskData:
    splits = _splits(cfg, seed)
    tokenizer = WordTokenizer(lowercase=cfg.lowercase, split_clitics=cfg.split_clitics)
    train_texts, train_labels = splits["train"]
    if not train_texts:
        raise ValueError(f"data={cfg.data!r}: the training split is empty")
    vocab = Vocab.build(
        (tokenizer.tokenize(t) for t in train_texts), max_size=cfg.max_vocab, min_freq=cfg.min_freq
    )
    classes = sorted(set(train_labels))
    if len(classes) < 2:
        raise ValueError(f"data={cfg.data!r}: expected >= 2 labels, found {classes}")
    if cfg.nb_columns and len(classes) != 2:
        raise ValueError(f"nb_columns: the log-count ratio needs 2 labels, found {classes}")
    batches = {}
    for split, (texts, labels) in splits.items():
        ids, lengths = encode(texts, tokenizer, vocab, cfg.max_len)
        batches[split] = labelled_batch(ids, lengths, label_ids(labels, classes, split))
    counts = torch.bincount(batches["train"].targets[batches["train"].mask], minlength=len(classes))
    majority = int(counts.argmax())
    test_y = batches["test"].targets[batches["test"].mask]
    baseline = {"accuracy": float((test_y == majority).float().mean())} if len(test_y) else {}
    return TaskData(
        train=batches["train"],
        val=batches["val"],
        test=batches["test"],
        model_shape={
            "vocab_size": len(vocab),
            "num_classes": len(classes),
            "padding_idx": vocab.pad_id,
            "embedding_dim": cfg.embedding_dim + cfg.nb_columns,
            "freeze_embedding": cfg.freeze_embedding,
            "nb_columns": cfg.nb_columns,
            "bidirectional": cfg.bidirectional,
            "pooling": cfg.pooling,
            "head": cfg.head,
            "vectors": cfg.vectors,
        },
        baseline=baseline,
        vocab={
            "tokens": vocab.tokens,
            "tokenizer": tokenizer.to_config(),
            "labels": classes,
            "max_len": cfg.max_len,
        },
    )


def build_classifier(model: Any, data: TaskData, seed: int) -> SequenceClassifier:
    """The classifier for ``data`` from the run's ``[model]`` table (cell, sizes, dropout)."""
    shape = dict(data.model_shape)
    vectors = shape.pop("vectors")
    nb = shape.pop("nb_columns", 0)
    config = ClassifierConfig(
        cell=model.cell,
        hidden_size=model.hidden_size,
        num_layers=model.num_layers,
        dropout=model.dropout,
        backend=model.backend,
        **shape,
    )
    classifier = SequenceClassifier(config)
    weight = classifier.embedding.weight if config.embedding_dim else None
    if vectors:
        vocab = Vocab(data.vocab["tokens"])
        found = read_vectors(vectors_file(vectors), keep=set(vocab.tokens))
        emb, _ = build_embedding(vocab, config.embedding_dim - nb, found, seed=seed)
        with torch.no_grad():
            weight[:, nb:] = emb.weight  # the columns after the NB ones
    if nb:  # columns 0..nb-1: the training split's log-count ratio, class 1 against class 0
        train = data.train
        labels = train.targets[train.mask]  # one label per sequence, in order
        ratios = nb_log_count_ratios(train.inputs, labels, config.vocab_size)
        with torch.no_grad():
            weight[:, :nb] = ratios.unsqueeze(1)
    if weight is not None:
        with torch.no_grad():
            weight[config.padding_idx] = 0.0
    return classifier


def vectors_file(value: str) -> Path:
    """The vectors file that ``task.vectors`` names: a path, or a vectors dataset (fetched
    here when it is not yet in the cache)."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    if value in names():
        from rnnkit.data.registry import fetch

        fetch(value)
        found = dataset_dir(value) / "vectors.txt"
        if found.is_file():
            return found
        raise ValueError(f"vectors={value!r}: dataset {value} holds no vectors.txt")
    raise FileNotFoundError(f"vectors={value!r}: no such file, nor a vectors dataset")


class TextClassifier:
    """Raw text in, labels and probabilities out, from a checkpoint's model and vocab.json.

    Example::

        clf = TextClassifier(model, load_vocab(checkpoint))
        clf.predict(["a gorgeous, witty, seductive movie"])   # [('fresh', 0.93)]
    """

    def __init__(self, model: SequenceClassifier, vocab: dict[str, Any]) -> None:
        if not isinstance(model, SequenceClassifier) or "labels" not in (vocab or {}):
            raise ValueError("TextClassifier needs a SequenceClassifier run (sentiment task)")
        self.model = model.eval()
        self.vocab = Vocab(vocab["tokens"])
        self.tokenizer = tokenizer_from_config(vocab["tokenizer"])
        self.labels: list[str] = list(vocab["labels"])
        self.max_len = int(vocab.get("max_len", 0))

    def batch(self, texts: Sequence[str], labels: Sequence[str], where: str) -> SequenceBatch:
        ids, lengths = encode(texts, self.tokenizer, self.vocab, self.max_len)
        return labelled_batch(ids, lengths, label_ids(labels, self.labels, where))

    def predict(self, texts: Sequence[str], batch_size: int = 256) -> list[tuple[str, float]]:
        """(label, probability of that label) for each text."""
        out = []
        for start in range(0, len(texts), batch_size):
            ids, lengths = encode(
                texts[start : start + batch_size], self.tokenizer, self.vocab, self.max_len
            )
            pred, probs = self.model.classify(ids, lengths)
            out += [(self.labels[int(k)], float(probs[i, k])) for i, k in enumerate(pred)]
        return out


def predict_texts(run_dir: str, texts: list[str], which: str = "best") -> str:
    """``LABEL<TAB>PROBABILITY<TAB>TEXT`` for each text, one per line."""
    from rnnkit.tasks.run import load_text_classifier

    clf = load_text_classifier(run_dir, which)
    pairs = zip(texts, clf.predict(texts), strict=True)
    return "\n".join(f"{label}\t{prob:.4f}\t{text}" for text, (label, prob) in pairs)


register_task(
    TaskSpec(
        "sentiment",
        SentimentConfig,
        build_sentiment,
        "text classification of a labelled CSV/TSV/JSONL file or dataset",
        build_model=build_classifier,
        predict=predict_texts,
    )
)
