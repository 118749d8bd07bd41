"""Step progress of one run outside a sweep (`annealbench train`): a paper-preset run trains for
hours, and its user must see that it moves.

On a terminal, Lightning's own progress bar draws it (`RunOptions.interactive`). Elsewhere (a
batch job's log) `StepProgress` logs a line each time another `EVERY` of the steps is done, or
`EVERY_S` seconds have passed: the step, the rate and the time left at that rate.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pytorch_lightning import Callback

log = logging.getLogger(__name__)


class StepProgress(Callback):
    EVERY, EVERY_S = 0.1, 300.0

    def __init__(self, name: str, clock: Any = time.perf_counter) -> None:
        self.name, self._clock = name, clock
        self._start_step = None
        self._started = self._last = 0.0
        self._next = 0.0

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._start_step = trainer.global_step  # a resumed run starts past 0
        self._started = self._last = self._clock()
        self._next = trainer.global_step / max(trainer.max_steps, 1) + self.EVERY

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        step, total, now = trainer.global_step, max(trainer.max_steps, 1), self._clock()
        if step / total < self._next and now - self._last < self.EVERY_S and step < total:
            return
        while step / total >= self._next:
            self._next += self.EVERY
        self._last = now
        log.info("%s", self.line(step, total, now))

    def line(self, step: int, total: int, now: float) -> str:
        """`run: step 500/10000 (5%) · 41.2 steps/s · ETA 3 min 50 s`."""
        from annealbench.runner.launch.progress import duration

        done, elapsed = step - (self._start_step or 0), max(now - self._started, 1e-9)
        text = f"{self.name}: step {step}/{total} ({100.0 * step / total:.0f}%)"
        if done <= 0:
            return text
        rate = done / elapsed
        return text + f" · {rate:.1f} steps/s · ETA {duration((total - step) / rate)}"
