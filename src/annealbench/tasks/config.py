"""Task configurations: frozen dataclasses, presets and typed overrides.

Every task's configuration derives from `TrainConfig` (the cadence every task shares) and is
frozen; a preset is one instance of it, and `apply_overrides` checks each override against the
dataclass's declared field types before `dataclasses.replace` builds the new configuration.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

PRESETS: tuple[str, ...] = ("smoke", "quick", "paper")

# Lightning's precision settings a task may ask for: full float32 (the default), float64, and
# bfloat16 / float16 mixed or true precision (`bf16-mixed` also runs on a CPU).
Precision = Literal["32-true", "64-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true"]


@dataclass(frozen=True)
class TrainConfig:
    """The cadence shared by every task, in optimizer steps."""

    max_steps: int = 1000     # τ: number of optimizer steps
    val_every: int = 250      # steps between evaluations; divides max_steps
    log_every: int = 50       # steps between training-metric logs; divides val_every
    batch_size: int = 32      # examples (or sequences) per step
    precision: Precision = "32-true"  # handed to `pl.Trainer(precision=...)`
    compile_model: bool = False       # `torch.compile` the network (in place) before training

    def __post_init__(self) -> None:
        for name in ("max_steps", "val_every", "log_every", "batch_size"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if self.max_steps % self.val_every:
            raise ValueError(f"val_every={self.val_every} must divide max_steps={self.max_steps}")
        if self.val_every % self.log_every:
            raise ValueError(f"log_every={self.log_every} must divide val_every={self.val_every}")


@dataclass(frozen=True)
class HeldOutConfig(TrainConfig):
    """A task whose examples are cut into disjoint train / validation / test parts."""

    val_fraction: float = 0.2        # share of the examples held out for validation (lr tuning)
    test_fraction: float = 0.2       # share held out for the test metrics (verdicts)

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "val_fraction", "test_fraction")
        if not self.val_fraction + self.test_fraction < 1.0:
            raise ValueError(f"val_fraction + test_fraction must be < 1, got "
                             f"{self.val_fraction} + {self.test_fraction}")


@dataclass(frozen=True)
class VisionConfig(TrainConfig):
    """Image tasks: the convolutions may run in the channels-last memory format (GPUs)."""

    channels_last: bool = False      # weights (and so activations) in `torch.channels_last`


def positive(config: Any, *names: str) -> None:
    """Raise `ValueError` unless each named field of `config` is > 0."""
    for name in names:
        value = getattr(config, name)
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


def in_unit_interval(config: Any, *names: str) -> None:
    """Raise `ValueError` unless each named field of `config` lies in [0, 1)."""
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {value!r}")


def _accepts(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, tp)


def _describe_type(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", None) or str(tp)


def apply_overrides(config: Any, task: str, overrides: dict[str, Any]) -> Any:
    """`config` with `overrides` applied; unknown keys and wrong types raise `ValueError`."""
    hints = typing.get_type_hints(type(config))
    fields = [f.name for f in dataclasses.fields(config)]
    for key, value in overrides.items():
        if key not in hints or key not in fields:
            raise ValueError(f"task {task!r} has no setting {key!r}; settings: {', '.join(fields)}")
        if not _accepts(hints[key], value):
            raise ValueError(f"task {task!r}: {key} must be {_describe_type(hints[key])}, "
                             f"got {value!r} ({type(value).__name__})")
        if hints[key] is float and isinstance(value, int):
            overrides = {**overrides, key: float(value)}
    return dataclasses.replace(config, **overrides)
