"""Convergence curves on a shared step grid, pointwise bands, and per-run endpoints.

Notation: configuration c, seed s, grid step t_j; `values[c, s, j]` is the metric of run (c, s)
at t_j. Runs logged at other steps are linearly interpolated onto the grid (never extrapolated:
beyond a run's last finite value, e.g. after divergence, the grid holds NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from annealbench.analysis.load import Store, StoreError

FINAL_LAST_K = 3  # the final value is the mean of the last 3 evaluations of a completed run


@dataclass(frozen=True)
class TaskCurves:
    """All eval-stage curves of one task for one metric."""

    task: str
    metric: str
    steps: np.ndarray  # (G,) shared grid, increasing
    configs: tuple[str, ...]  # (C,)
    seeds: np.ndarray  # (S,) seed numbers, increasing
    values: np.ndarray  # (C, S, G) metric values, NaN where no value exists
    status: np.ndarray  # (C, S) "done", "diverged", "failed" or "missing"
    max_steps: int  # the budget τ

    def index(self, config: str) -> int:
        try:
            return self.configs.index(config)
        except ValueError:
            raise ValueError(f"configuration {config!r} was not run on task {self.task!r}; "
                             f"configurations: {', '.join(self.configs)}") from None


def eval_runs(store: Store) -> pd.DataFrame:
    """The eval-stage runs; one learning rate per (task, config) or StoreError."""
    runs = store.runs[store.runs["stage"] == "eval"]
    if runs.empty:
        raise StoreError(f"{store.root / 'runs.parquet'}: no eval-stage runs; the comparisons "
                         f"use stage == 'eval' (stages present: {sorted(set(store.runs['stage']))})")
    lrs = runs.groupby(["task", "config"])["lr"].nunique()
    several = lrs[lrs > 1]
    if len(several):
        raise StoreError(f"{store.root / 'runs.parquet'}: eval stage has several learning rates for "
                         f"{[f'{t} {c}' for t, c in several.index[:5]]}; expected one per (task, config)")
    dup = runs.duplicated(["task", "config", "seed"])
    if dup.any():
        raise StoreError(f"{store.root / 'runs.parquet'}: (task, config, seed) repeated in the eval stage")
    return runs


def _align(grid: np.ndarray, steps: np.ndarray, values: np.ndarray) -> np.ndarray:
    finite = np.isfinite(values)
    if not finite.any():
        return np.full(grid.size, np.nan)
    if steps.size == grid.size and np.array_equal(steps, grid):
        return np.where(finite, values, np.nan)
    return np.interp(grid, steps[finite], values[finite], left=np.nan, right=np.nan)


def _by_run(rows: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """run_id → (steps, values) sorted by step, split with numpy (a pandas groupby is ~10× slower)."""
    codes, names = pd.factorize(rows["run_id"])
    steps, values = rows["step"].to_numpy(), rows["value"].to_numpy()
    order = np.lexsort((steps, codes))
    codes, steps, values = codes[order], steps[order], values[order]
    cuts = np.flatnonzero(np.diff(codes)) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, codes.size]
    return {str(names[codes[a]]): (steps[a:b], values[a:b]) for a, b in zip(starts, ends) if b > a}


def task_curves(store: Store, metric: str) -> dict[str, TaskCurves]:
    """Eval-stage curves of `metric` per task, aligned on each task's grid (union of logged steps)."""
    runs = eval_runs(store)
    rows = store.results[store.results["metric"] == metric]
    if rows.empty:
        metrics = sorted(store.results["metric"].unique())
        raise ValueError(f"metric {metric!r} is not in the store; metrics logged: {metrics}")
    by_run = _by_run(rows[rows["run_id"].isin(runs["run_id"])])
    out = {}
    for task, truns in runs.groupby("task", sort=True):
        configs = tuple(sorted(truns["config"].unique()))
        seeds = np.array(sorted(truns["seed"].unique()))
        logged = [by_run[r][0] for r in truns["run_id"] if r in by_run]
        grid = np.unique(np.concatenate(logged)) if logged else np.zeros(0, np.int64)
        values = np.full((len(configs), seeds.size, grid.size), np.nan)
        status = np.full((len(configs), seeds.size), "missing", dtype=object)
        cidx = {c: i for i, c in enumerate(configs)}
        sidx = {s: i for i, s in enumerate(seeds)}
        for rid, config, seed, st in truns[["run_id", "config", "seed", "status"]].itertuples(index=False):
            c, s = cidx[config], sidx[seed]
            status[c, s] = st
            if rid in by_run:
                values[c, s] = _align(grid, *by_run[rid])
        out[task] = TaskCurves(task=task, metric=metric, steps=grid, configs=configs, seeds=seeds,
                               values=values, status=status, max_steps=int(truns["max_steps"].max()))
    return out


def pointwise_band(values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (axis −2) and a pointwise t-interval: mean ± t_{(1+level)/2, n−1}·sd/√n.

    Pointwise: each step's interval holds its level alone, not simultaneously over steps.
    With fewer than two finite seeds at a step the band is NaN there.
    """
    finite = np.isfinite(values)
    n = finite.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(np.where(finite, values, 0.0), axis=-2) / n
        dev = np.where(finite, values - np.expand_dims(mean, -2), 0.0)
        sd = np.sqrt((dev ** 2).sum(axis=-2) / (n - 1))
        half = stats.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    mean = np.where(n >= 1, mean, np.nan)
    return mean, mean - half, mean + half


def final_values(curves: TaskCurves, last_k: int = FINAL_LAST_K) -> np.ndarray:
    """(C, S) mean of the last `last_k` finite evaluations of each completed run; NaN otherwise."""
    out = np.full(curves.status.shape, np.nan)
    for c, s in zip(*np.nonzero(curves.status == "done")):
        v = curves.values[c, s]
        v = v[np.isfinite(v)]
        if v.size:
            out[c, s] = v[-last_k:].mean()
    return out


def normalised_auc(curves: TaskCurves) -> np.ndarray:
    """(C, S) area under the curve over log(step), divided by log(τ) − log(t_0); NaN unless done.

    Steps ≤ 0 are left out (log undefined); a completed run with a gap on the grid gives NaN.
    """
    keep = curves.steps > 0
    x = np.log(curves.steps[keep].astype(float))
    out = np.full(curves.status.shape, np.nan)
    if x.size < 2:
        return out
    area = np.trapezoid(curves.values[..., keep], x, axis=-1)
    span = np.log(float(curves.max_steps)) - x[0]
    return np.where(curves.status == "done", area / span, np.nan)


def steps_to_target(curves: TaskCurves, target: float, sign: float) -> np.ndarray:
    """(C, S) first grid step whose value reaches `target`: sign·value ≤ sign·target, with sign
    +1 when lower is better (losses) and −1 when higher is better (accuracy).

    Runs that never reach it are censored: +inf (a diverged run counts if it reached the target
    before diverging); failed or missing runs are NaN.
    """
    reached = np.isfinite(curves.values) & (sign * curves.values <= sign * target)
    first = np.argmax(reached, axis=-1)
    out = np.where(reached.any(axis=-1), curves.steps[first].astype(float), np.inf)
    return np.where(np.isin(curves.status, ("done", "diverged")), out, np.nan)

