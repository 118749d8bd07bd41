"""Errors for people: one line on the terminal, the whole traceback in a log file.

`bench` reports an error it raised on purpose (`SuiteError`, `StoreError`, `LockedError`) as
its message alone. Any other `ValueError` or `DatasetError` may come from deep inside a library,
so its full traceback is written to `$ANNEALBENCH_LOGS` (else `~/.cache/annealbench/logs`) and
the line says where. A run's own errors never get here: their tracebacks are in the run's
`FAILED` record (`bench status` shows the first line).
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


def save_traceback(err: BaseException, command: list[str]) -> Path | None:
    """Write `err`'s traceback (and the command) to a new file; None when that fails."""
    path = log_dir() / f"bench-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(err))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"$ python -m bench {' '.join(command)}\n{text}", encoding="utf-8")
    except OSError:
        return None
    return path


def error_line(err: BaseException, saved: Path | None) -> str:
    """`error: <message>` on one line, naming the traceback file when there is one."""
    message = " ".join(str(err).split()) or type(err).__name__
    return f"error: {message}" + (f" (traceback: {saved})" if saved else "")
