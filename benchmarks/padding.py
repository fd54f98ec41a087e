"""Padding ratio of length-bucketed vs random batching on fetched datasets.

    python benchmarks/padding.py   # after `rnnkit data fetch` of the datasets below

Prints, per dataset, the fraction of padded slots in (B, T_max) batches for
:class:`rnnkit.data.BucketBatchSampler` and for random batches of the same size.
"""

from __future__ import annotations

from rnnkit.data import WordTokenizer, compare_padding, dataset_dir
from rnnkit.data.readers import read_conll, read_table, read_ts


def lengths() -> dict[str, tuple[list[int], int]]:
    """Training-split sequence lengths and a batch size for each dataset."""
    words = WordTokenizer(lowercase=True)
    reviews = read_table(dataset_dir("movie-reviews") / "train.tsv", ["text"])
    verses = read_table(dataset_dir("bible-en-es") / "train.tsv", ["en"])
    return {
        "movie-reviews (words)": ([len(words.tokenize(r["text"])) for r in reviews], 32),
        "bible-en-es (English words)": ([len(words.tokenize(r["en"])) for r in verses], 64),
        "spoken-digits (frames)": (
            [s.shape[0] for s in read_ts(dataset_dir("spoken-digits") / "train.ts").series],
            32,
        ),
        "japanese-ner (tokens)": (
            [len(s.tokens) for s in read_conll(dataset_dir("japanese-ner") / "train.conll")],
            16,
        ),
    }


def main() -> None:
    print("| dataset | sequences | batch | bucketed | random |")
    print("|---|---|---|---|---|")
    for name, (seq_lengths, batch) in lengths().items():
        ratios = compare_padding(seq_lengths, batch, seed=0)
        print(
            f"| {name} | {len(seq_lengths):,} | {batch} | {ratios['bucketed']:.1%} | "
            f"{ratios['random']:.1%} |"
        )


if __name__ == "__main__":
    main()
