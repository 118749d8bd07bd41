"""Every (scope, configuration, reference) of the declared comparison, with its verdict.

The comparison comes from the store's `compare.json` (written by the runner from the suite's
`compare:` section), overridden by the report's `--reference` / `--margin` / `--margin-abs`.

Per task (`annealbench.analysis.verdict`): the decision scale and margin are fixed before the evaluation
runs — a relative margin δ on a positive metric is θ = log(1 + δ) on per-seed log-ratios, which
needs no estimate; a relative margin on a metric that can be ≤ 0 is δ·|median| of the
reference's *tune-stage* runs at its selected learning rate (the eval runs only as a fallback,
named in `margin_source`); an absolute margin is used as declared. Then the ITT rule, and the
same rule on surviving runs (secondary). Per configuration and task the divergence rate is an
outcome of its own, with a Clopper–Pearson interval.

Across tasks the task is the unit: each task contributes its estimate in units of its own margin
(a task whose median is ±∞ enters at the most extreme finite task value, at least ±2 margins, so
divergence never moves the row toward better). The decisive claims test the mean over tasks
against ±1 (t over tasks); "equivalent" needs, on top, a prediction interval for a new task inside
±1 (random effects, Paule–Mandel τ with the Higgins–Thompson–Spiegelhalter interval) and no
diverged run on any task. The rows also count the tasks on which each verdict was reached (the
intersection), and the hierarchical model's posterior predictive probabilities for a new task.

Budgets: a suite may run a task at two or more budgets (the same task label but for `max_steps`
and the evaluation cadence, e.g. `teacher[max_steps=200]` and `teacher[max_steps=800]`). Each
(task, budget) is then a scope of its own, so the all-tasks rows count task × budget cells, and one
more row per (configuration, reference) asks whether the difference changes with the budget
(`BUDGET_SCOPE`): per task, the difference at its longest budget minus the one at its shortest, in
margins; across tasks the same rule as the all-tasks rows (t over tasks against ±1, equivalence
— no interaction — needing the prediction interval inside ±1 too), in a Holm family of its own.
"better" there means the configuration gains on its reference as the budget grows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from annealbench.analysis import hierarchical
from annealbench.analysis.curves import FINAL_LAST_K, TaskCurves
from annealbench.analysis.paired import bayes_signed_rank
from annealbench.analysis.verdict import (ALL_TASKS, BUDGET_SCOPE, CAP, DIFFERENCE, LOG_RATIO, MIN_TASKS, NO_TEST, SIGN_TEST, VERDICT_COLUMNS,
                              PairStats, across_claim, across_tasks, capped, decide_family, direction,
                              itt_differences, pair_stats, seeds_for_equivalence, survivor_differences)
from annealbench.common.compare import DEFAULT, Comparison, CompareError, Margin, comparison_from_dict
from annealbench.common.store_schema import BUDGET_KEYS, parse_label, task_label

COMPARE_FILE = "compare.json"
ALL_TASKS_RULE = "1 = each task's own margin (differences divided by it)"
BUDGET_RULE = ("1 = each task's own margin; per task the difference at its longest budget minus "
               "the one at its shortest")
DIVERGED_LEVEL = 0.95  # Clopper–Pearson interval of a divergence rate


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
        base = replace(base, references=tuple(references), explicit=(), origin="command line")
    if margin is not None:
        base = replace(base, margin=margin, per_task=(), origin="command line")
    refs = tuple(dict.fromkeys(resolve_reference(r, configs) for r in base.references))
    return replace(base, references=refs)


def tune_finals(store, metric: str) -> dict[tuple[str, str], np.ndarray]:
    """(task, config) → final values (mean of the last FINAL_LAST_K evaluations) of its completed
    tune-stage runs at the learning rate the eval stage uses; {} without a store."""
    if store is None:
        return {}
    runs = store.runs
    evals = runs[runs["stage"] == "eval"].groupby(["task", "config"])["lr"].first()
    tune = runs[(runs["stage"] == "tune") & (runs["status"] == "done")]
    if tune.empty:
        return {}
    selected = evals.reindex(pd.MultiIndex.from_frame(tune[["task", "config"]])).to_numpy(float)
    tune = tune[np.isclose(tune["lr"].to_numpy(float), selected, rtol=1e-9)]
    rows = store.results[(store.results["metric"] == metric) & store.results["run_id"].isin(tune["run_id"])]
    rows = rows[np.isfinite(rows["value"])].sort_values(["run_id", "step"])
    final = rows.groupby("run_id", observed=True)["value"].apply(lambda v: float(v.iloc[-FINAL_LAST_K:].mean()))
    out: dict[tuple[str, str], np.ndarray] = {}
    for (task, config), g in tune.groupby(["task", "config"]):
        values = final.reindex(g["run_id"]).dropna().to_numpy(float)
        if values.size:
            out[(task, config)] = values
    return out


@dataclass(frozen=True)
class Scale:
    """How one row's differences are formed and the margin θ on that scale."""

    kind: str  # LOG_RATIO or DIFFERENCE
    margin: float  # θ
    margin_metric: float  # δ in metric units (NaN when unknown)
    source: str  # where θ came from


