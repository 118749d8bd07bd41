"""The verdict rule's reproduced failures (issue "The verdict is the product", cases 2–9), one test
each, and the invariants a reader can check in `verdict.csv` on an analysed store.

Most cases build the final values directly (one evaluation per run, so a run's final value is
the value given) and call `annealbench.analysis.comparisons.verdict_frame`, the function the report uses.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from annealbench.analysis import comparisons
from annealbench.analysis import hierarchical
from annealbench.analysis import verdict as v
from annealbench.analysis.claims import verdict_claims
from annealbench.analysis.curves import TaskCurves
from annealbench.analysis.load import load_store
from annealbench.analysis.analyse import analyse
from annealbench.runner.suite.suite import load_suite
from annealbench.common.compare import Comparison, Margin
from tests.analysis.synthetic import BASELINE, Synthetic, simulate

ALPHA = 0.05
CONFIG = "muphi[window=linear]"
REF = BASELINE


def _z(n: int, seed: int) -> np.ndarray:
    """n values with mean exactly 0 and sd exactly 1 (so an example's statistics are exact)."""
    z = np.random.default_rng(seed).normal(size=n)
    return (z - z.mean()) / z.std(ddof=1)


def _frame(tasks: dict, margin: Margin, sign: float = 1.0, per_task: tuple = ()) -> pd.DataFrame:
    """verdict_frame over `tasks`: name → {config: (finals, statuses)}; the reference is REF."""
    curves, endpoints = {}, []
    for task, arms in tasks.items():
        configs = tuple(sorted(arms))
        finals = np.array([np.asarray(arms[c][0], float) for c in configs])
        status = np.array([np.asarray(arms[c][1], object) for c in configs])
        finals = np.where(status == "done", finals, np.nan)
        seeds = np.arange(finals.shape[1])
        curves[task] = TaskCurves(task=task, metric="test/loss", steps=np.array([100]), configs=configs,
                                  seeds=seeds, values=finals[:, :, None], status=status, max_steps=100)
        for i, c in enumerate(configs):
            endpoints.append(pd.DataFrame({"task": task, "config": c, "seed": seeds, "status": status[i],
                                           "final": finals[i]}))
    comparison = Comparison(references=(REF,), margin=margin, per_task=per_task)
    return comparisons.verdict_frame(curves, pd.concat(endpoints, ignore_index=True), comparison, ALPHA, sign, [])


def _done(n: int) -> np.ndarray:
    return np.array(["done"] * n, dtype=object)


def _row(frame: pd.DataFrame, scope: str, config: str = CONFIG) -> pd.Series:
    return frame.set_index(["scope", "config"]).loc[(scope, config)]


# --- case 2 ------------------------------------------------------------------------------------

def test_case2_both_diverged_never_agreement():
    """25 of 30 seeds diverged in both arms: they used to enter as d = 0 and made the 5 survivors
    (TOST p 0.83 on their own) 'equivalent'. A both-diverged seed is no agreement: it is left out,
    counted, and rules out equivalence."""
    n, margin = 30, Margin("absolute", 0.1)
    y_ref = 1.0 + 0.01 * _z(n, 0)
    y = y_ref.copy()
    y[25:] += 0.05 + 0.2 * _z(5, 1)  # the 5 survivors: differences of mean δ/2 and sd 2δ
    status = _done(n)
    status[:25] = "diverged"
    survivors = v.pair_stats(y[25:] - y_ref[25:], 0.1)
    assert survivors.p_inside > 0.25  # the survivors alone show nothing
    row = _row(_frame({"t": {CONFIG: (y, status), REF: (y_ref, status)}}, margin), "t")
    assert row.verdict != "equivalent"
    assert (row.n, row.n_both_diverged) == (5, 25) and row.p_equivalence == 1.0
    # even survivors that agree to 1e-6 are not equivalent once one seed diverged in both arms
    tight = y_ref + 1e-6 * _z(n, 2)
    row = _row(_frame({"t": {CONFIG: (tight, status), REF: (y_ref, status)}}, margin), "t")
    assert row.verdict == "inconclusive" and "no agreement" in row.note
    one = _done(n)
    one[0] = "diverged"
    row = _row(_frame({"t": {CONFIG: (tight, one), REF: (y_ref, one)}}, margin), "t")
    assert row.verdict == "inconclusive" and row.n_both_diverged == 1
    # the same survivors without any divergence are equivalent: the rule can say it
    row = _row(_frame({"t": {CONFIG: (tight, _done(n)), REF: (y_ref, _done(n))}}, margin), "t")
    assert row.verdict == "equivalent"


# --- case 3 ------------------------------------------------------------------------------------

def _worse_everywhere(diverged: dict[str, int], n: int = 30) -> dict:
    """Five tasks on which CONFIG is 3 margins worse (log(1.02) each); `diverged[task]` of its
    runs diverge."""
    tasks = {}
    for k, task in enumerate(("a", "b", "c", "d", "e")):
        y_ref = (1.0 + 0.3 * k) * np.exp(0.05 * _z(n, 10 + k))
        y = y_ref * np.exp(3 * math.log(1.02) + 0.004 * _z(n, 20 + k))
        status = _done(n)
        status[:diverged.get(task, 0)] = "diverged"
        tasks[task] = {CONFIG: (y, status), REF: (y_ref, _done(n))}
    return tasks


def test_case3_diverging_never_escapes_worse():
    """Worse on all 5 tasks is 'worse' across tasks; diverging on 20 of 30 seeds of one task used
    to turn that into 'inconclusive' (an infinite estimate switched the across-task row to a
    Wilcoxon over 5 tasks, smallest p 0.0625). Divergence must never improve a verdict."""
    margin = Margin("relative", 0.02)
    clean = _frame(_worse_everywhere({}), margin)
    assert (clean["verdict"] == "worse").all()
    lost = _frame(_worse_everywhere({"c": 20}), margin)
    assert _row(lost, "c").verdict == "worse"  # 20 × +∞ and 10 worse values: the sign test says so
    across = _row(lost, v.ALL_TASKS)
    assert across.verdict == "worse" and across.tasks_worse == 5 and across.tasks_total == 5
    # divergence is an outcome of its own, reported beside the verdict
    low, high = proportion_confint(20, 30, alpha=0.05, method="beta")
    c = _row(lost, "c")
    assert (c.n_diverged, c.diverged_rate) == (20, pytest.approx(20 / 30))
    assert (c.diverged_ci_low, c.diverged_ci_high) == pytest.approx((low, high))
    assert across.n_diverged == 20 and across.diverged_rate == pytest.approx(20 / 150)


def test_case3_small_n_says_it_cannot_call_divergence_worse():
    """At n ≤ 4 seeds the sign test cannot reach p ≤ 0.05 even when every run diverged: the row
    says so (and the divergence rate is the evidence)."""
    n = 4
    y_ref = 1.0 + 0.01 * _z(n, 3)
    status = np.array(["diverged"] * n, dtype=object)
    row = _row(_frame({"t": {CONFIG: (np.full(n, np.nan), status), REF: (y_ref, _done(n))}},
                      Margin("relative", 0.02)), "t")
    assert row.verdict == "inconclusive" and row.test == v.SIGN_TEST
    assert "cannot be called worse or better at this n" in row.note
    assert row.diverged_rate == 1.0 and row.diverged_ci_low == pytest.approx(0.025 ** (1 / 4))  # Clopper–Pearson


# --- case 4 ------------------------------------------------------------------------------------

def test_case4_worse_means_beyond_the_margin():
    """A true difference of 0.9 δ whose sample mean lands at 1.05 δ: the test against 0 is
    significant and the estimate exceeds δ, which used to say 'worse' (38% of the time at 0.9 δ).
    Worse needs the one-sided test of Δ ≤ δ to reject."""
    n, delta = 30, 0.1
    y_ref = 1.0 + 0.05 * _z(n, 4)
    y = y_ref + 1.05 * delta + 0.5 * delta * _z(n, 5)
    row = _row(_frame({"t": {CONFIG: (y, _done(n)), REF: (y_ref, _done(n))}}, Margin("absolute", delta)), "t")
    assert row.estimate == pytest.approx(1.05 * delta)
    assert row.verdict == "inconclusive" and row.ci_low < delta < row.ci_high
    # far enough beyond the margin, it is worse; for a higher-is-better metric the same is better
    y_far = y_ref + 2 * delta + 0.5 * delta * _z(n, 5)
    far = _frame({"t": {CONFIG: (y_far, _done(n)), REF: (y_ref, _done(n))}}, Margin("absolute", delta))
    assert _row(far, "t").verdict == "worse" and _row(far, "t").ci_low > delta
    flipped = _frame({"t": {CONFIG: (y_far, _done(n)), REF: (y_ref, _done(n))}}, Margin("absolute", delta), sign=-1.0)
    assert _row(flipped, "t").verdict == "better" and _row(flipped, "t").direction == "higher"


# --- case 5 ------------------------------------------------------------------------------------

def test_case5_printed_interval_is_the_one_decided_on():
    """A row whose unadjusted 90% interval lies inside ±δ while Holm over 10 rows leaves it
    inconclusive used to print that 90% interval beside 'inconclusive'. The interval printed is
    now the one at the row's Holm level, so it lies inside ±δ exactly when the row is equivalent."""
    n, delta = 10, 0.1
    y_ref = 1.0 + 0.05 * _z(n, 6)
    arms = {REF: (y_ref, _done(n))}
    arms["muphi[window=a]"] = (y_ref + 0.13 * _z(n, 7), _done(n))  # TOST p ≈ 0.02 alone
    for k in range(9):
        arms[f"muphi[window=b{k}]"] = (y_ref + 0.2 * _z(n, 30 + k), _done(n))  # wide
    frame = _frame({"t": arms}, Margin("absolute", delta))
    a = _row(frame, "t", "muphi[window=a]")
    assert a.p_equivalence_raw < 0.05  # at 90% unadjusted, its interval is inside ±δ ...
    low90, high90 = v.pair_stats(arms["muphi[window=a]"][0] - y_ref, delta).interval(0.05)
    assert -delta < low90 and high90 < delta
    assert a.verdict == "inconclusive" and a.ci_level == pytest.approx(1 - 2 * 0.05 / 10)
    assert not (-delta < a.ci_low and a.ci_high < delta)  # ... the printed one is not
    tasks = frame[frame["scope"] != v.ALL_TASKS]
    inside = (-tasks["margin"] < tasks["ci_low"]) & (tasks["ci_high"] < tasks["margin"])
    assert ((tasks["verdict"] == "equivalent") == inside).all()


# --- case 6 ------------------------------------------------------------------------------------

def test_case6_skewed_differences_keep_the_level_on_log_ratios():
    """Lognormal losses (a multiplicative seed effect of sd 1 on the log scale) give raw paired
    differences of skewness ≫ 1; at a true ratio of exactly 1 + δ, TOST on raw differences against
    δ·median claimed equivalence far above 5%. On log-ratios the rule holds its level."""
    rng = np.random.default_rng(6)
    reps, n, delta = 400, 10, 0.02
    hits, skews = 0, []
    for _ in range(reps):
        seed_effect = rng.normal(0.0, 1.0, n)
        y_ref = np.exp(seed_effect + rng.normal(0.0, 0.003, n))
        y = (1 + delta) * np.exp(seed_effect + rng.normal(0.0, 0.003, n))
        skews.append(pd.Series(y - y_ref).skew())
        row = _row(_frame({"t": {CONFIG: (y, _done(n)), REF: (y_ref, _done(n))}}, Margin("relative", delta)), "t")
        assert row.scale == v.LOG_RATIO and row.margin == pytest.approx(math.log1p(delta))
        hits += row.verdict == "equivalent"
    low, high = proportion_confint(hits, reps, alpha=0.05, method="beta")
    assert np.median(skews) > 1
    assert low <= 0.05 and high <= 0.065 + 0.02, f"equivalent at the margin {hits}/{reps} (95% MC {low:.3f}–{high:.3f})"


# --- case 7 ------------------------------------------------------------------------------------

def _with_tune_runs(root, spec: Synthetic, shift: float = 0.0):
    """Write `spec` plus tune-stage runs of every configuration at its eval lr (seeds 500+), and
    shift the reference's eval values by `shift` (its tune runs unchanged)."""
    runs, results = simulate(spec)
    tune_runs = runs[runs["stage"] == "eval"].copy()
    tune_results = results[results["run_id"].isin(tune_runs["run_id"])].copy()
    new_ids = {r: f"{r.rsplit('/seed=', 1)[0]}/seed={s + 500}" for r, s in zip(tune_runs["run_id"], tune_runs["seed"])}
    tune_runs["stage"] = "tune"
    tune_runs["seed"] = tune_runs["seed"] + 500
    tune_runs["run_id"] = tune_runs["run_id"].map(new_ids)
    tune_results["run_id"] = tune_results["run_id"].map(new_ids)
    ref_eval = results["run_id"].isin(runs.loc[(runs["stage"] == "eval") & (runs["config"] == BASELINE), "run_id"])
    results.loc[ref_eval, "value"] += shift
    runs = pd.concat([runs, tune_runs], ignore_index=True)
    results = pd.concat([results, tune_results], ignore_index=True)
    root.mkdir(parents=True, exist_ok=True)
    runs.to_parquet(root / "runs.parquet", index=False)
    results.to_parquet(root / "results.parquet", index=False)
    (root / "selection.json").write_text(json.dumps({}))
    return runs, results


def test_case7_the_margin_is_fixed_before_the_runs_it_judges(tmp_path):
    """The relative margin was 2% of the reference's median over the same eval runs it then
    judged. Now it is log(1.02) on log-ratios (no estimate at all); in metric units it comes from
    the reference's tune-stage runs at its selected lr, and moving the eval runs cannot move it."""
    spec = Synthetic(n_seeds=6, tasks=("digits",), log_optimizer=False)
    rows = []
    for k, shift in enumerate((0.0, 0.3)):
        runs, results = _with_tune_runs(tmp_path / f"s{k}", spec, shift)
        rows.append(_row(analyse(load_store(tmp_path / f"s{k}")).verdict, "digits"))
    tuned = comparisons.tune_finals(load_store(tmp_path / "s0"), "val/loss")[("digits", BASELINE)]
    for row in rows:
        assert row.margin == pytest.approx(math.log(1.02)) and row.scale == v.LOG_RATIO
        assert row.margin_metric == pytest.approx(0.02 * np.median(tuned))
        assert "tune-stage" in row.margin_source and "fallback" not in row.margin_source
    assert rows[0].reference_median != pytest.approx(rows[1].reference_median)
    # a metric that can be ≤ 0 falls back to δ·|median| on differences, from the tune stage
    frame = _frame({"t": {CONFIG: (np.array([-1.0, 0.5, 1.0]), _done(3)), REF: (np.array([-1.0, 0.4, 1.1]), _done(3))}},
                   Margin("relative", 0.02))
    assert _row(frame, "t").scale == v.DIFFERENCE and "fallback" in _row(frame, "t").margin_source


def test_case7_the_quadratic_has_a_margin_that_means_something():
    """The quadratic's endpoint is an optimality gap near zero: 2% of it made its differences 8–63
    margins and dominate every across-task mean. The shipped suites give it 10% of the gap, on the
    log-ratio scale."""
    for name in ("quick", "smoke"):
        margin = load_suite(name).compare.margin_for("quadratic")
        assert (margin.kind, margin.value) == ("relative", 0.10)
        assert load_suite(name).compare.margin_for("digits").value == 0.02


# --- case 8 ------------------------------------------------------------------------------------

def _spread(effects: list[float], n: int = 30, delta: float = 0.1) -> dict:
    """Tasks with true differences `effects` (in margins δ = `delta`), measured precisely."""
    tasks = {}
    for k, e in enumerate(effects):
        y_ref = 1.0 + 0.05 * _z(n, 40 + k)
        tasks[f"t{k}"] = {CONFIG: (y_ref + e * delta + 0.02 * delta * _z(n, 50 + k), _done(n)), REF: (y_ref, _done(n))}
    return tasks


def test_case8_cancellation_is_not_equivalence_across_tasks():
    """Worse than the margin on 2 tasks and better on 1 averaged to an interval of about ±1 margin
    and printed 'equivalent across tasks'. The row now counts the tasks (3 of 6 equivalent) and
    gives the prediction interval for a new task, which is far wider than ±1."""
    frame = _frame(_spread([1.2, 1.2, -1.5, 0.0, 0.05, -0.1]), Margin("absolute", 0.1))
    across = _row(frame, v.ALL_TASKS)
    assert -1 < across.ci_low and across.ci_high < 1  # the mean alone would pass
    assert across.verdict == "inconclusive"
    assert (across.tasks_equivalent, across.tasks_worse, across.tasks_better, across.tasks_total) == (3, 2, 1, 6)
    assert across.pi_low < -1 and across.pi_high > 1 and across.tau > 0.5
    # tasks that agree everywhere are equivalent across tasks, with the prediction inside ±1
    tight = _row(_frame(_spread([0.05, -0.05, 0.0, 0.1, -0.1, 0.02]), Margin("absolute", 0.1)), v.ALL_TASKS)
    assert tight.verdict == "equivalent" and -1 < tight.pi_low and tight.pi_high < 1
    assert tight.tasks_equivalent == tight.tasks_total == 6


# --- case 9 ------------------------------------------------------------------------------------

def test_case9_the_sentence_prints_the_predictive_probability(make_store):
    """The page said 'a new task finds … within the margin 0.71' where 0.71 was the share of
    posterior draws of the *mean* whose most probable region is the ROPE; the posterior
    predictive probability was 0.51. The row and sentence now carry the predictive probability."""
    rng = np.random.default_rng(9)
    x = [e + rng.normal(0, 0.3, 10) for e in (-0.9, 0.9, -0.7, 0.8)]  # tasks spread about one margin
    pred = hierarchical.predictive(x, rope=1.0)
    share = hierarchical.probabilities(x, rope=1.0)[1]
    assert pred.within < share - 0.1  # two different numbers
    assert pred.within + pred.below + pred.above == pytest.approx(1.0)
    a = analyse(make_store(Synthetic(n_seeds=6, tasks=("digits", "quadratic", "t2"), log_optimizer=False)))
    row = a.verdict.set_index(["scope", "config"]).loc[(v.ALL_TASKS, CONFIG)]
    sentences = [s for s in verdict_claims(a) if s.startswith(f"Across tasks, {CONFIG}")]
    assert "posterior predictive probability that a new task's difference" in sentences[0]
    assert f"within the margin {row.posterior_equivalent:.2f}" in sentences[0]
    assert "split-R̂" in sentences[0] and math.isfinite(row.rhat) and row.ess > 100


def test_case9_nu_follows_the_published_prior_and_chains_are_diagnosed():
    """baycomp's Stan model puts the Gamma prior on ν − 1 (ν > 1); the sampler put it on ν. It
    now matches, runs several chains, and reports split-R̂ and the effective sample size."""
    rng = np.random.default_rng(10)
    x = [rng.normal(0, 0.3, 5), rng.normal(0.2, 0.3, 5)]  # two tasks: ν is barely informed
    chains = hierarchical.sample_chains(x, draws=4000, burn_in=500, chains=4)
    assert chains.shape == (4, 1000, 3) and chains[..., 2].min() > 1.0
    pred = hierarchical.predictive(_tasks_near_zero(), rope=1.0)
    assert pred.chains >= 2 and pred.rhat < 1.05 and pred.ess > 400
    # the diagnostics can fail: chains stuck at different values give a large R̂, a small ESS
    stuck = np.stack([np.full(500, 0.0) + 0.01 * rng.normal(size=500), np.full(500, 1.0) + 0.01 * rng.normal(size=500)])
    assert hierarchical.split_rhat(stuck) > 10
    walk = np.cumsum(rng.normal(size=(2, 2000)), axis=1)
    assert hierarchical.effective_size(walk) < 100 < hierarchical.effective_size(rng.normal(size=(2, 2000)))


def _tasks_near_zero() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.normal(0, 0.2) + rng.normal(0, 0.3, 10) for _ in range(5)]


