"""Stage `tune` → one learning rate per (task, configuration), and the record of why.

The selection metric is one the suite's tasks declare (`annealbench.common.metrics`), on the validation
split, and it is optimised in its declared direction: lowest `val/loss`, highest `val/acc`.

Stage gating: a (task, configuration) is evaluated only when its tuning is complete — every
tuning run finished (done or diverged) — and not every one of them diverged. Otherwise its
choice in `selection.json` has `"lr": null` and `"skipped"` says why, and no evaluation run of it
starts. `allow_incomplete` (`annealbench run --allow-incomplete-tuning`) evaluates it anyway with what
finished (a run that did not finish counts as +inf; when none gives a value, the smallest lr),
and its choice records `"allowed_incomplete"` with the same reason. A configuration with one lr
has no tuning stage and is never gated.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any

import numpy as np

from annealbench.runner.store.atomic import read_parquet
from annealbench.runner.errors import SuiteError
from annealbench.runner.suite.run_spec import RunSpec, group_key
from annealbench.runner.store.results_store import FINISHED, ResultsStore
from annealbench.runner.suite.suite import Selection, Suite
from annealbench.common.metrics import Declarations, Metric, MetricError
from annealbench.common.store_schema import task_label

log = logging.getLogger(__name__)
# The states of a tuning run that did not finish, as a reason names them.
UNFINISHED_WORDS = {"failed": "failed", "unfinished": "interrupted", "missing": "never started"}


def suite_metrics(suite: Suite) -> Declarations:
    """The metric declarations of the suite's tasks (what `DIR/metrics.json` records)."""
    from annealbench.tasks import declared_metrics

    return Declarations.of({t.name: declared_metrics(t.name) for t in suite.tasks})


def selection_metric(suite: Suite) -> Metric:
    """The declaration of the suite's selection metric: declared by every task, one direction,
    on the validation split (selecting on `test/...` would let the test split choose the lr)."""
    metric = suite.selection.metric
    try:
        declared = suite_metrics(suite).common([t.name for t in suite.tasks], metric)
    except MetricError as err:
        raise SuiteError(suite.source, "selection.metric", str(err)) from None
    if not metric.startswith("val/"):
        raise SuiteError(suite.source, "selection.metric",
                         f"must be a validation metric (val/NAME), got {metric!r}: the test split "
                         f"is kept for the verdicts")
    return declared


def final_value(store: ResultsStore, spec: RunSpec, metric: str) -> float:
    """The last logged value of `metric` of a finished run; +inf when diverged or failed, NaN
    when a finished run did not log it."""
    folder = store.folder(spec)
    if folder.state() != "done":
        return math.inf
    rows = read_parquet(folder.metrics_file)
    rows = rows[rows["metric"] == metric]
    if rows.empty:
        return math.nan
    value = float(rows.sort_values("step", kind="stable")["value"].iloc[-1])
    return value if math.isfinite(value) else math.inf


def score(values: list[float], rule: Selection, sign: float = 1.0) -> float:
    """The rule's statistic of sign·value over the tuning seeds (lower is better); a diverged or
    failed run (+inf) is the worst outcome whichever way the metric points."""
    oriented = [v if math.isinf(v) else sign * v for v in values]
    if not oriented:
        return math.inf
    return float(np.median(oriented) if rule.statistic == "median" else np.mean(oriented))


def tuning_problem(states: dict[str, str], scores: dict[float, float]) -> str | None:
    """Why a tuning stage cannot choose an lr (`states`: the state of each of its runs by run
    id; `scores`: each lr's score); None when it can."""
    unfinished = Counter(state for state in states.values() if state not in FINISHED)
    if unfinished:
        what = ", ".join(f"{n} {UNFINISHED_WORDS.get(state, state)}"
                         for state, n in sorted(unfinished.items()))
        return (f"{sum(unfinished.values())} of its {len(states)} tuning runs did not finish "
                f"({what}); the next `annealbench run` retries them (a failed one up to --max-retries "
                f"times)")
    if all(math.isinf(s) for s in scores.values()):
        return (f"every one of its {len(states)} tuning runs diverged: no lr of the grid gave "
                f"a finite value (move the grid toward smaller lrs)")
    return None


def select(suite: Suite, store: ResultsStore, tune: list[RunSpec], *,
           allow_incomplete: bool = False) -> tuple[dict[tuple[str, str], float], dict[str, Any]]:
    """The chosen lr per (task label, configuration) that may be evaluated, and the
    `selection.json` document (every (task, configuration), the skipped ones with `lr` null and
    the reason under `skipped`; see the module docstring)."""
    chosen: dict[tuple[str, str], float] = {}
    entries = []
    declared = selection_metric(suite)
    sign, metric = declared.sign, suite.selection.metric
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
            finals = {s.run_id: final_value(store, s, metric) for s in runs}
            values = {lr: [finals[s.run_id] for s in runs if s.lr == lr] for lr in opt.lr_grid}
            unlogged = [run_id for run_id, v in finals.items() if math.isnan(v)]
            if unlogged:
                raise SuiteError(suite.source, "selection.metric",
                                 f"{len(unlogged)} finished tuning run(s) did not log {metric!r}, "
                                 f"e.g. {unlogged[0]}")
            scores = {lr: score(v, suite.selection, sign) for lr, v in values.items()}
            best = min(opt.lr_grid, key=lambda lr: (scores[lr], lr))
            states = {s.run_id: store.folder(s).state() for s in runs}
            incomplete = [run_id for run_id, state in states.items() if state not in FINISHED]
            recorded = {repr(lr): (None if math.isinf(s) else sign * s) for lr, s in scores.items()}
            problem = tuning_problem(states, scores)
            if problem is not None and not allow_incomplete:
                log.warning("%s %s: evaluation skipped: %s; --allow-incomplete-tuning evaluates "
                            "it with what finished", key[0], key[1], problem)
                entries.append({**entry, "lr": None, "skipped": problem, "at_grid_edge": False,
                                "incomplete": incomplete, "scores": recorded})
                continue
            if problem is not None:
                log.warning("%s %s: evaluated at lr %g despite its tuning (--allow-incomplete-"
                            "tuning): %s", key[0], key[1], best, problem)
            # The best lr at an end of the grid may not be the best lr: the grid is too narrow.
            at_edge = (best == opt.lr_grid[0] or best == opt.lr_grid[-1]) and math.isfinite(scores[best])
            if at_edge:
                log.warning("%s %s: the selected lr %g is at the end of the grid %s; the grid "
                            "may not contain the best lr (widen it)", key[0], key[1], best,
                            list(opt.lr_grid))
            chosen[key] = best
            entries.append({**entry, "lr": best, "at_grid_edge": at_edge, "incomplete": incomplete,
                            **({"allowed_incomplete": problem} if problem is not None else {}),
                            "scores": recorded})
    doc = {"suite": suite.name, "rule": suite.selection.describe(declared.better),
           "metric": metric, "direction": declared.better, "statistic": suite.selection.statistic,
           "tuning_seeds": list(suite.tune_seeds), "evaluation_seeds": list(suite.eval_seeds),
           "allow_incomplete_tuning": allow_incomplete,
           **({"evaluation_seeds_per_task": {task_label(t.name, t.overrides): list(t.eval_seeds)
                                             for t in suite.tasks if t.eval_seeds}}
              if any(t.eval_seeds for t in suite.tasks) else {}),
           "choices": entries}
    return chosen, doc
