"""The ``tagging`` task: train a :class:`SequenceTagger` on CoNLL-2003 or CoNLL-U files.

The ``[task]`` table names the files and the tag column; the word and character vocabularies
are built from the training split and saved with every checkpoint (``vocab.json``)::

    [task]
    format = "conll"            # or "conllu"
    train = "data/train.txt"
    test = "data/test.txt"      # val defaults to test when not given
    column = "-1"               # conll: tag column index; conllu: "upos" or "deprel"
    decoder = "crf"

or a registry dataset in CoNLL form, fetched on first use (``rnnkit data info NAME``)::

    [task]
    dataset = "japanese-ner"    # {train,valid,test}.conll in its dataset directory

Each sentence becomes one row of a :class:`SequenceBatch`: ``inputs`` (B, T, 1 + W) holds the
word id then the ids of the word's first W characters (0 pads), ``targets`` (B, T) the tag ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import torch

from rnnkit.data.readers import read_conll, read_conllu
from rnnkit.data.vocab import Vocab
from rnnkit.models.tagger import SequenceTagger, TaggerConfig
from rnnkit.tagging.metrics import span_scores, token_accuracy
from rnnkit.tagging.schemes import detect_scheme
from rnnkit.tasks.registry import TaskData, TaskSpec, register_task
from rnnkit.training.batch import SequenceBatch

CONLLU_COLUMNS = {"upos": "upos", "deprel": "deprels"}  # column -> UDSentence field
_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class TaggingConfig:
    train: str = ""  # training file ("" with `dataset`)
    test: str = ""  # test file (`rnnkit evaluate`) ("" with `dataset`)
    dataset: str = ""  # a registry dataset of {train,valid,test}.conll, e.g. "japanese-ner"
    val: str = ""  # validation file; "" uses the test file
    format: Literal["conll", "conllu"] = "conll"  # CoNLL-2003 columns or CoNLL-U
    column: str = "-1"  # conll: tag column index; conllu: "upos" or "deprel"
    decoder: Literal["softmax", "crf"] = "crf"  # per-step softmax or linear-chain CRF
    chars: bool = True  # character BiLSTM features
    bidirectional: bool = True  # False: a left-to-right tagger (never sees later words)
    max_word_len: int = 20  # W, characters kept per word
    word_dim: int = 100  # word embedding size
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
        if self.max_word_len < 1 or self.word_dim < 1 or self.min_freq < 1:
            raise ValueError("max_word_len, word_dim and min_freq must be >= 1")


def _is_span_tag(tag: str) -> bool:
    return tag == "O" or re.fullmatch(r"[BIES]-.+", tag) is not None


def read_tagged(path: str, cfg: TaggingConfig) -> list[tuple[list[str], list[str]]]:
    """(tokens, tags) of every sentence of ``path``; DataFormatError names file and line."""
    if cfg.format == "conll":
        return [(s.tokens, s.tags) for s in read_conll(path, tag_column=int(cfg.column))]
    return [(s.forms, getattr(s, CONLLU_COLUMNS[cfg.column])) for s in read_conllu(path)]


def tokenize(text: str) -> list[str]:
    """Words and punctuation marks of ``text``: ``"Hi, Bob."`` -> ``["Hi", ",", "Bob", "."]``."""
    return _TOKEN.findall(text)


def encode(
    sentences: list[list[str]], vocab: dict[str, Any], tags: list[list[str]] | None = None
) -> SequenceBatch:
    """Rows of word + character ids (B, T, 1 + W) and tag ids (B, T) (-1 where unknown)."""
    words, chars = Vocab(vocab["words"]), Vocab(vocab["chars"]) if vocab["chars"] else None
    tag_ids = {t: i for i, t in enumerate(vocab["tags"])}
    w = vocab["max_word_len"] if chars else 0
    b, t = len(sentences), max((len(s) for s in sentences), default=1) or 1
    inputs = torch.zeros(b, t, 1 + w, dtype=torch.long)  # (B, T, 1 + W)
    targets = torch.zeros(b, t, dtype=torch.long)  # (B, T)
    for i, tokens in enumerate(sentences):
        inputs[i, : len(tokens), 0] = torch.tensor(words.encode(tokens), dtype=torch.long)
        for j, token in enumerate(tokens if chars else []):
            ids = chars.encode(list(token[:w]))
            inputs[i, j, 1 : 1 + len(ids)] = torch.tensor(ids, dtype=torch.long)
        if tags is not None:
            targets[i, : len(tokens)] = torch.tensor([tag_ids.get(x, -1) for x in tags[i]])
    lengths = torch.tensor([len(s) for s in sentences], dtype=torch.long)
    mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    if tags is not None:
        mask &= targets >= 0  # tags never seen in training are not scored by the loss
    inputs = inputs if w else inputs[..., 0]
    return SequenceBatch(inputs, targets, mask, lengths)


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


def build_tagging(cfg: TaggingConfig, seed: int) -> TaskData:
    train_file, val_file, test_file = split_files(cfg)
    train = read_tagged(train_file, cfg)
    val = read_tagged(val_file, cfg)
    test = read_tagged(test_file, cfg)
    if not train:
        raise ValueError(f"{train_file}: no sentences")
    words = Vocab.build((s for s, _ in train), max_size=10**7, min_freq=cfg.min_freq)
    chars = Vocab.build((list(w) for s, _ in train for w in s), max_size=10**6)
    tags = sorted({x for _, ts in train for x in ts}, key=lambda x: (x != "O", x))
    scheme = detect_scheme(tags) if cfg.spans and all(map(_is_span_tag, tags)) else ""
    vocab = {
        "words": words.tokens,
        "chars": chars.tokens if cfg.chars else [],
        "tags": tags,
        "max_word_len": cfg.max_word_len,
        "scheme": scheme,
    }

    def batch(split: list[tuple[list[str], list[str]]]) -> SequenceBatch:
        return encode([s for s, _ in split], vocab, [ts for _, ts in split])

    shape = {
        "vocab_size": len(words),
        "num_tags": len(tags),
        "char_vocab_size": len(chars) if cfg.chars else 0,
        "word_dim": cfg.word_dim,
        "decoder": cfg.decoder,
        "bidirectional": cfg.bidirectional,
        "tags": tuple(tags),
        "scheme": scheme if scheme != "IO" else "",
    }
    return TaskData(batch(train), batch(val), batch(test), shape, vocab=vocab)


def build_tagger(model: Any, data: TaskData, seed: int = 0) -> SequenceTagger:
    """The tagger from the run's ``[model]`` section and the shape the data fixes."""
    return SequenceTagger(
        TaggerConfig(
            cell=model.cell,
            hidden_size=model.hidden_size,
            num_layers=model.num_layers,
            dropout=model.dropout,
            **data.model_shape,
        )
    )


