"""Run specs: what one run is, its readable id, its folder name and its derived seed.

The identity rules live in `annealbench.common.store_schema` (shared with the analysis): a run id reads
`task[k=v]/optimizer[k=v,...,lr=3e-3]/seed=2` from the canonical configuration (`1000` ≡
`1000.0`, key order irrelevant), and a run folder is a safe slug of the id plus a hash of it.

The seed a run uses is a hash of (task, preset, identity overrides, seed number), canonicalised
the same way — never of the optimizer, so one seed number gives every optimizer the same initial
weights and the same batches; never of the execution order, so adding runs to a suite changes no
other run; never of where the data lives (`data_dir`), which cannot change the computation.

A run's *resolved configuration* (`resolved_config`) is everything its computation depends on,
with the values the code gives it now: the task's configuration at its preset with the overrides
applied, the optimizer's hyperparameters with its defaults filled in and the lr, and the seeds.
A run records it with its SHA-256 (`config_sha256`), so a sweep can tell a finished run made
with other values under the same run id (a preset edited, a default changed; `annealbench.runner.suite.stale`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from annealbench.runner.suite.suite import MAX_SEED, OptimizerEntry, Scalar, Suite, TaskEntry
from annealbench.common.store_schema import (NON_IDENTITY_OVERRIDES, RunKey, canonical_value, config_label,
                                 format_lr, format_value, identity_overrides)

__all__ = ["RunSpec", "config_label", "config_sha256", "derive_seed", "format_lr", "format_value",
           "expand_eval", "expand_tune", "group_key", "check_unique", "resolved_config"]


def derive_seed(task: str, preset: str, overrides: Any, seed: int) -> int:
    """The seed actually used: the first 31 bits of SHA-256 of what the run's data and init are.

    `overrides` are stripped of those that cannot change the computation and enter as the text
    the run id shows them with (`1000` ≡ `1000.0`), so two runs share a seed exactly when they
    share a run id up to the optimizer; without overrides the seed is that of earlier versions.
    """
    pairs = [[k, format_value(v)] for k, v in identity_overrides(overrides)]
    key = json.dumps([task, preset, pairs, seed], sort_keys=True)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class RunSpec:
    """One run, fully resolved: everything needed to reproduce it."""

    suite: str
    stage: str  # "tune" or "eval"
    task: str
    preset: str
    task_overrides: tuple[tuple[str, Scalar], ...]
    optimizer: str
    hparams: tuple[tuple[str, Scalar], ...]  # without lr, sorted by key
    lr: float
    seed: int  # the seed number in the suite, 0 … MAX_SEED (the store's int64 column)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) \
                or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"a seed must be an integer from 0 to {MAX_SEED} (2^63 - 1), "
                             f"got {self.seed!r}")

    @property
    def run_key(self) -> RunKey:
        return RunKey.of(self.task, self.task_overrides, self.optimizer, self.hparams, self.lr,
                         self.seed)

    @property
    def task_label(self) -> str:
        return self.run_key.task_label

    @property
    def config(self) -> str:
        return self.run_key.config

    @property
    def run_id(self) -> str:
        return self.run_key.run_id

    @property
    def key(self) -> str:
        """The run's folder name under `DIR/runs/`: a safe slug of the run id plus its hash."""
        return self.run_key.folder

    @property
    def derived_seed(self) -> int:
        return derive_seed(self.task, self.preset, self.task_overrides, self.seed)

    def optimizer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `build_optimizer` / `check_optimizer` (besides total_steps)."""
        return {**dict(self.hparams), "lr": self.lr}

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "stage": self.stage, "task": self.task,
                "preset": self.preset, "task_overrides": dict(self.task_overrides),
                "optimizer": self.optimizer, "hparams": dict(self.hparams), "lr": self.lr,
                "seed": self.seed, "run_id": self.run_id, "config": self.config,
                "task_label": self.task_label, "derived_seed": self.derived_seed}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "RunSpec":
        return cls(suite=doc["suite"], stage=doc["stage"], task=doc["task"],
                   preset=doc["preset"], task_overrides=tuple(sorted(doc["task_overrides"].items())),
                   optimizer=doc["optimizer"], hparams=tuple(sorted(doc["hparams"].items())),
                   lr=float(doc["lr"]), seed=int(doc["seed"]))


def _canonical(value: Any) -> Any:
    """A JSON value compared by meaning: sequences become lists, `1000.0` becomes `1000`."""
    if isinstance(value, (tuple, list)):
        return [_canonical(v) for v in value]
    return canonical_value(value)


@lru_cache(maxsize=None)
def resolved_task(task: str, preset: str,
                  overrides: tuple[tuple[str, Scalar], ...]) -> tuple[tuple[str, Any], ...]:
    """The task's configuration at `preset` with `overrides`, without where its data lives or
    whether to fetch it (`NON_IDENTITY_OVERRIDES`). Cached: one configuration per (task, preset,
    overrides), built from the frozen config alone (no network, no data)."""
    from annealbench.tasks import get_task

    config = dataclasses.asdict(get_task(task, preset=preset, **dict(overrides)).config)
    return tuple(sorted((k, _canonical(v)) for k, v in config.items()
                        if k not in NON_IDENTITY_OVERRIDES))


@lru_cache(maxsize=None)
def resolved_hparams(optimizer: str, hparams: tuple[tuple[str, Scalar], ...], lr: float,
                     total_steps: int) -> tuple[tuple[str, Any], ...]:
    """The optimizer's hyperparameters with its registry defaults filled in, lr among them."""
    from annealbench.optimizers.registry import resolve_hparams

    resolved = resolve_hparams(optimizer, total_steps=total_steps, **dict(hparams), lr=lr)
    return tuple(sorted((k, _canonical(v)) for k, v in resolved.items()))


