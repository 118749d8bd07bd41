"""The whole analysis of one store: endpoints, paired tests, max-T, aggregates, power, failures.

Everything here is numbers and tables; `analysis.claims` turns them into sentences and
`analysis.report` into files.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from analysis import aggregate, paired
from analysis.curves import TaskCurves, eval_runs, final_values, normalised_auc, sign_of, steps_to_target, task_curves
from analysis.diagnostics import run_diagnostics
from analysis.maxt import MaxT, max_t_test
from analysis.store import Store

log = logging.getLogger(__name__)
DEFAULT_BASELINE = "adamw[window=cosine]"
POWER_EFFECTS = (0.8, 1.0, 1.5)


@dataclass(frozen=True)
class Options:
    """What to analyse and at which levels."""

    metric: str = "val/loss"  # primary endpoint metric
    baseline: str = DEFAULT_BASELINE  # a config label, or an optimizer name with one config
    alpha: float = 0.05  # family-wise level
    level: float = 0.95  # confidence level of intervals
    rope_fraction: float = 0.01  # ROPE half-width as a fraction of |baseline median final value|
    n_boot: int = 2000  # stratified bootstrap draws for aggregate intervals
    r_max: float = 4.0  # upper limit of the performance-profile integral (AlgoPerf)

    def __post_init__(self):
        if not 0 < self.alpha < 1 or not 0 < self.level < 1:
            raise ValueError(f"alpha={self.alpha!r} and level={self.level!r} must lie in (0, 1)")
        if self.rope_fraction < 0 or self.n_boot < 100 or self.r_max <= 1:
            raise ValueError(f"rope_fraction={self.rope_fraction!r} must be ≥ 0, n_boot={self.n_boot!r} "
                             f"≥ 100 and r_max={self.r_max!r} > 1")


@dataclass(frozen=True)
class Analysis:
    """All results of one analysis; DataFrames are the report's tables."""

    options: Options
    baseline: str
    curves: dict[str, TaskCurves]
    endpoints: pd.DataFrame  # one row per eval run
    per_config: pd.DataFrame  # one row per (task, config)
    paired: pd.DataFrame  # one row per (task, config ≠ baseline)
    maxt: dict[tuple[str, str], MaxT]
    failures: pd.DataFrame  # one row per (task, config), failed runs included
    aggregate: pd.DataFrame  # one row per config
    friedman: aggregate.Friedman | None
    pairwise_p: pd.DataFrame | None
    cliques: list[list[str]]
    profile_ratios: pd.DataFrame | None  # rows (task, seed), columns configs
    power: pd.DataFrame
    diagnostics: pd.DataFrame
    store: Store
    notes: list[str] = field(default_factory=list)
    optimizer_curves: dict[str, tuple[TaskCurves, TaskCurves]] = field(default_factory=dict)  # μ[t], RMS(Δ)


def resolve_baseline(name: str, configs: list[str]) -> str:
    """The configuration named `name`, or the single configuration of optimizer `name`."""
    if name in configs:
        return name
    matches = [c for c in configs if c.split("[")[0] == name]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(f"baseline {name!r} is ambiguous: configurations {matches}; name one of them")
    raise ValueError(f"baseline {name!r} is not among the eval-stage configurations: {configs}; "
                     f"pass --baseline with one of them (or an optimizer name with one configuration)")


def _endpoints(curves: TaskCurves, time: TaskCurves | None, baseline: str) -> tuple[pd.DataFrame, float]:
    final = final_values(curves)
    auc = normalised_auc(curves)
    target = math.nan
    if baseline in curves.configs:
        base = final[curves.index(baseline)]
        if np.isfinite(base).any():
            target = float(np.nanmedian(base))
    reach = steps_to_target(curves, target) if math.isfinite(target) else np.full(final.shape, np.nan)
    t_reach = np.full(final.shape, np.nan)
    if time is not None and math.isfinite(target):
        for c, s in zip(*np.nonzero(np.isfinite(reach))):
            ct = time.configs.index(curves.configs[c]) if curves.configs[c] in time.configs else None
            tv = time.values[ct, s] if ct is not None else np.full(1, np.nan)
            ok = np.isfinite(tv)
            if ok.sum() >= 1:
                t_reach[c, s] = np.interp(reach[c, s], time.steps[ok], tv[ok])
        t_reach = np.where(np.isinf(reach), np.inf, t_reach)
    cc, ss = np.meshgrid(np.arange(len(curves.configs)), np.arange(curves.seeds.size), indexing="ij")
    frame = pd.DataFrame({
        "task": curves.task, "config": np.array(curves.configs)[cc.ravel()],
        "seed": curves.seeds[ss.ravel()], "status": curves.status.ravel(),
        "final": final.ravel(), "auc_log": auc.ravel(), "steps_to_target": reach.ravel(),
        "time_to_target_s": t_reach.ravel(), "target": target,
    })
    return frame, target


