"""The ``caption`` task: a :class:`~rnnkit.models.Seq2Seq` from an image to a sentence.

The seeds' one-to-many shape with an image in. The default data is ``digit-strips``: strips
of 3-6 handwritten 8x8 digits side by side, captioned with the digit words ("seven three
nine"); any JSONL file of ``{"pixels": rows of grey levels, "caption": text}`` objects works
the same way (``task.train``, ``task.valid``, ``task.test``)::

    [task]
    dataset = "digit-strips"
    scale = 0.0625        # pixel values times this (digit-strips: 0-16 -> 0-1)
    [model]
    attention = "general" # the decoder attends over the image's feature columns

A small convolutional encoder turns each image (1, H, W) into W feature columns that the
recurrent encoder reads left to right; the decoder attends over them, so its attention moves
across the strip as it names the digits (``rnnkit translate RUN --attention-plot DIR`` on
images is not a command-line affair: use ``model.translate(images, attention=True)``).
Scores: exact match (the whole caption right) and BLEU; the baseline outputs the training
split's most frequent caption. ``compose_valid`` replaces the validation strips by as many as
asked, recomposed from the validation strips' own digits: 500 strips make a noisy choice of
epoch (one strip is 0.2 points of exact match).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnkit.data.batches import PairBatch
from rnnkit.data.codec import PairCodec
from rnnkit.data.errors import FLOAT32_MAX, BadRows
from rnnkit.data.readers.table import iter_json_objects
from rnnkit.data.tokenizers import WordTokenizer
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


@dataclass(frozen=True)
class CaptionConfig:
    dataset: str = "digit-strips"  # a registered image-caption dataset, or "" for files
    train: str = ""  # JSONL of {"pixels": [[...], ...], "caption": "..."} (dataset = "")
    valid: str = ""  # validation file (required with train)
    test: str = ""  # test file (default: the validation file)
    scale: float = 1 / 16  # pixel values are multiplied by this
    compose: int = 0  # > 0: add this many training strips recomposed from the training glyphs
    compose_valid: int = 0  # > 0: validate on this many strips recomposed from the validation
    # glyphs instead (a larger validation set to choose epochs and runs by; test unchanged)
    lowercase: bool = True  # lower-case the captions
    metrics: tuple[str, ...] = ("exact", "bleu")  # of bleu, chrf, exact, wer, per
    beam: int = 1  # beam width of validation and evaluate scores (1: greedy)
    length_penalty: float = 0.0  # GNMT alpha of beam search

    def __post_init__(self) -> None:
        if self.dataset and self.dataset != "digit-strips":
            raise ValueError(f"dataset must be 'digit-strips' or '' (files), got {self.dataset!r}")
        check_split_files(self)
        for name in ("compose", "compose_valid"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")
        if self.beam < 1:
            raise ValueError(f"beam must be >= 1, got {self.beam}")
        if not self.length_penalty >= 0:
            raise ValueError(f"length_penalty must be >= 0, got {self.length_penalty}")
        if self.length_penalty and self.beam == 1:
            raise ValueError("length_penalty applies to beam search: set beam > 1 too")
        check_metrics(self.metrics)

    @property
    def resolved_metrics(self) -> tuple[str, ...]:
        """The metrics to report (:class:`rnnkit.tasks._pairs.PairScoring`)."""
        return self.metrics


def read_captions(path: str | Path) -> tuple[list[list[list[float]]], list[str]]:
    """Images (rows of grey levels, all rows as long) and captions of a JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file of captioned images: {path}")
    rows = BadRows(path, skip_bad=False)
    images, captions = [], []
    for line, obj in iter_json_objects(path, rows):
        pixels, caption = obj.get("pixels"), obj.get("caption")
        if not isinstance(caption, str) or not caption.strip():
            rows.bad(line, "field 'caption': expected a non-empty string")
        ok = (
            isinstance(pixels, list)
            and pixels
            and all(isinstance(r, list) and r for r in pixels)
            and len({len(r) for r in pixels}) == 1
            and all(
                isinstance(v, int | float) and not isinstance(v, bool) for r in pixels for v in r
            )
        )
        if not ok:
            rows.bad(line, "field 'pixels': expected rows of numbers, all of one length")
        elif not all(math.isfinite(v) and abs(v) <= FLOAT32_MAX for r in pixels for v in r):
            rows.bad(line, "field 'pixels': expected finite numbers within float32's range")
        images.append(pixels)
        captions.append(caption)
    if not images:
        raise ValueError(f"{path}: no captioned image in the file")
    return images, captions