def _scale(rule: Margin, positive: bool, tuned: np.ndarray | None, eval_median: float) -> Scale:
    """The decision scale and margin of a row (module docstring)."""
    if rule.kind == "absolute":
        return Scale(DIFFERENCE, float(rule.value), float(rule.value), "declared (absolute)")
    tuned_median = float(np.median(tuned)) if tuned is not None and tuned.size else math.nan
    median = tuned_median if math.isfinite(tuned_median) else eval_median
    if math.isfinite(tuned_median):
        where = f"the reference's {tuned.size} tune-stage run(s) at its selected lr"
    else:
        where = ("the reference's eval runs (fallback: no completed tune-stage run at its selected lr, "
                 "so δ is estimated from the runs it judges)")
    if positive:
        return Scale(LOG_RATIO, math.log1p(rule.value), rule.resolve(median),
                     f"declared (relative): log(1 + {rule.value:g}) on log-ratios, fixed before the runs; "
                     f"δ in metric units from {where}")
    return Scale(DIFFERENCE, rule.resolve(median), rule.resolve(median),
                 f"relative δ × |median| of {where} (the metric is not positive: no log-ratios)")


def _rate(k: int, n: int) -> tuple[float, float, float]:
    """Divergence rate k/n with its Clopper–Pearson interval; NaN when n = 0."""
    if n == 0:
        return math.nan, math.nan, math.nan
    low, high = proportion_confint(k, n, alpha=1 - DIVERGED_LEVEL, method="beta")
    return k / n, (0.0 if k == 0 else float(low)), (1.0 if k == n else float(high))


def _posterior(d: np.ndarray, margin: float, sign: float) -> tuple[float, float, float]:
    """Posterior P(better), P(within ±θ), P(worse) of the Bayesian signed-rank test, ITT values
    capped beyond every finite |d| (ranks unchanged)."""
    if d.size < 2 or not math.isfinite(margin):
        return math.nan, math.nan, math.nan
    finite = d[np.isfinite(d)]
    cap = 2.0 * (float(np.abs(finite).max()) + 1.0 + margin) if finite.size else 1.0 + margin
    return bayes_signed_rank(np.clip(d, -cap, cap), margin, sign)


def _undecidable(st: PairStats, alpha: float, m: int) -> str:
    """A note when the test cannot reach the levels Holm can give this row."""
    p_min = st.smallest_p()
    if st.test != SIGN_TEST or p_min <= alpha / max(m, 1):
        return ""
    if p_min > alpha:
        return (f"with a diverged run the sign test over n = {st.n} seeds cannot reach p ≤ {alpha:g} (smallest "
                f"p {p_min:.3g}): this row cannot be called worse or better at this n, however many runs "
                f"diverge; the divergence rate is the evidence.")
    return (f"with a diverged run the sign test over n = {st.n} seeds reaches at best p = {p_min:.3g}, above "
            f"the first Holm level {alpha / m:.3g}: this row can be decided only after others are.")


