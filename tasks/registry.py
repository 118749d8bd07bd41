"""The table of tasks and `get_task`."""

from __future__ import annotations

from typing import Any

from common.metrics import Metric
from tasks import cifar10, diabetes, digits, quadratic, shakespeare, teacher
from tasks.spec import Task, TaskSpec

_SPECS: dict[str, TaskSpec] = {s.name: s for s in (
    quadratic.SPEC, diabetes.SPEC, digits.SPEC, teacher.SPEC, cifar10.SPEC, shakespeare.SPEC)}
TASK_NAMES: tuple[str, ...] = tuple(_SPECS)


def get_task(name: str, preset: str = "quick", **overrides: Any) -> Task:
    """The task `name` at `preset` (one of `PRESETS`) with typed `overrides` of its config."""
    if name not in _SPECS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASK_NAMES)}")
    return Task.of(_SPECS[name], preset, **overrides)


def declared_metrics(name: str) -> tuple[Metric, ...]:
    """What the task `name` declares of each metric it logs (`common.metrics`)."""
    if name not in _SPECS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASK_NAMES)}")
    return _SPECS[name].metrics
