"""The `slurm` launcher: each stage's runs as submitit job arrays on a SLURM cluster.

What is submitted:
- Each array task runs one or several runs of the stage one after another (`runs_per_task`;
  default: 1, or as many as fit in `PACK_S` where `--step-time` says a run is shorter than
  `SHORT_RUN_S`), so one import of torch serves several short runs; a run group (several seeds
  in one process, `annealbench.runner.launch.jobs`) counts as one run there.
- Arrays are cut to the cluster's `MaxArraySize` (`scontrol show config`, or `max_array_size`).
- Each array's time limit is `timeout_min` when given; else, with step times,
  `MARGIN` × steps × step time × its runs + `FLOOR_S`; else the runs' own limits added up
  (`--run-timeout`, by default the preset's: smoke 15 min, quick 4 h, paper 72 h).
- A task SLURM signals before its time limit, or preempts, is requeued (submitit's checkpoint
  and requeue, at most `max_requeues` times; `#SBATCH --requeue`); its finished runs are not run
  again and its unfinished run resumes from its checkpoint (a suite with `checkpoints: true`).
- Torch threads in a task follow `--cpus-per-task`; the run's provenance records the compute
  node's host, GPUs and GPU driver.

Every submission is written to the ledger (`annealbench.runner.store.ledger`) before `sbatch` runs. A later
`annealbench run` reads it and asks `squeue` which tasks are still queued or running: their runs are
never submitted again nor touched (it waits for them, or with `detach` leaves them be); a run
whose task ended without its outcome (time limit, node failure, a requeue limit reached) is
recorded as a failed attempt (reason `timeout` or `worker_died`) and submitted again while it
has retries left, resuming from its checkpoint.

With `detach`, `annealbench run` submits what is missing and returns: stage `eval` of a (task,
configuration) is submitted by the first `annealbench run` that finds its tuning runs complete. That
`annealbench run` is a follow-up job: a detached `annealbench run` that leaves runs in SLURM's hands also
submits one small job (1 core, no GPU, `FOLLOW_UP_MIN` minutes) with `--dependency=afterany:` on
every array of the sweep still queued or running; it runs the same command in the same folder,
which submits what the finished arrays left to do and its own follow-up, until nothing is left.
At most one follow-up job is pending (an earlier one is cancelled). The same command run by hand
(or from cron) does the same, should a follow-up job be lost (a node failure).
`--submitit-cluster local|debug` run the arrays on this machine (no ledger; the driver waits).
"""

from __future__ import annotations

import dataclasses
import getpass
import logging
import math
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from annealbench.runner.store.atomic import read_json
from annealbench.runner.errors import MissingSystemError
from annealbench.runner.run.execute import RunOptions
from annealbench.runner.store.ledger import Ledger, Submission, TaskState
from annealbench.runner.launch.pool import Event
from annealbench.runner.launch.processes import own_wandb_service
from annealbench.runner.run.job import Job, Run
from annealbench.runner.store.results_store import FINISHED, Outcome, RunFolder

log = logging.getLogger(__name__)
SUBMITIT_CLUSTERS = ("slurm", "local", "debug")
SHORT_RUN_S = 10 * 60.0  # runs estimated shorter than this share array tasks ...
PACK_S = 30 * 60.0  # ... up to this many seconds of them per task
MAX_PACK = 32
MARGIN, FLOOR_S = 1.5, 5 * 60.0  # time limit: MARGIN × the estimate + FLOOR_S (imports, data)
QUEUE_TIMEOUT_S = 120.0
FOLLOW_UP = "follow-up"  # the ledger's stage of follow-up jobs
FOLLOW_UP_MIN = 30  # a follow-up's time limit: a scan of the results folder and a few sbatch calls
FOLLOW_UP_LOCK_S = 20 * 60  # ... of which it may wait this long for the results folder's lock


