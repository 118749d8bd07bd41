"""Which runs share a job: several seeds of one (task, configuration, lr) in one process.

`make_jobs` turns a stage's runs into jobs (`annealbench.runner.run.job.Job`): runs that differ
only in their seed number are chunked into run groups of at most S seeds (`seed_batch`: an
integer, 1 being the one-seed path, or `auto`); every other run is a job of its own. A worker
trains a job in one Trainer (`annealbench.runner.run.execute.execute_job`, the stacking in
`annealbench.tasks.stacking`) and writes every member's run folder exactly as a one-seed run
writes its own: `spec.json`,
`metrics.parquet`, `provenance.json` (which also names the group), then `DONE`. The store does
not know the difference.

A group is used only where it is exact and pays:
- the optimizer's registry entry says the configuration is elementwise
  (`OptimInfo.group_blocker`: others, e.g. with a per-matrix or global step-size rule, stay on
  the one-seed path, and so do hyperparameter values whose statistics are means over a whole
  tensor, such as MuPhi's reference-release numerators);
- the task has no dropout and no batch norm (`annealbench.tasks.stacking.group_blocker`);
- one device per run and the local launcher;
- with `auto`, the model has at most `AUTO_MAX_PARAMETERS` parameters per seed: on the small
  models the per-step overhead of Lightning and Python is most of a run's time, and a group pays
  it once for S seeds (see `src/annealbench/perf/seed_groups.py`); a large model is arithmetic-bound.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from functools import lru_cache

from annealbench.runner.run.execute import RunOptions
from annealbench.runner.run.job import Job, Run
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.suite.suite import SeedBatch

log = logging.getLogger(__name__)

AUTO_SEED_BATCH = 10              # seeds per group under `auto` (src/annealbench/perf/seed_groups.py)
AUTO_MAX_PARAMETERS = 1 << 20     # parameters per seed up to which `auto` groups


@lru_cache(maxsize=None)
def _task_facts(task: str, preset: str, overrides: tuple) -> tuple[str | None, int]:
    """Why the task cannot be grouped (or None), and its parameters per seed."""
    from annealbench.tasks import get_task
    from annealbench.tasks.stacking import group_blocker

    built = get_task(task, preset=preset, **dict(overrides))
    net = built.spec.make_net(built.config)
    return group_blocker(built, net), sum(p.numel() for p in net.parameters())


def group_size(spec: RunSpec, seed_batch: SeedBatch, options: RunOptions) -> tuple[int, str]:
    """Seeds per group for runs like `spec`, and why it is 1 when it is."""
    if seed_batch == 1:
        return 1, "seed_batch is 1"
    if options.devices > 1:
        return 1, f"{options.devices} devices per run"
    from annealbench.optimizers import optimizer_info

    why = optimizer_info(spec.optimizer).group_blocker(dict(spec.hparams))
    if why is not None:
        return 1, why
    blocker, parameters = _task_facts(spec.task, spec.preset, spec.task_overrides)
    if blocker is not None:
        return 1, blocker
    if seed_batch == "auto":
        if parameters > AUTO_MAX_PARAMETERS:
            return 1, f"{parameters:,} parameters per seed (auto groups up to " \
                      f"{AUTO_MAX_PARAMETERS:,})"
        return AUTO_SEED_BATCH, ""
    return int(seed_batch), ""


def _chunks(items: list[Run], size: int) -> list[list[Run]]:
    """`items` in ceil(n/size) consecutive chunks of near-equal length."""
    count = math.ceil(len(items) / size)
    base, extra = divmod(len(items), count)
    bounds = [0]
    for i in range(count):
        bounds.append(bounds[-1] + base + (i < extra))
    return [items[a:b] for a, b in zip(bounds, bounds[1:])]


def make_jobs(runs: list[Run], seed_batch: SeedBatch, options: RunOptions) -> list[Job]:
    """`runs` as jobs: those that differ only in their seed chunked into run groups where
    `group_size` allows, every other run a job of one."""
    buckets: dict[RunSpec, list[Run]] = {}
    for run in runs:
        buckets.setdefault(dataclasses.replace(run.spec, seed=0), []).append(run)
    out: list[Job] = []
    told: set[tuple[str, str]] = set()
    for key, members in buckets.items():
        size, why = group_size(key, seed_batch, options)
        if size <= 1 or len(members) == 1:
            if size <= 1 and seed_batch != 1 and (key.task_label, key.config) not in told:
                told.add((key.task_label, key.config))
                log.info("%s %s: one seed per run (%s)", key.task_label, key.config, why)
            out.extend(Job((run,)) for run in members)
            continue
        out.extend(Job(tuple(chunk)) for chunk in _chunks(members, size))
    return out
