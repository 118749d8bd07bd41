"""One run, start to finish: the one Lightning `Trainer` loop every run goes through."""

from __future__ import annotations

import logging
import math
import os
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annealbench.runner.errors import StoreError
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.store.results_store import Outcome, RunFolder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How runs execute (not what they are: that is the `RunSpec`)."""

    wandb: str = "offline"  # resolved mode: offline, online or disabled
    devices: int = 1  # Lightning devices per run
    strategy: str = "auto"  # Lightning strategy, e.g. ddp for several devices
    accelerator: str = "auto"
    checkpoints: bool = False  # a checkpoint after each validation; else restart from scratch
    keep_checkpoints: bool = False  # keep them once the run finished (else deleted after DONE)
    threads: int = 1  # torch intra-op threads of the process running the run
    interactive: bool = False  # Lightning's progress bar and model summary


@dataclass(frozen=True)
class FitResult:
    metrics: Any  # pandas.DataFrame of tidy rows
    final: dict[str, Any]
    diverged_step: float
    max_steps: int
    global_rank: int
    optimizer_impl: list[Any]  # each param group's `impl` (the step's code path), None if unset


def quiet_lightning() -> None:
    """Lightning's per-run notices would drown the sweep's own display."""
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", ".*treespec.*")
    logging.getLogger("wandb").setLevel(logging.ERROR)


def task_and_factory(spec: RunSpec, options: RunOptions) -> tuple[Any, Any]:
    """The run's task and its optimizer factory, in a process seeded with the run's derived seed
    (a run group passes its first member: the members differ only in their seed)."""
    import pytorch_lightning as pl
    import torch

    from annealbench.optimizers import build_optimizer
    from annealbench.tasks import get_task

    torch.set_num_threads(options.threads)
    task = get_task(spec.task, preset=spec.preset, **dict(spec.task_overrides))
    kwargs = spec.optimizer_kwargs()

    def factory(param_groups: list[dict], total_steps: int) -> torch.optim.Optimizer:
        return build_optimizer(spec.optimizer, param_groups, total_steps=total_steps, **kwargs)

    pl.seed_everything(spec.derived_seed, workers=True, verbose=False)
    return task, factory


def fit(spec: RunSpec, run_dir: Path, options: RunOptions) -> FitResult:
    """Build the task with the run's optimizer and derived seed, and train it."""
    import pytorch_lightning as pl

    from annealbench.runner.run.checkpoint import LAST, LastCheckpoint
    from annealbench.runner.run.metrics_logger import RowsInCheckpoint, TidyLogger
    from annealbench.runner.run.wandb_logger import (discard_stale_wandb, finish_wandb_run, make_wandb_logger,
                                  metric_directions)

    task, factory = task_and_factory(spec, options)
    module, datamodule = task.build(factory, seed=spec.derived_seed)
    tidy = TidyLogger()
    loggers: list[Any] = [tidy]
    callbacks: list[Any] = [RowsInCheckpoint(tidy)]
    ckpt_path = None
    if options.checkpoints:
        ckpt_dir = run_dir / "checkpoints"
        # after each validation, so a resumed run never misses an evaluation's rows
        callbacks.append(LastCheckpoint(ckpt_dir))
        last = ckpt_dir / LAST
        ckpt_path = str(last) if last.exists() else None
        if ckpt_path:
            log.info("%s: resuming from %s", spec.run_id, last)
    wandb_logger = None
    if options.wandb != "disabled":
        if ckpt_path is None:
            discard_stale_wandb(run_dir)
        wandb_logger = make_wandb_logger(spec.to_json(), str(run_dir), options.wandb)
        loggers.append(wandb_logger)
    trainer_kwargs = dict(task.trainer_kwargs())
    trainer = pl.Trainer(**trainer_kwargs, logger=loggers, callbacks=callbacks,
                         accelerator=options.accelerator, devices=options.devices,
                         strategy=options.strategy, default_root_dir=str(run_dir),
                         enable_checkpointing=False,  # LastCheckpoint, when asked for
                         enable_progress_bar=options.interactive,
                         enable_model_summary=options.interactive)
    status = "failed"
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        status = "done" if getattr(module, "diverged_at_step", None) is None else "diverged"
    finally:
        if wandb_logger is not None and trainer.global_rank == 0:
            finish_wandb_run(wandb_logger, tidy.frame(), metric_directions(task.spec.metrics),
                             status, getattr(module, "diverged_at_step", None))
    diverged = getattr(module, "diverged_at_step", None)
    return FitResult(metrics=tidy.frame(), final=tidy.final(),
                     diverged_step=math.nan if diverged is None else float(diverged),
                     max_steps=int(trainer_kwargs["max_steps"]), global_rank=trainer.global_rank,
                     optimizer_impl=optimizer_impl(trainer.optimizers))