@dataclass
class _Row:
    """One per-task row in the making: its columns and its statistics (ITT and survivors)."""

    cols: dict
    itt: PairStats
    surv: PairStats
    se_margins: float  # se of the estimate in margins (NaN for the sign test)
    survivors_margins: np.ndarray  # surviving d / θ, for the hierarchical model


def _task_rows(tc: TaskCurves, final: pd.DataFrame, comparison: Comparison, sign: float,
               tuned: dict, positive: bool) -> list[_Row]:
    """The task's rows. Log-ratios need a metric its task declares positive (`positive`) and,
    as a guard, every observed value > 0."""
    rows = []
    rule = comparison.margin_for(tc.task)
    for config, ref in comparison.pairs(tc.configs):
        c, b = tc.index(config), tc.index(ref)
        y, y_ref = final.loc[config].to_numpy(float), final.loc[ref].to_numpy(float)
        done_ref = y_ref[tc.status[b] == "done"]
        ref_median = float(np.nanmedian(done_ref)) if np.isfinite(done_ref).any() else math.nan
        finite = np.r_[y[np.isfinite(y)], y_ref[np.isfinite(y_ref)]]
        ratios_ok = positive and bool(finite.size) and bool(np.all(finite > 0))
        scale = _scale(rule, ratios_ok, tuned.get((tc.task, ref)), ref_median)
        log = scale.kind == LOG_RATIO
        diffs = itt_differences(y, y_ref, tc.status[c], tc.status[b], sign, log=log)
        n_div, n_div_ref = int(np.sum(tc.status[c] == "diverged")), int(np.sum(tc.status[b] == "diverged"))
        itt = pair_stats(diffs.d, scale.margin, equivalence_possible=not (n_div or n_div_ref))
        d_surv = survivor_differences(y, y_ref, log=log)
        surv = pair_stats(d_surv, scale.margin)
        runs = int(np.isin(tc.status[c], ("done", "diverged")).sum())
        rate, rate_low, rate_high = _rate(n_div, runs)
        better, within, worse = _posterior(diffs.d, scale.margin, sign)
        notes = []
        finite_d = diffs.d[np.isfinite(diffs.d)]
        skew = float(stats.skew(finite_d, bias=False)) if finite_d.size >= 3 and np.ptp(finite_d) > 0 else math.nan
        if abs(skew) > 1:
            notes.append(f"the paired {'log-ratios' if log else 'differences'} are skewed (sample skewness "
                         f"{skew:+.2g}): the t-interval's level is approximate at this n.")
        if diffs.n_both_diverged:
            notes.append(f"{diffs.n_both_diverged} seed(s) where both runs diverged: left out of the differences "
                         f"(no agreement), and equivalence is ruled out.")
        elif n_div or n_div_ref:
            notes.append("a diverged run: equivalence is ruled out (intention to treat).")
        cols = {
            "scope": tc.task, "config": config, "reference": ref, "direction": direction(sign),
            "scale": scale.kind, "margin": scale.margin, "estimate": itt.estimate,
            "margin_rule": rule.describe(), "margin_source": scale.source, "margin_metric": scale.margin_metric,
            "test": itt.test, "n": itt.n, "runs": runs, "n_diverged": n_div, "n_diverged_reference": n_div_ref,
            "n_both_diverged": diffs.n_both_diverged,
            "diverged_rate": rate, "diverged_ci_low": rate_low, "diverged_ci_high": rate_high,
            "p_above_raw": itt.p_above, "p_below_raw": itt.p_below,
            "sd_diff": surv.sd, "n_survivors": surv.n, "estimate_survivors": surv.estimate,
            "posterior_better": better, "posterior_equivalent": within, "posterior_worse": worse,
            "reference_median": ref_median, "skewness": skew, "note": " ".join(notes)}
        ok = scale.margin > 0 and math.isfinite(scale.margin)
        rows.append(_Row(cols, itt, surv, itt.se / scale.margin if itt.test not in (SIGN_TEST, NO_TEST) else math.nan,
                         d_surv / scale.margin if ok and d_surv.size >= 2 else np.zeros(0)))
    return rows