def _wilson(k: int, n: int, level: float) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    lo, hi = proportion_confint(k, n, alpha=1 - level, method="wilson")
    # exact at the ends: the Wilson interval's lower limit at k = 0 is 0 (statsmodels leaves ~1e-17)
    return (0.0 if k == 0 else float(lo)), (1.0 if k == n else float(hi))


def _failures(runs: pd.DataFrame, level: float) -> pd.DataFrame:
    rows = []
    for (task, config), g in runs.groupby(["task", "config"], sort=True):
        n, div, fail = len(g), int((g["status"] == "diverged").sum()), int((g["status"] == "failed").sum())
        lo, hi = _wilson(div, n, level)
        rows.append({"task": task, "config": config, "optimizer": g["optimizer"].iloc[0], "runs": n,
                     "done": n - div - fail, "diverged": div, "failed": fail,
                     "diverged_rate": div / n, "diverged_ci_low": lo, "diverged_ci_high": hi})
    return pd.DataFrame(rows)


def _per_config(endpoints: pd.DataFrame, level: float) -> pd.DataFrame:
    rows = []
    for (task, config), g in endpoints.groupby(["task", "config"], sort=True):
        final = g["final"].dropna().to_numpy()
        n = final.size
        mean = float(final.mean()) if n else math.nan
        lo = hi = math.nan
        if n >= 2:
            half = stats.t.ppf(0.5 + level / 2, n - 1) * final.std(ddof=1) / math.sqrt(n)
            lo, hi = mean - half, mean + half
        reach = g["steps_to_target"].to_numpy()
        tried = reach[~np.isnan(reach)]
        rows.append({
            "task": task, "config": config, "n_done": n,
            "n_diverged": int((g["status"] == "diverged").sum()),
            "n_failed": int((g["status"] == "failed").sum()),
            "final_mean": mean, "final_ci_low": lo, "final_ci_high": hi,
            "final_median": float(np.median(final)) if n else math.nan,
            "auc_log_mean": float(g["auc_log"].mean()) if g["auc_log"].notna().any() else math.nan,
            "steps_to_target_median": float(np.median(tried)) if tried.size else math.nan,
            "reached_fraction": float(np.isfinite(tried).mean()) if tried.size else math.nan,
            "time_to_target_median_s": (float(np.median(g["time_to_target_s"].dropna()))
                                        if g["time_to_target_s"].notna().any() else math.nan),
        })
    return pd.DataFrame(rows)


