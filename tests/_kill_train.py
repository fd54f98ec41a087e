"""Child process of the SIGKILL test: train, and kill itself with SIGKILL at a given step.

Usage: python _kill_train.py RUN_DIR KILL_STEP KEY=VALUE...
"""

from __future__ import annotations

import os
import signal
import sys

from rnnkit.tasks import run
from rnnkit.training import Callback


class KillAt(Callback):
    def __init__(self, step: int) -> None:
        self.at = step

    def on_batch_end(self, trainer, batch_index, info) -> None:
        if trainer.step == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    cfg = run.load_run_config("adding", None, sys.argv[3:])
    run.train(cfg, sys.argv[1], callbacks=[KillAt(int(sys.argv[2]))])
