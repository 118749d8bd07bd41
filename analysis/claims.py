"""Every statistical result as a plain sentence that names its test, n and interval."""

from __future__ import annotations

import math

import numpy as np

from analysis.aggregate import integrated_score
from analysis.curves import sign_of
from analysis.summary import Analysis, profile_measure


def _g(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def _diverged(row) -> str:
    parts = []
    if row.n_diverged:
        parts.append(f"{row.n_diverged} run(s) of {row.config}")
    if row.n_diverged_baseline:
        parts.append(f"{row.n_diverged_baseline} run(s) of the baseline")
    return f" ({' and '.join(parts)} diverged and are counted in the failure table, not in n.)" if parts else ""


def paired_claims(a: Analysis) -> list[str]:
    """One sentence per comparison against the baseline."""
    o, out = a.options, []
    if a.paired.empty:
        return out
    m = int(a.paired["p_t"].notna().sum())
    pct = f"{100 * o.level:g}%"
    lower = sign_of(o.metric) > 0
    for row in a.paired.itertuples():
        head = f"On {row.task}, {row.config} against {row.baseline}"
        if row.note:
            out.append(f"{head}: {row.note} (n = {row.n}).{_diverged(row)}")
            continue
        interval = (f"mean difference {row.mean_diff:+.4g} in final {o.metric} ({pct} t-interval "
                    f"{row.ci_low:+.4g} to {row.ci_high:+.4g}), paired t-test p = {_g(row.p_t)}, "
                    f"Holm-adjusted p = {_g(row.p_holm)} over {m} comparisons, n = {row.n} paired seeds; "
                    f"Wilcoxon signed-rank (zeros split) p = {_g(row.p_wilcoxon)}; d_z = {row.d_z:+.2f}; "
                    f"probability that a run of {row.config} beats one of the baseline A = {row.a_better:.2f}; "
                    f"Bayesian signed-rank test: P(better) = {row.p_better:.2f}, "
                    f"P(within the ROPE ±{row.rope:.3g}) = {row.p_rope:.2f}, P(worse) = {row.p_worse:.2f}")
        floor = 2.0 / 2 ** row.n  # the exact two-sided Wilcoxon p-value cannot go below 2/2^n
        caveat = (f" With n = {row.n} seeds the Wilcoxon check cannot confirm at α = {o.alpha:g}: its "
                  f"p-value cannot go below {floor:.3g}." if floor > o.alpha else "")
        if row.p_holm <= o.alpha:
            better = (row.mean_diff < 0) == lower
            word = "better" if better else "worse"
            out.append(f"{head}: {row.config} is {word} ({interval}).{_diverged(row)}{caveat}")
        else:
            out.append(f"{head}: no detectable difference ({interval}); with n = {row.n} seeds the "
                       f"t-test had 80% power only for differences of at least {_g(row.min_detectable)} "
                       f"at the family's level {o.alpha:g}/{m}.{_diverged(row)}{caveat}")
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
        out.append(f"{row.config}: normalised score IQM {row.iqm_score:.2f} ({pct} stratified-bootstrap "
                   f"interval {row.iqm_ci_low:.2f} to {row.iqm_ci_high:.2f}), mean {row.mean_score:.2f} "
                   f"({row.mean_ci_low:.2f} to {row.mean_ci_high:.2f}) over {row.runs} runs on {row.tasks} task(s).")
    if a.profile_ratios is not None:
        what = "wall-clock time" if profile_measure(a.endpoints) == "time_to_target_s" else "steps"
        score = integrated_score(a.profile_ratios.to_numpy(), a.options.r_max)
        listed = ", ".join(f"{c} {b:.2f}" for c, b in sorted(zip(a.profile_ratios.columns, score),
                                                             key=lambda t: -t[1]))
        out.append(f"Performance profiles over {what} to the target on {len(a.profile_ratios)} (task, seed) "
                   f"problems; AlgoPerf integrated score B (τ up to {a.options.r_max:g}, 1 = always "
                   f"fastest): {listed}.")
    f = a.friedman
    if f is not None:
        verdict = "rejects" if f.p_value <= a.options.alpha else "does not reject"
        ranks = ", ".join(f"{c} {r:.2f}" for c, r in sorted(zip(f.configs, f.average_ranks), key=lambda t: t[1]))
        out.append(f"Across N = {f.n_blocks} (task, seed) blocks and k = {len(f.configs)} configurations, "
                   f"Friedman's test {verdict} equal ranks: χ²_F = {f.chi2_demsar:.3g} (Demšar's formula), "
                   f"{f.chi2_scipy:.3g} tie-corrected, p = {_g(f.p_value)}; Iman–Davenport F = "
                   f"{f.iman_davenport_f:.3g}, p = {_g(f.p_iman_davenport)}. Average ranks (1 = best): {ranks}. "
                   f"Nemenyi critical difference at α = {f.alpha:g}: {f.critical_difference:.3g}.")
        if a.cliques:
            groups = "; ".join("{" + ", ".join(g) + "}" for g in a.cliques)
            out.append(f"Groups with no significant pairwise difference (Wilcoxon signed-rank over blocks, "
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
    if a.power.empty or not np.isfinite(a.power["difference"]).any():
        return ["No paired differences with ≥ 2 seeds: the seeds needed cannot be estimated from the spread."]
    rows = "; ".join(f"d_z = {r.d_z:g} (≈ {r.difference:.3g} in {a.options.metric}): {r.seeds_at_family_alpha} "
                     f"seeds" for r in a.power.itertuples())
    m = int(a.power["family_size"].iloc[0])
    return [f"Seeds needed for 80% power with a paired t-test at the family's level {a.options.alpha:g}/{m} "
            f"(median observed sd of paired differences): {rows}."]


def all_claims(a: Analysis) -> dict[str, list[str]]:
    return {"Against the baseline": paired_claims(a), "Where along training": maxt_claims(a),
            "Across tasks": aggregate_claims(a), "Failures": failure_claims(a),
            "Seeds": power_claims(a), "Notes": list(a.notes)}
