"""The ``translate`` task: a :class:`~rnnkit.models.Seq2Seq` from source text to target text.

Machine translation (``bible-en-es``, either direction), grapheme-to-phoneme conversion
(``cmudict``: letters to ARPAbet phonemes) or any two-column file::

    [task]
    dataset = "bible-en-es"      # or "cmudict", or "" with train/valid/test files
    source = "en"                # the source column ("": the dataset's)
    target = "es"
    tokenizer = "sentencepiece"  # "word", "char" or "sentencepiece" ("": the dataset's)
    shared_vocab = true          # one vocabulary (and one sentencepiece model) for both sides

Files are CSV/TSV with a header line, or JSONL, holding the ``source`` and ``target``
columns. The vocabularies (and sentencepiece models) are built on the training split and
saved in every checkpoint as a :class:`~rnnkit.data.codec.PairCodec`. Validation and
``rnnkit evaluate`` score decoded outputs against the raw reference texts: BLEU and chrF
through sacrebleu, or the word and phoneme error rates of G2P (``task.metrics``), decoding
greedily or with ``task.beam`` > 1 (``rnnkit evaluate RUN --set task.beam=5``). The
baseline copies the source (BLEU, chrF) or is reported as none when copying means nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnkit.config import is_set
from rnnkit.data.batches import PairBatch
from rnnkit.data.codec import PairCodec
from rnnkit.data.readers import read_columns
from rnnkit.data.tokenizers import CharTokenizer, SentencePieceTokenizer, WordTokenizer
from rnnkit.data.vocab import Vocab
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.tasks._pairs import (
    FIXED,
    check_metrics,
    check_split_files,
    read_splits,
    score_pairs,
    store_pairs,
    text_scores,
)
from rnnkit.tasks.base import Task, TaskData

TOKENIZERS = ("word", "char", "sentencepiece")
# a dataset's columns and the settings that suit it, used where the [task] table leaves ""
DATASETS: dict[str, dict[str, Any]] = {
    "bible-en-es": {
        "source": "en",
        "target": "es",
        "tokenizer": "word",
        "target_tokenizer": "",
        "metrics": ("bleu", "chrf"),
    },
    "cmudict": {
        "source": "word",
        "target": "phones",  # 39 phonemes without stress, the benchmark's; or "phonemes"
        "tokenizer": "char",
        "target_tokenizer": "word",
        "metrics": ("wer", "per"),
    },
}
FILE_DEFAULTS = {
    "source": "source",
    "target": "target",
    "tokenizer": "word",
    "target_tokenizer": "",
    "metrics": ("bleu", "chrf"),
}


@dataclass(frozen=True)
class TranslateConfig:
    dataset: str = "bible-en-es"  # "bible-en-es", "cmudict", or "" to read the files below
    train: str = ""  # CSV/TSV/JSONL with the source and target columns (dataset = "")
    valid: str = ""  # validation pairs (required with train)
    test: str = ""  # test pairs (default: the validation file)
    source: str = ""  # the source column ("": the dataset's, or "source" for files)
    target: str = ""  # the target column ("": the dataset's, or "target")
    tokenizer: str = ""  # word, char or sentencepiece ("": the dataset's; word for files)
    target_tokenizer: str = ""  # the target side's, when it differs ("": as the source)
    lowercase: bool = False  # lower-case both sides first (word and char tokenizers)
    shared_vocab: bool = False  # one vocabulary for both sides (and one sentencepiece model)
    max_vocab: int = 16_000  # tokens per vocabulary, specials included
    min_freq: int = 1  # fewest training occurrences a token needs
    subword_vocab: int = 8000  # sentencepiece pieces per model
    # > 0: training pairs whose source has more tokens, or whose target with <eos> has more
    max_length: int = 0
    metrics: tuple[str, ...] = ()  # bleu, chrf, exact, wer, per (): the dataset's
    beam: int = 1  # beam width of validation and evaluate scores (1: greedy)
    length_penalty: float = 0.0  # GNMT alpha of beam search

    def __post_init__(self) -> None:
        if self.dataset and self.dataset not in DATASETS:
            raise ValueError(
                f"dataset must be one of {sorted(DATASETS)} or '' (files), got {self.dataset!r}"
            )
        check_split_files(self)
        for name in ("tokenizer", "target_tokenizer"):
            value = getattr(self, name)
            if value and value not in TOKENIZERS:
                raise ValueError(f"{name} must be one of {TOKENIZERS} or '', got {value!r}")
        for name in ("max_vocab", "min_freq", "subword_vocab", "beam"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length < 0:
            raise ValueError(f"max_length must be >= 0, got {self.max_length}")
        if not self.length_penalty >= 0:
            raise ValueError(f"length_penalty must be >= 0, got {self.length_penalty}")
        if self.length_penalty and self.beam == 1:
            raise ValueError("length_penalty applies to beam search: set beam > 1 too")
        check_metrics(self.metrics)
        sides = {
            self.setting("tokenizer"),
            self.setting("target_tokenizer") or self.setting("tokenizer"),
        }
        if self.lowercase and sides == {"sentencepiece"}:
            raise ValueError(
                "lowercase=true: the sentencepiece tokenizer reads the text as it is; remove "
                "it, or lower-case the files"
            )
        if is_set(self, "subword_vocab") and "sentencepiece" not in sides:
            raise ValueError(
                f"subword_vocab={self.subword_vocab} sizes sentencepiece pieces, and neither "
                f"side uses them (tokenizers {sorted(sides)}): remove it"
            )

    def setting(self, name: str) -> Any:
        """A setting, or the dataset's (the file defaults') where it is left empty."""
        value = getattr(self, name)
        return value or DATASETS.get(self.dataset, FILE_DEFAULTS)[name]

    @property
    def resolved_metrics(self) -> tuple[str, ...]:
        """``metrics``, or the dataset's (BLEU and chrF for text, WER and PER for G2P)."""
        return tuple(self.setting("metrics"))


