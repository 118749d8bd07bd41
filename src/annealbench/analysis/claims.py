"""Every statistical result as a plain sentence that names its test, n and interval."""

from __future__ import annotations

import math

import numpy as np

from annealbench.analysis.aggregate import integrated_score
from annealbench.analysis.comparisons import DIVERGED_LEVEL
from annealbench.analysis.hierarchical import CHAINS
from annealbench.analysis.analyse import Analysis
from annealbench.analysis.tables import resolution_table
from annealbench.analysis.verdict import ALL_TASKS, LOG_RATIO, NO_TEST, T_TEST, is_task_scope


def _g(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def _pct(level: float) -> str:
    return f"{100 * level:g}%"


def _diverged(row) -> str:
    parts = []
    if row.n_diverged:
        parts.append(f"{int(row.n_diverged)} run(s) of {row.config}")
    if row.n_diverged_reference:
        parts.append(f"{int(row.n_diverged_reference)} run(s) of {row.reference}")
    if not parts:
        return ""
    both = (f" On {int(row.n_both_diverged)} seed(s) both diverged: no difference, and no agreement."
            if row.n_both_diverged else "")
    return (f" {' and '.join(parts)} diverged: the configuration's own run counts as its worst outcome "
            f"(intention to treat), and equivalence is ruled out.{both}")


def _rate(row) -> str:
    if not math.isfinite(row.diverged_rate):
        return ""
    return (f" {row.config} diverged in {int(row.n_diverged)} of {int(row.runs)} runs (rate {row.diverged_rate:.2f}, "
            f"{_pct(DIVERGED_LEVEL)} Clopper–Pearson interval {row.diverged_ci_low:.2f} to {row.diverged_ci_high:.2f}).")


def _note(row) -> str:
    """A row's note (why a margin or a test is what it is), as a closing sentence."""
    return f" Note: {row.note}" if isinstance(row.note, str) and row.note else ""


def _level(row) -> str:
    return f"{100 * row.ci_level:.4g}%"


def _task_verdict(row, a: Analysis) -> str:
    o = a.options
    head = f"On {row.scope}, {row.config} against {row.reference}: {row.verdict}"
    if row.test == NO_TEST:
        return f"{head} (n = {row.n} paired seed(s): no test possible).{_diverged(row)}{_rate(row)}"
    t = row.test == T_TEST
    what = "mean" if t else "median"
    if row.scale == LOG_RATIO:
        diff = (f"{what} log-ratio log(configuration/reference) {row.estimate:+.4g} ({_level(row)} interval "
                f"{row.ci_low:+.4g} to {row.ci_high:+.4g}; as a ratio {_ratio(row.estimate)} [{_ratio(row.ci_low)}, "
                f"{_ratio(row.ci_high)}]) against the margin ±{row.margin:.3g} = log(1 + δ)")
    else:
        diff = (f"{what} difference {row.estimate:+.4g} in final {o.metric} ({_level(row)} interval "
                f"{row.ci_low:+.4g} to {row.ci_high:+.4g}) against the margin ±{row.margin:.3g}")
    test = "paired t-test" if t else "sign test (intention to treat)"
    text = (f"{head} — {diff} ({row.margin_rule}; {row.margin_source}), n = {row.n} paired seeds, "
            f"{row.direction} is better; one-sided against the margin in the estimate's direction, {test} "
            f"p = {_g(row.p_difference_raw)} (Holm-adjusted {_g(row.p_difference)}); TOST p = "
            f"{_g(row.p_equivalence_raw)} (Holm-adjusted {_g(row.p_equivalence)}). The interval is at the "
            f"level Holm's procedure gave this row, so the verdict reads off it.{_diverged(row)}{_rate(row)}"
            f"{_note(row)}")
    if row.n_diverged or row.n_diverged_reference:
        text += f" Surviving runs only (secondary: {_survivors(row)}): {row.verdict_survivors}."
    if math.isfinite(row.posterior_better):
        text += (f" Posterior probabilities (Bayesian signed-rank, ROPE = the margin; a description, not "
                 f"a second test): better {row.posterior_better:.2f}, within the margin "
                 f"{row.posterior_equivalent:.2f}, worse {row.posterior_worse:.2f}.")
    return text


def _survivors(row) -> str:
    """The surviving-runs row's test, n and interval (the same rule on the seeds where both completed,
    its own Holm family)."""
    n = int(row.n_survivors)
    level = getattr(row, "ci_level_survivors", math.nan)
    if n < 2 or not math.isfinite(level):
        return f"n = {n} seed(s) where both runs completed, no test possible"
    scale = "log-ratio" if row.scale == LOG_RATIO else "difference"
    return (f"paired t on the seeds where both runs completed, n = {n}, mean {scale} {row.estimate_survivors:+.4g}, "
            f"{100 * level:.4g}% interval {row.ci_low_survivors:+.4g} to {row.ci_high_survivors:+.4g} at its "
            f"own Holm level")


def _ratio(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{math.exp(x):.4g}"


def _budget_verdict(row) -> str:
    head = (f"With the budget, {row.config} against {row.reference}: {row.verdict} (the difference at each "
            f"task's longest budget minus the one at its shortest, in that task's margins)")
    if row.test == NO_TEST:
        return f"{head} — {row.n} task(s) at two budgets with a comparison: too few for a test.{_note(row)}"
    pi = (f" On a new task the change is predicted within {row.pi_low:+.3g} to {row.pi_high:+.3g} margins "
          f"({_level(row)} random-effects prediction interval, between-task sd τ = {row.tau:.3g} margins)."
          if math.isfinite(row.pi_low) else "")
    return (f"{head} — over n = {row.n} tasks, mean change {row.estimate:+.3g} margins ({_level(row)} interval "
            f"{row.ci_low:+.3g} to {row.ci_high:+.3g}, margin ±1); t over tasks, one-sided against the margin: "
            f"Holm-adjusted p = {_g(row.p_difference)}; no interaction (mean and prediction inside ±1): "
            f"{_g(row.p_equivalence)}.{pi}{_note(row)}")


def _hierarchical_posterior(row) -> str:
    if not math.isfinite(row.posterior_better):
        return ""
    return (f" Hierarchical Bayesian model (Benavoli et al. 2017; seeds within tasks, surviving runs, ROPE = each "
            f"task's margin; a description, not a second test): the posterior predictive probability that a new "
            f"task's difference is better than the margin is {row.posterior_better:.2f}, within the margin "
            f"{row.posterior_equivalent:.2f}, worse {row.posterior_worse:.2f} ({int(CHAINS)} chains, split-R̂ "
            f"{row.rhat:.3f}, effective sample size {row.ess:.0f}).")


def _all_tasks_verdict(row, a: Analysis) -> str:
    head = f"Across tasks, {row.config} against {row.reference}: {row.verdict}"
    count = (f" Per task: equivalent on {int(row.tasks_equivalent)} of {int(row.tasks_total)}, better on "
             f"{int(row.tasks_better)}, worse on {int(row.tasks_worse)}.")
    if row.test == NO_TEST:
        return (f"{head} — {row.n} task(s) with a comparison; the across-task question needs more tasks "
                f"(the task is the unit, not the seed).{count}{_hierarchical_posterior(row)}")
    pi = (f" A new task's difference is predicted within {row.pi_low:+.3g} to {row.pi_high:+.3g} margins "
          f"({_level(row)} random-effects prediction interval, Paule–Mandel τ, between-task sd τ = "
          f"{row.tau:.3g} margins)." if math.isfinite(row.pi_low) else
          " No prediction interval for a new task (a task with a diverged run has no bounded difference).")
    text = (f"{head} — over n = {row.n} tasks (one number per task: its estimate divided by its own "
            f"margin), mean {row.estimate:+.3g} margins ({_level(row)} interval {row.ci_low:+.3g} to "
            f"{row.ci_high:+.3g}, margin ±1); t over tasks, one-sided against the margin: Holm-adjusted "
            f"p = {_g(row.p_difference)}; equivalence (mean and prediction inside ±1): {_g(row.p_equivalence)}."
            f"{pi}{count}{_rate(row)}{_note(row)}")
    return text + _hierarchical_posterior(row)


RULE = ("Rule (α = {alpha:g}; Holm's step-down over the per-task rows, and separately over the all-tasks rows, "
        "gives each row a level α_r and a (1 − 2α_r) interval): equivalent when that interval lies inside "
        "±margin and no run diverged in either arm; worse when it lies entirely beyond the margin on the "
        "worse side, better when entirely beyond it on the better side (one-sided tests against the margin, "
        "never against 0); otherwise inconclusive. Across tasks, equivalence also needs the prediction "
        "interval for a new task inside ±1 margin.")


def verdict_claims(a: Analysis) -> list[str]:
    """The rule, the comparison, then one sentence per verdict row."""
    if a.verdict.empty:
        return [f"No comparison: {a.comparison.describe()}."]
    out = [f"Comparison: {a.comparison.describe()}. " + RULE.format(alpha=a.options.alpha)]
    for row in a.verdict.itertuples():
        out.append(_task_verdict(row, a) if is_task_scope(row.scope) else _all_tasks_verdict(row, a)
                   if row.scope == ALL_TASKS else _budget_verdict(row))
    return out


def verdict_methods(a: Analysis) -> str:
    """The verdict rule as it runs, for the report's Methods (docs/statistics.md, §2–4)."""
    return (
        f"Verdicts compare every configuration with each reference ({a.comparison.describe()}) on runs "
        f"paired by seed. With a relative margin δ on a positive metric the paired values are log-ratios "
        f"log(configuration/reference) and the margin is log(1 + δ), fixed before the runs (losses are "
        f"positive and a relative margin is a ratio; a t on log-ratios keeps its level where raw "
        f"differences are skewed); with an absolute margin, the differences in {a.options.metric}; a relative "
        f"margin on a metric that can be ≤ 0 is δ times the reference's median over its tune-stage runs at "
        f"the selected learning rate (eval runs only as a named fallback). A diverged run is its "
        f"configuration's worst outcome (intention to treat); a seed where both arms diverged is no "
        f"agreement and is left out, and any diverged run rules out equivalence. All values finite: the "
        f"one-sample t; otherwise the sign test with the order-statistic interval of the median. Each row "
        f"asks three one-sided questions about the margin (beyond +δ, beyond −δ, inside ±δ by TOST); Holm's "
        f"step-down over the rows gives each row its level α_r and the table prints the (1 − 2α_r) "
        f"interval (column ci_level) from which the verdict is read: inside ±δ equivalent, beyond the "
        f"margin worse or better, else inconclusive. The divergence rate of each configuration is reported "
        f"beside its verdict with a {_pct(DIVERGED_LEVEL)} Clopper–Pearson interval. Across tasks each task "
        f"contributes its estimate in margins (an infinite median at the most extreme finite task value, at "
        f"least ±2); worse or better test the mean over tasks against ±1 (t over tasks); equivalent needs "
        f"that mean's interval and the random-effects prediction interval for a new task (Paule–Mandel τ, "
        f"Higgins–Thompson–Spiegelhalter, t with k − 2 df) inside ±1, and no diverged run; each row counts "
        f"the tasks with each verdict. The hierarchical model of Benavoli et al. (2017) gives the posterior "
        f"predictive probability that a new task's difference lies within the margin ({CHAINS} chains, "
        f"split-R̂ and effective sample size reported); it decides nothing.")


def maxt_claims(a: Analysis) -> list[str]:
    out = []
    for (task, config), r in a.maxt.items():
        sig = r.p_adjusted <= a.options.alpha
        n = int(round(math.log2(r.null_max.size))) if r.exact else None
        how = f"exact over all 2^{n} sign flips" if r.exact else f"{r.null_max.size} random sign flips"
        floor = 1.0 / r.null_max.size * (2 if r.exact else 1)
        if sig.any():
            out.append(f"On {task}, {config} and {a.baseline} differ at {int(sig.sum())} of {r.steps.size} "
                       f"logged steps (sign-flip max-T test over n = {r.n} seeds where both runs completed, "
                       f"family-wise α = {a.options.alpha:g} over steps, {how}; a test of where, no interval), "
                       f"first at step {int(r.steps[sig][0])}.")
        else:
            out.append(f"On {task}, the sign-flip max-T test over n = {r.n} seeds where both runs completed "
                       f"finds no step where {config} and {a.baseline} differ (family-wise α = "
                       f"{a.options.alpha:g}, {how}; smallest attainable adjusted p = {floor:.3g}).")
    return out


def aggregate_claims(a: Analysis) -> list[str]:
    out, pct = [], f"{100 * a.options.level:g}%"
    for row in a.aggregate.itertuples():
        out.append(f"{row.config}: mean over {row.tasks} task(s) of its median normalised score "
                   f"{row.mean_score:.2f} ({pct} t-interval over tasks {_g(row.mean_ci_low, 2)} to "
                   f"{_g(row.mean_ci_high, 2)}); IQM of its {row.runs} runs {row.iqm_score:.2f} ({pct} "
                   f"bootstrap resampling seeds within tasks, conditional on these tasks: {row.iqm_ci_low:.2f} "
                   f"to {row.iqm_ci_high:.2f}).")
    if a.profile_ratios is not None:
        what = "wall-clock time" if a.time_measure == "time_to_target_s" else "steps"
        score = integrated_score(a.profile_ratios.to_numpy(), a.options.r_max)
        listed = ", ".join(f"{c} {b:.2f}" for c, b in sorted(zip(a.profile_ratios.columns, score),
                                                             key=lambda t: -t[1]))
        out.append(f"Performance profiles over {what} to the target on {len(a.profile_ratios)} task(s) (one "
                   f"problem per task: the median over seeds); AlgoPerf integrated score B "
                   f"(τ up to {a.options.r_max:g}, 1 = always "
                   f"fastest): {listed}.")
    f = a.friedman
    if f is not None:
        verdict = "rejects" if f.p_value <= a.options.alpha else "does not reject"
        ranks = ", ".join(f"{c} {r:.2f}" for c, r in sorted(zip(f.configs, f.average_ranks), key=lambda t: t[1]))
        how = "exact" if f.permutation_exact else "Monte Carlo"
        out.append(f"Across N = {f.n_blocks} tasks (one block per task: each configuration's median over "
                   f"seeds, a diverged run ranked worst) and k = {len(f.configs)} configurations, "
                   f"Friedman's test {verdict} equal ranks: χ²_F = {f.chi2_demsar:.3g} (Demšar's formula), "
                   f"{f.chi2_scipy:.3g} tie-corrected, {how} permutation p = {_g(f.p_value)} (χ² "
                   f"approximation {_g(f.p_asymptotic)}); Iman–Davenport F = "
                   f"{f.iman_davenport_f:.3g}, p = {_g(f.p_iman_davenport)}. Average ranks (1 = best): {ranks}. "
                   f"Nemenyi critical difference at α = {f.alpha:g}: {f.critical_difference:.3g}.")
        if a.cliques:
            groups = "; ".join("{" + ", ".join(g) + "}" for g in a.cliques)
            out.append(f"Groups with no significant pairwise difference (Wilcoxon signed-rank over tasks, "
                       f"Holm-adjusted, α = {a.options.alpha:g}): {groups}.")
    return out


def failure_claims(a: Analysis) -> list[str]:
    out, pct = [], f"{100 * a.options.level:g}%"
    for row in a.failures.itertuples():
        if row.diverged or row.failed:
            out.append(f"On {row.task}, {row.config} diverged in {row.diverged} of {row.runs} runs (rate "
                       f"{row.diverged_rate:.2f}, {pct} Wilson interval {row.diverged_ci_low:.2f} to "
                       f"{row.diverged_ci_high:.2f}) and failed in {row.failed}.")
    if not out:
        total = int(a.failures["runs"].sum())
        out.append(f"None of the {total} eval runs diverged or failed.")
    return out


def power_claims(a: Analysis) -> list[str]:
    out = []
    if not a.power.empty and np.isfinite(a.power["difference"]).any():
        rows = "; ".join(f"d_z = {r.d_z:g} (≈ {r.difference:.3g} in {a.options.metric}): "
                         f"{r.seeds_at_family_alpha} seeds" for r in a.power.itertuples())
        m = int(a.power["family_size"].iloc[0])
        out.append(f"Seeds needed for 80% power with a paired t-test against 0 at the family's level "
                   f"{a.options.alpha:g}/{m} (median observed sd of the surviving runs' paired differences, "
                   f"the secondary analysis): {rows}.")
    tasks = a.verdict[a.verdict["scope"].map(is_task_scope)] if not a.verdict.empty else a.verdict
    need = tasks["seeds_for_equivalence"].to_numpy(float) if not tasks.empty else np.array([])
    if np.isfinite(need).any():
        out.append(f"Seeds needed to show equivalence at the margin with 80% power (TOST at the worst-case "
                   f"Holm level, true difference 0, each comparison's observed sd): median "
                   f"{np.nanmedian(need):.0f}, largest {np.nanmax(need):.0f} (see seeds_for_equivalence in "
                   f"the verdict table).")
    out += resolution_claims(a)
    return out or ["No paired differences with ≥ 2 seeds: the seeds needed cannot be estimated from the spread."]


def resolution_claims(a: Analysis) -> list[str]:
    """Whether each task's seeds resolve its margin (`annealbench.analysis.tables.resolution_table`)."""
    res = resolution_table(a)
    if res.empty:
        return []
    coarse = res[~res["decides_at_margin"]]
    seeds = sorted(set(res["n"]))
    text = (f"Resolution: on {len(res) - len(coarse)} of {len(res)} (task, reference) pairs the verdict's "
            f"intervals at {'/'.join(map(str, seeds))} seeds fit inside the margin (median half-width over the "
            f"configurations, each interval at its Holm-adjusted level, below the margin; tables/resolution.csv)")
    if coarse.empty:
        return [text + "."]
    shown = ", ".join(f"{r.task} ({r.half_width_in_margins:.2f} margins)" for r in coarse.head(8).itertuples())
    more = f" and {len(coarse) - 8} more" if len(coarse) > 8 else ""
    return [text + f"; not on {shown}{more}: there a configuration can be found better or worse, but "
                   f"equivalence at the margin is out of reach at these seeds."]


def theory_claims(a: Analysis) -> list[str]:
    """Per task: does the window's shape matter once the mean radius is matched?"""
    out, pct = [], _pct(a.options.level)
    for row in a.radius_relation.itertuples():
        if not math.isfinite(row.p_shape):
            out.append(f"On {row.task}: too few μ[t]·Φ windows that log μ[t] ({row.configs}; at least 3 with "
                       f"repeated seeds needed) to test whether the window's shape matters beyond its mean radius.")
            continue
        matters = row.p_shape <= a.options.alpha
        out.append(f"On {row.task}, final {a.options.metric} = β₀ + β₁·log(mean radius) over {row.runs} runs of "
                   f"{row.configs} μ[t]·Φ windows (other optimizers are left out: the theory is about these "
                   f"windows): β₁ = {row.slope:+.3g} ({pct} interval {row.slope_ci_low:+.3g} "
                   f"to {row.slope_ci_high:+.3g}, R² = {row.r_squared:.2f}); once the mean radius is matched the "
                   f"window's shape {'still matters' if matters else 'shows no detectable effect'} (lack-of-fit "
                   f"F({row.shape_df:.0f}, {row.resid_df:.0f}) = {row.shape_f:.3g}, p = {_g(row.p_shape)}).")
    return out


def all_claims(a: Analysis) -> dict[str, list[str]]:
    return {"Verdicts": verdict_claims(a), "Where along training": maxt_claims(a),
            "Across tasks": aggregate_claims(a), "The theory's prediction": theory_claims(a),
            "Failures": failure_claims(a), "Seeds": power_claims(a), "Notes": list(a.notes)}
