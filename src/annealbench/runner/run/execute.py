"""One job, start to finish: the one Lightning `Trainer` loop every run goes through.

A job (`annealbench.runner.run.job.Job`) of one run trains that run's network; a job of several
runs that differ only in their seed trains them as one stacked model (a run group). Both take
every line here: the task and optimizer factory, the loggers, checkpoints, the Trainer, the
records; the stacking alone differs (`annealbench.runner.run.groups`).
"""

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
from annealbench.runner.run.groups import (GROUP_CHECKPOINTS, Fanout, group_resume_from,
                                          group_rows_callback)
from annealbench.runner.run.job import Job
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
    step_progress: bool = False  # log the step, rate and ETA now and then (`run.step_progress`)


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


def fit(specs: list[RunSpec], run_dirs: list[Path], options: RunOptions) -> list[FitResult]:
    """Build the task with the runs' optimizer and derived seeds, and train it: one `Trainer`
    for one seed or for a run group of several (their networks stacked, `annealbench.runner.run.groups`);
    one result per run, in order."""
    import pytorch_lightning as pl

    from annealbench.runner.run.checkpoint import LAST, LastCheckpoint
    from annealbench.runner.run.metrics_logger import RowsInCheckpoint, TidyLogger
    from annealbench.runner.run.wandb_logger import (discard_stale_wandb, finish_wandb_run,
                                                     make_wandb_logger, metric_directions)
    from annealbench.tasks.stacking import build_group

    grouped = len(specs) > 1
    task, factory = task_and_factory(specs[0], options)
    tidies = [TidyLogger() for _ in specs]
    seeds = [s.derived_seed for s in specs]
    ckpt_dir = None
    if options.checkpoints:  # one checkpoint after each validation: no evaluation's rows missed
        ckpt_dir = run_dirs[0].joinpath(*GROUP_CHECKPOINTS) if grouped \
            else run_dirs[0] / "checkpoints"
    ckpt_path = None
    if ckpt_dir is not None:
        if grouped:
            ckpt_path = group_resume_from(ckpt_dir, seeds)
        elif (ckpt_dir / LAST).exists():
            ckpt_path = str(ckpt_dir / LAST)
        if ckpt_path:
            log.info("%s%s: resuming from %s", "group of " if grouped else "", specs[0].run_id,
                     ckpt_path)
    wandbs: list[Any] = []
    if options.wandb != "disabled":
        for spec, run_dir in zip(specs, run_dirs):
            if ckpt_path is None:
                discard_stale_wandb(run_dir)
            wandbs.append(make_wandb_logger(spec.to_json(), str(run_dir), options.wandb))
    callbacks: list[Any] = [LastCheckpoint(ckpt_dir)] if ckpt_dir is not None else []
    if options.step_progress:
        from annealbench.runner.run.step_progress import StepProgress

        callbacks.append(StepProgress(specs[0].run_id))
    if grouped:  # the stacking: each member logs to its own sinks
        sinks = [Fanout([t, *wandbs[i:i + 1]]) for i, t in enumerate(tidies)]
        module, datamodule = build_group(task, factory, seeds, sinks)
        loggers: Any = False
        callbacks.insert(0, group_rows_callback(tidies))
    else:
        module, datamodule = task.build(factory, seed=seeds[0])
        loggers = [tidies[0], *wandbs]
        callbacks.insert(0, RowsInCheckpoint(tidies[0]))
    trainer_kwargs = dict(task.trainer_kwargs())
    trainer = pl.Trainer(**trainer_kwargs, logger=loggers, callbacks=callbacks,
                         accelerator=options.accelerator, devices=options.devices,
                         strategy=options.strategy, default_root_dir=str(run_dirs[0]),
                         enable_checkpointing=False,  # LastCheckpoint, when asked for
                         enable_progress_bar=options.interactive,
                         enable_model_summary=options.interactive)
    fitted = False
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        fitted = True
    finally:
        if trainer.global_rank == 0:
            directions = metric_directions(task.spec.metrics)
            for logger, tidy, at in zip(wandbs, tidies, diverged_steps(module, len(specs))):
                status = "failed" if not fitted else "done" if at is None else "diverged"
                finish_wandb_run(logger, tidy.frame(), directions, status, at)
    max_steps = int(trainer_kwargs["max_steps"])
    impl = optimizer_impl(trainer.optimizers)  # a group's one optimizer steps every member
    return [FitResult(metrics=t.frame(), final=t.final(),
                      diverged_step=math.nan if at is None else float(at), max_steps=max_steps,
                      global_rank=trainer.global_rank, optimizer_impl=impl)
            for t, at in zip(tidies, diverged_steps(module, len(specs)))]


