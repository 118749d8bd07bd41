"""A local pool of persistent worker processes (spawn context), one job at a time each.

Importing torch and Lightning costs seconds, so workers live for the whole sweep. Each worker
sets its torch thread count before importing torch, so `workers × threads` never exceeds the
cores. Each talks to the driver over its own pipe; a worker that dies (killed, out of memory)
is noticed through its process sentinel, its run is recorded as failed, and a fresh worker
takes its place. A job past its time limit (`Job.timeout_s`) has its worker killed the same way
and is recorded `failed` with reason `timeout`. Workers die with the driver (PR_SET_PDEATHSIG),
so a killed sweep leaves no orphan writing into the results directory. A run on several
devices runs in a process group of its own (`annealbench.runner.launch.processes.run_in_subprocess`), whose id its
worker sends the driver: a timeout, a worker's death or closing the pool kills that group along
with the worker, so no rank is left running (and each of its processes dies with its parent
too). Each worker starts a W&B service of its own (`own_wandb_service`): one inherited from the
driver's environment would outlive a killed worker and hold its W&B run. Each worker may be
pinned to its own GPU(s) through `CUDA_VISIBLE_DEVICES`, set before it
imports torch.

Ctrl-C belongs to the driver: workers start with SIGINT blocked and then ignore it (a terminal
sends it to the whole process group), and closing the pool while runs are in flight kills their
workers at once. Such runs keep neither DONE nor FAILED, so the next `annealbench run` starts them again
without counting a failed attempt.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable

from annealbench.runner.launch.processes import (die_with_parent, kill_process_group, own_wandb_service,
                                                   run_in_subprocess)
from annealbench.runner.run.execute import RunOptions
from annealbench.runner.run.job import Job, Run
from annealbench.runner.store.results_store import Outcome, RunFolder

log = logging.getLogger(__name__)
PROCESS_GROUP = "process_group"  # a worker's message: (PROCESS_GROUP, id of its run's group)


Event = Callable[[str, Run, Outcome | None], None]  # ("started" | "finished", run, outcome)


def _start_deaf_to_sigint(proc: Any) -> None:
    """Start `proc` with SIGINT blocked, so a Ctrl-C during its start-up cannot reach it (it
    ignores SIGINT once running); a SIGINT meanwhile waits for the driver, not lost."""
    if threading.current_thread() is not threading.main_thread():
        proc.start()
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        proc.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _worker_main(conn: Connection, threads: int, environment: dict[str, Any],
                 log_dir: Path | None, cuda_devices: str | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops its workers (module doc)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    die_with_parent()
    own_wandb_service()
    if cuda_devices is not None:  # before torch is imported: this worker's device(s) only
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_devices
    if log_dir is not None:  # library chatter goes to a file, not over the sweep's display
        fd = os.open(log_dir / f"worker-{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(threads)
    from annealbench.runner.run.execute import execute_job, quiet_lightning

    quiet_lightning()
    import annealbench.optimizers  # noqa: F401 - imported once per worker, not once per run
    import annealbench.tasks  # noqa: F401

    conn.send("ready")
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        job, options = message
        if options.devices > 1:  # a job of one run, in a process tree of its own
            conn.send([_run_multi_device(job.members[0], options, conn)])
        else:
            conn.send(execute_job(job, options, environment))


def _run_multi_device(job: Run, options: RunOptions, conn: Connection) -> Outcome:
    """A run on several devices runs in its own process tree (Lightning's DDP launcher), in a
    process group of its own whose id goes to the driver (`PROCESS_GROUP`)."""
    from annealbench.runner.store.atomic import read_json

    run_in_subprocess(job.spec, job.run_dir, options,
                      on_start=lambda pgid: conn.send((PROCESS_GROUP, pgid)))
    folder = RunFolder(job.run_dir)
    state = folder.state()
    if state in ("done", "diverged"):
        done = read_json(folder.done_file)
        return Outcome(state, max_steps=done["max_steps"],
                       diverged_step=float("nan") if done["diverged_step"] is None else done["diverged_step"],
                       wall_time_s=done["wall_time_s"])
    if state != "failed":
        folder.fail("the multi-device run exited without an outcome", {}, float("nan"))
    record = read_json(folder.failed_file)
    return Outcome("failed", error=record["error"], reason=record.get("reason", "error"))


class _Worker:
    def __init__(self, ctx: Any, threads: int, environment: dict[str, Any],
                 log_dir: Path | None, cuda_devices: str | None = None) -> None:
        self.conn, child = ctx.Pipe()
        self.cuda_devices = cuda_devices
        self.proc = ctx.Process(target=_worker_main,
                                args=(child, threads, environment, log_dir, cuda_devices),
                                daemon=True)
        _start_deaf_to_sigint(self.proc)
        child.close()
        self.job: Job | None = None
        self.started = 0.0  # time.monotonic() when `job` was sent
        self.group: int | None = None  # the process group of its multi-device run in flight

    def kill(self) -> None:
        """Kill the worker and its run's process group (ids it sent and not yet read: too)."""
        try:
            while self.conn.poll():
                _note(self, self.conn.recv())
        except (EOFError, OSError):
            pass
        self.proc.kill()
        self.proc.join()
        kill_process_group(self.group)
        self.group = None

    def overdue(self, now: float) -> bool:
        limit = self.job.timeout_s if self.job is not None else None
        return limit is not None and now - self.started > limit


class WorkerPool:
    """`size` persistent workers of `threads` torch threads each.

    `cuda_devices`, one entry per worker, pins each worker to its GPU(s) (`CUDA_VISIBLE_DEVICES`);
    None (or a None entry) leaves the worker the environment's devices.
    """

    def __init__(self, size: int, threads: int, environment: dict[str, Any],
                 log_dir: Path | None = None,
                 cuda_devices: list[str | None] | None = None) -> None:
        if size < 1:
            raise ValueError(f"workers must be ≥ 1, got {size}")
        self._devices = list(cuda_devices) if cuda_devices is not None else [None] * size
        if len(self._devices) != size:
            raise ValueError(f"cuda_devices names {len(self._devices)} workers, the pool has {size}")
        if log_dir is not None:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
        self._ctx = mp.get_context("spawn")
        self._threads, self._environment, self._log_dir = threads, environment, log_dir
        self._size = size
        self._workers: list[_Worker] = []  # started on the first run that has work

    def _spawn(self, cuda_devices: str | None) -> _Worker:
        return _Worker(self._ctx, self._threads, self._environment, self._log_dir, cuda_devices)

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker: idle ones finish, busy ones (only when `run` was left by an
        exception, e.g. Ctrl-C) are killed and their runs left to be started again."""
        for worker in self._workers:
            if worker.job is not None:
                log.debug("stopping the worker running %s", worker.job.spec.run_id)
                worker.kill()
                continue
            try:
                worker.conn.send(None)
            except (OSError, ValueError):
                pass
        for worker in self._workers:
            worker.proc.join(timeout=5)
            if worker.proc.is_alive():
                worker.proc.kill()
                worker.proc.join()
        self._workers = []

    def run(self, jobs: list[Job], options: RunOptions, on_event: Event) -> dict[str, Outcome]:
        """Run every job; returns the outcome per run id. Never raises for a failing run."""
        pending, outcomes = deque(jobs), {}
        if jobs and not self._workers:
            self._workers = [self._spawn(devices) for devices in self._devices]
        while pending or any(w.job for w in self._workers):
            for worker in self._workers:
                if worker.job is None and pending:
                    job = pending.popleft()
                    try:
                        worker.conn.send((job, options))
                    except OSError:  # died while idle: the job never started
                        pending.appendleft(job)
                        self._replace(worker)
                        continue
                    worker.job, worker.started = job, time.monotonic()
                    for member in job.members:
                        on_event("started", member, None)
            busy = [w for w in self._workers if w.job is not None]
            wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                 timeout=self._wait_s(busy))
            for worker in busy:
                outcome = self._collect(worker)
                if outcome is None and worker.overdue(time.monotonic()):
                    outcome = self._time_out(worker)
                if outcome is not None:
                    job, worker.job = worker.job, None
                    for member, each in zip(job.members, _each(outcome, job)):
                        outcomes[member.spec.run_id] = each
                        on_event("finished", member, each)
        return outcomes

    @staticmethod
    def _wait_s(busy: list[_Worker]) -> float:
        """Up to 1 s, less when a running job reaches its time limit sooner."""
        now = time.monotonic()
        limits = [w.started + w.job.timeout_s - now for w in busy if w.job.timeout_s is not None]
        return max(0.0, min([1.0, *limits]))

    def _time_out(self, worker: _Worker) -> Outcome:
        """Kill the worker of a run past its limit, record `failed: timeout`, start a fresh one."""
        job, wall = worker.job, time.monotonic() - worker.started
        error = (f"Timeout: {job.spec.run_id} ran past its limit of {job.timeout_s:g} s "
                 f"(--run-timeout) and was killed")
        log.warning(error)
        worker.kill()
        for member in job.members:
            self._record_failure(member, error, "timeout", wall)
        self._replace(worker)
        return Outcome("failed", wall_time_s=wall, error=error, reason="timeout")

    def _record_failure(self, job: Run, error: str, reason: str, wall_time_s: float) -> None:
        try:
            RunFolder(job.run_dir).fail(error, self._environment, wall_time_s, reason=reason)
        except OSError as err:
            log.error("could not record the failure of %s: %s", job.spec.run_id, err)

    def _collect(self, worker: _Worker) -> Outcome | None:
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                if _note(worker, message):
                    worker.group = None  # the worker has killed what was left of it
                    return message
        except (EOFError, OSError):
            pass
        if worker.proc.is_alive():
            return None
        kill_process_group(worker.group)  # the ranks of a run whose worker died
        worker.group = None
        code = worker.proc.exitcode
        job = worker.job
        error = (f"WorkerDied: the worker process running {job.spec.run_id} exited with code "
                 f"{code}" + (f" (signal {signal.Signals(-code).name})" if code and code < 0
                              else ""))
        log.warning(error)
        for member in job.members:
            self._record_failure(member, error, "worker_died", float("nan"))
        self._replace(worker)
        return Outcome("failed", error=error, reason="worker_died")

    def _replace(self, worker: _Worker) -> None:
        fresh = self._spawn(worker.cuda_devices)
        worker.conn, worker.proc, worker.group = fresh.conn, fresh.proc, None


def _note(worker: _Worker, message: Any) -> bool:
    """Keep what `message` says about `worker`'s run; True when it is a run's outcome."""
    if isinstance(message, tuple) and len(message) == 2 and message[0] == PROCESS_GROUP:
        worker.group = message[1]
    return isinstance(message, list)


def _each(outcome: Outcome | list[Outcome], job: Job) -> list[Outcome]:
    """One outcome per member (a worker's death is every member's failure)."""
    return outcome if isinstance(outcome, list) else [outcome] * len(job.members)
