"""Stage `tune` → one learning rate per (task, configuration), and the record of why."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from bench.atomic import read_parquet
from bench.spec import RunSpec, group_key
from bench.store import FINISHED, ResultsStore
from bench.suite import Selection, Suite

log = logging.getLogger(__name__)


def final_value(store: ResultsStore, spec: RunSpec, metric: str) -> float:
    """The last logged value of `metric` of a finished run; +inf when diverged, failed or absent."""
    folder = store.folder(spec)
    if folder.state() != "done":
        return math.inf
    rows = read_parquet(folder.metrics_file)
    rows = rows[rows["metric"] == metric]
    if rows.empty:
        return math.inf
    value = float(rows.sort_values("step", kind="stable")["value"].iloc[-1])
    return value if math.isfinite(value) else math.inf


def score(values: list[float], rule: Selection) -> float:
    if not values:
        return math.inf
    return float(np.median(values) if rule.statistic == "median" else np.mean(values))


def select(suite: Suite, store: ResultsStore,
           tune: list[RunSpec]) -> tuple[dict[tuple[str, str], float], dict[str, Any]]:
    """The chosen lr per (task label, configuration) and the `selection.json` document."""
    chosen: dict[tuple[str, str], float] = {}
    entries = []
    for task in suite.tasks:
        for opt in suite.optimizers:
            key = group_key(task, opt)
            runs = [s for s in tune if (s.task_label, s.config) == key]
            entry: dict[str, Any] = {"task": key[0], "config": key[1], "optimizer": opt.name,
                                     "grid": list(opt.lr_grid), "tuned": len(opt.lr_grid) > 1}
            if not entry["tuned"]:
                chosen[key] = opt.lr_grid[0]
                entries.append({**entry, "lr": opt.lr_grid[0], "scores": {}, "incomplete": []})
                continue
            scores = {lr: score([final_value(store, s, suite.selection.metric)
                                 for s in runs if s.lr == lr], suite.selection) for lr in opt.lr_grid}
            best = min(opt.lr_grid, key=lambda lr: (scores[lr], lr))
            incomplete = [s.run_id for s in runs if store.folder(s).state() not in FINISHED]
            if incomplete:
                log.warning("%s %s: %d tuning runs did not finish; they count as +inf",
                            key[0], key[1], len(incomplete))
            if math.isinf(scores[best]):
                log.warning("%s %s: every tuning run diverged or failed; using the smallest lr",
                            key[0], key[1])
            # The best lr at an end of the grid may not be the best lr: the grid is too narrow.
            at_edge = (best == opt.lr_grid[0] or best == opt.lr_grid[-1]) and math.isfinite(scores[best])
            if at_edge:
                log.warning("%s %s: the selected lr %g is at the end of the grid %s; the grid "
                            "may not contain the best lr (widen it)", key[0], key[1], best,
                            list(opt.lr_grid))
            chosen[key] = best
            entries.append({**entry, "lr": best, "at_grid_edge": at_edge, "incomplete": incomplete,
                            "scores": {repr(lr): (None if math.isinf(s) else s)
                                       for lr, s in scores.items()}})
    doc = {"suite": suite.name, "rule": suite.selection.describe(),
           "metric": suite.selection.metric, "statistic": suite.selection.statistic,
           "tuning_seeds": list(suite.tune_seeds), "evaluation_seeds": list(suite.eval_seeds),
           "choices": entries}
    return chosen, doc
