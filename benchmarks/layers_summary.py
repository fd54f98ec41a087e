"""The figures that docs/RESULTS.md quotes from a `rnnkit bench layers --json` file.

    python benchmarks/layers_summary.py docs/bench/layers.json
    python benchmarks/layers_summary.py run1.json run2.json run3.json   # several runs

Given several runs of the same benchmark, each row's ratios are first replaced by their
median over the runs (one run's ratios swing by +-10% on this machine), and the rows whose
run-to-run spread crosses a target are listed. Per rnnkit backend: median and minimum
ratio to torch.nn over all rows and over the rows with B >= 32; for `loop`, the rows at
B >= 32 below the issue's 0.7 target; for `auto`, the rows below 0.95; and the spread of
the control column ("torch.nn again"). ``--markdown`` writes the rows (medians) as a table.
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


def key(row: dict) -> tuple:
    return tuple(row[k] for k in ("kind", "B", "T", "I", "H", "lengths", "mode"))


def median_rows(runs: list[list[dict]]) -> list[dict]:
    """One row per configuration, each ratio the median over the runs (which must hold the
    same rows)."""
    keys = [key(r) for r in runs[0]]
    by_key = [{key(r): r for r in rows} for rows in runs]
    if any(set(found) != set(keys) for found in by_key):
        raise SystemExit("the runs do not hold the same rows")
    merged = []
    for k in keys:
        rows = [found[k] for found in by_key]
        medians = {
            field: {
                impl: statistics.median(r[field][impl] for r in rows) for impl in rows[0][field]
            }
            for field in ("ratio", "tokens_per_s", "seconds")
            if field in rows[0]
        }
        merged.append({**rows[0], **medians})
    return merged


def spread(runs: list[list[dict]]) -> list[str]:
    """Rows whose ratios over the runs straddle a target: auto 0.95, loop 0.7 (B >= 32)."""
    lines = []
    for k in [key(r) for r in runs[0]]:
        rows = [next(r for r in rows if key(r) == k) for rows in runs]
        for impl, floor in (("auto", 0.95), ("loop", 0.7)):
            values = [r["ratio"][impl] for r in rows]
            if (impl == "auto" or rows[0]["B"] >= 32) and min(values) < floor <= max(values):
                lines.append(
                    f"  {impl} {describe(rows[0])}: " + ", ".join(f"{v:.2f}" for v in values)
                )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("json", type=Path, nargs="+", help="written by rnnkit bench layers --json")
    p.add_argument("--markdown", type=Path, help="write the (median) rows as a Markdown table")
    args = p.parse_args()
    files = [json.loads(path.read_text("utf-8")) for path in args.json]
    for path, data in zip(args.json, files, strict=True):
        meta = data.get("meta", {})
        if "cpu" in meta:  # runs before 2026-11-27 did not record the machine
            print(
                f"{path}: {meta['cpu']}, torch {meta['torch']}, {meta['threads']} thread(s), "
                f"FP32 GEMM peak {meta['gemm_gflops']:.0f} GFLOP/s"
            )
    runs = [data["rows"] for data in files]
    rows = median_rows(runs)
    if len(runs) > 1:
        print(f"per-row medians over {len(runs)} runs")
    print("\n".join(summarise(rows)))
    if args.markdown:
        from rnnkit.bench.layers import Row, markdown

        args.markdown.write_text(markdown([Row(**row) for row in rows]) + "\n", "utf-8")
    if len(runs) > 1:
        straddle = spread(runs)
        print(f"rows whose runs straddle a target: {len(straddle)}")
        print("\n".join(straddle))


if __name__ == "__main__":
    main()