@dataclass(frozen=True)
class SlurmParams:
    """Resources and placement of each array task, and how the driver behaves."""

    cluster: str = "slurm"  # `local` runs the array on this machine (tests)
    partition: str | None = None
    timeout_min: int | None = None  # None: from the step times, else the runs' own limits
    cpus_per_task: int = 1
    gpus_per_node: int = 0  # 0: a run's `devices` GPUs with --accelerator gpu, else none
    array_parallelism: int = 256
    account: str | None = None
    qos: str | None = None
    mem: str | None = None  # as sbatch writes it: 16G, 4000M
    constraint: str | None = None
    gres: str | None = None
    sbatch: tuple[str, ...] = ()  # extra `#SBATCH` lines: `--key=value` or `--flag`
    max_array_size: int | None = None  # None: the cluster's MaxArraySize
    runs_per_task: int | None = None  # None: by the step times (`pack_size`), else 1
    step_times: tuple[tuple[str, float], ...] = ()  # TASK (name or label) → seconds per step
    max_requeues: int = 10  # time-outs/preemptions after which a task is not requeued
    detach: bool = False  # submit and return; a follow-up job (or a later `annealbench run`) advances
    follow_up: tuple[str, ...] = ()  # detached: the `annealbench run` arguments a follow-up job reruns
    poll_s: float = 30.0  # how often a waiting driver asks squeue

    def __post_init__(self) -> None:
        for line in self.sbatch:
            sbatch_option(line)  # raises ValueError for a line sbatch would not read
        if self.detach and self.cluster != "slurm":
            raise ValueError("--detach needs a SLURM cluster (--submitit-cluster slurm): the "
                             "local executors' tasks are children of the driver")


def sbatch_option(line: str) -> tuple[str, Any]:
    """`key=value`, `key value` or `flag`, each with or without its `--`, a leading `#SBATCH`
    allowed → (key, value)."""
    text = line.strip()
    if text.startswith("#SBATCH"):
        text = text[len("#SBATCH"):].strip()
    match = re.fullmatch(r"(?:--)?([A-Za-z][A-Za-z0-9_-]*)(?:[= ](.+))?", text)
    if match is None:
        raise ValueError(f"--sbatch {line!r}: give one long sbatch option, e.g. "
                         f"'mail-type=END' or '#SBATCH --exclusive'")
    value = match.group(2)
    return match.group(1), True if value is None else value.strip()


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


# --- what SLURM says ---------------------------------------------------------------------------

def _slurm(*args: str) -> str:
    try:
        out = subprocess.run(list(args), capture_output=True, text=True,
                             timeout=QUEUE_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", None) or err
        raise MissingSystemError(f"`{shlex.join(args)}` failed: {str(detail).strip()}; nothing "
                                 "was submitted (run again once SLURM answers)") from None
    return out.stdout


def cluster_max_array_size() -> int:
    """MaxArraySize of `scontrol show config`: an array's indices are 0 … MaxArraySize - 1."""
    match = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)", _slurm("scontrol", "show", "config"),
                      re.MULTILINE)
    return int(match.group(1)) if match else 1001  # SLURM's default


def queued_tasks() -> dict[str, tuple[str, str]]:
    """This user's queued and running array tasks (squeue, one line per task): id → (name, state)."""
    out = _slurm("squeue", "--noheader", "--array", "--user", getpass.getuser(),
                 "--format", "%i|%j|%T")
    tasks = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 3:
            continue
        task_id, name, state = parts
        for expanded in _expand(task_id):
            tasks[expanded] = (name, state)
    return tasks


def _expand(task_id: str) -> list[str]:
    """`12_3` → [12_3]; `12_[4-6,9%2]` (a pending range) → [12_4, 12_5, 12_6, 12_9]; `12` → [12_0]."""
    from submitit.slurm.slurm import read_job_id

    out = []
    for parts in read_job_id(task_id):
        if len(parts) == 1:
            out.append(f"{parts[0]}_0")
        else:
            last = int(parts[2]) if len(parts) > 2 else int(parts[1])
            out += [f"{parts[0]}_{i}" for i in range(int(parts[1]), last + 1)]
    return out


