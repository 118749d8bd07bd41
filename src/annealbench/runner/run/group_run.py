"""Train one run group (`annealbench.runner.launch.jobs.GroupJob`) and write every member's run folder.

Each member's folder is written as its one-seed run writes it (`annealbench.runner.run.execute.execute_run`);
`wall_time_s` is the member's share of the group's wall time (the group's time over its
seeds), and `provenance.json` also records the group: its run ids and its wall time. With
checkpoints on, the group's Lightning checkpoint lives in its first member's folder, under
`checkpoints/group/` (a one-seed attempt of that run never reads it); a checkpoint of a group
with other seeds is discarded, as the group then starts from scratch. Once every member's DONE is
written, the members' checkpoints are deleted (unless `keep_checkpoints`), as a one-seed run's.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

from annealbench.runner.run.execute import (FitResult, RunOptions, optimizer_impl, record_error, record_result,
                           run_provenance, task_and_factory)
from annealbench.runner.launch.jobs import GroupJob
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.store.results_store import Outcome, RunFolder

log = logging.getLogger(__name__)


class _Fanout:
    """One seed's metric sink: every logger of that seed's run."""

    def __init__(self, loggers: list[Any]) -> None:
        self.loggers = loggers

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for logger in self.loggers:
            logger.log_metrics(metrics, step=step)


def _group_callbacks(tidies: list[Any], ckpt_dir: Path | None) -> list[Any]:
    """Every member's rows inside the group's checkpoints, and (with `ckpt_dir`) the checkpoint
    written after each evaluation, atomically, as `ckpt_dir/last.ckpt` (`LastCheckpoint`)."""
    from pytorch_lightning import Callback

    from annealbench.runner.run.checkpoint import LastCheckpoint

    class GroupRowsInCheckpoint(Callback):
        def state_dict(self) -> dict[str, Any]:
            return {"rows": [list(t.rows) for t in tidies]}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            for tidy, rows in zip(tidies, state_dict["rows"]):
                tidy.rows = [tuple(r) for r in rows]

    return [GroupRowsInCheckpoint()] + ([LastCheckpoint(ckpt_dir)] if ckpt_dir else [])


def _resume_from(ckpt_dir: Path, seeds: list[int]) -> str | None:
    """The group's last checkpoint if it belongs to exactly these seeds; else none (removed)."""
    import torch

    last = ckpt_dir / "last.ckpt"
    if not last.exists():
        return None
    try:
        held = torch.load(last, map_location="cpu", weights_only=False)["annealbench_group"]["seeds"]
    except (OSError, RuntimeError, KeyError, EOFError) as err:
        held = f"unreadable ({err})"
    if held == seeds:
        return str(last)
    log.info("%s holds seeds %s, not %s: starting the group from scratch", last, held, seeds)
    shutil.rmtree(ckpt_dir)
    return None


def fit_group(specs: list[RunSpec], run_dirs: list[Path], options: RunOptions) -> list[FitResult]:
    """Build the members with their derived seeds and train them as one model."""
    import pytorch_lightning as pl

    from annealbench.runner.run.metrics_logger import TidyLogger
    from annealbench.runner.run.wandb_logger import (discard_stale_wandb, finish_wandb_run, make_wandb_logger,
                                  metric_directions)
    from annealbench.tasks.stacking import build_group

    first = specs[0]
    task, factory = task_and_factory(first, options)
    tidies = [TidyLogger() for _ in specs]
    seeds = [s.derived_seed for s in specs]
    ckpt_dir = run_dirs[0] / "checkpoints" / "group" if options.checkpoints else None
    ckpt_path = None
    if ckpt_dir is not None:
        ckpt_path = _resume_from(ckpt_dir, seeds)
        if ckpt_path:
            log.info("group of %s: resuming from %s", first.run_id, ckpt_path)
    wandbs = []
    if options.wandb != "disabled":
        for spec, run_dir in zip(specs, run_dirs):
            if ckpt_path is None:
                discard_stale_wandb(run_dir)
            wandbs.append(make_wandb_logger(spec.to_json(), str(run_dir), options.wandb))
    sinks = [_Fanout([t, *wandbs[i:i + 1]]) for i, t in enumerate(tidies)]
    module, datamodule = build_group(task, factory, seeds, sinks)
    callbacks = _group_callbacks(tidies, ckpt_dir)
    trainer_kwargs = dict(task.trainer_kwargs())
    trainer = pl.Trainer(**trainer_kwargs, logger=False, callbacks=callbacks,
                         accelerator=options.accelerator, devices=1,
                         default_root_dir=str(run_dirs[0]),
                         enable_checkpointing=False,
                         enable_progress_bar=options.interactive,
                         enable_model_summary=options.interactive)
    fitted = False
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        fitted = True
    finally:
        directions = metric_directions(task.spec.metrics)
        for logger, tidy, at in zip(wandbs, tidies, module.diverged_at):
            status = "failed" if not fitted else "done" if at is None else "diverged"
            finish_wandb_run(logger, tidy.frame(), directions, status, at)
    max_steps = int(trainer_kwargs["max_steps"])
    impl = optimizer_impl(trainer.optimizers)  # the group's one optimizer steps every member
    return [FitResult(metrics=t.frame(), final=t.final(),
                      diverged_step=math.nan if at is None else float(at), max_steps=max_steps,
                      global_rank=0, optimizer_impl=impl)
            for t, at in zip(tidies, module.diverged_at)]


def execute_group(job: GroupJob, options: RunOptions,
                  environment: dict[str, Any]) -> list[Outcome]:
    """Run a group into its members' folders: one outcome per member, in order.

    Any exception fails every member (each gets FAILED with the traceback); only the death of
    the process escapes, and the pool records that for every member.
    """
    specs = [m.spec for m in job.members]
    folders = [RunFolder(m.run_dir) for m in job.members]
    for spec, folder in zip(specs, folders):
        folder.start(spec, keep_checkpoints=options.checkpoints)
    started = time.perf_counter()
    group = {"run_ids": [s.run_id for s in specs]}
    provenances = [{**run_provenance(s, options, environment, devices=1), "run_group": group}
                   for s in specs]
    try:
        results = fit_group(specs, [f.path for f in folders], options)
        wall = time.perf_counter() - started
        group["wall_time_s"] = wall
        outcomes = [record_result(folder, result, provenance, wall / len(specs))
                    for result, folder, provenance in zip(results, folders, provenances)]
    except Exception as err:  # noqa: BLE001 - every failure of a group is recorded, then reported
        wall = time.perf_counter() - started
        log.warning("group of %s failed: %s: %s", specs[0].run_id, type(err).__name__, err)
        return [record_error(spec, folder, err, provenance, wall / len(specs))
                for spec, folder, provenance in zip(specs, folders, provenances)]
    if not options.keep_checkpoints:  # every member's DONE first: the group's lives in the first
        from annealbench.runner.run.checkpoint import remove_checkpoints

        for folder in folders:
            remove_checkpoints(folder.path)
    return outcomes
