"""MovieLens 100k from RecBole's wheel: ratings with timestamps, movie titles, users.

The wheel ships the GroupLens files as RecBole "atomic files": tab-separated, a header of
typed names (``user_id:token  item_id:token  rating:float  timestamp:float``). They are read
as text from the zip (no package code runs) and written as plain TSV files:

    interactions.tsv   user item rating timestamp   100,000 rows, each user's rows in time
                       order, ties (same second) by item id
    items.tsv          item title year genres       1,682 movies; genres joined by "|"
    users.tsv          user age gender occupation zip   943 users

The files hold no split: the ``recommend`` task holds out each user's last two items (in
this order) for validation and test, on this data and on interaction files of your own.
"""

from __future__ import annotations

from pathlib import Path

from rnnkit.data.datasets._write import write_tsv
from rnnkit.data.errors import DataFormatError
from rnnkit.data.fetching import Artifact, read_member
from rnnkit.data.registry import DatasetInfo, register

RECBOLE = Artifact(
    "pypi",
    "recbole==1.2.1",
    "recbole-1.2.1-py3-none-any.whl",
    "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
    ("--only-binary", ":all:"),
)
FOLDER = "recbole/dataset_example/ml-100k/"
UNKNOWN = {"unknown", "unkonwn"}  # movie 267 has no title; the package spells it "unkonwn"


def read_atomic(data: bytes, where: str, columns: list[str]) -> list[dict[str, str]]:
    """The rows of a RecBole atomic file as dicts of ``columns`` (header names without their
    ``:type``); a missing column or a short row is a :class:`DataFormatError` naming the line."""
    lines = data.decode("utf-8").splitlines()
    if not lines:
        raise DataFormatError(where, 1, "expected a header line, found an empty file")
    header = [name.split(":", 1)[0] for name in lines[0].split("\t")]
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataFormatError(where, 1, f"expected columns {columns}, missing {missing}")
    index = [header.index(c) for c in columns]
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataFormatError(
                where,
                number,
                f"expected {len(header)} fields ({', '.join(header)}), found {len(fields)}",
            )
        rows.append({c: fields[i].strip() for c, i in zip(columns, index, strict=True)})
    return rows


def _number(text: str, where: str, line: int, field: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DataFormatError(where, line, f"{field}: expected a number, found {text!r}") from None


def _id_key(item: str) -> tuple[int, str]:
    """Numeric ids in numeric order ("2" before "10"), then any others as text."""
    return (int(item), "") if item.isdigit() else (1 << 62, item)


@register(
    DatasetInfo(
        name="movielens-100k",
        title="MovieLens 100k ratings with timestamps (GroupLens, from RecBole's examples)",
        task="recommendation (next item of a user's time-ordered history)",
        artifacts=(RECBOLE,),
        inside=f"{FOLDER}ml-100k.{{inter,item,user}} (RecBole atomic files)",
        size="100,000 ratings (1-5) of 1,682 movies by 943 users, 20-737 each, 1997-1998",
        license="MovieLens terms of use (research use, cite, no redistribution); RecBole MIT",
        citation="F. M. Harper and J. A. Konstan, The MovieLens datasets: history and context, "
        "ACM TiiS 5(4), 2015; W. X. Zhao et al., RecBole, CIKM 2021",
        files="interactions.tsv: user item rating timestamp (each user's rows in time order, "
        "ties by item id); items.tsv: item title year genres (genres joined by |); "
        "users.tsv: user age gender occupation zip",
        splits="none in the files: the recommend task holds out each user's last item "
        "(test) and the one before (validation), in the file's order",
    )
)
def convert(paths: dict[str, Path], out: Path) -> dict[str, int]:
    wheel = paths["recbole"]

    def atomic(suffix: str, columns: list[str]) -> tuple[list[dict[str, str]], str]:
        member = f"{FOLDER}ml-100k.{suffix}"
        return read_atomic(read_member(wheel, member), member, columns), member

    rows, where = atomic("inter", ["user_id", "item_id", "rating", "timestamp"])
    keyed = []
    for line, r in enumerate(rows, start=2):
        stamp = _number(r["timestamp"], where, line, "timestamp")
        _number(r["rating"], where, line, "rating")
        keyed.append(((_id_key(r["user_id"]), stamp, _id_key(r["item_id"])), r))
    keyed.sort(key=lambda pair: pair[0])
    write_tsv(
        out / "interactions.tsv",
        ["user", "item", "rating", "timestamp"],
        [
            (r["user_id"], r["item_id"], r["rating"].removesuffix(".0"), r["timestamp"])
            for _, r in keyed
        ],
    )
    items, _ = atomic("item", ["item_id", "movie_title", "release_year", "class"])
    write_tsv(
        out / "items.tsv",
        ["item", "title", "year", "genres"],
        [
            (
                r["item_id"],
                "unknown" if r["movie_title"] in UNKNOWN else r["movie_title"],
                r["release_year"] if r["release_year"].isdigit() else "",
                "|".join(r["class"].split()),
            )
            for r in sorted(items, key=lambda r: _id_key(r["item_id"]))
        ],
    )
    users, _ = atomic("user", ["user_id", "age", "gender", "occupation", "zip_code"])
    write_tsv(
        out / "users.tsv",
        ["user", "age", "gender", "occupation", "zip"],
        [
            (r["user_id"], r["age"], r["gender"], r["occupation"], r["zip_code"])
            for r in sorted(users, key=lambda r: _id_key(r["user_id"]))
        ],
    )
    return {"interactions": len(keyed), "users": len(users), "items": len(items)}