def final_states(job_ids: list[str]) -> dict[str, str]:
    """Each task's state from sacct (`COMPLETED`, `TIMEOUT`, `NODE_FAIL` …); {} without sacct."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    try:
        out = _slurm("sacct", "--noheader", "--parsable2", "--allocations",
                     "--format", "JobID,State", "--jobs", ",".join(job_ids))
    except MissingSystemError as err:
        log.warning("%s", err)
        return {}
    states = {}
    for line in out.splitlines():
        task_id, _, state = line.strip().partition("|")
        if task_id and "." not in task_id:
            for expanded in _expand(task_id):
                states[expanded] = state.split()[0] if state else "UNKNOWN"
    return states


# --- inside an array task ---------------------------------------------------------------------

def node_facts() -> dict[str, Any]:
    """Where a task runs, taken on the compute node: host, cores, GPUs, GPU driver, SLURM job."""
    facts: dict[str, Any] = {"host": socket.gethostname(),
                             "cpu_count": len(os.sched_getaffinity(0))}
    array, index = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    facts["slurm_job"] = f"{array}_{index}" if array else os.environ.get("SLURM_JOB_ID")
    import torch

    if torch.cuda.is_available():
        facts["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        facts["gpu_driver"] = _gpu_driver()
        facts["cuda_runtime"] = torch.version.cuda
    else:
        facts["gpus"] = []
    return facts


def _gpu_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


class ArrayTask:
    """What one array task runs: its runs (or run groups) in turn, skipping those finished, or
    failed since they were submitted (the driver retries those). Requeued by submitit after a
    time-out or preemption signal (`checkpoint`): the unfinished run resumes from its checkpoint."""

    def __init__(self, options: RunOptions, environment: dict[str, Any], threads: int) -> None:
        self.options, self.environment, self.threads = options, environment, threads

    def __call__(self, items: list[tuple[Job, tuple[int, ...]]]) -> list[tuple[str, str]]:
        from annealbench.runner.run.execute import execute_job, quiet_lightning

        own_wandb_service()  # the submitting shell's, if any, is on another machine
        threads = int(os.environ.get("SLURM_CPUS_PER_TASK") or self.threads)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(threads)
        options = dataclasses.replace(self.options, threads=threads)
        environment = {**self.environment, **node_facts()}
        quiet_lightning()
        done: list[tuple[str, str]] = []
        for item, submitted_attempts in items:
            todo = tuple(run for run, attempts in zip(item.members, submitted_attempts)
                         if _runnable(run, attempts))
            if not todo:
                continue
            # the members left to do, together: a run's result does not depend on its group
            outcomes = execute_job(Job(todo), options, environment)
            done += [(run.spec.run_id, o.status) for run, o in zip(todo, outcomes)]
            if any(o.error.startswith("UncompletedJobError") for o in outcomes):
                raise RuntimeError("not requeued again (--max-requeues reached); the next "
                                   "`annealbench run` submits the unfinished runs again")
        return done

    def checkpoint(self, items: list[tuple[Job, tuple[int, ...]]]) -> Any:
        """submitit calls this on SLURM's signal: requeue the same task (its state is on disk)."""
        from submitit.core.utils import DelayedSubmission

        return DelayedSubmission(self, items)


def _runnable(job: Run, submitted_attempts: int) -> bool:
    folder = RunFolder(job.run_dir)
    state = folder.state()
    return state not in FINISHED and not (state == "failed"
                                          and folder.attempts() > submitted_attempts)


class FollowUp:
    """A follow-up job: `annealbench run ARGS` again, in the folder it was submitted from.
    Requeued as it is on a preemption (a rerun of `annealbench run` is harmless: it reattaches)."""

    def __init__(self, argv: tuple[str, ...], cwd: str) -> None:
        self.argv, self.cwd = argv, cwd

    def __call__(self) -> int:
        # the command itself, in a process of its own: what a user types, with nothing of this one
        code = subprocess.run([sys.executable, "-m", "annealbench", *self.argv, "--wait-lock",
                               str(FOLLOW_UP_LOCK_S)], cwd=self.cwd).returncode
        if code not in (0, 1):  # 1: some run failed, which the sweep's tables record
            raise RuntimeError(f"`annealbench {shlex.join(self.argv)}` exited {code}; its "
                               "log says why, and the same command by hand goes on")
        return code

    def checkpoint(self) -> Any:
        from submitit.core.utils import DelayedSubmission

        return DelayedSubmission(self)


