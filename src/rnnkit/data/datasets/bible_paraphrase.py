"""English paraphrase pairs with exact labels: one verse in two English Bible translations.

World English Bible (engWEB2015eb, sword-text-web) and King James Version (engKJV2006eb,
sword-text-kjv), read with pysword through the helpers of :mod:`.bible` and aligned by book,
chapter and verse. The same verse in both is a paraphrase (label 1); the WEB verse with the
KJV text of another verse of the same chapter is a hard negative (label 0): same story, same
names, a different statement.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from rnnkit.data.datasets._write import write_splits, write_tsv
from rnnkit.data.datasets.bible import MAX_LENGTH_RATIO, WEB, misaligned_chapters, read_modules
from rnnkit.data.fetching import Artifact
from rnnkit.data.registry import DatasetInfo, register
from rnnkit.data.splits import group_split

KJV = Artifact(
    "debian",
    "sword-text-kjv=14.3-1",
    "sword-text-kjv_14.3-1_all.deb",
    "9f463f28ce665f6f528fc723179722bced880a4c5485f7a41bf742838315de57",
)
NEGATIVES = 1  # hard negatives per positive, from the same chapter
SEED = 0  # the split and the negatives
HEADER = ("id", "text_a", "text_b", "label")
_USFM = re.compile(r"\\[a-z]+\*?")  # USFM character markers left in the KJV text (\nd: deity)

Verse = tuple[str, str, str]  # (id "Book.chapter.verse", WEB text, KJV text)


def clean_kjv(text: str) -> str:
    """KJV verse text (already through :func:`~.bible.clean_osis`) without the pilcrows that
    mark paragraphs and the USFM markers some verses keep (``the \\nd LORD``)."""
    return " ".join(_USFM.sub(" ", text.replace("\u00b6", " ")).split())


def aligned_verses(
    web: Mapping[tuple[str, int, int], str], kjv: Mapping[tuple[str, int, int], str]
) -> list[Verse]:
    """Verses present and non-empty in both texts, in KJV order, less misplaced or merged ones.

    As ``bible-en-es``: the chapters :func:`~.bible.misaligned_chapters` finds numbered
    differently are dropped (only Rev 22 in these two texts, whose last WEB verse holds the
    glossary), then the pairs whose lengths differ more than :data:`~.bible.MAX_LENGTH_RATIO`
    (KJV's subscriptions after some epistles, merged verses).
    """
    rows = [(f"{b}.{c}.{v}", web.get((b, c, v), ""), clean_kjv(kjv[b, c, v])) for b, c, v in kjv]
    rows = [r for r in rows if r[1] and r[2]]
    shifted = misaligned_chapters(rows)
    return [
        r
        for r in rows
        if tuple(r[0].split(".")[:2]) not in shifted
        and max(len(r[1]), len(r[2])) <= MAX_LENGTH_RATIO * min(len(r[1]), len(r[2]))
    ]


def paraphrase_pairs(
    verses: list[Verse], negatives: int = NEGATIVES, seed: int = SEED
) -> list[tuple[str, str, str, str]]:
    """(id, text_a, text_b, label) rows: each verse's positive, then its negatives.

    A positive pairs the WEB and KJV texts of one verse (id ``Gen.1.3/Gen.1.3``); each of its
    ``negatives`` pairs the WEB verse with the KJV text of another verse of its chapter
    (``Gen.1.3/Gen.1.7``), drawn with ``random.Random(seed)`` among the verses whose texts
    differ from both of its own (repeated formulas such as "And the LORD spake unto Moses,
    saying," would be false negatives). A chapter with too few such verses gives fewer.
    """
    if negatives < 0:
        raise ValueError(f"negatives must be >= 0, got {negatives}")
    chapters: dict[str, list[Verse]] = defaultdict(list)
    for verse in verses:
        chapters[verse[0].rsplit(".", 1)[0]].append(verse)
    rng = random.Random(seed)
    rows = []
    for ident, web, kjv in verses:
        rows.append((f"{ident}/{ident}", web, kjv, "1"))
        others = [o for o in chapters[ident.rsplit(".", 1)[0]] if o[1] != web and o[2] != kjv]
        for other, _, text in rng.sample(others, min(negatives, len(others))):
            rows.append((f"{ident}/{other}", web, text, "0"))
    return rows


def split_by_book(verses: list[Verse], rows: list[tuple[str, ...]], seed: int = SEED) -> list[str]:
    """Split names of ``rows`` (from :func:`paraphrase_pairs`): whole books, 80/10/10 of the
    verses, with :func:`~rnnkit.data.splits.group_split` as ``bible-en-es`` splits."""
    names = group_split([v[0].split(".")[0] for v in verses], seed=seed)
    book_split = {v[0].split(".")[0]: name for v, name in zip(verses, names, strict=True)}
    return [book_split[r[0].split(".")[0]] for r in rows]


@register(
    DatasetInfo(
        name="bible-paraphrase",
        title="English paraphrase pairs: one verse in two translations (WEB / KJV)",
        task="text similarity (siamese encoder)",
        artifacts=(WEB, KJV),
        inside="usr/share/sword/modules/texts/ztext/{engWEB2015eb,engKJV2006eb}, read with pysword",
        size="31,070 verses of the 66 books both modules share, each a positive pair (WEB, KJV) "
        "and a hard negative (WEB verse, KJV text of another verse of its chapter)",
        license="public domain (both translations; CrossWire SWORD modules, Debian packaging "
        "GPL-2+)",
        citation="World English Bible (eBible.org, 2020 edition); King James Version (1769 text, "
        "eBible.org 2022); CrossWire Bible Society SWORD modules",
        files="{train,valid,test}.tsv with header id (Book.c.v/Book.c.w), text_a (WEB), "
        "text_b (KJV), label (1: same verse, 0: another verse of the chapter) "
        "(read_table(path, ['text_a', 'text_b', 'label']))",
        splits="seeded 80/10/10 of the verses by book (seed 0; group_split as bible-en-es): no "
        "book in two splits, a verse's negative in its split. 1 negative per positive, drawn "
        "(seed 0) among the chapter's verses whose WEB and KJV texts both differ from the "
        "positive's. Dropped: verses empty in either text, pairs whose lengths differ more "
        "than 3x, chapters numbered differently (as bible-en-es)",
    )
)
def convert(paths: dict[str, Path], out: Path) -> dict[str, int]:
    web, kjv = read_modules(paths, "engWEB2015eb", "engKJV2006eb")
    verses = aligned_verses(web, kjv)
    rows = paraphrase_pairs(verses)
    names = split_by_book(verses, rows)
    return write_splits(out, rows, names, ".tsv", lambda p, members: write_tsv(p, HEADER, members))
