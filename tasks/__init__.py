"""annealbench tasks: Lightning modules and data modules on real data.

    from tasks import get_task, TASK_NAMES, PRESETS
    task = get_task("digits", preset="smoke", **overrides)
    module, datamodule = task.build(optimizer_factory, seed=1234)
    trainer = pytorch_lightning.Trainer(**task.trainer_kwargs(), logger=..., callbacks=...)

Tasks receive an optimizer factory `(param_groups, total_steps) -> Optimizer` and never choose
an optimizer themselves.
"""

from tasks.base import OptimizerFactory, TaskModule
from tasks.config import PRESETS
from tasks.errors import DatasetError
from tasks.registry import TASK_NAMES, declared_metrics, get_task
from tasks.spec import Task

__all__ = ["PRESETS", "TASK_NAMES", "DatasetError", "OptimizerFactory", "Task", "TaskModule",
           "declared_metrics", "get_task"]
