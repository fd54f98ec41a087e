"""Kneser-Ney n-gram baselines on the Penn Treebank (Mikolov's split), the count-based models
beside the recurrent ones of ``configs/ptb_*.toml``.

Each sentence is read as ``<bos> w_1 .. w_n <eos>`` and every token after ``<bos>`` is
predicted, ``<eos>`` included: 82,430 test predictions, the count the LSTM's test perplexity
is taken over. The vocabulary is the training split's (10,000 words with ``<unk>``, plus
``<eos>``), the one the ``lm`` task builds. :class:`rnnkit.ngram.KneserNey` is interpolated
Kneser-Ney with one discount per order (Chen & Goodman 1999); the published 5-gram figure
(141.2, Mikolov 2012) uses modified Kneser-Ney (three discounts per order), a little better.

    rnnkit data fetch ptb
    python benchmarks/ptb_ngram.py --orders 2 3 4 5
"""

from __future__ import annotations

import argparse
import json
import math
import time

from rnnkit.data.registry import dataset_dir, fetch, load_report
from rnnkit.data.tokenizers import WhitespaceTokenizer
from rnnkit.data.vocab import Vocab
from rnnkit.ngram import KneserNey


def sentences(path, vocab: Vocab) -> list[list[int]]:
    """Each line as ``<bos> w_1 .. w_n <eos>`` ids."""
    tok = WhitespaceTokenizer(eos=False)
    lines = path.read_text("utf-8").splitlines()
    return [vocab.encode(tok.tokenize(line), add_bos=True, add_eos=True) for line in lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[2, 3, 4, 5], help="n of n-gram")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if load_report("ptb") is None:
        fetch("ptb")
    root = dataset_dir("ptb")
    train_text = (root / "train.txt").read_text("utf-8")
    vocab = Vocab.build([WhitespaceTokenizer().tokenize(train_text)], max_size=10**6)
    train, valid, test = (sentences(root / f"{s}.txt", vocab) for s in ("train", "valid", "test"))
    n_test = sum(len(s) - 1 for s in test)
    print(f"{len(vocab) - 2:,} predictable tokens (words, <unk>, <eos>); {n_test:,} in test")
    print(f"{'model':<16} {'valid ppl':>10} {'test ppl':>10} {'seconds':>8}")
    rows = []
    for n in args.orders:
        start = time.perf_counter()
        kn = KneserNey(train, order=n - 1, vocab_size=len(vocab) - 2)  # <pad>, <bos> never
        val, tst = (math.exp(kn.nll(s)) for s in (valid, test))
        seconds = time.perf_counter() - start
        rows.append({"order": n, "valid_ppl": val, "test_ppl": tst, "seconds": seconds})
        name = f"KN {n}-gram"
        print(f"{name:<16} {val:>10.1f} {tst:>10.1f} {seconds:>8.0f}", flush=True)
        del kn
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
