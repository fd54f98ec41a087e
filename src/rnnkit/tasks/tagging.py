"""The ``tagging`` task: a :class:`SequenceTagger` on CoNLL-2003 or CoNLL-U files.

The ``[task]`` table names the files and the tag column; the word, character and tag
vocabularies (a :class:`~rnnkit.data.codec.TaggingCodec`) are built from the training split
and saved with every checkpoint::

    [task]
    format = "conll"            # or "conllu"
    train = "data/train.txt"
    test = "data/test.txt"      # without val, a seeded 10% of train validates
    column = "-1"               # conll: tag column index; conllu: "upos" or "deprel"

or a registry dataset in CoNLL form, fetched on first use (``rnnkit data info NAME``)::

    [task]
    dataset = "japanese-ner"    # {train,valid,test}.conll in its dataset directory

Unspaced text (Chinese) is tagged one character per token: with ``tokens = "chars"`` every
token of the files must be one character, and ``rnnkit predict`` splits raw text into its
characters (white space dropped). ``bigrams = true`` adds the token pairs around each token as
features (their embedding size is ``model.bigram_dim``)::

    [task]
    dataset = "pku-seg"         # one character per row, BMES tags
    tokens = "chars"
    bigrams = true

The model's own settings (decoder, direction, word and character sizes, cell) sit in
``[model]`` (:class:`~rnnkit.models.TaggerConfig`). Evaluation adds token accuracy and, when
the tags are O/B-/I-/E-/S- typed, span precision, recall and F1 by the conlleval definition;
when they are untyped B/M/E/S (word segmentation), word precision, recall and F1 with the
OOV rate and OOV and IV recall against the training words, as the SIGHAN scorer prints them.
``rnnkit evaluate`` also prints baselines on the test split: forward maximum matching with the
training words and one word per character for a segmentation, the most frequent training tag
of each token otherwise.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Literal

import torch

from rnnkit.config import ConfigError, is_set
from rnnkit.data.batches import SequenceBatch
from rnnkit.data.codec import TaggingCodec, token_bigrams
from rnnkit.data.readers import read_conll, read_conllu
from rnnkit.data.representations import build_embedding, read_vectors, vector_words, vectors_file
from rnnkit.data.tokenizers import TAGGING_PATTERN, CharTokenizer, WordTokenizer
from rnnkit.data.vocab import Vocab
from rnnkit.models.tagger import SequenceTagger
from rnnkit.tagging.schemes import bmes_spans, bmes_to_words, detect_scheme, is_bmes
from rnnkit.tasks.base import Task, TaskData

CONLLU_COLUMNS = {"upos": "upos", "deprel": "deprels"}  # column -> UDSentence field


#: the share of the training sentences held out for validation without a validation file
VAL_SHARE = 0.1


@dataclass(frozen=True)
class TaggingConfig:
    train: str = ""  # training file ("" with `dataset`)
    test: str = ""  # test file (`rnnkit evaluate`) ("" with `dataset`)
    dataset: str = ""  # a registry dataset of {train,valid,test}.conll, e.g. "japanese-ner"
    val: str = ""  # validation file; "": a seeded 10% of the training sentences (as flair)
    format: Literal["conll", "conllu"] = "conll"  # CoNLL-2003 columns or CoNLL-U
    column: str = "-1"  # conll: tag column index; conllu: "upos" or "deprel"
    tokens: Literal["words", "chars"] = "words"  # "chars": one character per token (Chinese)
    chars: bool | None = None  # each word's characters to a char BiRNN (default: with words)
    max_word_len: int = 20  # W, characters kept per word
    min_freq: int = 1  # fewest training occurrences for a word to get its own id
    bigrams: bool = False  # also the token pairs left and right of each token as features
    bigram_min_freq: int = 2  # fewest training occurrences for a pair to get its own id
    spans: bool = True  # score spans (O / B-, I-, E-, S- tags) or words (B, M, E, S tags)
    vectors: str = ""  # word2vec/GloVe text file or table, "glove-100d", "spacy-vectors-300d"
    vectors_vocab: int = 0  # also ids for the file's first N words (most frequent first)
    lower: bool = False  # word ids from lowercased words (GloVe's are); characters keep case

    def __post_init__(self) -> None:
        if bool(self.dataset) == bool(self.train and self.test):
            raise ValueError("dataset: give either `dataset` or both `train` and `test` files")
        if self.dataset and self.format != "conll":
            raise ValueError(f"format: dataset {self.dataset!r} is read as 'conll'")
        if self.format not in ("conll", "conllu"):
            raise ValueError(f"format: expected 'conll' or 'conllu', got {self.format!r}")
        if self.format == "conllu" and self.column not in CONLLU_COLUMNS:
            raise ValueError(f"column: expected one of {list(CONLLU_COLUMNS)}, got {self.column!r}")
        if self.format == "conll" and not re.fullmatch(r"-?\d+", self.column):
            raise ValueError(f"column: expected a column index for conll, got {self.column!r}")
        if self.max_word_len < 1 or self.min_freq < 1 or self.bigram_min_freq < 1:
            raise ValueError("max_word_len, min_freq and bigram_min_freq must be >= 1")
        if self.vectors_vocab < 0:
            raise ValueError(f"vectors_vocab: expected >= 0, got {self.vectors_vocab}")
        if self.vectors_vocab and not self.vectors:
            raise ValueError("vectors_vocab: words of a vectors file need task.vectors")
        if self.tokens not in ("words", "chars"):
            raise ValueError(f"tokens: expected 'words' or 'chars', got {self.tokens!r}")
        if self.tokens == "chars" and self.chars:
            raise ValueError(
                "chars: character features of one-character tokens add nothing "
                "(tokens = 'chars'); leave it out or set it false"
            )
        if is_set(self, "max_word_len") and not self.char_features:
            raise ValueError(
                f"max_word_len={self.max_word_len} sizes the character features, which "
                "this config has none of (tokens = 'chars' or chars = false): remove it"
            )
        if is_set(self, "bigram_min_freq") and not self.bigrams:
            raise ValueError(
                f"bigram_min_freq={self.bigram_min_freq} applies to pair features: set "
                "task.bigrams = true or remove it"
            )

    @property
    def char_features(self) -> bool:
        """Whether words go to the char BiRNN: ``chars``, by default with word tokens."""
        return self.tokens == "words" if self.chars is None else self.chars


def _is_span_tag(tag: str) -> bool:
    return tag == "O" or re.fullmatch(r"[BIES]-.+", tag) is not None


def read_tagged(path: str, cfg: TaggingConfig) -> list[tuple[list[str], list[str]]]:
    """(tokens, tags) of every sentence of ``path``; DataFormatError names file and line.

    With ``tokens = "chars"`` a token of more than one character is a ValueError naming it.
    """
    if cfg.format == "conll":
        sentences = read_conll(path, tag_column=int(cfg.column))
        if cfg.tokens == "chars":
            for s in sentences:
                for j, token in enumerate(s.tokens):
                    if len(token) != 1:
                        raise ValueError(
                            f"{path}, line {s.line + j}: token {token!r} is not one character "
                            "(task.tokens = 'chars')"
                        )
        return [(s.tokens, s.tags) for s in sentences]
    rows = [(s.forms, getattr(s, CONLLU_COLUMNS[cfg.column])) for s in read_conllu(path)]
    if cfg.tokens == "chars":
        long = next((t for tokens, _ in rows for t in tokens if len(t) != 1), None)
        if long is not None:
            raise ValueError(f"{path}: token {long!r} is not one character (task.tokens = 'chars')")
    return rows


def split_files(cfg: TaggingConfig) -> tuple[str, str, str]:
    """(train, val, test) paths; a registry dataset is fetched when not yet on disk."""
    if not cfg.dataset:
        return cfg.train, cfg.val, cfg.test
    from rnnkit.data.registry import dataset_dir, fetch

    root = dataset_dir(cfg.dataset)
    if not (root / "train.conll").exists():
        fetch(cfg.dataset)
    train, val, test = (str(root / f"{split}.conll") for split in ("train", "valid", "test"))
    return train, val, test


def build_codec(cfg: TaggingConfig, train: list[tuple[list[str], list[str]]]) -> TaggingCodec:
    """The vocabularies of the training split; with ``vectors_vocab`` N, the first N words
    of the vectors file get ids too (a word unseen in training but in the file then starts
    from its vector instead of sharing ``<unk>``; the validation and test words are not
    looked at)."""
    sentences = ([w.lower() for w in s] if cfg.lower else s for s, _ in train)
    words = Vocab.build(sentences, max_size=10**7, min_freq=cfg.min_freq)
    if cfg.vectors_vocab:
        known = set(words.tokens)
        extra = vector_words(vectors_file(cfg.vectors), cfg.vectors_vocab)
        words = Vocab([*words.tokens, *dict.fromkeys(w for w in extra if w not in known)])
    chars = Vocab.build((list(w) for s, _ in train for w in s), max_size=10**6)
    tags = sorted({x for _, ts in train for x in ts}, key=lambda x: (x != "O", x))
    scheme = ""
    if cfg.spans and is_bmes(tags):
        scheme = "BMES"
    elif cfg.spans and all(map(_is_span_tag, tags)):
        scheme = detect_scheme(tags)
    joiner = "" if cfg.tokens == "chars" else " "
    lexicon = training_words(train) if scheme == "BMES" else ()
    bigrams = None
    if cfg.bigrams:
        pairs = (token_bigrams(s) for s, _ in train)
        bigrams = Vocab.build(pairs, max_size=10**8, min_freq=cfg.bigram_min_freq)
    return TaggingCodec(
        words,
        tuple(tags),
        chars if cfg.char_features else None,
        cfg.max_word_len,
        scheme,
        CharTokenizer() if cfg.tokens == "chars" else WordTokenizer(pattern=TAGGING_PATTERN),
        bigrams,
        joiner,
        lexicon,
        cfg.lower,
    )


def training_words(train: list[tuple[list[str], list[str]]]) -> tuple[str, ...]:
    """The distinct words of BMES-tagged training sentences, sorted (the SIGHAN word list).

    A word is the concatenation of its tokens (its characters, for ``tokens = "chars"``).
    """
    return tuple(sorted({w for tokens, tags in train for w in bmes_to_words(tokens, tags)}))


def held_out(
    sentences: list[tuple[list[str], list[str]]], seed: int, share: float = VAL_SHARE
) -> tuple[list, list]:
    """(train, validation): a seeded ``share`` of the sentences (at least one) held out for
    validation when no validation file is given, so that no choice is made on the test file.
    """
    if len(sentences) < 2:
        raise ValueError(
            "task.val: a training file of one sentence leaves none to validate on; "
            "give a validation file"
        )
    order = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(share * len(sentences)))
    val = set(order[:n_val].tolist())
    return (
        [s for i, s in enumerate(sentences) if i not in val],
        [s for i, s in enumerate(sentences) if i in val],
    )


def prepare(cfg: TaggingConfig, seed: int, codec: TaggingCodec | None = None) -> TaskData:
    files = split_files(cfg)
    splits = [read_tagged(f, cfg) if f else [] for f in files]
    if not splits[0]:
        raise ValueError(f"{files[0]}: no sentences")
    if not files[1]:
        splits[0], splits[1] = held_out(splits[0], seed)
    for f, part, name in zip(files[1:], splits[1:], ("val", "test"), strict=True):
        if f and not part:
            raise ValueError(f"{f}: no sentences (task.{name})")
    codec = codec or build_codec(cfg, splits[0])
    train, val, test = (codec.batch([s for s, _ in p], [t for _, t in p]) for p in splits)
    fixed = {
        "vocab_size": len(codec.words),
        "num_tags": len(codec.tags),
        "char_vocab_size": len(codec.chars) if codec.chars is not None else 0,
        "bigram_vocab_size": len(codec.bigrams) if codec.bigrams is not None else 0,
        "tags": codec.tags,
        "scheme": codec.scheme if codec.scheme != "IO" else "",
    }
    # the gold tags as written: a tag the training split never had is not learnt (its loss is
    # masked) but it is scored, so an entity of an unseen type counts as missed
    gold = {"val": [t for _, t in splits[1]], "test": [t for _, t in splits[2]]}
    return TaskData(
        train, val, test, codec, fixed, baselines(codec, splits[0], splits[2]), references=gold
    )


def check(cfg: TaggingConfig, model: dict[str, Any]) -> None:
    """Character sizes mean nothing without character input, pair sizes nothing without
    pairs: refuse them then."""
    unused = sorted({"char_dim", "char_hidden"} & set(model)) if not cfg.char_features else []
    if unused:
        why = "task.tokens = 'chars'" if cfg.tokens == "chars" else "task.chars = false"
        raise ConfigError(f"model.{unused[0]}: unused without character input ({why})")
    if "bigram_dim" in model and not cfg.bigrams:
        raise ConfigError("model.bigram_dim: unused without pair features (task.bigrams = false)")


def init_model(model: SequenceTagger, data: TaskData, cfg: TaggingConfig, seed: int) -> None:
    """With ``task.vectors``: the word embedding's rows of the words found in the file are
    their vectors (the others keep N(0, 1) from ``seed``; the padding row is zero)."""
    if not cfg.vectors:
        return
    vocab = data.codec.words
    found = read_vectors(vectors_file(cfg.vectors), keep=set(vocab.tokens))
    if found.dim != model.config.word_dim:
        raise ConfigError(
            f"model.word_dim={model.config.word_dim} differs from the dimension of "
            f"task.vectors={cfg.vectors!r} ({found.dim})"
        )
    emb, _ = build_embedding(vocab, model.config.word_dim, found, seed=seed)
    with torch.no_grad():
        model.words.weight.copy_(emb.weight)
        model.words.weight[0] = 0.0  # padding_idx


# ---- scores and baselines ------------------------------------------------------------------
def _rows(batch: SequenceBatch, data: TaskData, model: SequenceTagger) -> tuple[list, list, list]:
    """(token ids, gold tag names, predicted tag names) of every row of ``batch``: the gold
    tags as the split's file wrote them (``data.references``), also those unseen in training."""
    names = data.codec.tags
    pred = model.tag_rows(batch)
    ids = batch.inputs[..., 0] if batch.inputs.dim() == 3 else batch.inputs  # (B, T)
    lengths = batch.lengths.tolist()
    split = next((k for k in ("val", "test") if _same_rows(getattr(data, k), batch)), None)
    written = data.references.get(split) if split else None
    if written is not None:
        gold = [list(tags[:n]) for tags, n in zip(written, lengths, strict=True)]
    else:  # a file for evaluate (read_file refuses tags unseen in training)
        fill = "S" if data.codec.scheme == "BMES" else "O"
        gold = [
            [names[int(k)] if m else fill for k, m in zip(row[:n], keep[:n], strict=True)]
            for row, keep, n in zip(
                batch.targets.tolist(), batch.mask.tolist(), lengths, strict=True
            )
        ]
    return [row[:n] for row, n in zip(ids.tolist(), lengths, strict=True)], gold, pred