# --- the driver's side ------------------------------------------------------------------------

def outcome_on_disk(run_dir: Path) -> Outcome | None:
    """The outcome a run folder records: DONE's, or FAILED's; None while it has neither."""
    folder = RunFolder(run_dir)
    state = folder.state()
    if state in FINISHED:
        done = read_json(folder.done_file)
        return Outcome(state, max_steps=done.get("max_steps", 0),
                       diverged_step=math.nan if done.get("diverged_step") is None
                       else done["diverged_step"], wall_time_s=done.get("wall_time_s", math.nan))
    if state == "failed":
        record = read_json(folder.failed_file)
        return Outcome("failed", error=record.get("error", ""),
                       reason=record.get("reason", "error"))
    return None


@lru_cache(maxsize=None)
def _steps(task: str, preset: str, overrides: tuple) -> int:
    from annealbench.runner.suite.validate import task_budget

    return task_budget(task, preset, dict(overrides))


def run_seconds(job: Run, step_times: dict[str, float]) -> float | None:
    """steps × seconds per step of `job`'s task (given by label or name), or None."""
    spec = job.spec
    seconds = step_times.get(spec.task_label, step_times.get(spec.task))
    if seconds is None:
        return None
    return _steps(spec.task, spec.preset, spec.task_overrides) * seconds


