"""Image-to-sequence: strips of 8x8 handwritten digits (scikit-learn) captioned in words."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np

from rnnkit.data.datasets._write import write_jsonl
from rnnkit.data.fetching import Artifact, read_member
from rnnkit.data.registry import DatasetInfo, register
from rnnkit.data.splits import SPLITS, group_split

# A fixed platform wheel, so that the recorded digest holds on every machine.
SKLEARN = Artifact(
    "pypi",
    "scikit-learn==1.5.2",
    "scikit_learn-1.5.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "f8b0ccd4a902836493e026c03256e8b206656f91fbcc4fde28c57a5b752561f1",
    ("--only-binary", ":all:", "--platform", "manylinux2014_x86_64", "--python-version", "3.11"),
)
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
STRIPS = {"train": 4000, "valid": 500, "test": 500}  # strips composed per split
MIN_DIGITS, MAX_DIGITS = 3, 6


def compose(images: np.ndarray, labels: np.ndarray, count: int, seed: int) -> list[dict]:
    """``count`` strips of 3-6 digit images side by side, each (8, 8 * k), with captions."""
    rng = random.Random(seed)
    strips = []
    for n in range(count):
        chosen = [rng.randrange(len(images)) for _ in range(rng.randint(MIN_DIGITS, MAX_DIGITS))]
        pixels = np.concatenate([images[i] for i in chosen], axis=1)  # (8, 8k)
        digits = [int(labels[i]) for i in chosen]
        strips.append(
            {
                "id": n,
                "digits": digits,
                "caption": " ".join(WORDS[d] for d in digits),
                "pixels": pixels.astype(int).tolist(),
            }
        )
    return strips


@register(
    DatasetInfo(
        name="digit-strips",
        title="Strips of handwritten digits captioned with digit words",
        task="image-to-sequence (columns as time steps -> words)",
        artifacts=(SKLEARN,),
        inside="sklearn/datasets/data/digits.csv.gz (load_digits: 1,797 8x8 images, 0-16)",
        size="1,797 digit images composed into 4,000/500/500 strips of 3-6 digits",
        license="scikit-learn BSD-3-Clause; UCI optical digits CC BY 4.0",
        citation="E. Alpaydin and C. Kaynak, Optical recognition of handwritten digits, UCI ML "
        "repository 1998; Pedregosa et al., Scikit-learn, JMLR 2011",
        files="{train,valid,test}.jsonl: {id, digits, caption ('three one four'), pixels: 8 rows "
        "of 8*k grey levels 0-16}; read a strip column by column as (8k, 8) inputs",
        splits="images split 80/10/10 first (seed 0), then strips composed only from their own "
        "split's images (seeds 1, 2, 3): no image is in two splits",
    )
)
def convert(paths: dict[str, Path], out: Path) -> dict[str, int]:
    raw = gzip.decompress(read_member(paths["scikit-learn"], "sklearn/datasets/data/digits.csv.gz"))
    table = np.loadtxt(raw.decode("ascii").splitlines(), delimiter=",")
    images = table[:, :64].reshape(-1, 8, 8)  # (N, 8, 8)
    labels = table[:, 64].astype(int)  # (N,)
    names = np.array(group_split(range(len(images)), seed=0))
    counts = {}
    for seed, split in enumerate(SPLITS, start=1):
        chosen = names == split
        write_jsonl(
            out / f"{split}.jsonl", compose(images[chosen], labels[chosen], STRIPS[split], seed)
        )
        counts[split] = STRIPS[split]
    return counts
