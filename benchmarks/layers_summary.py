"""The figures that docs/RESULTS.md quotes from a `rnnkit bench layers --json` file.

    python benchmarks/layers_summary.py docs/bench/layers.json

Per rnnkit backend: median and minimum ratio to torch.nn over all rows and over the rows
with B >= 32; for `loop`, the rows at B >= 32 below the issue's 0.7 target; for `auto`, the
rows below 0.95; and the spread of the control column ("torch.nn again").
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def describe(row: dict) -> str:
    lengths = "lengths" if row["lengths"] else "no lengths"
    shape = f"({row['B']}, {row['T']}, {row['I']}, {row['H']})"
    return f"{row['kind']} {row['mode']} {shape} {lengths}"


def summarise(rows: list[dict]) -> list[str]:
    lines = []
    for impl, floor in (("auto", 0.95), ("torch", None), ("loop", 0.7)):
        every = [r["ratio"][impl] for r in rows]
        wide = [r["ratio"][impl] for r in rows if r["B"] >= 32]
        lines.append(
            f"{impl}: median {statistics.median(every):.2f}, min {min(every):.2f} over "
            f"{len(every)} rows; at B >= 32 median {statistics.median(wide):.2f}, "
            f"min {min(wide):.2f} over {len(wide)} rows"
        )
        if floor is None:
            continue
        scope = [r for r in rows if impl == "auto" or r["B"] >= 32]
        below = [r for r in scope if r["ratio"][impl] < floor]
        lines.append(
            f"  {impl} at or above {floor} in {len(scope) - len(below)} of {len(scope)} rows"
            + ("" if impl == "auto" else " with B >= 32")
        )
        lines += [f"  below: {describe(r)}: {r['ratio'][impl]:.3f}" for r in below]
    control = [r["ratio"]["torch.nn again"] for r in rows]
    lines.append(f"torch.nn again (noise): {min(control):.2f}-{max(control):.2f}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("json", type=Path, help="written by rnnkit bench layers --json")
    args = p.parse_args()
    print("\n".join(summarise(json.loads(args.json.read_text("utf-8"))["rows"])))


if __name__ == "__main__":
    main()
