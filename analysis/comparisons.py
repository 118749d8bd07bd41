"""Every (scope, configuration, reference) of the declared comparison, with its verdict.

The comparison comes from the store's `compare.json` (written by the runner from the suite's
`compare:` section), overridden by the report's `--reference` / `--margin` / `--margin-abs`.
Per task, `analysis.verdict` gives the ITT verdict (primary) and the verdict on surviving runs
(secondary). Across tasks the task is the unit: each task contributes one number, its estimate
divided by its own margin, and the same rule runs over tasks with margin 1. The posterior
probabilities beside an all-tasks verdict come from the hierarchical model
(`analysis.hierarchical`) over every task's surviving seeds, in units of each task's margin.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import hierarchical
from analysis.curves import TaskCurves
from analysis.paired import bayes_signed_rank
from analysis.verdict import (ALL_TASKS, VERDICT_COLUMNS, decide_all, itt_differences, pair_stats,
                              seeds_for_equivalence, survivor_differences)
from common.compare import DEFAULT, Comparison, CompareError, Margin, comparison_from_dict

COMPARE_FILE = "compare.json"
MIN_TASKS = 3  # an across-task t-interval needs ≥ 2 degrees of freedom
ALL_TASKS_RULE = "1 = each task's own margin (differences divided by it)"


def declared(root: Path) -> Comparison | None:
    """The comparison recorded with the runs (`ROOT/compare.json`), or None."""
    path = Path(root) / COMPARE_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return comparison_from_dict(doc, origin=f"suite's compare section ({path})")
    except (json.JSONDecodeError, CompareError) as err:
        raise ValueError(f"{path}: {err}") from err


def resolve_reference(name: str, configs: list[str]) -> str:
    """The configuration named `name`, or the single configuration of optimizer `name`."""
    if name in configs:
        return name
    matches = [c for c in configs if c.split("[")[0] == name]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(f"reference {name!r} is ambiguous: configurations {matches}; name one of them")
    raise ValueError(f"reference {name!r} is not among the eval-stage configurations: {configs}; "
                     f"pass --reference with one of them (or an optimizer name with one configuration)")


def resolve(root: Path, configs: list[str], references: tuple[str, ...], margin: Margin | None) -> Comparison:
    """The declared comparison (or the default), with command-line references and margin applied;
    a command-line margin replaces the per-task margins too. References must have been run."""
    base = declared(root) or DEFAULT
    if references:
        base = replace(base, references=tuple(references), origin="command line")
    if margin is not None:
        base = replace(base, margin=margin, per_task=(), origin="command line")
    refs = tuple(dict.fromkeys(resolve_reference(r, configs) for r in base.references))
    return replace(base, references=refs)


def _posterior(d: np.ndarray, margin: float, sign: float) -> tuple[float, float, float]:
    """Posterior P(better), P(within ±δ), P(worse) of the Bayesian signed-rank test, ITT values
    capped beyond every finite |d| (ranks unchanged)."""
    if d.size < 2 or not math.isfinite(margin):
        return math.nan, math.nan, math.nan
    finite = d[np.isfinite(d)]
    cap = 2.0 * (float(np.abs(finite).max()) + 1.0 + margin) if finite.size else 1.0 + margin
    return bayes_signed_rank(np.clip(d, -cap, cap), margin, sign)


def _task_rows(tc: TaskCurves, final: pd.DataFrame, comparison: Comparison, alpha: float,
               sign: float, scaled: dict) -> list[dict]:
    """The task's rows; `scaled[(config, reference)]` collects its survivors' d / δ."""
    rows = []
    rule = comparison.margin_for(tc.task)
    for config, ref in comparison.pairs(tc.configs):
        c, b = tc.index(config), tc.index(ref)
        y, y_ref = final.loc[config].to_numpy(float), final.loc[ref].to_numpy(float)
        done_ref = y_ref[tc.status[b] == "done"]
        ref_median = float(np.nanmedian(done_ref)) if np.isfinite(done_ref).any() else math.nan
        margin = rule.resolve(ref_median)
        d = itt_differences(y, y_ref, tc.status[c], tc.status[b], sign)
        itt = pair_stats(d, margin, alpha)
        d_surv = survivor_differences(y, y_ref)
        surv = pair_stats(d_surv, margin, alpha)
        if d_surv.size >= 2 and np.isfinite(margin) and margin > 0:
            scaled.setdefault((config, ref), []).append(d_surv / margin)
        better, within, worse = _posterior(d, margin, sign)
        rows.append({
            "scope": tc.task, "config": config, "reference": ref, "margin": margin,
            "estimate": itt.estimate, "ci_low": itt.ci_low, "ci_high": itt.ci_high,
            "p_difference": itt.p_difference, "p_equivalence": itt.p_equivalence, "verdict": "",
            "margin_rule": rule.describe(), "test": itt.test, "n": itt.n,
            "n_diverged": int(np.sum(tc.status[c] == "diverged")),
            "n_diverged_reference": int(np.sum(tc.status[b] == "diverged")),
            "sd_diff": surv.sd, "n_survivors": surv.n, "estimate_survivors": surv.estimate,
            "p_difference_survivors": surv.p_difference, "p_equivalence_survivors": surv.p_equivalence,
            "posterior_better": better, "posterior_equivalent": within, "posterior_worse": worse,
            "reference_median": ref_median})
    return rows


def _hierarchical(x: list[np.ndarray], sign: float) -> tuple[float, float, float]:
    """Posterior (better, within the margin, worse) of the hierarchical model over tasks, NaN when
    fewer than 2 tasks have ≥ 2 surviving pairs or every difference is 0."""
    if len(x) < 2 or all(np.all(xi == 0) for xi in x):
        return math.nan, math.nan, math.nan
    left, rope, right = hierarchical.probabilities(x, rope=1.0)
    return (left, rope, right) if sign > 0 else (right, rope, left)


def _across_rows(tasks: pd.DataFrame, scaled: dict, alpha: float, sign: float, notes: list[str]) -> list[dict]:
    """One all-tasks row per (config, reference): the rule over per-task estimates / margins, and
    the hierarchical model's posterior over the surviving seeds of every task."""
    rows = []
    for (config, ref), g in tasks.groupby(["config", "reference"], sort=False):
        g = g[(g["n"] >= 2) & np.isfinite(g["margin"]) & (g["margin"] > 0)]
        s = (g["estimate"] / g["margin"]).to_numpy(float)
        st = pair_stats(s, 1.0, alpha) if s.size >= MIN_TASKS else None
        rows.append({
            "scope": ALL_TASKS, "config": config, "reference": ref, "margin": 1.0,
            "estimate": st.estimate if st else math.nan, "ci_low": st.ci_low if st else math.nan,
            "ci_high": st.ci_high if st else math.nan, "p_difference": st.p_difference if st else math.nan,
            "p_equivalence": st.p_equivalence if st else math.nan, "verdict": "",
            "margin_rule": ALL_TASKS_RULE, "test": (st.test + " over tasks") if st else "none", "n": int(s.size)}
            | dict(zip(("posterior_better", "posterior_equivalent", "posterior_worse"),
                       _hierarchical(scaled.get((config, ref), []), sign))))
    if rows and min(r["n"] for r in rows) < MIN_TASKS:
        notes.append(f"Across tasks: the across-task question needs at least {MIN_TASKS} tasks with a "
                     f"comparison (the task is the unit, not the seed); some all-tasks rows have fewer and "
                     f"are inconclusive without a test.")
    return rows


