"""Token accuracy of a trained tagging run on a registry dataset's test split, for words seen
and not seen in its training split (the split docs/RESULTS.md reports for WSJ POS).

    python benchmarks/tagging_by_word.py runs/wsj_glove/wsj-pos/bilstm-crf+chars --dataset wsj-pos
"""

from __future__ import annotations

import argparse

import torch

import rnnkit
from rnnkit.tasks.tagging import TaggingConfig, read_tagged, split_files


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run", help="a tagging run directory")
    p.add_argument("--dataset", default="wsj-pos")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = rnnkit.load(args.run).eval()
    cfg = TaggingConfig(dataset=args.dataset)
    train_file, _, test_file = split_files(cfg)
    known = {w for tokens, _ in read_tagged(train_file, cfg) for w in tokens}
    counts = {"seen": [0, 0], "unseen": [0, 0]}
    for tokens, tags in read_tagged(test_file, cfg):
        with torch.no_grad():
            predicted = model.tag_rows(model.codec.batch([tokens]))[0]
        for word, gold, guess in zip(tokens, tags, predicted, strict=True):
            c = counts["seen" if word in known else "unseen"]
            c[0] += gold == guess
            c[1] += 1
    for name, (right, total) in counts.items():
        print(f"{name}: {right}/{total} = {right / total:.4f}")
    right, total = (sum(c[i] for c in counts.values()) for i in (0, 1))
    print(f"all: {right}/{total} = {right / total:.4f}")


if __name__ == "__main__":
    main()
