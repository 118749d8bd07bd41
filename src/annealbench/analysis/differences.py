"""The per-task paired differences the report shows: the verdict's, one section per reference.

Every per-task table, the forest figure and the claims read the verdict (`annealbench.analysis.comparisons`:
intention to treat, tested against the margin, Holm over the per-task family). `verdict_differences`
is its task rows with their estimate and the interval the verdict was read from, in the verdict
table's units (`in_units`). The surviving-runs t-analysis against 0 (`annealbench.analysis.paired`) is a
secondary; `survivor_rows` gives it under its own label (`SURVIVORS`), so that it never
stands beside the verdict's numbers unnamed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from annealbench.analysis.verdict import LOG_RATIO, is_task_scope

SURVIVORS = "survivors only, {level:g}% t-interval, % of mean"
"""The secondary analysis' label: its rows, caption and heading all say it."""

DIFFERENCE_COLUMNS = ("reference", "task", "config", "verdict", "test", "n", "n_diverged", "n_diverged_reference",
                      "scale", "margin", "estimate", "ci_low", "ci_high", "ci_level", "p_difference",
                      "p_equivalence", "unit", "estimate_rel", "ci_low_rel", "ci_high_rel", "margin_low_rel",
                      "margin_high_rel")


def in_units(row) -> tuple[float, float, float, str]:
    """A verdict row's estimate and interval in the verdict table's units: the ratio's change in %
    on log-ratio rows, % of the reference's median on difference rows (metric units when the
    median is unknown), margins δ across tasks."""
    return _converted(row, (row["estimate"], row["ci_low"], row["ci_high"]))


def _converted(row, values: tuple[float, ...]) -> tuple:
    """`values` (on `row`'s decision scale) in the row's units, then the unit."""
    if not is_task_scope(row["scope"]):
        return (*values, "δ")
    if row["scale"] == LOG_RATIO:
        return (*(100.0 * math.expm1(x) if math.isfinite(x) else x for x in values), "%")
    median = row.get("reference_median", math.nan)
    if median and math.isfinite(median):
        return (*(100.0 * x / abs(median) for x in values), "%")
    return (*values, "")


def _references(a) -> list[str]:
    """The comparison's references in its order, then any other reference the verdict names."""
    declared = list(getattr(getattr(a, "comparison", None), "references", None) or ())
    return list(dict.fromkeys(declared + list(a.verdict["reference"])))


def verdict_differences(a) -> pd.DataFrame:
    """One row per per-task verdict row (`DIFFERENCE_COLUMNS`): its numbers as in verdict.csv, then
    estimate, interval and ±margin in the row's `unit` (`*_rel`; on log-ratio rows the margin's
    sides are 1/(1 + δ) − 1 and δ, in %); ordered by reference (the
    comparison's order), task, then the verdict's order. Empty without a verdict."""
    verdict = getattr(a, "verdict", None)
    if not isinstance(verdict, pd.DataFrame) or verdict.empty:
        return pd.DataFrame(columns=list(DIFFERENCE_COLUMNS))
    rows = verdict[verdict["scope"].map(is_task_scope)]
    out = []
    for _, row in rows.iterrows():
        estimate, low, high, margin_low, margin_high, unit = _converted(
            row, (row["estimate"], row["ci_low"], row["ci_high"], -row["margin"], row["margin"]))
        out.append({"reference": row["reference"], "task": row["scope"], "config": row["config"],
                    "verdict": row["verdict"], "test": row["test"], "n": int(row["n"]),
                    "n_diverged": int(row["n_diverged"]), "n_diverged_reference": int(row["n_diverged_reference"]),
                    "scale": row["scale"], "margin": row["margin"], "estimate": row["estimate"],
                    "ci_low": row["ci_low"], "ci_high": row["ci_high"], "ci_level": row["ci_level"],
                    "p_difference": row["p_difference"], "p_equivalence": row["p_equivalence"], "unit": unit,
                    "estimate_rel": estimate, "ci_low_rel": low, "ci_high_rel": high,
                    "margin_low_rel": margin_low, "margin_high_rel": margin_high})
    frame = pd.DataFrame(out, columns=list(DIFFERENCE_COLUMNS))
    order = {r: i for i, r in enumerate(_references(a))}
    tasks = {t: i for i, t in enumerate(dict.fromkeys(frame["task"]))}
    key = frame["reference"].map(order) * (len(tasks) + 1) + frame["task"].map(tasks)
    return frame.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)


def survivor_rows(a) -> pd.DataFrame:
    """The secondary analysis' rows with n ≥ 2 (surviving runs only, t against 0), their mean
    difference and t-interval also in % of the reference's mean final value on the task, and the
    column `analysis` naming it (`SURVIVORS`)."""
    paired = getattr(a, "paired", None)
    if not isinstance(paired, pd.DataFrame) or paired.empty:
        return pd.DataFrame()
    rows = paired[paired["n"] >= 2].copy()
    if rows.empty:
        return rows
    ref = a.per_config.set_index(["task", "config"])["final_mean"]
    scale = np.array([abs(ref.get((t, b), math.nan)) for t, b in zip(rows["task"], rows["reference"])])
    for col in ("mean_diff", "ci_low", "ci_high"):
        rows[f"{col}_pct"] = 100 * rows[col].to_numpy() / scale
    rows.insert(0, "analysis", SURVIVORS.format(level=100 * a.options.level))
    return rows.reset_index(drop=True)
