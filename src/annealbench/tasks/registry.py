"""The table of tasks, `task_spec` and `get_task`.

A task from outside the project is a `TaskSpec` too, found by entry point (group
`annealbench.tasks`) or by a reference `module:Name` in a suite (`annealbench.common.plugins`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from annealbench.common.metrics import Metric
from annealbench.common.plugins import TASK_GROUP, entry_point_names, lookup
from annealbench.tasks import (anes96, breast_cancer, cifar10, co2, deep_linear, diabetes, digits,
                               logreg, pydoc, quadratic, shakespeare, sparse_parity, sunspots,
                               teacher)
from annealbench.tasks.task_spec import Task, TaskSpec

_SPECS: Mapping[str, TaskSpec] = MappingProxyType({s.name: s for s in (
    quadratic.SPEC, diabetes.SPEC, digits.SPEC, teacher.SPEC, cifar10.SPEC, shakespeare.SPEC,
    breast_cancer.SPEC, anes96.SPEC, sunspots.SPEC, co2.SPEC, pydoc.SPEC, logreg.SPEC,
    deep_linear.SPEC, sparse_parity.SPEC)})
TASK_NAMES: tuple[str, ...] = tuple(_SPECS)
"""The built-in tasks; `task_names()` adds the installed plug-ins."""


def task_spec(name: str) -> TaskSpec:
    """The task `name` names: a built-in, a plug-in of entry-point group `annealbench.tasks`, or a
    reference `module:Name` to a `TaskSpec`; `ValueError` naming what is allowed otherwise."""
    return lookup(name, builtins=_SPECS, group=TASK_GROUP, kind=TaskSpec, what="task")


def task_names() -> tuple[str, ...]:
    """The built-ins' names, then the names installed plug-ins declare (none is imported)."""
    return tuple(dict.fromkeys([*TASK_NAMES, *entry_point_names(TASK_GROUP)]))


def get_task(name: str, preset: str = "quick", **overrides: Any) -> Task:
    """The task `name` at `preset` (one of `PRESETS`) with typed `overrides` of its config."""
    return Task.of(task_spec(name), preset, **overrides)


def declared_metrics(name: str) -> tuple[Metric, ...]:
    """What the task `name` declares of each metric it logs (`annealbench.common.metrics`)."""
    return task_spec(name).metrics
