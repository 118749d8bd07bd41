"""Every statistical result as a plain sentence that names its test, n and interval."""

from __future__ import annotations

import math

import numpy as np

from analysis.aggregate import integrated_score
from analysis.summary import Analysis


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
    return (f" {' and '.join(parts)} diverged and count as the worst outcome (intention to treat)."
            if parts else "")


def _task_verdict(row, a: Analysis) -> str:
    o = a.options
    head = f"On {row.scope}, {row.config} against {row.reference}: {row.verdict}"
    if row.n < 2:
        return f"{head} (n = {row.n} paired seed(s): no test possible).{_diverged(row)}"
    t = row.test.startswith("paired t")
    what, interval = ("mean difference", "t-interval") if t else ("median difference", "order-statistic interval")
    test = "paired t-test" if t else "Wilcoxon signed-rank test (intention to treat)"
    text = (f"{head} — {what} {row.estimate:+.4g} in final {o.metric} ({_pct(1 - 2 * o.alpha)} {interval} "
            f"{row.ci_low:+.4g} to {row.ci_high:+.4g}) against the margin ±{row.margin:.3g} "
            f"({row.margin_rule}), n = {row.n} paired seeds; {test} p = {_g(row.p_difference_raw)} "
            f"(Holm-adjusted {_g(row.p_difference)}); TOST p = {_g(row.p_equivalence_raw)} (Holm-adjusted "
            f"{_g(row.p_equivalence)}).{_diverged(row)}")
    if row.n_diverged or row.n_diverged_reference:
        text += f" Surviving runs only (secondary, n = {int(row.n_survivors)}): {row.verdict_survivors}."
    if math.isfinite(row.posterior_better):
        text += (f" Posterior probabilities (Bayesian signed-rank, ROPE = the margin; a description, not "
                 f"a second test): better {row.posterior_better:.2f}, within the margin "
                 f"{row.posterior_equivalent:.2f}, worse {row.posterior_worse:.2f}.")
    return text


def _hierarchical_posterior(row) -> str:
    if not math.isfinite(row.posterior_better):
        return ""
    return (f" Posterior probabilities of the hierarchical Bayesian model (Benavoli et al. 2017; seeds within "
            f"tasks, surviving runs, ROPE = each task's margin; a description, not a second test) that a new "
            f"task finds {row.config} better {row.posterior_better:.2f}, within the margin "
            f"{row.posterior_equivalent:.2f}, worse {row.posterior_worse:.2f}.")


def _all_tasks_verdict(row, a: Analysis) -> str:
    head = f"Across tasks, {row.config} against {row.reference}: {row.verdict}"
    if row.test == "none":
        return (f"{head} — {row.n} task(s) with a comparison; the across-task question needs more tasks "
                f"(the task is the unit, not the seed).{_hierarchical_posterior(row)}")
    return (f"{head} — over n = {row.n} tasks (one number per task: its estimate divided by its own "
            f"margin), mean {row.estimate:+.3g} margins ({_pct(1 - 2 * a.options.alpha)} interval "
            f"{row.ci_low:+.3g} to {row.ci_high:+.3g}, equivalence margin ±1); {row.test}: Holm-adjusted "
            f"p = {_g(row.p_difference)} for a difference, {_g(row.p_equivalence)} for equivalence."
            f"{_hierarchical_posterior(row)}")


def verdict_claims(a: Analysis) -> list[str]:
    """The rule, the comparison, then one sentence per verdict row."""
    if a.verdict.empty:
        return [f"No comparison: {a.comparison.describe()}."]
    o = a.options
    out = [f"Comparison: {a.comparison.describe()}. Rule (α = {o.alpha:g}; Holm over the per-task rows, "
           f"and separately over the all-tasks rows): equivalent when TOST rejects a difference of at "
           f"least the margin; better or worse when the paired test rejects no difference and the estimate lies outside the margin; "
           f"otherwise inconclusive."]
    for row in a.verdict.itertuples():
        out.append(_task_verdict(row, a) if row.scope != "all tasks" else _all_tasks_verdict(row, a))
    return out


def maxt_claims(a: Analysis) -> list[str]:
    out = []
    for (task, config), r in a.maxt.items():
        sig = r.p_adjusted <= a.options.alpha
        n = int(round(math.log2(r.null_max.size))) if r.exact else None
        how = f"exact over all 2^{n} sign flips" if r.exact else f"{r.null_max.size} random sign flips"
        floor = 1.0 / r.null_max.size * (2 if r.exact else 1)
        if sig.any():
            out.append(f"On {task}, {config} and {a.baseline} differ at {int(sig.sum())} of {r.steps.size} "
                       f"logged steps (sign-flip max-T test, family-wise α = {a.options.alpha:g} over steps, "
                       f"{how}), first at step {int(r.steps[sig][0])}.")
        else:
            out.append(f"On {task}, the sign-flip max-T test finds no step where {config} and {a.baseline} "
                       f"differ (family-wise α = {a.options.alpha:g}, {how}; smallest attainable adjusted "
                       f"p = {floor:.3g}).")
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
        out.append(f"Seeds needed for 80% power with a paired t-test at the family's level "
                   f"{a.options.alpha:g}/{m} (median observed sd of paired differences): {rows}.")
    tasks = a.verdict[a.verdict["scope"] != "all tasks"] if not a.verdict.empty else a.verdict
    need = tasks["seeds_for_equivalence"].to_numpy(float) if not tasks.empty else np.array([])
    if np.isfinite(need).any():
        out.append(f"Seeds needed to show equivalence at the margin with 80% power (TOST at the worst-case "
                   f"Holm level, true difference 0, each comparison's observed sd): median "
                   f"{np.nanmedian(need):.0f}, largest {np.nanmax(need):.0f} (see seeds_for_equivalence in "
                   f"the verdict table).")
    return out or ["No paired differences with ≥ 2 seeds: the seeds needed cannot be estimated from the spread."]


def theory_claims(a: Analysis) -> list[str]:
    """Per task: does the window's shape matter once the mean radius is matched?"""
    out, pct = [], _pct(a.options.level)
    for row in a.radius_relation.itertuples():
        if not math.isfinite(row.p_shape):
            out.append(f"On {row.task}: too few configurations that log μ[t] ({row.configs}; at least 3 with "
                       f"repeated seeds needed) to test whether the window's shape matters beyond its mean radius.")
            continue
        matters = row.p_shape <= a.options.alpha
        out.append(f"On {row.task}, final {a.options.metric} = β₀ + β₁·log(mean radius) over {row.runs} runs of "
                   f"{row.configs} configurations: β₁ = {row.slope:+.3g} ({pct} interval {row.slope_ci_low:+.3g} "
                   f"to {row.slope_ci_high:+.3g}, R² = {row.r_squared:.2f}); once the mean radius is matched the "
                   f"window's shape {'still matters' if matters else 'shows no detectable effect'} (lack-of-fit "
                   f"F({row.shape_df:.0f}, {row.resid_df:.0f}) = {row.shape_f:.3g}, p = {_g(row.p_shape)}).")
    return out


def all_claims(a: Analysis) -> dict[str, list[str]]:
    return {"Verdicts": verdict_claims(a), "Where along training": maxt_claims(a),
            "Across tasks": aggregate_claims(a), "The theory's prediction": theory_claims(a),
            "Failures": failure_claims(a), "Seeds": power_claims(a), "Notes": list(a.notes)}
