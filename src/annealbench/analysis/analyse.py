"""The whole analysis of one store: verdicts, endpoints, paired tests, max-T, task-level
aggregates and rank tests, power, failures, the mean-radius relation.

The endpoint is the held-out test metric (`test/loss`) unless told otherwise; the comparison is
the one the suite declared (`compare.json`) unless overridden. Everything here is numbers and
tables; `annealbench.analysis.claims` turns them into sentences and
`annealbench.analysis.report` into files.
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

from annealbench.analysis import aggregate
from annealbench.analysis import comparisons
from annealbench.analysis import paired
from annealbench.analysis import metric_directions as declarations
from annealbench.analysis.curves import TaskCurves, eval_runs, final_values, normalised_auc, steps_to_target, task_curves
from annealbench.analysis.diagnostics import run_diagnostics
from annealbench.analysis.fairtime import time_measure
from annealbench.analysis.maxt import MaxT, max_t_test
from annealbench.analysis.load import Store
from annealbench.analysis.theory import THEORY_OPTIMIZERS, radius_relation
from annealbench.analysis.verdict import holm, is_task_scope
from annealbench.common.compare import CompareError, Comparison, Margin
from annealbench.common.metrics import Metric

log = logging.getLogger(__name__)
POWER_EFFECTS = (0.8, 1.0, 1.5)
TEST_METRIC, VALIDATION_METRIC = "test/loss", "val/loss"


@dataclass(frozen=True)
class Options:
    """What to analyse and at which levels."""

    metric: str | None = None  # endpoint metric; None: test/loss, or val/loss when no test split is logged
    references: tuple[str, ...] = ()  # override the declared references (config labels or optimizer names)
    margin: float | None = None  # override the declared margin: a fraction of the reference's median
    margin_abs: float | None = None  # override the declared margin: metric units
    alpha: float = 0.05  # family-wise level
    level: float = 0.95  # confidence level of intervals
    n_boot: int = 2000  # stratified bootstrap draws for aggregate intervals
    r_max: float = 4.0  # upper limit of the performance-profile integral (AlgoPerf)

    def __post_init__(self):
        if not 0 < self.alpha < 1 or not 0 < self.level < 1:
            raise ValueError(f"alpha={self.alpha!r} and level={self.level!r} must lie in (0, 1)")
        if self.n_boot < 100 or self.r_max <= 1:
            raise ValueError(f"n_boot={self.n_boot!r} must be ≥ 100 and r_max={self.r_max!r} > 1")
        if isinstance(self.references, str):
            raise ValueError(f"references must be a tuple of configuration labels, got the string "
                             f"{self.references!r}")
        self.margin_override()  # checks the margins

    def margin_override(self) -> Margin | None:
        """The margin given instead of the declared one, or None; both kinds at once is an error."""
        if self.margin is not None and self.margin_abs is not None:
            raise ValueError(f"give a relative margin (--margin, got {self.margin!r}) or an absolute one "
                             f"(--margin-abs, got {self.margin_abs!r}), not both")
        if self.margin is not None:
            return _margin("relative", self.margin, "--margin")
        if self.margin_abs is not None:
            return _margin("absolute", self.margin_abs, "--margin-abs")
        return None


def _margin(kind: str, value: float, flag: str) -> Margin:
    try:
        return Margin(kind, value)
    except CompareError as err:
        raise ValueError(f"{flag} {err.problem} ({kind} margin)") from None


@dataclass(frozen=True)
class Analysis:
    """All results of one analysis; DataFrames are the report's tables."""

    options: Options  # with the metric resolved
    declared: Metric  # what the tasks declare of the endpoint metric: its direction and units
    baseline: str  # the first reference: the target of steps-to-target, the max-T comparisons
    curves: dict[str, TaskCurves]
    endpoints: pd.DataFrame  # one row per eval run
    per_config: pd.DataFrame  # one row per (task, config)
    paired: pd.DataFrame  # secondary (surviving runs, t against 0): one row per per-task verdict row
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
    verdict: pd.DataFrame  # annealbench.analysis.verdict.VERDICT_COLUMNS, then secondary columns
    comparison: Comparison
    radius_relation: pd.DataFrame  # per task: final metric against log mean radius, and the shape test
    time_measure: str  # "steps_to_target" or "time_to_target_s": what profiles and time-to-target use
    notes: list[str] = field(default_factory=list)
    optimizer_curves: dict[str, tuple[TaskCurves, TaskCurves]] = field(default_factory=dict)  # μ[t], RMS(Δ)

    @property
    def metric_label(self) -> str:
        """The endpoint with its units and direction, e.g. `test/acc (fraction correct; higher is
        better)`: every axis and heading that shows the endpoint says which way is better."""
        return declarations.describe(self.options.metric, self.declared)

    @property
    def metric_axis(self) -> str:
        """A figure axis's short form: `test/loss (↓ better)`."""
        return f"{self.options.metric} ({'↓' if self.declared.better == 'lower' else '↑'} better)"


