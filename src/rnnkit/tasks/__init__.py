"""Tasks: datasets bound to a model shape and a metric, registered by name."""

from rnnkit.tasks import (
    language,  # noqa: F401  (registers the lm task)
    sentiment,  # noqa: F401  (registers the sentiment task)
)
from rnnkit.tasks.models import RecurrentModel, RecurrentModelConfig
from rnnkit.tasks.registry import TaskData, TaskSpec, get_task, register_task, task_names
from rnnkit.tasks.synthetic import adding_problem, copy_memory

__all__ = [
    "RecurrentModel",
    "RecurrentModelConfig",
    "TaskData",
    "TaskSpec",
    "adding_problem",
    "copy_memory",
    "get_task",
    "register_task",
    "task_names",
]

import rnnkit.tagging.task  # noqa: F401  (registers the `tagging` task)
