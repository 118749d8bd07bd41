"""annealbench tasks: Lightning modules and data modules on real data.

    from annealbench.tasks import get_task, TASK_NAMES, PRESETS
    task = get_task("digits", preset="smoke", **overrides)
    module, datamodule = task.build(optimizer_factory, seed=1234)
    trainer = pytorch_lightning.Trainer(**task.trainer_kwargs(), logger=..., callbacks=...)

Tasks receive an optimizer factory `(param_groups, total_steps) -> Optimizer` and never choose
an optimizer themselves. A task from outside the project is a `TaskSpec` found by entry point
(group `annealbench.tasks`) or `module:Name` (`task_spec`; docs/adding-a-task.md).
"""

from annealbench.tasks.base import OptimizerFactory, TaskModule
from annealbench.tasks.config import PRESETS
from annealbench.tasks.errors import DatasetError
from annealbench.tasks.registry import TASK_NAMES, declared_metrics, get_task, task_names, task_spec
from annealbench.tasks.task_spec import Task

__all__ = ["PRESETS", "TASK_NAMES", "DatasetError", "OptimizerFactory", "Task", "TaskModule",
           "declared_metrics", "get_task", "task_names", "task_spec"]