# --- invariants of verdict.csv -------------------------------------------------------------------

def test_verdict_csv_invariants_on_an_analysed_store(tmp_path):
    """What a reader can check in REPORT/tables/verdict.csv, on a store with tune-stage runs, a
    worse configuration, diverged runs and four tasks."""
    spec = Synthetic(n_seeds=10, tasks=("digits", "quadratic", "t2", "t3"), log_optimizer=False, run_sd=0.002,
                     effects=((BASELINE, 0.0), (CONFIG, 0.0), ("muphi[window=constant]", 0.3),
                              ("muphi[window=cosine1]", 0.001)),
                     diverged=(("digits", "muphi[window=constant]", 2, 300), ("t2", CONFIG, 1, 500)))
    _with_tune_runs(tmp_path / "s", spec)
    frame = analyse(load_store(tmp_path / "s")).verdict
    assert {"worse", "equivalent"} <= set(frame["verdict"])
    assert tuple(frame.columns[:len(v.VERDICT_COLUMNS)]) == v.VERDICT_COLUMNS
    assert set(frame["direction"]) == {"lower"}
    for r in frame.itertuples():
        inside = -r.margin < r.ci_low and r.ci_high < r.margin
        if r.verdict == "equivalent":
            assert inside and r.n_diverged == 0 and r.n_diverged_reference == 0 and r.n_both_diverged == 0
        if r.verdict == "better":
            assert r.ci_high < -r.margin
        if r.verdict == "worse":
            assert r.ci_low > r.margin
        if r.verdict == "inconclusive" and r.n_diverged == 0 and r.n_diverged_reference == 0 and r.scope != v.ALL_TASKS:
            assert not inside
        assert 0 < r.ci_level < 1
    across = frame[frame["scope"] == v.ALL_TASKS]
    for col in ("tasks_equivalent", "tasks_total", "pi_low", "pi_high", "tau"):
        assert col in across.columns
    assert (across["tasks_total"] == 4).all()
    eq = across[across["verdict"] == "equivalent"]
    assert ((-1 < eq["pi_low"]) & (eq["pi_high"] < 1)).all()
    assert (frame["margin_source"].str.contains("tune-stage") | (frame["scope"] == v.ALL_TASKS)).all()