def _decide(frame: pd.DataFrame, alpha: float, sign: float, suffix: str = "") -> None:
    """Holm over the rows of `frame`, in place: raw p-values move to *_raw columns."""
    p_d, p_e = f"p_difference{suffix}", f"p_equivalence{suffix}"
    est = "estimate" + suffix
    frame[p_d + "_raw"], frame[p_e + "_raw"] = frame[p_d], frame[p_e]
    frame[p_d], frame[p_e], verdicts = decide_all(frame[est], frame[p_d + "_raw"], frame[p_e + "_raw"],
                                                  frame["margin"], alpha, sign)
    frame["verdict" + suffix] = verdicts


def verdict_frame(curves: dict[str, TaskCurves], endpoints: pd.DataFrame, comparison: Comparison,
                  alpha: float, sign: float, notes: list[str]) -> pd.DataFrame:
    """VERDICT_COLUMNS, then margin_rule, test, n and the secondary columns; task rows first."""
    rows, scaled = [], {}
    for task, tc in curves.items():
        missing = [r for r in comparison.references if r not in tc.configs]
        if missing:
            notes.append(f"{task}: reference(s) {missing} were not run; no comparison against them here.")
        final = endpoints[endpoints["task"] == task].pivot(index="config", columns="seed", values="final")
        rows += _task_rows(tc, final, comparison, alpha, sign, scaled)
    if not rows:
        return pd.DataFrame(columns=list(VERDICT_COLUMNS) + ["margin_rule", "test", "n"])
    tasks = pd.DataFrame(rows)
    _decide(tasks, alpha, sign)
    _decide(tasks, alpha, sign, "_survivors")
    m = max(int(tasks["p_equivalence_raw"].notna().sum()), 1)
    tasks["seeds_for_equivalence"] = [seeds_for_equivalence(sd, mg, alpha / m)
                                      for sd, mg in zip(tasks["sd_diff"], tasks["margin"])]
    across = pd.DataFrame(_across_rows(tasks, scaled, alpha, sign, notes))
    if not across.empty:
        _decide(across, alpha, sign)
    frame = pd.concat([tasks, across], ignore_index=True)
    rest = [c for c in frame.columns if c not in VERDICT_COLUMNS]
    return frame[list(VERDICT_COLUMNS) + rest]
