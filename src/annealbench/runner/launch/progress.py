"""The live display of a sweep: runs done / running / failed, the rate and the ETA, then one line.

On a terminal a rich bar redraws in place. Elsewhere (a SLURM job's log, CI, `make bench | tee`)
a line is logged each time another tenth of the runs has finished, or a minute has passed with
progress: runs finished of all, failures, the rate of this session (runs per minute, so a
resumed sweep's earlier runs do not inflate it) and the time left at that rate.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from annealbench.runner.run.job import Run
from annealbench.runner.store.results_store import Outcome

log = logging.getLogger(__name__)


class SweepProgress:
    """Counts outcomes; draws a rich bar on a terminal and logs a line otherwise (`LOG_EVERY`
    of the runs or `LOG_EVERY_S` seconds, whichever comes first)."""

    LOG_EVERY, LOG_EVERY_S = 0.1, 60.0

    def __init__(self, suite: str, total: int, *, already: Counter | None = None,
                 clock: Any = time.perf_counter) -> None:
        self.suite, self.total = suite, total
        self.counts: Counter = Counter(already or {})
        self._earlier = self.finished  # finished before this session
        self.running = 0
        self._clock = clock
        self.started = clock()
        self._console = Console(stderr=True)
        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                             MofNCompleteColumn(),
                             TextColumn("running {task.fields[running]} · failed "
                                        "{task.fields[failed]} · diverged {task.fields[diverged]}"),
                             TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                             console=self._console, disable=not self._console.is_terminal)
        self._task = self._bar.add_task(suite, total=total, completed=self.finished, running=0,
                                        failed=self.counts["failed"],
                                        diverged=self.counts["diverged"])
        self._next_log = self.finished / total + self.LOG_EVERY if total else 1.0
        self._logged_at, self._logged_count = self.started, self.finished

    @property
    def finished(self) -> int:
        return sum(self.counts.values())

    def __enter__(self) -> "SweepProgress":
        self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bar.stop()

    def stage(self, name: str) -> None:
        self._bar.update(self._task, description=f"{self.suite} · {name}")

    def event(self, kind: str, job: Run, outcome: Outcome | None) -> None:
        if kind == "started":
            self.running += 1
        else:
            self.running -= 1
            self.counts[outcome.status] += 1
        self._bar.update(self._task, completed=self.finished, running=self.running,
                         failed=self.counts["failed"], diverged=self.counts["diverged"])
        if not self._console.is_terminal and outcome is not None:
            self._maybe_log()

    def _maybe_log(self) -> None:
        now = self._clock()
        due = self.total and self.finished / self.total >= self._next_log
        if due or (now - self._logged_at >= self.LOG_EVERY_S and self.finished > self._logged_count):
            log.info("%s", self.line(now))
            self._logged_at, self._logged_count = now, self.finished
            while self.total and self.finished / self.total >= self._next_log:
                self._next_log += self.LOG_EVERY

    def line(self, now: float | None = None) -> str:
        """`quick: 396/1980 runs finished (20%), 2 failed · 61.3 runs/min · ETA 25 min 50 s`."""
        now = self._clock() if now is None else now
        done_here, elapsed = self.finished - self._earlier, max(now - self.started, 1e-9)
        pct = 100.0 * self.finished / self.total if self.total else 100.0
        text = (f"{self.suite}: {self.finished}/{self.total} runs finished ({pct:.0f}%), "
                f"{self.counts['failed']} failed, {self.running} running")
        if done_here <= 0:
            return text + " · ETA unknown (no run finished yet in this session)"
        rate = done_here / elapsed  # runs per second in this session
        left = max(self.total - self.finished, 0) / rate
        return text + f" · {60.0 * rate:.1f} runs/min · ETA {duration(left)}"

    def summary(self, skipped: int, out: str) -> str:
        c = self.counts
        return (f"{self.suite}: {self.total} runs — {c['done']} done, {c['diverged']} diverged, "
                f"{c['failed']} failed ({skipped} finished earlier) in "
                f"{time.perf_counter() - self.started:.1f} s; results in {out}")


def duration(seconds: float) -> str:
    """`42 s`, `25 min 50 s`, `3 h 05 min`."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
