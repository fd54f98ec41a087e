"""Layer throughput against torch.nn (the issue's four configurations, with and without
lengths, training and inference). Same as `rnnkit bench layers`; arguments pass through:

    python benchmarks/bench_layers.py --json docs/bench_layers.json --markdown out.md
"""

import sys

from rnnkit.cli import app

if __name__ == "__main__":
    sys.exit(app(["bench", "layers", *sys.argv[1:]]))
