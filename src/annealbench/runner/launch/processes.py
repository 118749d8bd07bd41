"""Child processes that never outlive their run: parent-death signals, process groups, and a
multi-device run as a process tree of its own."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from annealbench.runner.run.execute import RunOptions
from annealbench.runner.store.results_store import RunFolder
from annealbench.runner.suite.run_spec import RunSpec

_PR_SET_PDEATHSIG = 1
LAUNCHER_PID = "ANNEALBENCH_LAUNCHER_PID"  # the worker a multi-device run must die with


def die_with_parent(parent: int | None = None) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies; poll as a fallback.

    `parent`: the pid the parent must have (None: the present one); a process whose parent has
    already changed from it exits at once."""
    parent = os.getppid() if parent is None else parent
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:
        os._exit(1)


WANDB_SERVICE = "WANDB_SERVICE"  # W&B's token for a service process to share (wandb.env.SERVICE)


def own_wandb_service() -> None:
    """Make this worker start a W&B service of its own, not join one it inherited.

    A process that used W&B (a notebook, a test session, a driver) exports `WANDB_SERVICE`, and
    every process started from it then shares that process's W&B service. That service outlives
    a killed worker and keeps the worker's W&B run open for a while, so the run's next attempt,
    which reuses the run id, was refused ("run ID … is in use") and recorded failed."""
    os.environ.pop(WANDB_SERVICE, None)


def kill_process_group(pgid: int | None) -> None:
    """SIGKILL every process of the process group `pgid` (none left: nothing to do)."""
    if pgid is None:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_in_subprocess(spec: RunSpec, run_dir: Path, options: RunOptions,
                      on_start: Callable[[int], None] | None = None) -> None:
    """Run one multi-device run as its own `annealbench run-one` (Lightning's DDP launcher
    starts the other ranks by re-running that command), in a process group of its own.

    `on_start` is told the group's id as soon as the command starts (the pool's driver kills
    the group with a run it times out). When the command's first process exits, however it
    exits (or this function is left by an exception), whatever is left of the group — ranks
    still running, waiting in a collective for a rank that died — is killed, before the first
    process is reaped, so the group's id cannot have been reused.
    """
    RunFolder(run_dir).start(spec, keep_checkpoints=options.checkpoints)
    proc = subprocess.Popen([sys.executable, "-m", "annealbench", "run-one", str(run_dir), "--wandb",
                             options.wandb, "--devices", str(options.devices), "--strategy",
                             options.strategy, "--accelerator", options.accelerator],
                            stdout=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, LAUNCHER_PID: str(os.getpid())})
    try:
        if on_start is not None:
            on_start(proc.pid)
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
    finally:
        kill_process_group(proc.pid)
        proc.wait()
