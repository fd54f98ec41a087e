"""The ``adding`` task: the adding problem (Hochreiter & Schmidhuber 1997), a regression.

Each sequence carries a value and a marker per step; the target, read at the last step, is
the sum of the two marked values (:func:`rnnkit.data.synthetic.adding_problem`). Always
answering 1 scores the variance 1/6 = 0.167 (``baseline_loss`` in ``rnnkit evaluate``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.data.codec import FeatureCodec
from rnnkit.data.synthetic import ADDING_BASELINE_MSE, adding_problem
from rnnkit.models.recurrent import RecurrentModel
from rnnkit.tasks.base import Task, TaskData

FIXED = ("input_size", "vocab_size", "output_size", "objective")


def positive(obj: object, *names: str) -> None:
    """Raise ValueError naming the first of ``names`` whose value is below 1."""
    for name in names:
        if getattr(obj, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(obj, name)}")


@dataclass(frozen=True)
class AddingConfig:
    seq_len: int = 50  # T, steps per sequence
    n_train: int = 10_000  # training sequences
    n_val: int = 1_000  # validation sequences
    n_test: int = 1_000  # test sequences

    def __post_init__(self) -> None:
        positive(self, "n_train", "n_val", "n_test")
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be >= 2, got {self.seq_len}")


def prepare(cfg: AddingConfig, seed: int, codec: FeatureCodec | None = None) -> TaskData:
    return TaskData(
        train=adding_problem(cfg.n_train, cfg.seq_len, seed),
        val=adding_problem(cfg.n_val, cfg.seq_len, seed + 1),
        test=adding_problem(cfg.n_test, cfg.seq_len, seed + 2),
        codec=codec or FeatureCodec(("value", "marker")),
        fixed={"input_size": 2, "vocab_size": 0, "output_size": 1, "objective": "mse"},
        baseline={"loss": ADDING_BASELINE_MSE},
    )


TASK = Task(
    "adding",
    "the adding problem (regression at the last step)",
    AddingConfig,
    RecurrentModel,
    prepare,
    fixed=FIXED,
)
