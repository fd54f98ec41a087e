"""Inputs for an RNN: one-hot vectors, or an embedding optionally initialised from
pre-trained vectors in word2vec or GloVe text format, or a vector table.

word2vec text format: an optional first line ``N D`` (count and dimension), then one
vector per line, ``token v_1 ... v_D``, separated by spaces. GloVe is the same without the
first line. A row whose dimension differs from the others is an error naming its line.

Vector table (``NAME.tsv`` beside ``NAME.npy``), for vectors that many words share (spaCy's
pruned vectors, ``spacy-vectors-300d``): ``NAME.npy`` holds the (R, D) rows, a NumPy array
read without pickles, and each line of ``NAME.tsv`` is ``token<TAB>row``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rnnkit.data.errors import BadRows, DataFormatError, iter_lines
from rnnkit.data.vocab import Vocab


class OneHot(nn.Module):
    r"""One-hot encoding, usable directly as RNN input.

    .. math:: x_t = e_{w_t} \in \{0, 1\}^V

    Args:
        num_classes: V, the vocabulary size.
        padding_idx: An id whose vector is all zeros (``vocab.pad_id``), or ``None``.

    Shape:
        ids (B, T) long -> (B, T, V) float32; any leading shape works.
    """

    def __init__(self, num_classes: int, padding_idx: int | None = None) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes={num_classes}: expected at least 1")
        if padding_idx is not None and not 0 <= padding_idx < num_classes:
            raise ValueError(f"padding_idx={padding_idx}: expected in [0, {num_classes})")
        self.num_classes = num_classes
        self.padding_idx = padding_idx

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = nn.functional.one_hot(ids.long(), self.num_classes).float()  # (B, T, V)
        if self.padding_idx is not None:
            out = out * (ids != self.padding_idx).unsqueeze(-1)  # zero rows at padding
        return out


@dataclass(frozen=True)
class Vectors:
    """Pre-trained vectors read from a text file."""

    tokens: list[str]  # (N,)
    matrix: torch.Tensor  # (N, D) float32

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])


def read_vectors(
    path: str | Path, *, skip_bad: bool = False, keep: Collection[str] | None = None
) -> Vectors:
    """Read word2vec (with ``N D`` header) or GloVe (no header) text vectors, or a vector
    table (a ``.tsv`` path: see the module docstring).

    Args:
        path: The text file (or the table's ``.tsv``).
        skip_bad: Skip (and count) malformed rows instead of raising.
        keep: Only these tokens (e.g. a vocabulary's): the other rows are counted but not
            parsed, which makes reading a large file for a small vocabulary fast.

    Raises:
        DataFormatError: A row with a different dimension, a value that is not a number,
            or a header that disagrees with the rows; the message names the line.
    """
    if Path(path).suffix == ".tsv":
        return _read_table(Path(path), skip_bad, keep)
    rows = BadRows(path, skip_bad)
    tokens: list[str] = []
    values: list[list[float]] = []
    dim: int | None = None
    declared: tuple[int, int] | None = None
    skipped = 0  # rows not in ``keep``
    for line, text in iter_lines(path, rows):
        if keep is not None and line > 1 and text.split(" ", 1)[0] not in keep:
            skipped += text.strip() != ""
            continue
        parts = text.rstrip().split(" ")
        if not text.strip():
            continue
        if line == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
            declared = (int(parts[0]), int(parts[1]))
            if declared[1] >= 2**31:  # no tensor has such a dimension (torch.zeros overflows)
                raise DataFormatError(path, 1, f"header declares dimension {parts[1]}, too large")
            dim = declared[1]
            continue
        dim = dim or len(parts) - 1
        if len(parts) - 1 != dim or dim < 1:
            rows.bad(line, f"expected a token and {dim} numbers, found {len(parts) - 1} numbers")
            continue
        if keep is not None and parts[0] not in keep:  # the first row, when not a header
            skipped += 1
            continue
        try:
            values.append([float(v) for v in parts[1:]])
        except ValueError as exc:
            rows.bad(line, f"expected {dim} numbers after the token: {exc}")
            continue
        tokens.append(parts[0])
    if declared is not None and declared[0] != len(tokens) + skipped and not rows.skipped:
        raise DataFormatError(
            path, 1, f"header declares {declared[0]} vectors, found {len(tokens) + skipped}"
        )
    if not tokens and not skipped:
        raise DataFormatError(path, None, "expected at least one vector, found none")
    rows.result(tokens)
    if not values:  # none of ``keep`` found
        return Vectors([], torch.zeros(0, dim or 0))
    return Vectors(tokens, torch.tensor(values, dtype=torch.float32))


def _read_table(path: Path, skip_bad: bool, keep: Collection[str] | None) -> Vectors:
    """The vectors of a table: ``path`` (``token<TAB>row`` lines) and the rows of its
    ``.npy`` sibling."""
    import numpy as np

    matrix_path = path.with_suffix(".npy")
    try:
        matrix = np.load(matrix_path, allow_pickle=False)
    except FileNotFoundError:
        raise DataFormatError(
            path, None, f"a vector table needs its rows in {matrix_path.name} beside it"
        ) from None
    except ValueError as exc:
        raise DataFormatError(matrix_path, None, f"not a NumPy array of numbers: {exc}") from None
    if matrix.ndim != 2 or matrix.shape[1] < 1 or not np.issubdtype(matrix.dtype, np.number):
        raise DataFormatError(
            matrix_path, None, f"expected a 2-D array of numbers, got {matrix.dtype} {matrix.shape}"
        )
    rows = BadRows(path, skip_bad)
    tokens: list[str] = []
    index: list[int] = []
    total = 0
    for line, text in iter_lines(path, rows):
        if not text.strip():
            continue
        token, tab, row = text.partition("\t")
        if not tab or not token or not row.strip().isdigit():
            rows.bad(line, f"expected 'token<TAB>row', found {text[:60]!r}")
            continue
        total += 1
        if int(row) >= len(matrix):
            rows.bad(line, f"row {int(row)} is outside {matrix_path.name}'s {len(matrix)} rows")
            continue
        if keep is None or token in keep:
            tokens.append(token)
            index.append(int(row))
    if not total:
        raise DataFormatError(path, None, "expected at least one 'token<TAB>row' line, found none")
    rows.result(tokens)
    picked = torch.from_numpy(np.ascontiguousarray(matrix[index], dtype=np.float32))
    return Vectors(tokens, picked.reshape(len(index), matrix.shape[1]))


def build_embedding(
    vocab: Vocab,
    dim: int | None = None,
    vectors: Vectors | None = None,
    freeze: bool = False,
    seed: int = 0,
) -> tuple[nn.Embedding, int]:
    """An ``nn.Embedding`` for ``vocab``, rows of tokens found in ``vectors`` copied in.

    Rows not found keep a N(0, 1) initialisation from ``seed``; the ``<pad>`` row is zero.

    Args:
        vocab: The vocabulary (V entries).
        dim: D; required without ``vectors``, and must equal ``vectors.dim`` with them.
        vectors: Pre-trained vectors from :func:`read_vectors`.
        freeze: Keep the weights fixed during training.
        seed: Seed for the rows not found in ``vectors``.

    Returns:
        ``(embedding, found)``: the layer, ids (B, T) -> (B, T, D), and how many
        vocabulary entries were initialised from ``vectors``.
    """
    if vectors is not None:
        if dim is not None and dim != vectors.dim:
            raise ValueError(f"dim={dim} differs from the vectors' dimension {vectors.dim}")
        dim = vectors.dim
    if dim is None or dim < 1:
        raise ValueError(f"dim={dim}: expected a positive embedding size (or vectors)")
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(len(vocab), dim, generator=generator)  # (V, D)
    found = 0
    if vectors is not None:
        for row, token in enumerate(vectors.tokens):
            if token in vocab:
                weight[vocab[token]] = vectors.matrix[row]
                found += 1
    weight[vocab.pad_id] = 0.0
    embedding = nn.Embedding.from_pretrained(weight, freeze=freeze, padding_idx=vocab.pad_id)
    return embedding, found


def nb_log_count_ratios(
    ids: torch.Tensor, labels: torch.Tensor, vocab_size: int, alpha: float = 1.0
) -> torch.Tensor:
    r"""Each word's Naive Bayes log-count ratio between the two classes (Wang & Manning 2012):

    .. math:: r_w = \log \frac{(p_w + \alpha) / \lVert p + \alpha \rVert_1}
                              {(q_w + \alpha) / \lVert q + \alpha \rVert_1}

    where ``p_w`` (``q_w``) counts the sequences of class 1 (class 0) that contain word w.
    Used to initialise embedding columns with a sentiment direction learned from the
    training labels alone.

    Args:
        ids: (N, T) token ids, padding included (the caller zeroes the padding row).
        labels: (N,) labels in {0, 1}.
        vocab_size: V.
        alpha: Add-alpha smoothing.

    Returns:
        (V,) float32 ratios; positive for words seen more in class 1.
    """
    if ids.dim() != 2 or labels.shape != ids.shape[:1]:
        raise ValueError(
            f"expected ids (N, T) and labels (N,), got {tuple(ids.shape)} and {tuple(labels.shape)}"
        )
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("labels: the log-count ratio needs two classes, 0 and 1")
    ids = ids.long()
    rows = torch.arange(len(ids)).unsqueeze(1).expand_as(ids)
    pairs = (rows * vocab_size + ids).flatten().unique()  # each (sequence, word) once
    words, label = pairs % vocab_size, labels[pairs // vocab_size]
    p = torch.bincount(words[label == 1], minlength=vocab_size) + alpha  # (V,)
    q = torch.bincount(words[label == 0], minlength=vocab_size) + alpha
    return (torch.log(p / p.sum()) - torch.log(q / q.sum())).float()


NGRAM_PRIME = 1_000_003  # the hash's multiplier (a prime above any vocabulary here)


def ngram_ids(
    ids: torch.Tensor, lengths: torch.Tensor, order: int, vocab_size: int, buckets: int, pad: int
) -> torch.Tensor:
    r"""The distinct n-grams of each sequence, n = 1..``order``, as row ids of one table
    (the bag of n-grams of fastText and of NBSVM, Wang & Manning 2012)::

        unigram x_t                    -> x_t                       rows [0, V)
        n-gram x_t..x_{t+n-1}, n >= 2  -> V + hash_n(x_t..x_{t+n-1}) rows [V, V + B)
        hash_n(a_1..a_n) = (((n P + a_1) P + a_2) ... P + a_n) mod B,  P = 1,000,003

    Only n-grams inside a sequence's first n_b tokens count; a repeat of an n-gram in a
    sequence, and every position past the valid ones, reads ``pad``.

    Args:
        ids: (B, T) int64 token ids in [0, V).
        lengths: (B,) valid tokens of each row, n_b <= T.
        order: N >= 1, the longest n-gram.
        vocab_size: V.
        buckets: B >= 1, the hash buckets of the n-grams with n >= 2 (read when N >= 2).
        pad: the id that marks no n-gram (the vocabulary's padding id).

    Returns:
        (B, G) int64, G = sum over n of max(T - n + 1, 0), each row's ids sorted, its
        repeats replaced by ``pad``.
    """
    if ids.dim() != 2 or lengths.shape != ids.shape[:1]:
        raise ValueError(
            f"expected ids (B, T) and lengths (B,), got {tuple(ids.shape)} and "
            f"{tuple(lengths.shape)}"
        )
    if order < 1 or buckets < 1:
        raise ValueError(f"order and buckets must be >= 1, got {order} and {buckets}")
    ids, steps = ids.long(), ids.shape[1]
    lengths = lengths.to(ids.device).unsqueeze(1)  # (B, 1)
    positions = torch.arange(steps, device=ids.device)  # (T,)
    grams = []
    for n in range(1, order + 1):
        count = steps - n + 1  # n-grams that start at t = 0 .. T - n
        if count < 1:
            break
        valid = positions[:count] + n <= lengths  # (B, count): x_t..x_{t+n-1} all valid
        if n == 1:
            gram = ids
        else:
            h = torch.full_like(ids[:, :count], n)
            for k in range(n):
                h = (h * NGRAM_PRIME + ids[:, k : k + count]) % buckets
            gram = vocab_size + h
        grams.append(torch.where(valid, gram, pad))
    grams, _ = torch.cat(grams, dim=1).sort(dim=1)  # (B, G), equal ids side by side
    first = torch.ones_like(grams, dtype=torch.bool)
    first[:, 1:] = grams[:, 1:] != grams[:, :-1]
    return torch.where(first, grams, pad)


def vector_words(path: str | Path, limit: int) -> list[str]:
    """The tokens of the first ``limit`` vectors of a word2vec or GloVe text file or a vector
    table, in file order (the most frequent first, in the files GloVe and word2vec ship and
    in ``spacy-vectors-300d``'s table), without parsing the numbers."""
    words: list[str] = []
    if limit < 1:
        return words
    table = Path(path).suffix == ".tsv"
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            fields = line.split("\t", 1) if table else line.split(" ", 2)
            header = i == 0 and not table and len(fields) == 2
            if header and all(x.strip().isdigit() for x in fields):
                continue  # word2vec's "N D" header
            if fields[0].strip():
                words.append(fields[0])
            if len(words) == limit:
                break
    return words


def vectors_file(value: str) -> Path:
    """The vectors file that a ``task.vectors`` setting names: a path, or a registry
    dataset of vectors (``glove-100d``; fetched here when it is not yet in the cache)."""
    from rnnkit.data.registry import dataset_dir, fetch, names

    path = Path(value).expanduser()
    if path.is_file():
        return path
    if value in names():
        fetch(value)
        for name in ("vectors.txt", "vectors.tsv"):
            found = dataset_dir(value) / name
            if found.is_file():
                return found
        raise ValueError(f"task.vectors={value!r}: dataset {value} holds no vectors.txt")
    raise FileNotFoundError(f"task.vectors={value!r}: no such file, nor a vectors dataset")
