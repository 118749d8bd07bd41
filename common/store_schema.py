"""The results store's schema: the tables' columns, the run key, how a run id is written and read.

`bench` writes the store and `analysis` reads it; both take every column name, column kind and
run-id rule from here, so the two sides cannot drift.

A run is identified by its **run key** (`RunKey`): the task, the task overrides that can change
the computation, the optimizer, its hyperparameters, the learning rate and the seed number. Its
run id is the readable text

    task[k=v,...]/optimizer[k=v,...,lr=3e-3]/seed=2

with keys in alphabetical order and `lr` last. Values are written canonically (`1000.0` and
`1000` are the same number and read `1000`; floats otherwise in their shortest exact form) and
the characters that structure the id (`% / [ ] , =`) and unprintable ones are percent-encoded, so
any override value is allowed and `parse_run_id` reads back exactly what `format_run_id` wrote.
A run's folder name is a safe, readable slug of the id plus a hash of it, at most 255 bytes.

Overrides in `NON_IDENTITY_OVERRIDES` (where the data lives, whether to fetch it) cannot change
the computation: they are recorded with the run but are part of neither its key nor its seed.

Dependency-free on purpose (the standard library only).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping
from urllib.parse import unquote

Scalar = bool | int | float | str
Items = Mapping[str, Scalar] | tuple[tuple[str, Scalar], ...]  # overrides or hyperparameters

# --- the tables -------------------------------------------------------------------------------

# Column → kind (`string`, `float`, `integer`, `bool`). Every column is written by `bench.store`.
RUN_COLUMNS: dict[str, str] = {
    "run_id": "string", "suite": "string", "stage": "string", "task": "string",
    "preset": "string", "optimizer": "string", "config": "string", "lr": "float",
    "seed": "integer", "derived_seed": "integer", "hparams": "string", "status": "string",
    "diverged_step": "float", "max_steps": "integer", "wall_time_s": "float",
    "git_commit": "string", "git_dirty": "bool", "provenance": "string", "error": "string",
    "task_label": "string", "task_overrides": "string", "failure_reason": "string",
}
# Columns a store written before they existed may lack; a reader fills them with these values
# (`task_label` None: derived from `task` and `task_overrides`).
OPTIONAL_RUN_COLUMNS: dict[str, Any] = {"task_label": None, "task_overrides": "{}",
                                        "failure_reason": ""}
RESULT_COLUMNS: dict[str, str] = {
    "run_id": "string", "step": "integer", "metric": "string", "value": "float",
}
# The pandas dtype of each kind, for the writer.
PANDAS_DTYPES: dict[str, str] = {"string": "object", "float": "float64", "integer": "int64",
                                 "bool": "bool"}

STATUSES = ("done", "diverged", "failed")  # `done` and `diverged` are outcomes with metrics
STAGES = ("tune", "eval")
# Why a run failed (`failure_reason`; empty for an outcome).
FAILURE_REASONS = ("error", "timeout", "worker_died")

# --- identity ---------------------------------------------------------------------------------

NON_IDENTITY_OVERRIDES = frozenset({"data_dir", "download"})
_RESERVED = set("%/[],=")
MAX_FOLDER_BYTES = 255
_SLUG_BYTES = 180
_HASH_HEX = 16
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,~+-]+")


def canonical_value(value: Scalar) -> Scalar:
    """The one representative of a value: an integral float becomes the int it equals."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() \
            and abs(value) < 2**53:
        return int(value)
    return value


def canonical_items(items: Items) -> tuple[tuple[str, Scalar], ...]:
    """Sorted (key, canonical value) pairs: key order and 1000 vs 1000.0 no longer matter."""
    pairs = items.items() if isinstance(items, Mapping) else items
    return tuple(sorted((str(k), canonical_value(v)) for k, v in pairs))


def identity_overrides(overrides: Items) -> tuple[tuple[str, Scalar], ...]:
    """The canonical overrides that can change the computation (not `NON_IDENTITY_OVERRIDES`)."""
    return tuple((k, v) for k, v in canonical_items(overrides) if k not in NON_IDENTITY_OVERRIDES)


