"""The `slurm` launcher: one submitit job array per stage, each array task one run.

Array tasks write into the shared results directory themselves (the store's writes are atomic);
the driver waits for the array, updating the progress display as tasks finish, and records a
task that died without writing its outcome (time limit, preemption, node failure) as failed.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import MissingSystemError
from bench.execute import RunOptions
from bench.pool import Event, Job
from bench.store import Outcome, RunFolder

log = logging.getLogger(__name__)
SUBMITIT_CLUSTERS = ("slurm", "local", "debug")


@dataclass(frozen=True)
class SlurmParams:
    """Resources of each array task (minutes, cores, GPUs) and where submitit keeps its logs."""

    cluster: str = "slurm"  # `local` runs the array on this machine (tests)
    partition: str | None = None
    timeout_min: int = 60
    cpus_per_task: int = 1
    gpus_per_node: int = 0  # 0: a run's `devices` GPUs with --accelerator gpu, else none
    array_parallelism: int = 256


def check_slurm(params: SlurmParams) -> None:
    """Refuse the slurm launcher where it cannot submit: submitit missing, or (for a real
    cluster) no `sbatch` on PATH. Called before anything is written."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise MissingSystemError("--launcher slurm needs submitit, which is not installed "
                                 "(pip install submitit); or use --launcher local") from None
    if params.cluster == "slurm" and shutil.which("sbatch") is None:
        raise MissingSystemError("--launcher slurm: SLURM is not available on this machine (no "
                                 "`sbatch` on PATH); run on the cluster's login node, or use "
                                 "--launcher local (--submitit-cluster local tries the job arrays "
                                 "here)")


def _array_task(job: Job, options: RunOptions, environment: dict[str, Any]) -> Outcome:
    from bench.execute import execute_run, quiet_lightning

    quiet_lightning()
    return execute_run(job.spec, job.run_dir, options, environment)


def run_array(jobs: list[Job], options: RunOptions, environment: dict[str, Any],
              params: SlurmParams, folder: Path, on_event: Event) -> dict[str, Outcome]:
    """Submit `jobs` as one array, wait for it, return the outcome per run id."""
    import submitit

    if not jobs:
        return {}
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=params.cluster)
    update: dict[str, Any] = {"timeout_min": params.timeout_min,
                              "cpus_per_task": params.cpus_per_task,
                              "slurm_array_parallelism": params.array_parallelism}
    if params.partition:
        update["slurm_partition"] = params.partition
    gpus = params.gpus_per_node or (options.devices if options.accelerator == "gpu" else 0)
    if gpus:  # each array task is one run: its own GPU(s), which SLURM pins for it
        update["gpus_per_node"] = gpus
    executor.update_parameters(**update)
    submitted = executor.map_array(_array_task, jobs, [options] * len(jobs),
                                   [environment] * len(jobs))
    log.info("submitted %d runs as one job array (%s) to %s", len(jobs),
             submitted[0].job_id.split("_")[0], params.cluster)
    for job in jobs:
        on_event("started", job, None)
    outcomes: dict[str, Outcome] = {}
    waiting = dict(zip([j.spec.run_id for j in jobs], zip(jobs, submitted)))
    while waiting:
        for run_id, (job, handle) in list(waiting.items()):
            if not handle.done():
                continue
            del waiting[run_id]
            try:
                outcome = handle.result()
            except Exception as err:  # noqa: BLE001 - a lost array task is a failed run
                error = f"{type(err).__name__}: {err}"
                # SLURM's own limit (--timeout-min) shows as the job state TIMEOUT
                reason = "timeout" if "TIMEOUT" in str(err) else "worker_died"
                RunFolder(job.run_dir).fail(error, environment, float("nan"), reason=reason)
                outcome = Outcome("failed", error=error, reason=reason)
            outcomes[run_id] = outcome
            on_event("finished", job, outcome)
        if waiting:
            time.sleep(0.5)
    return outcomes
