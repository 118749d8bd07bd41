"""Which way each metric points: the tasks' declarations, as the runner recorded them.

`annealbench run` writes `DIR/metrics.json` (`annealbench.common.metrics`) before any run. A store written before
that file existed is read with the declarations of the metrics every task of this project logs
under the same names (`STANDARD`), and the report says so; any other metric of such a store is
refused rather than guessed.
"""

from __future__ import annotations

import json
from pathlib import Path

from annealbench.common.metrics import ACCURACY, METRICS_FILE, Declarations, Metric, MetricError, split_name

STANDARD: dict[str, Metric] = {m.name: m for m in (
    Metric("loss", "lower", "the task's loss"), ACCURACY, Metric("gap", "lower", "optimality gap"),
    Metric("ppl", "lower", "perplexity"), Metric("bpc", "lower", "bits per character"))}


def declarations(root: Path, task_names: list[str], notes: list[str]) -> Declarations:
    """`ROOT/metrics.json`, or the standard declarations for `task_names` (with a note)."""
    path = Path(root) / METRICS_FILE
    if path.is_file():
        try:
            return Declarations.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, MetricError) as err:
            raise MetricError(f"{path}: {err}") from None
    notes.append(f"The store has no {METRICS_FILE} (it predates metric declarations): the direction of "
                 f"{', '.join(sorted(STANDARD))} is the one every task of this project declares; rerun "
                 f"`annealbench run SUITE --out {root}` to record the tasks' own declarations.")
    return Declarations.of({t: STANDARD.values() for t in task_names})


def endpoint(declared: Declarations, task_names: list[str], metric: str) -> Metric:
    """The declaration of `metric` shared by every task of the store (MetricError otherwise)."""
    split_name(metric)
    return declared.common(task_names, metric)


def describe(metric: str, declared: Metric) -> str:
    """`test/loss (nats per label; lower is better)`: an axis label or a table heading."""
    units = f"{declared.units}; " if declared.units else ""
    return f"{metric} ({units}{declared.better} is better)"