def _paired(curves: dict[str, TaskCurves], endpoints: pd.DataFrame, baseline: str, options: Options,
            notes: list[str]) -> tuple[pd.DataFrame, dict]:
    sign = sign_of(options.metric)
    results, maxt = [], {}
    for task, tc in curves.items():
        if baseline not in tc.configs:
            notes.append(f"{task}: the baseline {baseline} was not run; no paired comparisons on this task.")
            continue
        if len(tc.configs) == 1:
            notes.append(f"{task}: only one configuration ({tc.configs[0]}); nothing to compare.")
            continue
        b = tc.index(baseline)
        final = endpoints[endpoints["task"] == task].pivot(index="config", columns="seed", values="final")
        base_final = final.loc[baseline].to_numpy()
        for c, config in enumerate(tc.configs):
            if c == b:
                continue
            y = final.loc[config].to_numpy()
            res = paired.compare(task, config, baseline, y, base_final, tc.status[c], tc.status[b],
                                 sign=sign, level=options.level)
            if res.n >= 2:
                both = np.isfinite(y) & np.isfinite(base_final)
                rope = options.rope_fraction * abs(float(np.nanmedian(base_final)))
                better, within, worse = paired.bayes_signed_rank(y[both] - base_final[both], rope, sign)
                res = dataclasses.replace(res, p_better=better, p_rope=within, p_worse=worse, rope=rope)
                d = tc.values[c] - tc.values[b]
                paired_rows = np.isfinite(d).any(axis=1) & (tc.status[c] == "done") & (tc.status[b] == "done")
                try:
                    maxt[(task, config)] = max_t_test(d[paired_rows], tc.steps)
                except ValueError as err:
                    notes.append(f"{task}, {config}: no max-T test ({err}).")
            results.append(res)
    frame = pd.DataFrame([dataclasses.asdict(r) for r in results])
    if frame.empty:
        return frame, maxt
    frame["p_holm"] = paired.holm(frame["p_t"].to_numpy(), options.alpha)
    m = int(frame["p_t"].notna().sum())
    alpha_first = options.alpha / max(m, 1)
    frame["min_detectable"] = [paired.smallest_detectable_dz(n, alpha_first) * sd if n >= 2 else math.nan
                               for n, sd in zip(frame["n"], frame["sd_diff"])]
    return frame, maxt


def profile_measure(endpoints: pd.DataFrame) -> str:
    """Time to target (seconds) when every run that reached the target has one, else steps."""
    reached = np.isfinite(endpoints["steps_to_target"])
    seconds = endpoints.loc[reached, "time_to_target_s"]
    return "time_to_target_s" if reached.any() and np.isfinite(seconds).all() else "steps_to_target"


def _across_tasks(curves, endpoints, options, notes):
    sign = sign_of(options.metric)
    multi = [t for t, tc in curves.items() if len(tc.configs) >= 2]
    common = sorted(set.intersection(*(set(curves[t].configs) for t in multi))) if multi else []
    agg_rows, blocks, times, block_ids = [], [], [], []
    measure = profile_measure(endpoints)
    scores: dict[str, list[np.ndarray]] = {c: [] for c in common}
    for task, tc in curves.items():
        if len(tc.configs) < 2:
            notes.append(f"{task}: one configuration only; left out of the across-task comparison.")
            continue
        e = endpoints[endpoints["task"] == task]
        final = e.pivot(index="config", columns="seed", values="final").loc[list(tc.configs)].to_numpy()
        score = aggregate.normalised_scores(final, sign)
        status = tc.status
        for c, config in enumerate(tc.configs):
            if config in scores:
                ran = np.isin(status[c], ("done", "diverged"))
                scores[config].append(score[c][ran])
        cols = [tc.index(c) for c in common]
        # a block enters Friedman's test when every configuration has a final value or diverged
        complete = np.all((status[cols] == "diverged") | np.isfinite(final[cols]), axis=0)
        oriented = np.where(status[cols] == "diverged", np.inf, sign * final[cols])
        reach = e.pivot(index="config", columns="seed", values=measure).loc[common].to_numpy()
        for s in np.nonzero(complete)[0]:
            blocks.append(oriented[:, s])
            times.append(reach[:, s])
            block_ids.append((task, int(tc.seeds[s])))
    for config in common:
        parts = [p for p in scores[config] if p.size]
        if not parts:
            continue
        mean = aggregate.stratified_bootstrap(parts, np.mean, options.n_boot, options.level)
        iqm = aggregate.stratified_bootstrap(parts, aggregate.iqm, options.n_boot, options.level)
        agg_rows.append({"config": config, "tasks": len(parts), "runs": int(sum(p.size for p in parts)),
                         "mean_score": mean[0], "mean_ci_low": mean[1], "mean_ci_high": mean[2],
                         "iqm_score": iqm[0], "iqm_ci_low": iqm[1], "iqm_ci_high": iqm[2]})
    fried = pairwise = None
    clq: list[list[str]] = []
    ratios = None
    if len(common) >= 2 and len(blocks) >= 2:
        table = np.array(blocks)
        try:
            fried = aggregate.friedman(table, tuple(common), alpha=options.alpha)
        except ValueError as err:
            notes.append(f"Across tasks: {err}.")
            return pd.DataFrame(agg_rows), None, None, [], None
        p = aggregate.pairwise_wilcoxon_holm(table, tuple(common))
        pairwise = pd.DataFrame(p, index=common, columns=common)
        clq = [[common[i] for i in g] for g in aggregate.cliques(fried.average_ranks, p, options.alpha)]
        t = np.array(times, dtype=float)
        if np.isfinite(t).any():
            idx = pd.MultiIndex.from_tuples(block_ids, names=["task", "seed"])
            ratios = pd.DataFrame(aggregate.performance_ratios(t), index=idx, columns=common)
    elif multi:
        notes.append(f"Across tasks: {len(common)} configuration(s) common to every task and {len(blocks)} "
                     f"complete (task, seed) block(s); Friedman's test needs ≥ 2 of each.")
    return pd.DataFrame(agg_rows), fried, pairwise, clq, ratios