def _apply(rows: list[dict], stats_: list[PairStats], alpha: float, sign: float, suffix: str = "") -> list:
    """Decide the family `stats_` and write the decision into `rows` (columns with `suffix`)."""
    decisions = decide_family(stats_, alpha, sign)
    for row, st, dec in zip(rows, stats_, decisions):
        raw = st.p_above if (st.estimate >= 0 or math.isnan(st.estimate)) else st.p_below
        row.update({f"p_difference{suffix}_raw": raw, f"p_equivalence{suffix}_raw": st.p_inside,
                    f"p_difference{suffix}": dec.p_difference, f"p_equivalence{suffix}": dec.p_equivalence,
                    f"verdict{suffix}": dec.verdict})
        row.update({f"ci_low{suffix}": dec.ci_low, f"ci_high{suffix}": dec.ci_high,
                    f"ci_level{suffix}": 1 - 2 * dec.level})
        if not suffix:
            row["level"] = dec.level
    return decisions


def _predictive(x: list[np.ndarray], sign: float) -> dict:
    """The hierarchical model's predictive probabilities for a new task (better, within, worse
    by `sign`), with R̂ and ESS; NaN below 2 tasks with ≥ 2 surviving pairs."""
    x = [xi for xi in x if xi.size >= 2]
    keys = ("posterior_better", "posterior_equivalent", "posterior_worse", "posterior_mean_within", "rhat", "ess")
    if len(x) < 2 or all(np.all(xi == 0) for xi in x):
        return dict.fromkeys(keys, math.nan)
    p = hierarchical.predictive(x, rope=1.0)
    better, worse = (p.below, p.above) if sign > 0 else (p.above, p.below)
    return dict(zip(keys, (better, p.within, worse, p.mean_within, p.rhat, p.ess)))


def _across(task_rows: list[_Row], sign: float, notes: list[str]) -> tuple[list[dict], list[PairStats]]:
    """One all-tasks row per (config, reference) and its statistics over tasks (in margins)."""
    groups: dict[tuple[str, str], list[_Row]] = {}
    for r in task_rows:
        groups.setdefault((r.cols["config"], r.cols["reference"]), []).append(r)
    rows, stats_ = [], []
    for (config, ref), members in groups.items():
        tested = [r for r in members if r.itt.test != NO_TEST]
        any_div = any(r.cols["n_diverged"] or r.cols["n_diverged_reference"] for r in members)
        acr = across_tasks(np.array([r.itt.estimate / r.itt.margin for r in tested], float),
                           np.array([r.se_margins ** 2 for r in tested], float), not any_div)
        st = acr.stats
        n_div = sum(r.cols["n_diverged"] for r in members)
        rate, rate_low, rate_high = _rate(n_div, sum(r.cols["runs"] for r in members))
        verdicts = [r.cols["verdict"] for r in members]
        note = []
        if any_div:
            note.append("a diverged run on some task: equivalence across tasks is ruled out.")
        if any(np.isinf(r.itt.estimate) for r in tested):
            note.append(f"a task with an infinite median enters at the most extreme finite task value (at least "
                        f"±{CAP:g} margins).")
        rows.append({
            "scope": ALL_TASKS, "config": config, "reference": ref, "direction": direction(sign),
            "scale": "margins", "margin": 1.0, "estimate": st.estimate, "margin_rule": ALL_TASKS_RULE,
            "margin_source": "each task's own margin", "margin_metric": math.nan,
            "test": ("t over tasks; equivalence also needs the prediction interval inside ±1"
                     if st.test != NO_TEST else NO_TEST), "n": len(tested), "runs": sum(r.cols["runs"] for r in members),
            "n_diverged": n_div, "n_diverged_reference": sum(r.cols["n_diverged_reference"] for r in members),
            "n_both_diverged": sum(r.cols["n_both_diverged"] for r in members),
            "diverged_rate": rate, "diverged_ci_low": rate_low, "diverged_ci_high": rate_high,
            "p_above_raw": st.p_above, "p_below_raw": st.p_below,
            "tasks_total": len(members), "tasks_equivalent": verdicts.count("equivalent"),
            "tasks_better": verdicts.count("better"), "tasks_worse": verdicts.count("worse"),
            "mu_random_effects": acr.mu, "tau": acr.tau, "_across": acr, "note": " ".join(note)}
            | _predictive([r.survivors_margins for r in members], sign))
        stats_.append(st)
    if rows and min(r["n"] for r in rows) < MIN_TASKS:
        notes.append(f"Across tasks: the across-task question needs at least {MIN_TASKS} tasks with a "
                     f"comparison (the task is the unit, not the seed); some all-tasks rows have fewer and "
                     f"are inconclusive without a test.")
    return rows, stats_