def _same_rows(part: Any, batch: SequenceBatch) -> bool:
    """Whether ``batch`` is the split ``part`` (perhaps moved to another device)."""
    if part is None or part is batch:
        return part is batch
    return (
        part.targets.shape == batch.targets.shape
        and torch.equal(part.lengths, batch.lengths.cpu())
        and torch.equal(part.targets, batch.targets.cpu())
        and torch.equal(part.mask, batch.mask.cpu())
    )


def score(model: SequenceTagger, batch: SequenceBatch, data: TaskData) -> dict[str, float]:
    """Token accuracy; span precision/recall/F1 overall and per type when spans apply; word
    precision/recall/F1 with OOV rate and OOV/IV recall for BMES tags (:func:`word_scores`).

    Words are spelt from the saved vocabulary, so a word holding a character unseen in
    training (``<unk>``) counts as OOV, which is exact with ``min_freq = 1`` (the default).
    """
    from rnnkit.tagging.metrics import span_scores, token_accuracy, word_scores

    ids, gold, pred = _rows(batch, data, model)
    out = {"token_accuracy": token_accuracy(gold, pred)}
    if data.codec.scheme == "BMES":
        tokens = data.codec.words.tokens
        texts = [[tokens[i] for i in row] for row in ids]
        gold_words = [bmes_to_words(x, t) for x, t in zip(texts, gold, strict=True)]
        pred_words = [bmes_to_words(x, t) for x, t in zip(texts, pred, strict=True)]
        lexicon = set(data.codec.lexicon) or None
        out.update(word_scores(gold_words, pred_words, lexicon).as_dict())
    elif data.codec.scheme:
        out.update(_span_metrics(span_scores(gold, pred)))
    return out


