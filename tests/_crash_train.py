"""Child process of the crash tests: train, and die (SIGKILL) at a named point of a save.

Usage: python _crash_train.py RUN_DIR CRASH_SPEC SAVE_TWICE_STEP KEY=VALUE...

CRASH_SPEC is ``rnnkit.training.checkpoint._CRASH_AT`` ("POINT@NAME#K"; "" for no crash).
SAVE_TWICE_STEP: the step also saved at its batch's end, so that the epoch's end saves the same
step a second time (the rewrite of a checkpoint, as an ``every_steps`` save on an epoch's last
batch used to do); 0 for none.
"""

from __future__ import annotations

import sys

import rnnkit.training.checkpoint as ck
from rnnkit.tasks import run
from rnnkit.training import Callback


class SaveTwice(Callback):
    def __init__(self, step: int) -> None:
        self.at = step

    def on_batch_end(self, trainer, batch_index, info) -> None:
        if self.at and trainer.step == self.at:
            trainer.save_checkpoint()


if __name__ == "__main__":
    ck._CRASH_AT = sys.argv[2] or None
    cfg = run.load_run_config("adding", None, sys.argv[4:])
    run.train(cfg, sys.argv[1], callbacks=[SaveTwice(int(sys.argv[3]))])