def diverged_steps(module: Any, runs: int) -> list[int | None]:
    """The step each run diverged at (None: it did not): a group's module keeps one per member."""
    if runs > 1:
        return list(module.diverged_at)
    return [getattr(module, "diverged_at_step", None)]


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


def execute_job(job: Job, options: RunOptions, environment: dict[str, Any]) -> list[Outcome]:
    """Run `job` into its members' folders: DONE on success or divergence, FAILED with the
    traceback otherwise; one outcome per member, in order.

    Any exception of the task, the optimizer or the store fails every member; only the death of
    the process itself escapes, and the caller records that for every member. Once every
    member's DONE is written, their checkpoints are deleted unless `options.keep_checkpoints`
    (a group's lives in its first member's folder); a failed run keeps them, to resume from.
    """
    specs = [m.spec for m in job.members]
    folders = [RunFolder(m.run_dir) for m in job.members]
    if launched_rank() != 0:  # an extra DDP rank: trains, leaves the store to rank 0
        fit(specs, [f.path for f in folders], options)
        return [Outcome("done")]
    for spec, folder in zip(specs, folders):
        folder.start(spec, keep_checkpoints=options.checkpoints)
    started = time.perf_counter()
    provenances = [run_provenance(s, options, environment, devices=options.devices)
                   for s in specs]
    group: dict[str, Any] = {"run_ids": [s.run_id for s in specs]}
    if len(specs) > 1:
        provenances = [{**p, "run_group": group} for p in provenances]
    try:
        results = fit(specs, [f.path for f in folders], options)
        if results[0].global_rank != 0:
            return [Outcome("done")]
        wall = time.perf_counter() - started
        group["wall_time_s"] = wall
        outcomes = [record_result(spec, folder, result, provenance, wall / len(specs))
                    for spec, result, folder, provenance in zip(specs, results, folders, provenances)]
    except Exception as err:  # noqa: BLE001 - every failure of a run is recorded, then reported
        wall = time.perf_counter() - started
        log.warning("%s%s failed: %s: %s", "group of " if len(specs) > 1 else "", specs[0].run_id,
                    type(err).__name__, err)
        return [record_error(spec, folder, err, provenance, wall / len(specs))
                for spec, folder, provenance in zip(specs, folders, provenances)]
    if not options.keep_checkpoints:  # every member's DONE first
        from annealbench.runner.run.checkpoint import remove_checkpoints

        for folder in folders:
            remove_checkpoints(folder.path)
    return outcomes


def execute_run(spec: RunSpec, run_dir: Path, options: RunOptions,
                environment: dict[str, Any]) -> Outcome:
    """`execute_job` for a job of one run."""
    return execute_job(Job.of(spec, run_dir), options, environment)[0]


def record_result(spec: RunSpec, folder: RunFolder, result: FitResult,
                  provenance: dict[str, Any], wall_time_s: float) -> Outcome:
    """Write a trained run's rows, provenance and DONE (`done`, or `diverged` at its step); the
    provenance says whether its optimizer ran its fastest implementation (`optimizer_fastest`:
    the registry decides, so the analysis need not import it)."""
    status = "done" if math.isnan(result.diverged_step) else "diverged"
    outcome = Outcome(status, max_steps=result.max_steps, diverged_step=result.diverged_step,
                      wall_time_s=wall_time_s)
    from annealbench.optimizers import optimizer_info

    fastest = optimizer_info(spec.optimizer).ran_fastest(result.optimizer_impl)
    folder.finish(result.metrics, {**provenance, "max_steps": result.max_steps,
                                   "optimizer_impl": result.optimizer_impl,
                                   "optimizer_fastest": fastest,
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
