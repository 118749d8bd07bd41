"""Checks a suite against the task and optimizer registries before any run starts."""

from __future__ import annotations

import logging

from annealbench.runner.errors import SuiteError
from annealbench.runner.suite.selection import selection_metric
from annealbench.runner.suite.run_spec import config_label, expand_tune
from annealbench.runner.suite.suite import Suite

log = logging.getLogger(__name__)


def task_budget(name: str, preset: str, overrides: dict) -> int:
    """The task's step budget τ (`max_steps`); raises what `get_task` raises."""
    from annealbench.tasks import get_task

    return int(get_task(name, preset=preset, **overrides).trainer_kwargs()["max_steps"])


def validate_suite(suite: Suite) -> None:
    """Every task builds, every (configuration, lr) passes `check_optimizer`, ids are unique."""
    from annealbench.optimizers import check_optimizer, optimizer_info
    from annealbench.tasks import task_spec

    budgets = {}
    for i, task in enumerate(suite.tasks):
        try:
            task_spec(task.name)  # a built-in, a plug-in, or module:Name that imports
        except ValueError as err:
            raise SuiteError(suite.source, f"tasks[{i}].name", str(err)) from err
        try:
            budgets[task] = task_budget(task.name, task.preset, dict(task.overrides))
        except (ValueError, TypeError, KeyError) as err:
            raise SuiteError(suite.source, f"tasks[{i}]", str(err)) from err
    labels = {}
    for j, opt in enumerate(suite.optimizers):
        key = f"optimizers[{j}]"
        try:
            optimizer_info(opt.name)
        except ValueError as err:
            raise SuiteError(suite.source, f"{key}.name", str(err)) from err
        label = config_label(opt.name, opt.hparams)
        if label in labels:
            raise SuiteError(suite.source, key, f"repeats configuration {label!r} of "
                                                f"{labels[label]} (duplicate run ids)")
        labels[label] = key
        for task, total_steps in budgets.items():
            for lr in opt.lr_grid:
                try:
                    check_optimizer(opt.name, total_steps=total_steps, lr=lr, **dict(opt.hparams))
                except (ValueError, TypeError, KeyError) as err:
                    raise SuiteError(suite.source, key, f"{label} with lr={lr} on {task.name}: "
                                                        f"{err}") from err
    selection_metric(suite)  # declared by every task, one direction, validation split
    tune = expand_tune(suite)
    if len({s.run_id for s in tune}) != len(tune):
        raise SuiteError(suite.source, "optimizers", "two configurations give the same run id")
    log.info("suite %s: %d tasks × %d configurations checked", suite.name, len(suite.tasks),
             len(suite.optimizers))
