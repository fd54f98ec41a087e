"""DNA sequences from R packages in Debian: StatLog splice junctions (mlbench) and E. coli
promoters (kernlab), read with pyreadr and written as FASTA."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rnnkit.data.datasets._write import write_splits
from rnnkit.data.fetching import Artifact, unpack_deb
from rnnkit.data.readers.fasta import write_fasta
from rnnkit.data.registry import DatasetInfo, register
from rnnkit.data.splits import group_split

MLBENCH = Artifact(
    "debian",
    "r-cran-mlbench=2.1-3-1",
    "r-cran-mlbench_2.1-3-1_amd64.deb",
    "2f1127f7b5e7d08703b13b52ef1976a0c355a7660d6ac575e29b87b13921bc06",
)
KERNLAB = Artifact(
    "debian",
    "r-cran-kernlab=0.9-32-1",
    "r-cran-kernlab_0.9-32-1_amd64.deb",
    "ab09291d7de965e84f808e3ae646d7043fa87e1e30cfcebec6b95d14f6828b62",
)
# StatLog's encoding of a nucleotide as three indicator variables.
STATLOG_CODE = {(1, 0, 0): "A", (0, 1, 0): "C", (0, 0, 1): "G", (0, 0, 0): "T"}


def _read_rda(deb: Path, member: str, name: str):  # -> pandas.DataFrame
    import pyreadr

    with tempfile.TemporaryDirectory() as tmp:
        unpack_deb(deb, Path(tmp))
        return pyreadr.read_r(str(Path(tmp) / member))[name]


def _fasta_writer(path: Path, records: list) -> None:
    write_fasta(path, records)


@register(
    DatasetInfo(
        name="dna-splice",
        title="Primate splice-junction sequences (StatLog DNA, mlbench)",
        task="sequence classification (many-to-one)",
        artifacts=(MLBENCH,),
        inside="usr/lib/R/site-library/mlbench/data/DNA.rda (180 indicator columns + Class)",
        size="3,186 sequences of 60 nucleotides; classes ei (767), ie (765), n (1,654)",
        license="GPL-2 (mlbench); data from the UCI repository",
        citation="G. Towell, M. Noordewier, J. Shavlik, molecular biology (splice-junction gene "
        "sequences), UCI ML repository; StatLog (Michie, Spiegelhalter, Taylor 1994); "
        "F. Leisch and E. Dimitriadou, mlbench",
        files="{train,test}.fasta: >dnaN class=ei|ie|n, then the 60 nucleotides (read_fasta); "
        "StatLog's indicator triples decoded A=100 C=010 G=001 T=000",
        splits="the StatLog split: the first 2,000 rows train, the other 1,186 test",
    )
)
def convert_splice(paths: dict[str, Path], out: Path) -> dict[str, int]:
    frame = _read_rda(paths["r-cran-mlbench"], "usr/lib/R/site-library/mlbench/data/DNA.rda", "DNA")
    bits = frame.iloc[:, :180].astype(int).to_numpy().reshape(len(frame), 60, 3)
    records = [
        (
            f"dna{i + 1}",
            f"class={label}",
            "".join(STATLOG_CODE[tuple(int(b) for b in triple)] for triple in row),
        )
        for i, (row, label) in enumerate(zip(bits, frame["Class"].astype(str), strict=True))
    ]
    names = ["train" if i < 2000 else "test" for i in range(len(records))]
    return write_splits(out, records, names, ".fasta", _fasta_writer)


@register(
    DatasetInfo(
        name="dna-promoters",
        title="E. coli promoter gene sequences (kernlab)",
        task="sequence classification (many-to-one)",
        artifacts=(KERNLAB,),
        inside="usr/lib/R/site-library/kernlab/data/promotergene.rda (Class + 57 nucleotides)",
        size="106 sequences of 57 nucleotides, 53 promoters (+) and 53 non-promoters (-)",
        license="GPL-2 (kernlab); data from the UCI repository",
        citation="C. Harley, R. Reynolds, M. Noordewier, J. Shavlik, G. Towell, E. coli promoter "
        "gene sequences, UCI ML repository; A. Karatzoglou et al., kernlab, JSS 2004",
        files="{train,valid,test}.fasta: >promN class=+|-, then 57 nucleotides (read_fasta)",
        splits="seeded 80/10/10 by sequence (seed 0)",
    )
)
def convert_promoters(paths: dict[str, Path], out: Path) -> dict[str, int]:
    frame = _read_rda(
        paths["r-cran-kernlab"],
        "usr/lib/R/site-library/kernlab/data/promotergene.rda",
        "promotergene",
    )
    records = [
        (f"prom{i + 1}", f"class={row.iloc[0]}", "".join(str(v) for v in row.iloc[1:]).upper())
        for i, (_, row) in enumerate(frame.iterrows())
    ]
    names = group_split(range(len(records)), seed=0)
    return write_splits(out, records, names, ".fasta", _fasta_writer)
