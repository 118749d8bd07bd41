"""The results store's schema: the tables' columns, the run key, how a run id is written and read.

The runner writes the store and the analysis reads it; both take every column name, column kind and
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
import os
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping
from urllib.parse import unquote

Scalar = bool | int | float | str
Items = Mapping[str, Scalar] | tuple[tuple[str, Scalar], ...]  # overrides or hyperparameters

# --- the tables -------------------------------------------------------------------------------

# Column → kind (`string`, `float`, `integer`, `bool`). Every column is written by `annealbench.runner.store.results_store`.
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
# Overrides that set how often a run is measured, not what it trains; with `max_steps`, what a
# budget of a task changes (a suite may run a task at several budgets).
CADENCE_KEYS = frozenset({"val_every", "log_every"})
BUDGET_KEYS = CADENCE_KEYS | {"max_steps"}
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


# --- the gathered state -----------------------------------------------------------------------
#
# `DIR/gathered.json` records what the tables were built from: the size and modification time
# (ns) of every run folder's marker (`DONE` or `FAILED`) and of its `metrics.parquet`, and of the
# two tables themselves. The runner writes it last when it gathers; the analysis compares it with the
# folders on disk (stat calls only) and refuses tables that no longer describe them: an
# interrupted sweep's new runs, a deleted or restarted run folder, a rewritten or truncated
# `metrics.parquet`, tables written by anything but a complete gather. A folder without a
# marker (an attempt in progress or interrupted) is in neither the tables nor the record.

GATHERED_FILE = "gathered.json"
TABLE_FILES = ("runs.parquet", "results.parquet")
RUN_MARKERS = ("DONE", "FAILED")
RUN_METRICS_FILE = "metrics.parquet"
Stat = list  # [size in bytes, mtime in ns], or None for a file that is absent


def file_stat(path: str | os.PathLike) -> Stat | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


def folder_fingerprint(path: str | os.PathLike) -> list | None:
    """[marker, its stat, the stat of metrics.parquet] of one run folder; None without a marker."""
    for marker in RUN_MARKERS:
        stat = file_stat(os.path.join(path, marker))
        if stat is not None:
            return [marker, stat, file_stat(os.path.join(path, RUN_METRICS_FILE))]
    return None


def run_fingerprints(runs_dir: str | os.PathLike) -> dict[str, list]:
    """Folder name → fingerprint of every run folder in `runs_dir` that holds a marker."""
    if not os.path.isdir(runs_dir):
        return {}
    with os.scandir(runs_dir) as entries:
        folders = [e.path for e in entries if e.is_dir()]
    return {os.path.basename(p): fp for p in folders if (fp := folder_fingerprint(p)) is not None}


def table_stats(root: str | os.PathLike) -> dict[str, Stat | None]:
    return {name: file_stat(os.path.join(root, name)) for name in TABLE_FILES}


def _listed(names: list[str], what: str, limit: int = 3) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{len(names)} {what} ({', '.join(sorted(names)[:limit])}{more})"


def gathered_mismatch(root: str | os.PathLike, doc: Mapping[str, Any]) -> str | None:
    """What disagrees between the store in `root` and its `gathered.json` (`doc`); None if nothing.

    The run folders are listed by name, at most three of each kind."""
    if dict(doc.get("tables", {})) != table_stats(root):
        return ("runs.parquet or results.parquet differs from what the last gather wrote "
                "(written by something else, or that gather was interrupted)")
    recorded, current = dict(doc.get("runs", {})), run_fingerprints(os.path.join(root, "runs"))
    new = [k for k in current if k not in recorded]
    gone = [k for k in recorded if k not in current]
    changed = [k for k in current if k in recorded and current[k] != recorded[k]]
    parts = ([_listed(new, "finished run folder(s) not gathered")] if new else []) \
        + ([_listed(gone, "gathered run folder(s) deleted or restarted")] if gone else []) \
        + ([_listed(changed, "run folder(s) whose marker or metrics.parquet changed since")]
           if changed else [])
    return "; ".join(parts) or None


# --- code versions ----------------------------------------------------------------------------
#
# A run records the commit it was made by, whether the tree had uncommitted changes, and then
# the SHA-256 of those changes to the code a run executes (`git_diff_sha256`, `""` when only
# other files changed; `annealbench.runner.run.provenance`). Two runs were made by the same code exactly when
# their code versions are equal; a dirty run without a recorded hash matches nothing.

def code_version(commit: Any, dirty: Any, changes: Any = None) -> tuple[str, str]:
    """(commit, hash of the uncommitted changes to the code: `""` for none, `unrecorded` when a
    dirty tree recorded no hash)."""
    commit = str(commit or "unknown")
    if not dirty:
        return commit, ""
    return commit, "unrecorded" if changes is None else str(changes)


def describe_code_version(version: tuple[str, str]) -> str:
    """`0123456789ab` for a clean commit, `0123456789ab+changes 89abcdef` for a dirty tree."""
    commit, changes = version
    return commit[:12] + (f"+changes {changes[:8]}" if changes else "")