def budget_pairs(labels: list[str]) -> dict[str, tuple[str, str]]:
    """Task labels that differ only in their budget (`BUDGET_KEYS`, `max_steps` given), by the
    label without it: {base: (shortest, longest)}, for each base with two budgets or more."""
    groups: dict[str, dict[float, str]] = {}
    for label in labels:
        try:
            name, pairs = parse_label(label, "task label")
            steps = float(dict(pairs)["max_steps"])
        except (ValueError, KeyError):
            continue
        base = task_label(name, tuple((k, v) for k, v in pairs if k not in BUDGET_KEYS))
        groups.setdefault(base, {})[steps] = label
    return {base: (by[min(by)], by[max(by)]) for base, by in groups.items() if len(by) >= 2}


def _budgets(task_rows: list[_Row], sign: float) -> tuple[list[dict], list[PairStats]]:
    """One budget row per (config, reference) over the tasks run at two budgets or more."""
    pairs = budget_pairs(list(dict.fromkeys(r.cols["scope"] for r in task_rows)))
    if not pairs:
        return [], []
    by_key = {(r.cols["scope"], r.cols["config"], r.cols["reference"]): r for r in task_rows}
    configs = list(dict.fromkeys((r.cols["config"], r.cols["reference"]) for r in task_rows))
    rows, stats_ = [], []
    for config, ref in configs:
        values, variances, any_div, members = [], [], False, 0
        # each cell in margins, ±∞ capped as in the all-tasks row: at the most extreme finite cell
        tested = [r for r in task_rows if r.cols["config"] == config and r.cols["reference"] == ref
                  and r.itt.test != NO_TEST]
        cells = dict(zip((r.cols["scope"] for r in tested),
                         capped(np.array([r.itt.estimate / r.itt.margin for r in tested], float))))
        for short, long in pairs.values():
            a, b = by_key.get((short, config, ref)), by_key.get((long, config, ref))
            if a is None or b is None:
                continue
            members += 1
            any_div |= any(r.cols["n_diverged"] or r.cols["n_diverged_reference"] for r in (a, b))
            if NO_TEST in (a.itt.test, b.itt.test):
                continue
            values.append(cells[long] - cells[short])
            variances.append(b.se_margins ** 2 + a.se_margins ** 2)  # the budgets' seeds differ
        if not members:
            continue
        acr = across_tasks(np.array(values, float), np.array(variances, float), not any_div)
        st = acr.stats
        rows.append({
            "scope": BUDGET_SCOPE, "config": config, "reference": ref, "direction": direction(sign),
            "scale": "margins", "margin": 1.0, "estimate": st.estimate, "margin_rule": BUDGET_RULE,
            "margin_source": "each task's own margin",
            "margin_metric": math.nan, "n": len(values),
            "test": ("t over tasks of the change with the budget; no interaction (equivalent) also needs "
                     "the prediction interval inside ±1" if st.test != NO_TEST else NO_TEST),
            "p_above_raw": st.p_above, "p_below_raw": st.p_below, "tasks_total": members,
            "mu_random_effects": acr.mu, "tau": acr.tau, "_across": acr,
            "note": "a diverged run at some budget: no interaction cannot be shown." if any_div else ""})
        stats_.append(st)
    return rows, stats_