def resolved_config(spec: RunSpec) -> dict[str, Any]:
    """What determines the computation of `spec`, flat (`task.max_steps`, `optimizer.eps`, …), so
    two records can name the keys they differ in; raises what `get_task` and the optimizer
    registry raise for a configuration they refuse."""
    task = dict(resolved_task(spec.task, spec.preset, spec.task_overrides))
    hparams = resolved_hparams(spec.optimizer, spec.hparams, spec.lr, task["max_steps"])
    return {"task": spec.task, "preset": spec.preset,
            **{f"task.{key}": value for key, value in task.items()},
            "optimizer": spec.optimizer, **{f"optimizer.{key}": value for key, value in hparams},
            "seed": spec.seed, "derived_seed": spec.derived_seed}


def config_sha256(resolved: dict[str, Any]) -> str:
    """SHA-256 of a resolved configuration's canonical JSON (key order irrelevant)."""
    text = json.dumps({k: _canonical(v) for k, v in resolved.items()}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _spec(suite: Suite, stage: str, task: TaskEntry, opt: OptimizerEntry, lr: float,
          seed: int) -> RunSpec:
    return RunSpec(suite=suite.name, stage=stage, task=task.name, preset=task.preset,
                   task_overrides=task.overrides, optimizer=opt.name, hparams=opt.hparams,
                   lr=lr, seed=seed)


def group_key(task: TaskEntry, opt: OptimizerEntry) -> tuple[str, str]:
    """The (task, configuration) pair stage `tune` selects one lr for."""
    probe = RunSpec("", "tune", task.name, task.preset, task.overrides, opt.name, opt.hparams,
                    1.0, 0)
    return probe.task_label, probe.config


def expand_tune(suite: Suite) -> list[RunSpec]:
    """Stage `tune`: every lr of every grid with more than one value, on every tuning seed."""
    return [_spec(suite, "tune", task, opt, lr, seed)
            for task in suite.tasks for opt in suite.optimizers if len(opt.lr_grid) > 1
            for lr in opt.lr_grid for seed in suite.tune_seeds]


def expand_eval(suite: Suite, chosen: dict[tuple[str, str], float]) -> list[RunSpec]:
    """Stage `eval`: the chosen lr of each (task, configuration) on every evaluation seed."""
    specs = []
    for task in suite.tasks:
        for opt in suite.optimizers:
            lr = opt.lr_grid[0] if len(opt.lr_grid) == 1 else chosen[group_key(task, opt)]
            specs.extend(_spec(suite, "eval", task, opt, lr, seed) for seed in suite.eval_seeds_of(task))
    return specs


def check_unique(specs: list[RunSpec], source: str) -> None:
    """Two configurations of a suite that resolve to the same run id are a suite error."""
    from annealbench.runner.errors import SuiteError

    seen: dict[str, RunSpec] = {}
    for spec in specs:
        if spec.run_id in seen:
            raise SuiteError(source, "optimizers", f"two entries give the same run id "
                                                   f"{spec.run_id!r}; make the configurations differ")
        seen[spec.run_id] = spec
