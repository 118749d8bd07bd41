"""`annealbench train`: one run outside any suite, and `run-one`, a worker's multi-device run."""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annealbench.runner.store.atomic import read_json, read_parquet
from annealbench.runner.launch.devices import check_gpus
from annealbench.runner.launch.processes import LAUNCHER_PID, die_with_parent
from annealbench.runner.run.execute import RunOptions, execute_run, launched_rank, quiet_lightning
from annealbench.runner.run.provenance import environment
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.store.results_store import ResultsStore, RunFolder
from annealbench.runner.suite.suite import Scalar
from annealbench.runner.run.wandb_logger import resolve_wandb_mode

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
DEFAULT_LR = 1e-3


def parse_value(text: str) -> Scalar:
    """`--set` values: integers, floats (3e-3), booleans (true/false), else strings."""
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return {"true": True, "false": False}.get(text.lower(), text)


def split_assignments(assignments: list[tuple[str, str]]) -> tuple[dict, dict, float]:
    """`task.KEY=V` → task override; `lr=V` → lr; any other `KEY=V` → optimizer hyperparameter."""
    overrides, hparams, lr = {}, {}, DEFAULT_LR
    for key, text in assignments:
        value = parse_value(text)
        if key.startswith("task."):
            overrides[key[len("task."):]] = value
        elif key == "lr":
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"--set lr must be a number > 0, got {text!r}")
            lr = float(value)
        else:
            hparams[key] = value
    return overrides, hparams, lr


def final_metrics(folder: RunFolder) -> dict[str, Any]:
    if not folder.metrics_file.exists():
        return {}
    rows = read_parquet(folder.metrics_file).sort_values("step", kind="stable")
    last = rows.groupby("metric", sort=True)["value"].last()
    return {k: (v if math.isfinite(v) else str(v)) for k, v in last.items()}


@dataclass(frozen=True)
class TrainJob:
    """One checked `annealbench train` run: what it is, the store it goes to, how it runs."""

    spec: RunSpec
    store: ResultsStore
    options: RunOptions

    @property
    def run_dir(self) -> Path:
        return self.store.folder(self.spec).path


def prepare_train(task: str, optimizer: str, *, preset: str, seed: int,
                  assignments: list[tuple[str, str]], out: Path, wandb: str, devices: int,
                  strategy: str, accelerator: str = "auto",
                  threads: int | None = None) -> TrainJob:
    """Check the run and this machine; nothing is written (`threads` None: `default_threads`)."""
    from annealbench.optimizers import check_optimizer, optimizer_info
    from annealbench.tasks import get_task, task_spec

    overrides, hparams, lr = split_assignments(assignments)
    task_spec(task)  # a built-in, a plug-in or module:Name; else a ValueError naming what is allowed
    optimizer_info(optimizer)
    budget = int(get_task(task, preset=preset, **overrides).trainer_kwargs()["max_steps"])
    check_optimizer(optimizer, total_steps=budget, lr=lr, **hparams)
    spec = RunSpec(suite="train", stage="eval", task=task, preset=preset,
                   task_overrides=tuple(sorted(overrides.items())), optimizer=optimizer,
                   hparams=tuple(sorted(hparams.items())), lr=lr, seed=seed)
    if accelerator == "gpu":
        check_gpus(devices)
    rank = launched_rank()
    terminal = rank == 0 and sys.stderr.isatty()  # a bar on a terminal, a log line elsewhere
    options = RunOptions(wandb=resolve_wandb_mode(wandb) if rank == 0 else "disabled",
                         devices=devices, strategy=strategy, accelerator=accelerator,
                         threads=threads or default_threads(devices), interactive=terminal,
                         step_progress=rank == 0 and not terminal)
    return TrainJob(spec, ResultsStore(out), options)


def train(job: TrainJob) -> dict[str, Any] | None:
    """Run a prepared job and summarise it; None on the extra ranks of a multi-device run."""
    rank = launched_rank()
    if rank == 0:
        job.store.ensure_writable()
    quiet_lightning()
    outcome = execute_run(job.spec, job.run_dir, job.options, environment())
    if rank != 0:
        return None
    return {"run_id": job.spec.run_id, "run_dir": str(job.run_dir), "status": outcome.status,
            "diverged_step": None if math.isnan(outcome.diverged_step) else outcome.diverged_step,
            "wall_time_s": outcome.wall_time_s, "metrics": final_metrics(RunFolder(job.run_dir)),
            **({"error": outcome.error.splitlines()[0]} if outcome.error else {})}


def train_one(task: str, optimizer: str, **kwargs: Any) -> dict[str, Any] | None:
    """`prepare_train` then `train`: check, run and summarise one run."""
    return train(prepare_train(task, optimizer, **kwargs))


def run_one_dir(run_dir: Path, *, wandb: str, devices: int, strategy: str,
                accelerator: str = "auto") -> int:
    """Run the spec already written in `run_dir/spec.json` (a pool worker's multi-device run).

    Every process of the run dies with its parent: the first with the worker that started it
    (`LAUNCHER_PID`, so even a worker gone before this line is noticed), each other rank with
    the first (Lightning starts them from it), so no rank outlives a killed worker or driver.
    """
    launcher = os.environ.pop(LAUNCHER_PID, "")
    die_with_parent(int(launcher) if launcher.isdigit() else None)
    spec = RunSpec.from_json(read_json(Path(run_dir) / "spec.json"))
    options = RunOptions(wandb=wandb, devices=devices, strategy=strategy,
                         accelerator=accelerator, threads=default_threads(devices))
    quiet_lightning()
    outcome = execute_run(spec, Path(run_dir), options, environment())
    return 0 if outcome.status != "failed" else 1


def default_threads(devices: int) -> int:
    """Torch threads of a run: `OMP_NUM_THREADS` when it is set (its first level, as OpenMP reads
    it; a pool worker sets it to its share), else this process's cores shared by `devices`."""
    configured = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"OMP_NUM_THREADS must be an integer ≥ 1, got "
                             f"{os.environ['OMP_NUM_THREADS']!r}; or leave it unset")
        return int(configured)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores // devices)
