"""Errors for people: one line on the terminal, the whole traceback in a log file.

The `annealbench` command reports an error it raised on purpose as its message alone. An error that may come from deep inside a library has its full traceback
written to `$ANNEALBENCH_LOGS` (else `~/.cache/annealbench/logs`) and the line says where. A
run's own errors never get here: their tracebacks are in the run's `FAILED` record (`annealbench
status` shows the first line). Also here, because the runner and the analysis both need it: whether a process
recorded by pid (a lock's holder, a report's staging folder) is still alive.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path


def log_dir() -> Path:
    """`$ANNEALBENCH_LOGS`, else `~/.cache/annealbench/logs` (beside the data cache)."""
    configured = os.environ.get("ANNEALBENCH_LOGS")
    return Path(configured) if configured else Path("~/.cache/annealbench/logs").expanduser()


def save_traceback(err: BaseException, command: list[str], program: str = "annealbench") -> Path | None:
    """Write `err`'s traceback (and the command `python -m PROGRAM ...`) to a new file; None when
    that fails."""
    path = log_dir() / f"{program}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(err))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"$ annealbench {' '.join(command)}\n{text}", encoding="utf-8")
    except OSError:
        return None
    return path


def error_line(err: BaseException, saved: Path | None) -> str:
    """`error: <message>` on one line, naming the traceback file when there is one."""
    message = " ".join(str(err).split()) or type(err).__name__
    return f"error: {message}" + (f" (traceback: {saved})" if saved else "")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (a process of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
