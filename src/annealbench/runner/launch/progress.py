"""The live display of a sweep: runs done / running / failed and the ETA, then one line."""

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
    """Counts outcomes; draws a rich bar on a terminal and logs every 10 % otherwise."""

    def __init__(self, suite: str, total: int, *, already: Counter | None = None) -> None:
        self.suite, self.total = suite, total
        self.counts: Counter = Counter(already or {})
        self.running = 0
        self.started = time.perf_counter()
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
        self._next_log = 0.1

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
        if not self._console.is_terminal and self.total and \
                self.finished / self.total >= self._next_log:
            log.info("%s: %d/%d runs finished (%d failed)", self.suite, self.finished,
                     self.total, self.counts["failed"])
            self._next_log += 0.1

    def summary(self, skipped: int, out: str) -> str:
        c = self.counts
        return (f"{self.suite}: {self.total} runs — {c['done']} done, {c['diverged']} diverged, "
                f"{c['failed']} failed ({skipped} finished earlier) in "
                f"{time.perf_counter() - self.started:.1f} s; results in {out}")