def _endpoints(curves: TaskCurves, time: TaskCurves | None, baseline: str,
               sign: float) -> tuple[pd.DataFrame, float]:
    final = final_values(curves)
    auc = normalised_auc(curves)
    target = math.nan
    if baseline in curves.configs:
        base = final[curves.index(baseline)]
        if np.isfinite(base).any():
            target = float(np.nanmedian(base))
    reach = steps_to_target(curves, target, sign) if math.isfinite(target) else np.full(final.shape, np.nan)
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


def _paired(curves: dict[str, TaskCurves], endpoints: pd.DataFrame, verdict: pd.DataFrame, primary: str,
            options: Options, sign: float, notes: list[str]) -> tuple[pd.DataFrame, dict]:
    """The secondary analysis (`annealbench.analysis.paired`: surviving runs, t against 0) of every per-task row
    of the verdict — its Holm family is the verdict's per-task family, the same rows — and max-T
    over steps against the primary reference."""
    for task, tc in curves.items():
        if len(tc.configs) == 1:
            notes.append(f"{task}: only one configuration ({tc.configs[0]}); nothing to compare.")
    results, maxt = [], {}
    rows = verdict[verdict["scope"].map(is_task_scope)] if not verdict.empty else verdict
    finals = {task: endpoints[endpoints["task"] == task].pivot(index="config", columns="seed", values="final")
              for task in dict.fromkeys(rows["scope"])} if not rows.empty else {}
    for task, config, ref in (zip(rows["scope"], rows["config"], rows["reference"]) if not rows.empty else ()):
        tc, final = curves[task], finals[task]
        c, b = tc.index(config), tc.index(ref)
        res = paired.compare(task, config, ref, final.loc[config].to_numpy(), final.loc[ref].to_numpy(),
                             tc.status[c], tc.status[b], sign=sign, level=options.level)
        if res.n >= 2 and ref == primary:
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
    frame["p_holm"] = holm(frame["p_t"].to_numpy(), options.alpha)
    m = int(frame["p_t"].notna().sum())
    alpha_first = options.alpha / max(m, 1)
    frame["min_detectable"] = [paired.smallest_detectable_dz(n, alpha_first) * sd if n >= 2 else math.nan
                               for n, sd in zip(frame["n"], frame["sd_diff"])]
    return frame, maxt


@dataclass(frozen=True)
class TaskBlocks:
    """One block per task: each configuration's median over seeds, oriented so lower is better,
    a diverged run counted as +inf (intention to treat); failed and missing runs left out."""

    configs: tuple[str, ...]
    tasks: tuple[str, ...]
    medians: np.ndarray  # (T, k)
    scores: dict[str, list[np.ndarray]]  # config → per-task normalised scores of its runs
    times: np.ndarray  # (T, k) median over seeds of the time measure (inf: most never reached)


