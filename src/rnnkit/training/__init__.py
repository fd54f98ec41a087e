"""Training: one generic trainer, full and truncated BPTT, clipping, checkpoints, resume."""

from rnnkit.data.batches import EpochBatches, PairBatch, SequenceBatch
from rnnkit.training.bptt import CarryingModel, TrainableModel, detach_state, run_bptt
from rnnkit.training.callbacks import (
    Callback,
    EarlyStopping,
    LineLogger,
    MetricsLogger,
    ProgressBar,
    TensorBoardLogger,
    read_metrics,
)
from rnnkit.training.checkpoint import (
    CheckpointManager,
    load_codec,
    load_model,
    load_trainer_state,
    locate_checkpoint,
    save_checkpoint,
)
from rnnkit.training.clipping import ClipStats, clip_gradients, global_grad_norm
from rnnkit.training.config import (
    CheckpointConfig,
    EarlyStoppingConfig,
    LogConfig,
    OptimConfig,
    ScheduleConfig,
    TrainerConfig,
)
from rnnkit.training.device import move_batch, resolve_device
from rnnkit.training.distributed import DistContext, init_distributed, seed_everything
from rnnkit.training.optim import LRSchedule, build_optimizer
from rnnkit.training.trainer import (
    BatchInfo,
    NonFiniteLossError,
    StepInfo,
    Trainer,
    evaluate_model,
)

__all__ = [
    "BatchInfo",
    "Callback",
    "CarryingModel",
    "CheckpointConfig",
    "CheckpointManager",
    "ClipStats",
    "DistContext",
    "EarlyStopping",
    "EarlyStoppingConfig",
    "EpochBatches",
    "LRSchedule",
    "LineLogger",
    "LogConfig",
    "MetricsLogger",
    "NonFiniteLossError",
    "OptimConfig",
    "PairBatch",
    "ProgressBar",
    "ScheduleConfig",
    "SequenceBatch",
    "StepInfo",
    "TensorBoardLogger",
    "TrainableModel",
    "Trainer",
    "TrainerConfig",
    "build_optimizer",
    "clip_gradients",
    "detach_state",
    "evaluate_model",
    "global_grad_norm",
    "init_distributed",
    "load_codec",
    "load_model",
    "load_trainer_state",
    "locate_checkpoint",
    "move_batch",
    "read_metrics",
    "resolve_device",
    "run_bptt",
    "save_checkpoint",
    "seed_everything",
]
