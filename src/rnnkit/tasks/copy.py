"""The ``copy`` task: copy memory (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016).

``copy_len`` symbols, a delay, a recall marker, then the model must output the symbols in
order (:func:`rnnkit.data.synthetic.copy_memory`); guessing scores accuracy 1/n_symbols and
cross-entropy ln(n_symbols) (``baseline_*`` in ``rnnkit evaluate``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.data.codec import SymbolCodec
from rnnkit.data.synthetic import copy_baseline, copy_memory
from rnnkit.models.recurrent import RecurrentModel
from rnnkit.tasks.adding import FIXED, positive
from rnnkit.tasks.base import Task, TaskData


@dataclass(frozen=True)
class CopyConfig:
    delay: int = 50  # T, blank steps between the symbols and the recall delimiter
    n_symbols: int = 8  # alphabet size of the symbols to copy
    copy_len: int = 10  # symbols to remember
    n_train: int = 10_000  # training sequences
    n_val: int = 1_000  # validation sequences
    n_test: int = 1_000  # test sequences

    def __post_init__(self) -> None:
        positive(self, "delay", "copy_len", "n_train", "n_val", "n_test")
        if self.n_symbols < 2:
            raise ValueError(f"n_symbols must be >= 2, got {self.n_symbols}")


def prepare(cfg: CopyConfig, seed: int, codec: SymbolCodec | None = None) -> TaskData:
    args = (cfg.delay,)
    kw = {"n_symbols": cfg.n_symbols, "copy_len": cfg.copy_len}
    symbols = ("<blank>", *map(str, range(1, cfg.n_symbols + 1)), "<recall>")
    return TaskData(
        train=copy_memory(cfg.n_train, *args, seed=seed, **kw),
        val=copy_memory(cfg.n_val, *args, seed=seed + 1, **kw),
        test=copy_memory(cfg.n_test, *args, seed=seed + 2, **kw),
        codec=codec or SymbolCodec(symbols),
        fixed={
            "input_size": 1,
            "vocab_size": cfg.n_symbols + 2,
            "output_size": cfg.n_symbols + 1,
            "objective": "xent",
        },
        baseline=copy_baseline(cfg.n_symbols),
    )


TASK = Task(
    "copy",
    "copy memory (classification after a delay)",
    CopyConfig,
    RecurrentModel,
    prepare,
    fixed=FIXED,
)