def _task_blocks(curves, endpoints, sign, measure, notes) -> TaskBlocks:
    multi = [t for t, tc in curves.items() if len(tc.configs) >= 2]
    for task in sorted(set(curves) - set(multi)):
        notes.append(f"{task}: one configuration only; left out of the across-task comparison.")
    common = tuple(sorted(set.intersection(*(set(curves[t].configs) for t in multi)))) if multi else ()
    medians, times, tasks = [], [], []
    scores: dict[str, list[np.ndarray]] = {c: [] for c in common}
    for task in multi:
        tc = curves[task]
        e = endpoints[endpoints["task"] == task]
        final = e.pivot(index="config", columns="seed", values="final").loc[list(tc.configs)].to_numpy()
        score = aggregate.normalised_scores(final, sign)
        cols = [tc.index(c) for c in common]
        ran = np.isin(tc.status, ("done", "diverged"))
        for c, config in zip(cols, common):
            scores[config].append(score[c][ran[c]])
        block = aggregate.task_block(final[cols], tc.status[cols], sign)
        if np.isnan(block).any():
            notes.append(f"{task}: some configuration has no completed or diverged run; left out of the "
                         f"across-task rank tests.")
            continue
        reach = e.pivot(index="config", columns="seed", values=measure).loc[list(common)].to_numpy(float)
        medians.append(block)
        times.append([np.median(r[~np.isnan(r)]) if (~np.isnan(r)).any() else np.nan for r in reach])
        tasks.append(task)
    shape = (len(tasks), len(common))
    return TaskBlocks(configs=common, tasks=tuple(tasks), medians=np.array(medians, float).reshape(shape),
                      scores=scores, times=np.array(times, float).reshape(shape))


def _aggregate_scores(blocks: TaskBlocks, options: Options) -> pd.DataFrame:
    """Per configuration: the mean over tasks of its median normalised score with a t-interval over
    tasks (the task is the unit), and the IQM of its runs with a bootstrap that resamples seeds
    within tasks (conditional on these tasks)."""
    rows = []
    for config in blocks.configs:
        parts = [p for p in blocks.scores[config] if p.size]
        if not parts:
            continue
        per_task = np.array([np.median(p) for p in parts])
        t = per_task.size
        mean = float(per_task.mean())
        half = (stats.t.ppf(0.5 + options.level / 2, t - 1) * per_task.std(ddof=1) / math.sqrt(t)
                if t >= 2 else math.nan)
        iqm = aggregate.stratified_bootstrap(parts, aggregate.iqm, options.n_boot, options.level)
        rows.append({"config": config, "tasks": t, "runs": int(sum(p.size for p in parts)),
                     "mean_score": mean, "mean_ci_low": mean - half, "mean_ci_high": mean + half,
                     "iqm_score": iqm[0], "iqm_ci_low": iqm[1], "iqm_ci_high": iqm[2]})
    return pd.DataFrame(rows)


def _across_tasks(blocks: TaskBlocks, options: Options, notes: list[str]):
    """Friedman's test, pairwise Wilcoxon–Holm cliques and performance ratios over task blocks."""
    t, k = blocks.medians.shape
    fried = pairwise = ratios = None
    clq: list[list[str]] = []
    if k < 2 or t < 2:
        if k >= 2:
            notes.append(f"Across tasks: {t} task(s) with every configuration; the across-task question "
                         f"needs more tasks (the task is the unit; a test over seeds would answer another "
                         f"question).")
        return fried, pairwise, clq, ratios
    if np.isfinite(blocks.times).any():
        ratios = pd.DataFrame(aggregate.performance_ratios(blocks.times),
                              index=pd.Index(blocks.tasks, name="task"), columns=list(blocks.configs))
    smallest = aggregate.smallest_friedman_p(t, k)
    if smallest > options.alpha:
        notes.append(f"Across tasks: with {t} tasks and {k} configurations Friedman's permutation test "
                     f"cannot reach α = {options.alpha:g} (smallest p {smallest:.3g}); the across-task "
                     f"question needs more tasks.")
        return fried, pairwise, clq, ratios
    try:
        fried = aggregate.friedman(blocks.medians, blocks.configs, alpha=options.alpha)
    except ValueError as err:
        notes.append(f"Across tasks: {err}.")
        return None, None, [], ratios
    if aggregate.smallest_pairwise_p(t, k) > options.alpha:
        notes.append(f"Across tasks: pairwise Wilcoxon signed-rank tests over {t} tasks cannot reach "
                     f"α = {options.alpha:g} after Holm's correction over {k * (k - 1) // 2} pairs; no "
                     f"cliques (the across-task question needs more tasks).")
        return fried, pairwise, clq, ratios
    p = aggregate.pairwise_wilcoxon_holm(blocks.medians, blocks.configs)
    pairwise = pd.DataFrame(p, index=list(blocks.configs), columns=list(blocks.configs))
    clq = [[blocks.configs[i] for i in g] for g in aggregate.cliques(fried.average_ranks, p, options.alpha)]
    return fried, pairwise, clq, ratios


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