def _gate_prediction(rows: list[dict], decisions: list) -> None:
    """The prediction interval at each all-tasks row's level; 'equivalent' only when it lies
    inside ±1 as well (p_equivalence already includes it, so this is the printed check)."""
    for row, decision in zip(rows, decisions):
        row["verdict"], row["pi_low"], row["pi_high"] = across_claim(decision, row.pop("_across"))
        if row["tasks_total"] and row.get("tasks_equivalent") == row["tasks_total"] and row["verdict"] != "equivalent":
            row["note"] = (row["note"] + f" Equivalent on every one of the {row['tasks_total']} tasks (a statement "
                           f"about these tasks); the prediction for a new task is not inside the margin.").strip()


def verdict_frame(curves: dict[str, TaskCurves], endpoints: pd.DataFrame, comparison: Comparison,
                  alpha: float, sign: float, notes: list[str], store=None,
                  positive: bool = True) -> pd.DataFrame:
    """VERDICT_COLUMNS, then how each row was reached and the secondary columns; task rows first.

    `store`: the results store, whose tune-stage runs fix a relative margin in metric units
    before the evaluation stage (without it, or without such runs, the eval runs are used and
    `margin_source` says so). `positive`: the tasks declare the metric > 0 (annealbench.common.metrics), so
    a relative margin may be decided on log-ratios."""
    metric = next(iter(curves.values())).metric if curves else ""
    tuned = tune_finals(store, metric)
    built: list[_Row] = []
    for task, tc in curves.items():
        missing = [r for r in comparison.references if r not in tc.configs]
        if missing:
            notes.append(f"{task}: reference(s) {missing} were not run; no comparison against them here.")
        final = endpoints[endpoints["task"] == task].pivot(index="config", columns="seed", values="final")
        built += _task_rows(tc, final, comparison, sign, tuned, positive)
    if not built:
        return pd.DataFrame(columns=list(VERDICT_COLUMNS) + ["margin_rule", "test", "n"])
    rows = [r.cols for r in built]
    _apply(rows, [r.itt for r in built], alpha, sign)
    _apply(rows, [r.surv for r in built], alpha, sign, "_survivors")
    m = sum(1 for r in built if r.itt.test != NO_TEST)
    for r in built:
        note = _undecidable(r.itt, alpha, m)
        if note:
            r.cols["note"] = (r.cols["note"] + " " + note).strip()
        r.cols["seeds_for_equivalence"] = seeds_for_equivalence(r.surv.sd, r.surv.margin, alpha / max(m, 1))
    across, across_stats = _across(built, sign, notes)
    if across:
        _gate_prediction(across, _apply(across, across_stats, alpha, sign))
    budgets, budget_stats = _budgets(built, sign)
    if budgets:
        _gate_prediction(budgets, _apply(budgets, budget_stats, alpha, sign))
    frame = pd.DataFrame(rows + across + budgets)
    rest = [c for c in frame.columns if c not in VERDICT_COLUMNS and c != "level"]
    return frame[list(VERDICT_COLUMNS) + rest]
