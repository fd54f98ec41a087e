"""Tasks: each application of the seeds as one module that binds data, a model and metrics.

``get_task(name)`` finds a task module by name or alias on first use (its own dependencies load
only then); :mod:`rnnkit.tasks.run` trains, resumes, evaluates and diagnoses any of them.
"""

from rnnkit.tasks.base import Task, TaskData, get_task, register_task, task_names

__all__ = ["Task", "TaskData", "get_task", "register_task", "task_names"]