def tag_rows(
    model: SequenceTagger, batch: SequenceBatch, tags: list[str], chunk: int = 256
) -> list[list[str]]:
    """The decoded tag names of every row of ``batch``, ``chunk`` rows at a time."""
    model.eval()
    paths = []
    for start in range(0, batch.size, chunk):
        paths += model.decode(batch.rows(slice(start, start + chunk)))
    return [[tags[i] for i in path] for path in paths]


def score_tagger(model: SequenceTagger, batch: SequenceBatch, data: TaskData) -> dict[str, float]:
    """Token accuracy, and span precision/recall/F1 overall and per type when spans apply."""
    names = data.vocab["tags"]
    pred = tag_rows(model, batch, names)
    gold = [
        [names[int(k)] if m else "O" for k, m in zip(row[:n], keep[:n], strict=True)]
        for row, keep, n in zip(batch.targets, batch.mask, batch.lengths.tolist(), strict=True)
    ]
    out = {"token_accuracy": token_accuracy(gold, pred)}
    if data.vocab["scheme"]:
        scores = span_scores(gold, pred)
        for kind, prf in [("overall", scores.overall), *scores.per_type.items()]:
            out.update({f"{m}_{kind}": getattr(prf, m) for m in ("precision", "recall", "f1")})
    return out


@dataclass(frozen=True)
class Tagged:
    tokens: list[str]  # (T,) the words of the text
    tags: list[str]  # (T,) one predicted tag per word
    spans: list[tuple[str, int, int]]  # (type, start, end) with end exclusive; [] without spans


def tag_text(run_dir: str, text: str, which: str = "best") -> Tagged:
    """Tag ``text`` (split into words and punctuation) with the run's ``which`` checkpoint."""
    return tag_texts(run_dir, [text], which)[0]


def tag_texts(run_dir: str, texts: list[str], which: str = "best") -> list[Tagged]:
    """Tag each of ``texts`` with the run's ``which`` checkpoint, loaded once, in one batch."""
    from rnnkit.tagging.schemes import spans
    from rnnkit.tasks.run import checkpoint_path
    from rnnkit.training.checkpoint import load_model, load_vocab

    path = checkpoint_path(run_dir, which)
    vocab = load_vocab(path)
    if vocab is None or "tags" not in vocab:
        raise ValueError(f"{path}: not a tagging checkpoint (no tag vocabulary)")
    sentences = [tokenize(text) for text in texts]
    for k, tokens in enumerate(sentences):
        if not tokens:
            where = "text" if len(texts) == 1 else f"text {k + 1}"
            raise ValueError(f"{where}: no words to tag")
    model = load_model(path)
    rows = tag_rows(model, encode(sentences, vocab), vocab["tags"])
    return [
        Tagged(tokens, tags, spans(tags) if vocab["scheme"] else [])
        for tokens, tags in zip(sentences, rows, strict=True)
    ]


def format_tagged(tagged: Tagged) -> str:
    """One ``token  TAG`` line per word, then a blank line and ``TYPE<TAB>start-end<TAB>words``
    per span."""
    width = max(len(t) for t in tagged.tokens)
    lines = [f"{t:<{width}}  {tag}" for t, tag in zip(tagged.tokens, tagged.tags, strict=True)]
    if tagged.spans:
        lines.append("")
    for kind, start, end in tagged.spans:
        lines.append(f"{kind}\t{start}-{end}\t{' '.join(tagged.tokens[start:end])}")
    return "\n".join(lines)


def predict_texts(run_dir: str, texts: list[str], which: str = "best") -> str:
    """:func:`format_tagged` of each text, a blank line between texts."""
    return "\n\n".join(format_tagged(t) for t in tag_texts(run_dir, texts, which))


register_task(
    TaskSpec(
        "tagging",
        TaggingConfig,
        build_tagging,
        "sequence tagging (NER, POS, chunking) from CoNLL-2003 or CoNLL-U files",
        build_model=build_tagger,
        score=score_tagger,
        predict=predict_texts,
    )
)
