"""A whole suite: check it, run stage `tune`, select, run stage `eval`, gather the tables.

Re-running the same command resumes: finished runs (DONE) are skipped, interrupted ones start
again, failed ones are retried while they have failed at most `max_retries` times, and the
tables are rebuilt from the run folders, so no run is ever counted twice. Finished runs made by
other code stop the sweep before it starts, unless `rerun_stale` or `accept_stale` says what to
do with them, and so do finished runs whose recorded configuration differs from what the suite
now resolves to, unless `rerun_changed` (`annealbench.runner.suite.stale`).

Before anything is created, every task's data must be in place (`annealbench.runner.preflight`): an absent
data set is refused, or fetched once here when the task has `download: true`. A (task,
configuration) whose tuning did not complete (a tuning run that did not finish, or every one
diverged) is not evaluated unless `allow_incomplete_tuning` (`annealbench.runner.suite.selection`); the summary
counts the evaluation runs not started, and `selection.json` says why. A finished run's
checkpoints are deleted once its DONE is on disk, unless `keep_checkpoints`; a failed or
interrupted run keeps its own, to resume from.

Each attempt has a wall-clock limit (`run_timeout_s`, by default `DEFAULT_RUN_TIMEOUT_S` of the
run's preset); a run past it is killed and recorded `failed` with reason `timeout`. On a machine
with GPUs the local pool runs one worker per visible GPU (`devices` GPUs per worker), each pinned
to its own through `CUDA_VISIBLE_DEVICES`.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from annealbench.runner.store.atomic import atomic_write_json
from annealbench.runner.launch.devices import cuda_available, visible_gpus, worker_devices
from annealbench.runner.run.execute import RunOptions
from annealbench.runner.launch.jobs import make_jobs
from annealbench.runner.store.lock import results_lock
from annealbench.runner.launch.pool import WorkerPool
from annealbench.runner.run.job import Run
from annealbench.runner.preflight import prepare_data
from annealbench.runner.launch.progress import SweepProgress
from annealbench.runner.run.provenance import environment
from annealbench.runner.suite.selection import select, suite_metrics
from annealbench.runner.launch.slurm import SlurmLauncher, SlurmParams
from annealbench.runner.suite.run_spec import RunSpec, check_unique, expand_eval, expand_tune, group_key
from annealbench.runner.suite.stale import check_changed, check_stale
from annealbench.runner.store.ledger import Ledger
from annealbench.runner.store.results_store import FINISHED, ResultsStore, stray_temporaries
from annealbench.runner.suite.suite import Suite, parse_seed_batch
from annealbench.runner.suite.validate import validate_suite
from annealbench.runner.run.wandb_logger import resolve_wandb_mode
from annealbench.common.metrics import METRICS_FILE

log = logging.getLogger(__name__)
LAUNCHERS = ("local", "slurm")
# The default time limit of one attempt, per preset: generous (a run rarely takes a tenth of
# it), so only a hung or pathologically slow run reaches it.
DEFAULT_RUN_TIMEOUT_S = {"smoke": 15 * 60.0, "quick": 4 * 3600.0, "paper": 72 * 3600.0}


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@dataclass(frozen=True)
class SweepOptions:
    """How to run a suite (what runs is the suite's business)."""

    out: Path
    workers: int = 0  # 0: one per CPU core
    launcher: str = "local"
    wandb: str = "offline"
    devices: int = 1
    strategy: str = "auto"
    accelerator: str = "auto"
    max_retries: int = 2  # a failed run is retried on later `annealbench run`s this many times
    seed_batch: int | str | None = None  # run groups (`auto` or N); None: the suite's choice
    lock_timeout_s: float = 0.0
    run_timeout_s: float | None = None  # None: DEFAULT_RUN_TIMEOUT_S of each run's preset
    rerun_stale: bool = False  # finished runs made by other code: run them again (annealbench.runner.suite.stale)
    accept_stale: bool = False  # ... or keep them; with neither, such runs stop the sweep
    rerun_changed: bool = False  # finished runs made with another configuration: run them again
    allow_incomplete_tuning: bool = False  # evaluate with what finished (`annealbench.runner.suite.selection`)
    keep_checkpoints: bool = False  # keep a finished run's checkpoints (deleted by default)
    slurm: SlurmParams = field(default_factory=SlurmParams)

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"launcher {self.launcher!r} is not one of {list(LAUNCHERS)}")
        for name in ("workers", "max_retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.devices < 1:
            raise ValueError(f"devices must be ≥ 1, got {self.devices}")
        if self.seed_batch is not None:
            parse_seed_batch(self.seed_batch)
        if self.run_timeout_s is not None and not self.run_timeout_s > 0:
            raise ValueError(f"run timeout must be > 0 seconds, got {self.run_timeout_s}")
        if self.rerun_stale and self.accept_stale:
            raise ValueError("rerun_stale and accept_stale exclude each other; choose one")

    def timeout_s(self, spec: RunSpec) -> float:
        """The wall-clock limit of one attempt of `spec`."""
        return self.run_timeout_s or DEFAULT_RUN_TIMEOUT_S[spec.preset]


@dataclass(frozen=True)
class SweepSummary:
    total: int
    counts: dict[str, int]
    skipped: int
    line: str
    cpu_utilisation: float | None = None  # CPU seconds / (wall seconds × cores); local pool only
    not_started: int = 0  # evaluation runs held back: their (task, configuration)'s tuning
    #                       did not complete (`annealbench.runner.suite.selection`)
    gated: tuple[tuple[str, str], ...] = ()  # those (task label, configuration)s


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have been waited for (the workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def plan(specs: list[RunSpec], store: ResultsStore, max_retries: int) -> tuple[list[RunSpec],
                                                                               Counter]:
    """The runs to start now, and the outcomes of those that stay as they are."""
    todo, kept = [], Counter()
    for spec in specs:
        folder = store.folder(spec)
        state = folder.state()
        if state in FINISHED:
            kept[state] += 1
        elif state == "failed" and folder.attempts() > max_retries:
            kept["failed"] += 1
        else:
            todo.append(spec)
    return todo, kept


def run_sweep(suite: Suite, options: SweepOptions) -> SweepSummary:
    """Run `suite` into `options.out`; every check happens before the first run starts."""
    validate_suite(suite)
    tune = expand_tune(suite)
    check_unique(tune, suite.source)
    prepare_data(suite)  # refuses absent data, or fetches it once: no run downloads
    store = ResultsStore(options.out)
    store.ensure_writable()
    with results_lock(store.root, timeout_s=options.lock_timeout_s):
        if not Ledger(store.root).open():  # else a detached SLURM task may be writing one now
            for leftover in stray_temporaries(store.root):  # from writes a kill interrupted
                leftover.unlink(missing_ok=True)
        check_stale(suite, tune, store, environment(), rerun=options.rerun_stale,
                    accept=options.accept_stale)
        check_changed(suite, tune, store, rerun=options.rerun_changed)
        compare_json = store.root / "compare.json"  # the question, recorded before any run
        if suite.compare is not None:
            atomic_write_json(compare_json, suite.compare.to_dict())
        else:
            compare_json.unlink(missing_ok=True)
        atomic_write_json(store.root / METRICS_FILE, suite_metrics(suite).to_dict())
        env = environment()
        gpus = visible_gpus() if options.accelerator != "cpu" and options.launcher == "local" else []
        workers = options.workers or default_workers(gpus, options.devices)
        run_options = RunOptions(wandb=resolve_wandb_mode(options.wandb), devices=options.devices,
                                 strategy=options.strategy, accelerator=options.accelerator,
                                 checkpoints=suite.checkpoints,
                                 keep_checkpoints=options.keep_checkpoints,
                                 threads=max(1, cpu_count() // workers))
        n_eval = len(suite.optimizers) * sum(len(suite.eval_seeds_of(t)) for t in suite.tasks)
        todo_tune, kept = plan(tune, store, options.max_retries)
        log.info("%s: %d tuning runs (%d to run), %d evaluation runs, %d workers × %d threads",
                 suite.name, len(tune), len(todo_tune), n_eval, workers, run_options.threads)
        if gpus:
            log.info("GPUs %s: each worker pinned to %d of them (CUDA_VISIBLE_DEVICES)",
                     ",".join(gpus), options.devices)
        seed_batch = suite.seed_batch if options.seed_batch is None else options.seed_batch
        launch = _launcher(options, workers, run_options, env, store,
                           worker_devices(gpus, workers, options.devices), seed_batch)
        wall0, cpu0 = time.perf_counter(), _cpu_seconds()
        with launch as runner, SweepProgress(suite.name, len(tune) + n_eval,
                                             already=kept) as progress:
            progress.stage("tune")
            runner(todo_tune, progress.event)
            chosen, doc = select(suite, store, tune,
                                 allow_incomplete=options.allow_incomplete_tuning)
            store.write_selection(doc)
            gated = tuple((c["task"], c["config"]) for c in doc["choices"] if c.get("skipped"))
            evals = evaluation_specs(suite, chosen, gated)
            check_unique(tune + evals, suite.source)
            todo_eval, kept_eval = plan(evals, store, options.max_retries)
            progress.counts.update(kept_eval)
            progress.stage("eval")
            runner(todo_eval, progress.event)
        # The pool is closed and its workers joined: their CPU time is in RUSAGE_CHILDREN.
        utilisation = None
        if options.launcher == "local":
            utilisation = (_cpu_seconds() - cpu0) / ((time.perf_counter() - wall0) * cpu_count())
        store.gather(tune + evals)
        if launch.slurm is not None:  # detached: the job that advances the sweep next
            launch.slurm.follow_up()
        skipped = sum(kept.values()) + sum(kept_eval.values())
        line = progress.summary(skipped, str(store.root))
        not_started = n_eval - len(evals)
        if gated:
            names = ", ".join(f"{task} {config}" for task, config in gated[:3])
            more = f" and {len(gated) - 3} more" if len(gated) > 3 else ""
            line += (f"; {not_started} evaluation runs not started, their tuning incomplete or "
                     f"every tuning run diverged: {names}{more} (why: "
                     f"{store.root / 'selection.json'}; --allow-incomplete-tuning evaluates with "
                     f"what finished)")
        if utilisation is not None:  # e.g. "190 % CPU of 2 cores": 95 % of the machine used
            line += f"; {100 * utilisation * cpu_count():.0f} % CPU of {cpu_count()} cores"
        return SweepSummary(total=len(tune) + len(evals), counts=dict(progress.counts),
                            skipped=skipped, line=line, cpu_utilisation=utilisation,
                            not_started=not_started, gated=gated)


def evaluation_specs(suite: Suite, chosen: dict[tuple[str, str], float],
                     gated: tuple[tuple[str, str], ...]) -> list[RunSpec]:
    """Stage `eval` without the (task, configuration)s whose tuning did not complete."""
    if not gated:
        return expand_eval(suite, chosen)
    held = set(gated)
    # `expand_eval` wants an lr for every tuned configuration: a gated one gets a stand-in from
    # its grid, and its runs are then dropped
    stand_in = {group_key(t, o): o.lr_grid[0] for t in suite.tasks for o in suite.optimizers}
    return [s for s in expand_eval(suite, {**stand_in, **chosen})
            if (s.task_label, s.config) not in held]


def default_workers(gpus: list[str], devices: int) -> int:
    """One worker per `devices` visible GPUs when CUDA is available, else per `devices` cores."""
    if gpus and cuda_available():
        return max(1, len(gpus) // devices)
    return max(1, cpu_count() // devices)


class _launcher:
    """A context manager yielding `runner(specs, on_event)` for the chosen launcher."""

    def __init__(self, options: SweepOptions, workers: int, run_options: RunOptions,
                 env: dict, store: ResultsStore, cuda_devices: list[str | None],
                 seed_batch: int | str = 1) -> None:
        self.options, self.workers, self.run_options = options, workers, run_options
        self.env, self.store, self.pool = env, store, None
        self.cuda_devices = cuda_devices
        self.seed_batch = seed_batch
        self.slurm = (SlurmLauncher(options.slurm, run_options, env, store.root, seed_batch,
                                    options.max_retries)
                      if options.launcher == "slurm" else None)

    def __enter__(self):
        if self.options.launcher == "local":
            self.pool = WorkerPool(self.workers, self.run_options.threads, self.env,
                                   log_dir=self.store.root / "logs",
                                   cuda_devices=self.cuda_devices)
        return self.run

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.close()

    def run(self, specs: list[RunSpec], on_event) -> None:
        runs = [Run(spec, self.store.folder(spec).path, self.options.timeout_s(spec))
                for spec in specs]
        if self.pool is not None:
            self.pool.run(make_jobs(runs, self.seed_batch, self.run_options), self.run_options,
                          on_event)
        else:  # job arrays, through the ledger (launch.slurm); detached: submitted, not awaited
            self.slurm.run(runs, on_event)