def optimizer_impl(optimizers: list[Any]) -> list[Any]:
    """The code path each param group stepped with: the `impl` an optimizer records in its
    groups after its first step (None for a group that records none)."""
    return [group.get("impl") for opt in optimizers for group in opt.param_groups]


def launched_rank() -> int:
    """The rank of this process when Lightning's DDP launcher started it, else 0."""
    return int(os.environ.get("LOCAL_RANK", "0")) + int(os.environ.get("NODE_RANK", "0"))


def run_provenance(spec: RunSpec, options: RunOptions, environment: dict[str, Any], *,
                   devices: int) -> dict[str, Any]:
    """What a run records about where and how it ran, before it starts."""
    return {**environment, "seed": spec.seed, "derived_seed": spec.derived_seed,
            "devices": devices, "strategy": options.strategy, "torch_threads": options.threads,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def execute_run(spec: RunSpec, run_dir: Path, options: RunOptions,
                environment: dict[str, Any]) -> Outcome:
    """Run `spec` into `run_dir`: DONE on success or divergence, FAILED with traceback otherwise.

    Any exception of the task, the optimizer or the store becomes a `failed` outcome; only the
    death of the process itself escapes, and the caller records that. A finished run's
    checkpoints are deleted after its DONE unless `options.keep_checkpoints`; a failed run
    keeps them, to resume from.
    """
    folder = RunFolder(run_dir)
    if launched_rank() != 0:  # an extra DDP rank: trains, leaves the store to rank 0
        fit(spec, folder.path, options)
        return Outcome("done")
    folder.start(spec, keep_checkpoints=options.checkpoints)
    started = time.perf_counter()
    provenance = run_provenance(spec, options, environment, devices=options.devices)
    try:
        result = fit(spec, folder.path, options)
        if result.global_rank != 0:
            return Outcome("done")
        outcome = record_result(folder, result, provenance, time.perf_counter() - started)
    except Exception as err:  # noqa: BLE001 - every failure of a run is recorded, then reported
        log.warning("%s failed: %s: %s", spec.run_id, type(err).__name__, err)
        return record_error(spec, folder, err, provenance, time.perf_counter() - started)
    if not options.keep_checkpoints:
        from annealbench.runner.run.checkpoint import remove_checkpoints

        remove_checkpoints(folder.path)
    return outcome


def record_result(folder: RunFolder, result: FitResult, provenance: dict[str, Any],
                  wall_time_s: float) -> Outcome:
    """Write a trained run's rows, provenance and DONE (`done`, or `diverged` at its step)."""
    status = "done" if math.isnan(result.diverged_step) else "diverged"
    outcome = Outcome(status, max_steps=result.max_steps, diverged_step=result.diverged_step,
                      wall_time_s=wall_time_s)
    folder.finish(result.metrics, {**provenance, "max_steps": result.max_steps,
                                   "optimizer_impl": result.optimizer_impl,
                                   "final_metrics": result.final}, outcome)
    return outcome


def record_error(spec: RunSpec, folder: RunFolder, err: Exception, provenance: dict[str, Any],
                 wall_time_s: float) -> Outcome:
    """Write FAILED (the error with the traceback being handled) for a run that raised."""
    error = f"{type(err).__name__}: {err}\n{traceback.format_exc()}"
    try:
        folder.done_file.unlink(missing_ok=True)
        folder.fail(error, provenance, wall_time_s)
    except (OSError, StoreError) as store_err:
        log.error("%s: could not record the failure: %s", spec.run_id, store_err)
    return Outcome("failed", wall_time_s=wall_time_s, error=error, reason="error")