def _escape(text: str) -> str:
    """Percent-encode the id's structural characters and anything unprintable (UTF-8 bytes)."""
    return "".join(c if c.isprintable() and c not in _RESERVED
                   else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def format_value(value: Scalar) -> str:
    """A value's text in an id: `true`/`false`, ints, floats in shortest exact form, strings."""
    value = canonical_value(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return _escape(repr(value) if isinstance(value, float) else str(value))


def format_lr(lr: float) -> str:
    """A learning rate in exact, shortest mantissa-exponent form: 0.003 → 3e-3, 1.0 → 1e0."""
    if not math.isfinite(lr):
        raise ValueError(f"a learning rate must be finite, got {lr!r}")
    mantissa, exponent = f"{Decimal(repr(float(lr))).normalize():E}".split("E")
    return f"{mantissa.lower()}e{int(exponent)}"


def _pairs(items: tuple[tuple[str, Scalar], ...]) -> list[str]:
    return [f"{_escape(k)}={format_value(v)}" for k, v in items]


def _bracket(name: str, items: list[str]) -> str:
    return f"{_escape(name)}[{','.join(items)}]" if items else _escape(name)


def task_label(task: str, overrides: Items) -> str:
    """`digits[hidden=64]`: the task with its identity overrides (the analysis unit)."""
    return _bracket(task, _pairs(identity_overrides(overrides)))


def config_label(optimizer: str, hparams: Items) -> str:
    """`muphi[window=linear]`: the optimizer configuration without the learning rate."""
    return _bracket(optimizer, _pairs(canonical_items(hparams)))


@dataclass(frozen=True)
class RunKey:
    """What identifies a run; `run_id` writes it, `parse_run_id` reads it back."""

    task: str
    overrides: tuple[tuple[str, Scalar], ...]  # identity overrides, canonical, sorted
    optimizer: str
    hparams: tuple[tuple[str, Scalar], ...]  # without lr, canonical, sorted
    lr: float
    seed: int

    @classmethod
    def of(cls, task: str, overrides: Any, optimizer: str, hparams: Any, lr: float,
           seed: int) -> "RunKey":
        """The key of a run given its overrides and hyperparameters in any order and spelling."""
        return cls(task, identity_overrides(overrides), optimizer, canonical_items(hparams),
                   float(lr), int(seed))

    @property
    def task_label(self) -> str:
        return task_label(self.task, self.overrides)

    @property
    def config(self) -> str:
        return config_label(self.optimizer, self.hparams)

    @property
    def run_id(self) -> str:
        config = _bracket(self.optimizer, _pairs(self.hparams) + [f"lr={format_lr(self.lr)}"])
        return f"{self.task_label}/{config}/seed={self.seed}"

    @property
    def folder(self) -> str:
        return folder_name(self.run_id)


def folder_name(run_id: str) -> str:
    """A run folder's name: a readable slug of `run_id` and 16 hex digits of its SHA-256.

    Only `[A-Za-z0-9._=,~+-]` (`/` becomes `~`), at most 255 bytes, distinct for distinct ids.
    """
    slug = _UNSAFE.sub("_", run_id.replace("/", "~"))[:_SLUG_BYTES].strip("._") or "run"
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:_HASH_HEX]
    return f"{slug}-{digest}"


@dataclass(frozen=True)
class ParsedRunId:
    """A run id read back: names and values as the text the id holds (unescaped)."""

    task: str
    overrides: tuple[tuple[str, str], ...]
    optimizer: str
    hparams: tuple[tuple[str, str], ...]  # without lr
    lr: str
    seed: int


def parse_label(text: str, what: str = "label") -> tuple[str, tuple[tuple[str, str], ...]]:
    """`name[k=v,...]` (a task label or a configuration) → (name, ((k, v), ...)) unescaped."""
    name, sep, rest = text.partition("[")
    if not sep:
        return unquote(name), ()
    if not rest.endswith("]") or not name:
        raise ValueError(f"{what} {text!r} is not name or name[k=v,...]")
    pairs = []
    for item in rest[:-1].split(","):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"{what} {text!r}: item {item!r} is not k=v")
        pairs.append((unquote(key), unquote(value)))
    return unquote(name), tuple(pairs)


def parse_run_id(run_id: str) -> ParsedRunId:
    """Read `task[k=v,...]/optimizer[k=v,...,lr=X]/seed=S`; ValueError saying what is wrong."""
    parts = run_id.split("/")
    if len(parts) != 3:
        raise ValueError(f"run id {run_id!r} is not task/optimizer[k=v,...]/seed=S")
    task, overrides = parse_label(parts[0], "task label")
    optimizer, items = parse_label(parts[1], "configuration")
    lr = dict(items).get("lr", "")
    seed_key, eq, seed = parts[2].partition("=")
    if seed_key != "seed" or not eq or not seed.lstrip("-").isdigit():
        raise ValueError(f"run id {run_id!r} does not end in /seed=INTEGER")
    return ParsedRunId(task, overrides, optimizer, tuple(p for p in items if p[0] != "lr"), lr,
                       int(seed))

