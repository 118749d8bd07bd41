"""A Lightning logger that keeps every logged scalar as a tidy row (step, metric, value).

Rows also travel inside Lightning checkpoints (through `RowsInCheckpoint`), so a run resumed
from its last checkpoint keeps the rows logged before the interruption and logs none twice.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from pytorch_lightning import Callback
from pytorch_lightning.loggers.logger import Logger
from pytorch_lightning.utilities import rank_zero_only

_SKIPPED = {"epoch"}  # Lightning's own bookkeeping, not a metric of the run


class TidyLogger(Logger):
    """Collects rows in memory; the runner writes them to `metrics.parquet` at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, str, float]] = []

    @property
    def name(self) -> str:
        return "tidy"

    @property
    def version(self) -> str:
        return "0"

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        return None  # the run spec is stored whole in spec.json

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for name, value in metrics.items():
            if name in _SKIPPED:
                continue
            self.rows.append((int(step or 0), str(name), float(value)))

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=["step", "metric", "value"])
        return frame.astype({"step": "int64", "metric": "str", "value": "float64"})

    def final(self) -> dict[str, float]:
        """The last logged value of each metric (non-finite values kept as strings for JSON)."""
        last: dict[str, float] = {}
        for _, name, value in self.rows:
            last[name] = value if math.isfinite(value) else str(value)
        return last


class RowsInCheckpoint(Callback):
    """Puts the logger's rows into Lightning checkpoints and restores them on resume."""

    def __init__(self, logger: TidyLogger) -> None:
        self.logger = logger

    def state_dict(self) -> dict[str, Any]:
        return {"rows": list(self.logger.rows)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.logger.rows = [tuple(r) for r in state_dict["rows"]]
