"""English-Spanish Bible verse pairs from two SWORD modules packaged by Debian.

World English Bible (engWEB2015eb, sword-text-web) and Reina-Valera 1909 (spaRV1909eb,
sword-text-sparv), read with pysword and paired by book, chapter and verse.
"""

from __future__ import annotations

import html
import re
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from rnnkit.data.datasets._write import write_splits, write_tsv
from rnnkit.data.fetching import Artifact, unpack_deb
from rnnkit.data.registry import DatasetInfo, register
from rnnkit.data.splits import group_split

WEB = Artifact(
    "debian",
    "sword-text-web=426.0-1",
    "sword-text-web_426.0-1_all.deb",
    "930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1",
)
SPARV = Artifact(
    "debian",
    "sword-text-sparv=2.60-1",
    "sword-text-sparv_2.60-1_all.deb",
    "5c87f9b2bc97457e8a872f5bae7ea7ce59cb3de1dcee73e4d4740451863694cf",
)
_NOTE = re.compile(r"<note\b.*?</note>", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_SEP = "\x00"
MAX_LENGTH_RATIO = 3.0  # pairs whose lengths differ more are merged or misplaced verses


def clean_osis(raw: str) -> str:
    """Verse text from OSIS markup: notes dropped, words kept apart, tags removed."""
    text = _NOTE.sub(" ", raw)
    text = text.replace("</w><w", "</w> <w")
    text = html.unescape(_TAG.sub("", text))
    text = re.sub(r"\s+([,.;:!?])", r"\1", " ".join(text.split()))
    return text


def _shift_correlation(en: np.ndarray, es: np.ndarray, shift: int) -> float:
    a, b = (en[: len(en) - shift], es[shift:]) if shift >= 0 else (en[-shift:], es[:shift])
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def misaligned_chapters(
    rows: list[tuple[str, str, str]], margin: float = 0.2
) -> set[tuple[str, str]]:
    """Chapters whose verse numbering differs between the two texts.

    The two modules follow different versifications (NRSVA and KJV), so in a few chapters
    verse v of one is verse v +- 1 or 2 of the other. Verse lengths reveal it: if the
    lengths of English verses correlate better with the Spanish ones shifted by 1 or 2
    than unshifted (by ``margin``), the chapter is misaligned.

    Args:
        rows: (id "Book.chapter.verse", english, spanish) in verse order.
    """
    chapters: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for ident, english, spanish in rows:
        book, chapter, _ = ident.split(".")
        chapters[book, chapter].append((len(english), len(spanish)))
    bad = set()
    for key, lengths in chapters.items():
        if len(lengths) < 6:
            continue
        en, es = np.array(lengths, dtype=float).T
        unshifted = _shift_correlation(en, es, 0)
        if any(_shift_correlation(en, es, k) > unshifted + margin for k in (-2, -1, 1, 2)):
            bad.add(key)
    return bad


def _verses(bible: object) -> dict[tuple[str, int, int], str]:
    """(book, chapter, verse) -> text for every verse of a pysword Bible."""
    verses = {}
    books = bible.get_structure().get_books()  # type: ignore[attr-defined]
    for testament in ("ot", "nt"):
        for book in books.get(testament, []):
            raw = bible.get(
                books=[book.osis_name],
                clean=False,  # type: ignore[attr-defined]
                join=_SEP,
            ).split(_SEP)
            keys = [
                (book.osis_name, c, v)
                for c, n in enumerate(book.chapter_lengths, 1)
                for v in range(1, n + 1)
            ]
            verses.update(zip(keys, (clean_osis(r) for r in raw), strict=True))
    return verses


def read_modules(paths: dict[str, Path], *names: str) -> list[dict[tuple[str, int, int], str]]:
    """The verses of each named SWORD module in the Debian packages ``paths`` (unpacked into a
    temporary directory), as (book, chapter, verse) -> cleaned text."""
    from pysword.modules import SwordModules

    with tempfile.TemporaryDirectory() as tmp:
        for path in paths.values():
            unpack_deb(path, Path(tmp))
        modules = SwordModules(str(Path(tmp) / "usr/share/sword"))
        modules.parse_modules()
        return [_verses(modules.get_bible_from_module(name)) for name in names]


@register(
    DatasetInfo(
        name="bible-en-es",
        title="English-Spanish Bible verse pairs (WEB / Reina-Valera 1909)",
        task="translation (encoder-decoder)",
        artifacts=(WEB, SPARV),
        inside="usr/share/sword/modules/texts/ztext/{engWEB2015eb,spaRV1909eb}, read with pysword",
        size="30,853 verse pairs from the 66 books both modules share (31,102 Spanish verses)",
        license="public domain (both translations; CrossWire SWORD modules, Debian packaging GPL)",
        citation="World English Bible (eBible.org, 2020 edition); Reina-Valera 1909; CrossWire "
        "Bible Society SWORD modules",
        files="{train,valid,test}.tsv with header id (Book.chapter.verse), en, es "
        "(read_table(path, ['en', 'es']))",
        splits="seeded 80/10/10 by book (seed 0): no book in two splits. Dropped: verses "
        "empty in either text, chapters numbered differently by the two versifications "
        "(found by verse-length correlation, e.g. Num 13, 1 Sam 24, Jonah 2), and pairs "
        "whose character lengths differ more than 3x",
    )
)
def convert(paths: dict[str, Path], out: Path) -> dict[str, int]:
    english, spanish = read_modules(paths, "engWEB2015eb", "spaRV1909eb")
    rows = [
        (f"{b}.{c}.{v}", english[b, c, v], spanish[b, c, v])
        for b, c, v in spanish
        if (b, c, v) in english and english[b, c, v] and spanish[b, c, v]
    ]
    shifted = misaligned_chapters(rows)
    rows = [
        r
        for r in rows
        if tuple(r[0].split(".")[:2]) not in shifted
        and max(len(r[1]), len(r[2])) <= MAX_LENGTH_RATIO * min(len(r[1]), len(r[2]))
    ]
    names = group_split([r[0].split(".")[0] for r in rows], seed=0)
    return write_splits(
        out, rows, names, ".tsv", lambda path, members: write_tsv(path, ("id", "en", "es"), members)
    )