def resolve_metric(store: Store, metric: str | None, notes: list[str]) -> str:
    """`metric`, or test/loss by default, or val/loss (with a note) when no test split is logged."""
    if metric is not None:
        return metric
    if TEST_METRIC in set(store.results["metric"].unique()):
        return TEST_METRIC
    notes.append(f"The store logs no {TEST_METRIC}: verdicts, tables and figures use {VALIDATION_METRIC}, "
                 f"the split the learning rate was selected on, so they favour the selected settings.")
    return VALIDATION_METRIC


def _diagnostics(store: Store, metrics: set, endpoints: pd.DataFrame, notes: list[str]):
    if not {"opt/mu_t", "opt/rms_step"} <= metrics:
        notes.append("opt/mu_t and opt/rms_step were not logged; no trust-region diagnostics.")
        return pd.DataFrame(), {}
    mu = task_curves(store, "opt/mu_t")
    rms = task_curves(store, "opt/rms_step")
    opt_curves = {t: (mu[t], rms[t]) for t in mu if t in rms}
    parts = [run_diagnostics(mu[t], rms.get(t)) for t in mu]
    diag = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not diag.empty:
        diag = diag.merge(endpoints[["task", "config", "seed", "final"]], on=["task", "config", "seed"])
    return diag, opt_curves


def analyse(store: Store, options: Options = Options()) -> Analysis:
    """Run every analysis of the eval stage of `store` for `options.metric`."""
    notes: list[str] = []
    options = dataclasses.replace(options, metric=resolve_metric(store, options.metric, notes))
    runs = eval_runs(store)
    names = sorted(runs["task_name"].unique())
    declared = declarations.endpoint(declarations.declarations(store.root, names, notes), names,
                                     options.metric)
    sign = declared.sign
    curves = task_curves(store, options.metric)
    comparison = comparisons.resolve(store.root, sorted(runs["config"].unique()), options.references,
                                     options.margin_override())
    baseline = comparison.references[0]
    metrics = set(store.results["metric"].unique())
    measure, why = time_measure(store)
    notes.append(why)
    time = task_curves(store, "time/elapsed_s") if "time/elapsed_s" in metrics else None
    frames = []
    for task, tc in curves.items():
        frame, target = _endpoints(tc, time.get(task) if time else None, baseline, sign)
        frames.append(frame)
        if not math.isfinite(target):
            notes.append(f"{task}: the reference {baseline} has no completed run, so there is no target and "
                         f"no steps-to-target.")
    endpoints = pd.concat(frames, ignore_index=True)
    if endpoints["final"].notna().sum() == 0:
        notes.append("No run completed: every eval run diverged or failed; only failure rates are reported.")
    for task, tc in curves.items():
        if tc.seeds.size < 2:
            notes.append(f"{task}: one seed only; no test is possible, results are descriptive.")
    verdict = comparisons.verdict_frame(curves, endpoints, comparison, options.alpha, sign, notes, store=store,
                                        positive=declared.positive)
    paired_frame, maxt = _paired(curves, endpoints, verdict, baseline, options, sign, notes)
    blocks = _task_blocks(curves, endpoints, sign, measure, notes)
    fried, pairwise, clq, ratios = _across_tasks(blocks, options, notes)
    diag, opt_curves = _diagnostics(store, metrics, endpoints, notes)
    return Analysis(options=options, declared=declared, baseline=baseline, curves=curves, endpoints=endpoints,
                    per_config=_per_config(endpoints, options.level), paired=paired_frame, maxt=maxt,
                    failures=_failures(runs, options.level), aggregate=_aggregate_scores(blocks, options),
                    friedman=fried, pairwise_p=pairwise, cliques=clq, profile_ratios=ratios,
                    power=_power(paired_frame, options.alpha), diagnostics=diag, store=store, notes=notes,
                    optimizer_curves=opt_curves, verdict=verdict, comparison=comparison,
                    radius_relation=radius_relation(diag, options.level, THEORY_OPTIMIZERS), time_measure=measure)
