"""One `annealbench run` per results directory: an OS file lock plus a note of who holds it.

The lock is `fcntl.flock` through `filelock`, so the kernel drops it when its holder dies; the
note `DIR/.lock.owner` (pid, host, start time) lets a refusal name the live holder and lets the
next run say that it took over from a dead one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from annealbench.runner.store.atomic import atomic_write_json
from annealbench.runner.errors import LockedError
from annealbench.common.errorlog import pid_alive

log = logging.getLogger(__name__)


def _owner(root: Path) -> dict:
    try:
        return json.loads((root / ".lock.owner").read_text())
    except (OSError, ValueError):
        return {}


def _holder(root: Path) -> str:
    owner = _owner(root)
    return (f"pid {owner.get('pid')} on {owner.get('host')} since {owner.get('started')}"
            if owner else "another process")


def _acquire(lock: FileLock, root: Path, timeout_s: float) -> None:
    """Take the lock at once, or say whom it waits for and wait `timeout_s` (inf: for ever)."""
    try:
        lock.acquire(timeout=0)
        return
    except Timeout:
        if timeout_s == 0:
            raise LockedError(f"results directory {root} is in use by {_holder(root)}; wait for "
                              f"it to finish, use another --out, or --wait-lock SECONDS") from None
    how_long = "for ever" if math.isinf(timeout_s) else f"up to {timeout_s:g} s"
    log.warning("results directory %s is in use by %s; waiting %s for it to finish (Ctrl-C stops)",
                root, _holder(root), how_long)
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        raise LockedError(f"results directory {root} is still in use by {_holder(root)} after "
                          f"{timeout_s:g} s; wait for it to finish or use another --out") from None


@contextmanager
def results_lock(root: Path, *, timeout_s: float = 0.0) -> Iterator[None]:
    """Hold `DIR/.lock` for the duration; wait up to `timeout_s` seconds (`inf`: for ever, saying
    whom for), then raise `LockedError` naming the holder."""
    if not timeout_s >= 0:
        raise ValueError(f"a lock wait must be ≥ 0 seconds (inf: for ever), got {timeout_s!r}")
    root = Path(root)
    lock = FileLock(str(root / ".lock"))
    _acquire(lock, root, timeout_s)
    try:
        previous = _owner(root)
        if previous and previous.get("host") == socket.gethostname() \
                and not pid_alive(int(previous.get("pid", 0))):
            log.warning("took over the lock on %s from pid %s, which is no longer running",
                        root, previous.get("pid"))
        atomic_write_json(root / ".lock.owner", {"pid": os.getpid(), "host": socket.gethostname(),
                                                 "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
        yield
    finally:
        (root / ".lock.owner").unlink(missing_ok=True)
        lock.release()