def _power(paired_frame: pd.DataFrame, alpha: float) -> pd.DataFrame:
    sds = paired_frame["sd_diff"].to_numpy(float) if not paired_frame.empty else np.array([])
    sds = sds[np.isfinite(sds)]
    sd = float(np.median(sds)) if sds.size else math.nan
    m = int(paired_frame["p_t"].notna().sum()) if not paired_frame.empty else 1
    rows = []
    for dz in POWER_EFFECTS:
        rows.append({"d_z": dz, "difference": dz * sd, "seeds_at_alpha": paired.seeds_needed(dz, alpha),
                     "seeds_at_family_alpha": paired.seeds_needed(dz, alpha / max(m, 1)),
                     "family_size": m})
    return pd.DataFrame(rows)


def analyse(store: Store, options: Options = Options()) -> Analysis:
    """Run every analysis of the eval stage of `store` for `options.metric`."""
    notes: list[str] = []
    runs = eval_runs(store)
    curves = task_curves(store, options.metric)
    configs = sorted(runs["config"].unique())
    baseline = resolve_baseline(options.baseline, configs)
    metrics = set(store.results["metric"].unique())
    time = task_curves(store, "time/elapsed_s") if "time/elapsed_s" in metrics else None
    frames, targets = [], {}
    for task, tc in curves.items():
        frame, targets[task] = _endpoints(tc, time.get(task) if time else None, baseline)
        frames.append(frame)
        if not math.isfinite(targets[task]):
            notes.append(f"{task}: the baseline has no completed run, so there is no target and no "
                         f"steps-to-target.")
    endpoints = pd.concat(frames, ignore_index=True)
    if endpoints["final"].notna().sum() == 0:
        notes.append("No run completed: every eval run diverged or failed; only failure rates are reported.")
    for task, tc in curves.items():
        if tc.seeds.size < 2:
            notes.append(f"{task}: one seed only; no test is possible, results are descriptive.")
    paired_frame, maxt = _paired(curves, endpoints, baseline, options, notes)
    agg, fried, pairwise, clq, ratios = _across_tasks(curves, endpoints, options, notes)
    diag, opt_curves = pd.DataFrame(), {}
    if {"opt/mu_t", "opt/rms_step"} <= metrics:
        mu = task_curves(store, "opt/mu_t")
        rms = task_curves(store, "opt/rms_step")
        opt_curves = {t: (mu[t], rms[t]) for t in mu if t in rms}
        parts = [run_diagnostics(mu[t], rms.get(t)) for t in mu]
        diag = pd.concat(parts, ignore_index=True) if parts else diag
        if not diag.empty:
            diag = diag.merge(endpoints[["task", "config", "seed", "final"]], on=["task", "config", "seed"])
    else:
        notes.append("opt/mu_t and opt/rms_step were not logged; no trust-region diagnostics.")
    return Analysis(options=options, baseline=baseline, curves=curves, endpoints=endpoints,
                    per_config=_per_config(endpoints, options.level), paired=paired_frame,
                    maxt=maxt, failures=_failures(runs, options.level), aggregate=agg, friedman=fried,
                    pairwise_p=pairwise, cliques=clq, profile_ratios=ratios,
                    power=_power(paired_frame, options.alpha), diagnostics=diag, store=store, notes=notes,
                    optimizer_curves=opt_curves)