def recompose(
    images: list, captions: list[str], count: int, seed: int, sizes: tuple[int, int] = (3, 6)
) -> tuple[list, list[str]]:
    """``count`` new strips of ``sizes`` glyphs drawn (seeded) from the glyphs of the given
    strips, where a strip of k words is k equal-width glyphs side by side (digit-strips):
    more training strips from the same training images (augmentation; no other split's image
    is read). A strip whose width is not a multiple of its word count is an error."""
    glyphs = []
    for i, (image, caption) in enumerate(zip(images, captions, strict=True)):
        words, width = caption.split(), len(image[0])
        if width % len(words):
            raise ValueError(
                f"task.compose: strip {i} is {width} columns wide for {len(words)} words, not "
                "one equal-width glyph per word"
            )
        w = width // len(words)
        glyphs += [
            ([row[j * w : (j + 1) * w] for row in image], word) for j, word in enumerate(words)
        ]
    rng = random.Random(seed)
    new_images, new_captions = [], []
    for _ in range(count):
        chosen = [rng.choice(glyphs) for _ in range(rng.randint(*sizes))]
        rows = len(chosen[0][0])
        new_images.append([[v for g, _ in chosen for v in g[r]] for r in range(rows)])
        new_captions.append(" ".join(word for _, word in chosen))
    return new_images, new_captions


def prepare(cfg: CaptionConfig, seed: int, codec: PairCodec | None = None) -> TaskData:
    splits = read_splits(cfg, ".jsonl", read_captions)
    images, captions = splits["train"]
    if cfg.compose:
        extra = recompose(images, captions, cfg.compose, seed)
        images, captions = images + extra[0], captions + extra[1]
    if cfg.compose_valid:  # the validation glyphs only, under another seed
        splits["val"] = recompose(*splits["val"], cfg.compose_valid, seed + 1)
    if codec is None:
        tok = WordTokenizer(lowercase=cfg.lowercase)
        vocab = Vocab.build([tok.tokenize(c) for c in captions])
        codec = PairCodec(tok, vocab, source_kind="image", image_scale=cfg.scale)
    heights = {len(img) for split in splits.values() for img in split[0]}
    if len(heights) != 1:
        raise ValueError(f"images: expected one height in all splits, got {sorted(heights)}")
    # the model writes lower case with task.lowercase: its references (and the baseline's
    # caption) are scored in the case it writes, as the tokens of "exact" already were
    fold = str.lower if cfg.lowercase else str
    common = fold(Counter(captions).most_common(1)[0][0])
    test_refs = [fold(r) for r in splits["test"][1]]
    tok = codec.target_tokenizer
    baseline = text_scores(
        [common] * len(test_refs),
        test_refs,
        [tok.tokenize(common)] * len(test_refs),
        [tok.tokenize(r) for r in test_refs],
        cfg.metrics,
    )
    return TaskData(
        train=codec.batch(images, captions),
        val=codec.batch(*splits["val"]),
        test=codec.batch(*splits["test"]),
        codec=codec,
        fixed={
            "target_vocab_size": len(codec.target_vocab),
            "image_channels": 1,
            "image_height": heights.pop(),
        },
        baseline={f"frequent_caption_{k}": v for k, v in baseline.items()},
        config=cfg,
        references={"val": [fold(r) for r in splits["val"][1]], "test": test_refs},
    )


def read_file(cfg: CaptionConfig, path: str, codec: PairCodec) -> PairBatch:
    """Captioned images of a JSONL file, for ``rnnkit evaluate --data``."""
    return codec.batch(*read_captions(path))


def store_records(records: list, path: Path) -> list[str]:
    """Write (image rows, caption) pairs as JSONL at ``path`` (also the validation file)."""
    return store_pairs(records, path, ("pixels", "caption"), "an (image, caption)")


def _check(cfg: CaptionConfig, model: dict[str, Any]) -> None:
    if model.get("share_embeddings") or model.get("source_vocab_size"):
        raise ValueError("model.share_embeddings: an image source has no embedding to share")


TASK = Task(
    "caption",
    "encoder-decoder from an image to a sentence (digit strips, image captioning)",
    CaptionConfig,
    Seq2Seq,
    prepare,
    fixed=FIXED,
    check=_check,
    score=score_pairs,
    read_file=read_file,
    store_records=store_records,
    eval_keys=("metrics", "beam", "length_penalty"),
)