def _span_metrics(scores: Any) -> dict[str, float]:
    out = {}
    for kind, prf in [("overall", scores.overall), *scores.per_type.items()]:
        out.update({f"{m}_{kind}": getattr(prf, m) for m in ("precision", "recall", "f1")})
    return out


def forward_max_match(tokens: list[str], lexicon: set[str], longest: int) -> list[str]:
    """Forward maximum matching: from the left, take the longest run of at most ``longest``
    tokens that spells a ``lexicon`` word, else one token, and go on after it.

    >>> forward_max_match(list("北京天安门广场"), {"北京", "天安门", "天安"}, 3)
    ['北京', '天安门', '广', '场']
    """
    words, i = [], 0
    while i < len(tokens):
        k = min(longest, len(tokens) - i)
        while k > 1 and "".join(tokens[i : i + k]) not in lexicon:
            k -= 1
        words.append("".join(tokens[i : i + k]))
        i += k
    return words


def baselines(codec: TaggingCodec, train: list, test: list) -> dict[str, float]:
    """Trivial taggers' scores on the test split (``baseline_*`` in ``rnnkit evaluate``).

    BMES: forward maximum matching with the training words (``fmm_*``) and one word per
    token (``singles_*``). Otherwise: each token's most frequent training tag, the most
    frequent tag overall for a token unseen in training (``majority_*``).
    """
    from rnnkit.tagging.metrics import span_scores, token_accuracy, word_scores

    if not test:
        return {}
    if codec.scheme == "BMES":
        lexicon = set(codec.lexicon)
        longest = max(e - s for _, t in train for s, e in bmes_spans(t))
        gold = [bmes_to_words(x, t) for x, t in test]
        out = {}
        for name, segment in (
            ("fmm", lambda x: forward_max_match(x, lexicon, longest)),
            ("singles", list),
        ):
            found = word_scores(gold, [segment(x) for x, _ in test], lexicon)
            out.update({f"{name}_{k}": v for k, v in found.as_dict().items()})
        return out
    counts: dict[str, Counter] = defaultdict(Counter)
    for tokens, tags in train:
        for x, y in zip(tokens, tags, strict=True):
            counts[x][y] += 1
    overall = Counter(y for _, tags in train for y in tags).most_common(1)[0][0]
    pred = [
        [counts[x].most_common(1)[0][0] if x in counts else overall for x in s] for s, _ in test
    ]
    gold = [t for _, t in test]
    out = {"majority_token_accuracy": token_accuracy(gold, pred)}
    if codec.scheme:
        out.update({f"majority_{k}": v for k, v in _span_metrics(span_scores(gold, pred)).items()})
    return out


def read_file(cfg: TaggingConfig, path: str, codec: TaggingCodec) -> SequenceBatch:
    """A tagged file in the run's format, encoded with the saved codec."""
    rows = read_tagged(path, cfg)
    known = set(codec.tags)
    for i, (_, tags) in enumerate(rows):
        unseen = [t for t in tags if t not in known]
        if unseen:
            raise ValueError(
                f"{path}: sentence {i + 1} holds the tag {unseen[0]!r}, which the run never "
                f"learnt (its tags: {', '.join(codec.tags)})"
            )
    return codec.batch([s for s, _ in rows], [t for _, t in rows])


TASK = Task(
    "tagging",
    "sequence tagging (NER, POS, chunking, word segmentation) from CoNLL-2003 or CoNLL-U files",
    TaggingConfig,
    SequenceTagger,
    prepare,
    fixed=("vocab_size", "num_tags", "char_vocab_size", "bigram_vocab_size", "tags", "scheme"),
    check=check,
    score=score,
    read_file=read_file,
    init_model=init_model,
    eval_keys=("spans",),
)