def read_pairs(path: str | Path, source: str, target: str) -> tuple[list[str], list[str]]:
    """Source and target texts of a CSV/TSV (header line) or JSONL file."""
    sources, targets = read_columns(path, [source, target], "file of pairs")
    return sources, targets


def _split_pairs(cfg: TranslateConfig) -> dict[str, tuple[list[str], list[str]]]:
    src, tgt = cfg.setting("source"), cfg.setting("target")
    return read_splits(cfg, ".tsv", lambda path: read_pairs(path, src, tgt))


def _tokenizer(kind: str, texts: list[str], cfg: TranslateConfig, seed: int) -> Any:
    if kind == "char":
        return CharTokenizer(lowercase=cfg.lowercase)
    if kind == "word":
        return WordTokenizer(lowercase=cfg.lowercase)
    return SentencePieceTokenizer.train(texts, vocab_size=cfg.subword_vocab, seed=seed)


def build_codec(
    cfg: TranslateConfig, sources: list[str], targets: list[str], seed: int
) -> PairCodec:
    """Tokenizers and vocabularies of both sides from the training pairs."""
    source_kind = cfg.setting("tokenizer")
    target_kind = cfg.setting("target_tokenizer") or source_kind
    if cfg.shared_vocab:
        if source_kind != target_kind:
            raise ValueError(
                f"shared_vocab=true needs one tokenizer, got tokenizer={source_kind!r} and "
                f"target_tokenizer={target_kind!r}"
            )
        tok = _tokenizer(source_kind, sources + targets, cfg, seed)
        vocab = Vocab.build(
            [tok.tokenize(t) for t in sources + targets], cfg.max_vocab, cfg.min_freq
        )
        return PairCodec(tok, vocab, tok, vocab)
    stok = _tokenizer(source_kind, sources, cfg, seed)
    ttok = _tokenizer(target_kind, targets, cfg, seed)
    svocab = Vocab.build([stok.tokenize(t) for t in sources], cfg.max_vocab, cfg.min_freq)
    tvocab = Vocab.build([ttok.tokenize(t) for t in targets], cfg.max_vocab, cfg.min_freq)
    return PairCodec(ttok, tvocab, stok, svocab)


def _keep(cfg: TranslateConfig, codec: PairCodec, sources: list[str], targets: list[str]):
    if not cfg.max_length:
        return sources, targets
    kept = [
        (s, t)
        for s, t in zip(sources, targets, strict=True)
        if len(codec.source_tokens(s)) <= cfg.max_length
        and len(codec.target_tokenizer.tokenize(t)) < cfg.max_length
    ]
    if not kept:
        raise ValueError(f"max_length={cfg.max_length}: no training pair is that short")
    return [s for s, _ in kept], [t for _, t in kept]


def copy_baseline(cfg: TranslateConfig, codec: PairCodec, sources, targets) -> dict[str, float]:
    """Scores of copying the source as the output (BLEU, chrF only: names shared between
    languages, numbers, punctuation)."""
    metrics = [m for m in cfg.resolved_metrics if m in ("bleu", "chrf")]
    if not metrics:
        return {}
    tokens = [codec.target_tokenizer.tokenize(s) for s in sources]
    refs = [codec.target_tokenizer.tokenize(t) for t in targets]
    return {f"copy_{k}": v for k, v in text_scores(sources, targets, tokens, refs, metrics).items()}


def prepare(cfg: TranslateConfig, seed: int, codec: PairCodec | None = None) -> TaskData:
    pairs = _split_pairs(cfg)
    train_src, train_tgt = pairs["train"]
    if codec is None:
        codec = build_codec(cfg, train_src, train_tgt, seed)
    train_src, train_tgt = _keep(cfg, codec, train_src, train_tgt)
    batches = {split: codec.batch(*pairs[split]) for split in ("val", "test")}
    fixed: dict[str, Any] = {
        "source_vocab_size": len(codec.source_vocab),  # type: ignore[arg-type]
        "target_vocab_size": len(codec.target_vocab),
    }
    return TaskData(
        train=codec.batch(train_src, train_tgt),
        val=batches["val"],
        test=batches["test"],
        codec=codec,
        fixed=fixed,
        baseline=copy_baseline(cfg, codec, *pairs["test"]),
        config=cfg,
        references={  # in the case the model writes (task.lowercase lower-cases both sides)
            s: [t.lower() for t in pairs[s][1]] if cfg.lowercase else pairs[s][1]
            for s in ("val", "test")
        },
    )


def read_file(cfg: TranslateConfig, path: str, codec: PairCodec) -> PairBatch:
    """Pairs of a CSV/TSV/JSONL file with the run's source and target columns."""
    return codec.batch(*read_pairs(path, cfg.setting("source"), cfg.setting("target")))


def store_records(records: list, path: Path) -> list[str]:
    """Write (source, target) pairs as JSONL at ``path`` (also the validation file); the
    overrides that make the task read it."""
    return store_pairs(records, path, ("source", "target"), "a (source, target)")


TASK = Task(
    "translate",
    "encoder-decoder from source text to target text (translation, grapheme-to-phoneme)",
    TranslateConfig,
    Seq2Seq,
    prepare,
    fixed=FIXED,
    score=score_pairs,
    read_file=read_file,
    store_records=store_records,
    eval_keys=("metrics", "beam", "length_penalty"),
)

__all__ = ["TASK", "TranslateConfig", "build_codec", "read_pairs"]
