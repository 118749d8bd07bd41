"""Run specs: what one run is, its readable id, its folder name and its derived seed.

A run id reads `task/optimizer[k=v,...,lr=3e-3]/seed=2`: hyperparameter keys in alphabetical
order, `lr` last. The seed a run uses is a hash of (task, preset, task overrides, seed number) —
never of the optimizer, so one seed number gives every optimizer the same initial weights and the
same batches, and never of the execution order, so adding runs to a suite changes no other run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from bench.suite import OptimizerEntry, Scalar, Suite, TaskEntry

STAGES = ("tune", "eval")


def format_value(value: Scalar) -> str:
    """Short deterministic text for an id: floats without noise, e.g. 0.003 → 0.003, 1e-05."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if value != int(value) or abs(value) >= 1e6 else f"{int(value)}"
    return str(value)


def format_lr(lr: float) -> str:
    """A learning rate in mantissa-exponent form: 0.003 → 3e-3, 1.0 → 1e0."""
    mantissa, exponent = f"{lr:.6e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def config_label(optimizer: str, hparams: tuple[tuple[str, Scalar], ...]) -> str:
    """`muphi[window=linear]`: the configuration without the learning rate."""
    inner = ",".join(f"{k}={format_value(v)}" for k, v in sorted(hparams))
    return f"{optimizer}[{inner}]" if inner else optimizer


def derive_seed(task: str, preset: str, overrides: tuple[tuple[str, Scalar], ...],
                seed: int) -> int:
    """The seed actually used: the first 31 bits of SHA-256 of what the run's data and init are."""
    key = json.dumps([task, preset, sorted(overrides), seed], sort_keys=True)
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
    seed: int  # the seed number in the suite

    @property
    def task_label(self) -> str:
        if not self.task_overrides:
            return self.task
        return f"{self.task}[{','.join(f'{k}={format_value(v)}' for k, v in self.task_overrides)}]"

    @property
    def config(self) -> str:
        return config_label(self.optimizer, self.hparams)

    @property
    def run_id(self) -> str:
        inner = [f"{k}={format_value(v)}" for k, v in sorted(self.hparams)] + [f"lr={format_lr(self.lr)}"]
        return f"{self.task_label}/{self.optimizer}[{','.join(inner)}]/seed={self.seed}"

    @property
    def key(self) -> str:
        """The run's folder name under `DIR/runs/`: the run id with `/` replaced by `~`."""
        return self.run_id.replace("/", "~")

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
                "derived_seed": self.derived_seed}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "RunSpec":
        return cls(suite=doc["suite"], stage=doc["stage"], task=doc["task"],
                   preset=doc["preset"], task_overrides=tuple(sorted(doc["task_overrides"].items())),
                   optimizer=doc["optimizer"], hparams=tuple(sorted(doc["hparams"].items())),
                   lr=float(doc["lr"]), seed=int(doc["seed"]))


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
            specs.extend(_spec(suite, "eval", task, opt, lr, seed) for seed in suite.eval_seeds)
    return specs


def check_unique(specs: list[RunSpec], source: str) -> None:
    """Two configurations of a suite that resolve to the same run id are a suite error."""
    from bench.errors import SuiteError

    seen: dict[str, RunSpec] = {}
    for spec in specs:
        if spec.run_id in seen:
            raise SuiteError(source, "optimizers", f"two entries give the same run id "
                                                   f"{spec.run_id!r}; make the configurations differ")
        seen[spec.run_id] = spec