def pack_size(params: SlurmParams, run_s: float | None) -> int:
    """Runs per array task: `runs_per_task`, else as many short runs as fit in `PACK_S`, else 1."""
    if params.runs_per_task is not None:
        return params.runs_per_task
    if run_s is None or run_s >= SHORT_RUN_S:
        return 1
    return max(1, min(MAX_PACK, int(PACK_S // max(run_s, 1e-9))))


def time_limit_min(params: SlurmParams, items: list[Job], step_times: dict[str, float]) -> int:
    """`timeout_min`, else MARGIN × the estimate + FLOOR_S, else the runs' limits added up."""
    if params.timeout_min is not None:
        return params.timeout_min
    jobs = [run for item in items for run in item.members]
    estimates = [run_seconds(job, step_times) for job in jobs]
    if None not in estimates:
        return math.ceil((MARGIN * sum(estimates) + FLOOR_S) / 60.0)
    return math.ceil(sum(job.timeout_s or 72 * 3600.0 for job in jobs) / 60.0)


def plan_tasks(items: list[Job], params: SlurmParams) -> list[list[Job]]:
    """The array tasks: items of one task (label) and preset together, `pack_size` per task."""
    step_times = dict(params.step_times)
    by_task: dict[tuple[str, str], list[Job]] = {}
    for item in items:
        by_task.setdefault((item.spec.task_label, item.spec.preset), []).append(item)
    tasks = []
    for group in by_task.values():
        size = pack_size(params, run_seconds(group[0].members[0], step_times))
        tasks += [group[i:i + size] for i in range(0, len(group), size)]
    return tasks


class SlurmLauncher:
    """Submits a stage's runs as job arrays, through the ledger; waits for them unless detached."""

    def __init__(self, params: SlurmParams, options: RunOptions, environment: dict[str, Any],
                 root: Path, seed_batch: Any = 1, max_retries: int = 2) -> None:
        self.params, self.options, self.environment = params, options, environment
        self.root, self.seed_batch, self.max_retries = Path(root), seed_batch, max_retries
        self.ledger = Ledger(self.root) if params.cluster == "slurm" else None
        self._max_array: int | None = params.max_array_size
        self.in_flight: dict[str, TaskState] = {}  # run id → its task (detach: left running)
        self.held: set[tuple[str, str]] = set()  # (task, config)s with tuning runs in flight

    # which runs to submit ------------------------------------------------------------------
    def run(self, jobs: list[Run], on_event: Event) -> dict[str, Outcome]:
        if not jobs:
            return {}
        if self.ledger is None:
            return self._run_here(jobs, on_event)
        active = self.ledger.refresh(queued_tasks(), final_states)
        jobs = self._hold_back(jobs)
        waiting, submit, outcomes = [], [], {}
        for job in jobs:
            run_id = job.spec.run_id
            if run_id in active:  # queued or running: never submitted again, never touched
                waiting.append(job)
                self.in_flight[run_id] = active[run_id]
                continue
            outcome = self._lost(job)
            if outcome is not None:  # failed for good
                outcomes[run_id] = outcome
                on_event("finished", job, outcome)
                continue
            submit.append(job)
        if waiting:
            log.info("%d runs are in SLURM jobs still queued or running: not submitted again",
                     len(waiting))
        attempts = {job.spec.run_id: RunFolder(job.run_dir).attempts() for job in submit}
        self._submit(submit, attempts)
        if self.params.detach:
            for job in submit:
                self.in_flight[job.spec.run_id] = TaskState(None, 0, "PENDING")
            self.held |= {(j.spec.task_label, j.spec.config) for j in waiting + submit
                          if j.spec.stage == "tune"}
            return outcomes
        attempts.update({job.spec.run_id: RunFolder(job.run_dir).attempts() for job in waiting})
        for job in waiting + submit:
            on_event("started", job, None)
        outcomes.update(self._wait(waiting + submit, attempts, on_event))
        return outcomes

    def _hold_back(self, jobs: list[Run]) -> list[Run]:
        """Detached, an evaluation run waits for every tuning run of its (task, configuration)
        (even with --allow-incomplete-tuning, which then evaluates with what finished)."""
        kept = [j for j in jobs if (j.spec.task_label, j.spec.config) not in self.held]
        if len(kept) < len(jobs):
            log.info("%d evaluation runs wait for their tuning runs, still queued or running",
                     len(jobs) - len(kept))
        return kept

    def _lost(self, job: Run) -> Outcome | None:
        """A run whose last task ended without its outcome: record the failed attempt; its
        outcome when no retry is left, else None (it is submitted again)."""
        last = self.ledger.last_task(job.spec.run_id)
        folder = RunFolder(job.run_dir)
        if last is None or folder.state() != "unfinished":
            return None
        state = last.state
        if state == "ACTIVE" and last.job_id:  # its array goes on; this task has ended
            state = final_states([last.job_id]).get(last.task_id, "UNKNOWN")
        reason = "timeout" if state in ("TIMEOUT", "DEADLINE") else "worker_died"
        error = f"SlurmTaskLost: array task {last.task_id} ended ({state}) before the run finished"
        log.warning("%s: %s", job.spec.run_id, error)
        attempts = folder.fail(error, self.environment, math.nan, reason=reason)
        if attempts > self.max_retries:
            return Outcome("failed", error=error, reason=reason)
        return None

    # submitting ---------------------------------------------------------------------------
    def _executor(self, folder: Path, timeout_min: int) -> Any:
        import submitit

        p = self.params
        executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=p.cluster,
                                         slurm_max_num_timeout=p.max_requeues)
        update: dict[str, Any] = {"timeout_min": timeout_min, "cpus_per_task": p.cpus_per_task,
                                  "slurm_array_parallelism": p.array_parallelism,
                                  "slurm_signal_delay_s": max(10, min(90, timeout_min * 60 // 4))}
        extra: dict[str, Any] = {"requeue": True}
        for key in ("partition", "account", "qos", "constraint", "gres"):
            if getattr(p, key):
                update[f"slurm_{key}"] = getattr(p, key)
        if p.mem:
            extra["mem"] = p.mem
        extra.update(sbatch_option(line) for line in p.sbatch)
        gpus = p.gpus_per_node or (self.options.devices if self.options.accelerator == "gpu"
                                   and not p.gres else 0)
        if gpus:  # each array task: its own GPU(s), which SLURM pins for it
            update["gpus_per_node"] = gpus
        threads = " ".join(f"{var}=${{SLURM_CPUS_PER_TASK:-{p.cpus_per_task}}}"
                           for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))
        update["slurm_setup"] = [f"export {threads}"]
        update["slurm_additional_parameters"] = extra
        executor.update_parameters(**update)
        return executor

    def _submit(self, jobs: list[Run], attempts: dict[str, int]) -> list[tuple[Any, list[Job]]]:
        """Submit `jobs` as arrays of at most MaxArraySize tasks; returns (handle, task) pairs."""
        if not jobs:
            return []
        from annealbench.runner.launch.jobs import make_jobs

        items = make_jobs(jobs, self.seed_batch, self.options)
        tasks = plan_tasks(items, self.params)
        if self._max_array is None:
            self._max_array = cluster_max_array_size() if self.params.cluster == "slurm" else 10**6
        step_times = dict(self.params.step_times)
        stage = jobs[0].spec.stage
        folder = self.root / "submitit" / stage
        task = ArrayTask(self.options, self.environment, self.params.cpus_per_task)
        handles = []
        # tasks of one time limit together, then cut to MaxArraySize
        by_limit: dict[int, list[list[Any]]] = {}
        for each in tasks:
            by_limit.setdefault(time_limit_min(self.params, each, step_times), []).append(each)
        for limit, same in sorted(by_limit.items()):
            for start in range(0, len(same), self._max_array):
                chunk = same[start:start + self._max_array]
                args = [[(item, tuple(attempts[m.spec.run_id] for m in item.members))
                         for item in each] for each in chunk]
                run_ids = [[m.spec.run_id for item in each for m in item.members]
                           for each in chunk]
                entry = Submission.new(stage, run_ids, limit)
                if self.ledger is not None:
                    self.ledger.add(entry)  # before sbatch: a driver killed meanwhile finds it
                executor = self._executor(folder, limit)
                executor.update_parameters(name=entry.name)
                try:
                    submitted = executor.map_array(task, args)
                except BaseException:
                    if self.ledger is not None:
                        self.ledger.remove(entry)
                    raise
                entry.job_id = submitted[0].job_id.split("_")[0]
                if self.ledger is not None:
                    self.ledger.save()
                log.info("%s: submitted %d runs in %d array tasks (job %s, %d min each) to %s",
                         stage, sum(map(len, run_ids)), len(chunk), entry.job_id, limit,
                         self.params.cluster)
                handles += list(zip(submitted, chunk))
        return handles

    # the follow-up job -------------------------------------------------------------------
    def follow_up(self) -> str | None:
        """Detached: the follow-up job, after every array of the sweep still queued or running:
        the pending one when it waits for exactly those, else a new one (a pending one for other
        arrays is cancelled); its job id (None: nothing in flight, or no follow-up asked for).
        Called under the results directory's lock."""
        if self.ledger is None or not self.params.detach or not self.params.follow_up:
            return None
        queue = queued_tasks()
        self.ledger.refresh(queue, final_states)
        arrays = sorted({s.job_id for s in self.ledger.open() if s.stage != FOLLOW_UP
                         and s.job_id}, key=int)
        pending = [s for s in self.ledger.open() if s.stage == FOLLOW_UP and s.job_id
                   and queue.get(f"{s.job_id}_0", ("", ""))[1] == "PENDING"]
        if arrays and len(pending) == 1 and pending[0].after == arrays:
            return pending[0].job_id  # it already waits for exactly these
        if pending:  # waits for other arrays: replaced (a running follow-up runs its course)
            _slurm("scancel", *[s.job_id for s in pending])
            for entry in pending:
                entry.ended, entry.final = True, {"0": "CANCELLED"}
            self.ledger.save()
        if not arrays:
            return None
        entry = Submission.new(FOLLOW_UP, [[]], FOLLOW_UP_MIN)
        entry.after = arrays
        self.ledger.add(entry)
        executor = self._follow_up_executor(arrays)
        executor.update_parameters(name=entry.name)
        try:
            job = executor.submit(FollowUp(self.params.follow_up, os.getcwd()))
        except BaseException:
            self.ledger.remove(entry)
            raise
        entry.job_id = str(job.job_id)
        self.ledger.save()
        log.info("follow-up job %s: `annealbench run` again once jobs %s have ended", entry.job_id,
                 ", ".join(arrays))
        return entry.job_id

    def _follow_up_executor(self, after: list[str]) -> Any:
        """1 core, no GPU, the runs' partition, account and QoS; after `after` have ended."""
        import submitit

        p = self.params
        executor = submitit.AutoExecutor(folder=str(self.root / "submitit" / FOLLOW_UP / "%j"),
                                         cluster=p.cluster, slurm_max_num_timeout=p.max_requeues)
        update: dict[str, Any] = {"timeout_min": FOLLOW_UP_MIN, "cpus_per_task": 1}
        for key in ("partition", "account", "qos"):
            if getattr(p, key):
                update[f"slurm_{key}"] = getattr(p, key)
        update["slurm_additional_parameters"] = {"requeue": True,
                                                 "dependency": "afterany:" + ":".join(after)}
        executor.update_parameters(**update)
        return executor

    # waiting ------------------------------------------------------------------------------
    def _wait(self, jobs: list[Run], attempts: dict[str, int], on_event: Event,
              handles: dict[str, Any] | None = None) -> dict[str, Outcome]:
        """Until every run of `jobs` has its outcome: on disk, or its task gone without one."""
        outcomes: dict[str, Outcome] = {}
        pending = {job.spec.run_id: job for job in jobs}
        while pending:
            if handles is None:
                active = self.ledger.refresh(queued_tasks(), final_states)
            for run_id, job in list(pending.items()):
                running = (not handles[run_id].done()) if handles is not None \
                    else run_id in active
                outcome = outcome_on_disk(job.run_dir)
                if outcome is not None and outcome.status == "failed" and \
                        RunFolder(job.run_dir).attempts() <= attempts[run_id]:
                    outcome = None  # an earlier attempt's failure
                if outcome is None and running:
                    continue
                if outcome is None:
                    outcome = self._lost(job) if handles is None else self._lost_here(
                        job, handles[run_id])
                    outcome = outcome or outcome_on_disk(job.run_dir)
                del pending[run_id]
                outcomes[run_id] = outcome
                on_event("finished", job, outcome)
            if pending:
                time.sleep(0.5 if handles is not None else self.params.poll_s)
        return outcomes

    def _lost_here(self, job: Run, handle: Any) -> Outcome:
        """A local array task that ended without the run's outcome: a failed attempt."""
        try:
            handle.result()
            error = "the array task ended without running it"
        except Exception as err:  # noqa: BLE001 - a lost array task is a failed run
            error = f"{type(err).__name__}: {err}"
        reason = "timeout" if "TIMEOUT" in error else "worker_died"
        RunFolder(job.run_dir).fail(error, self.environment, math.nan, reason=reason)
        return Outcome("failed", error=error, reason=reason)

    def _run_here(self, jobs: list[Run], on_event: Event) -> dict[str, Outcome]:
        """`--submitit-cluster local|debug`: submit and wait on submitit's own handles."""
        attempts = {job.spec.run_id: RunFolder(job.run_dir).attempts() for job in jobs}
        handles = {}
        for handle, task in self._submit(jobs, attempts):
            for item in task:
                for member in item.members:
                    handles[member.spec.run_id] = handle
        for job in jobs:
            on_event("started", job, None)
        return self._wait(jobs, attempts, on_event, handles)


def detach_note(root: Path) -> tuple[str, int]:
    """After a detached `annealbench run`: what is queued or running now, and how to go on; and how
    many runs are in flight (0: nothing left in SLURM's hands)."""
    ledger = Ledger(root)
    active = ledger.refresh(queued_tasks(), save=False) if ledger.open() else {}
    jobs = sorted({state.job_id for state in active.values()}, key=lambda j: int(j or 0))
    if not active:
        return "slurm: no run of this sweep is queued or running", 0
    queued = sum(s.state in ("PENDING", "REQUEUED") for s in active.values())
    follow = [s.job_id for s in ledger.open() if s.stage == FOLLOW_UP and s.job_id]
    then = (f"follow-up job {follow[-1]} runs this `annealbench run` again once they have ended, and "
            f"so on until the sweep is done (the same command by hand does the same)"
            if follow else "the same `annealbench run` again submits what they leave to do")
    return (f"slurm: {len(active)} runs in jobs {', '.join(jobs)} ({queued} queued, "
            f"{len(active) - queued} running); `annealbench status {root}` shows them; "
            f"{then} (stage eval once its tuning is complete)"), len(active)
