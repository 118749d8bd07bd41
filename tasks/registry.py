"""The table of tasks and `get_task`."""

from __future__ import annotations

from typing import Any

from tasks import cifar10, diabetes, digits, quadratic, shakespeare
from tasks.config import PRESETS, apply_overrides
from tasks.spec import Task, TaskSpec

_SPECS: dict[str, TaskSpec] = {s.name: s for s in (
    quadratic.SPEC, diabetes.SPEC, digits.SPEC, cifar10.SPEC, shakespeare.SPEC)}
TASK_NAMES: tuple[str, ...] = tuple(_SPECS)


def get_task(name: str, preset: str = "quick", **overrides: Any) -> Task:
    """The task `name` at `preset` (one of `PRESETS`) with typed `overrides` of its config."""
    if name not in _SPECS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASK_NAMES)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    spec = _SPECS[name]
    config = apply_overrides(spec.presets[preset], name, overrides)
    return Task(spec=spec, preset=preset, config=config)
