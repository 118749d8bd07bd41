"""The verdict rule: TOST against statsmodels and by hand, the four outcomes, ITT, power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.weightstats import ttost_paired

from annealbench.analysis import verdict as v
from annealbench.analysis.analyse import analyse
from tests.analysis.synthetic import BASELINE, Synthetic

ALPHA = 0.05
DONE10 = np.array(["done"] * 10, dtype=object)


@pytest.mark.parametrize("seed, shift, margin", [(0, 0.0, 0.1), (1, 0.05, 0.1), (2, -0.2, 0.15), (3, 0.01, 0.02)])
def test_tost_equals_statsmodels_ttost_paired(seed, shift, margin):
    rng = np.random.default_rng(seed)
    base = rng.normal(1.0, 0.3, 12)
    y = base + shift + rng.normal(0.0, 0.05, 12)
    p, low, high = v.tost(y - base, margin, ALPHA)
    p_ref, _, _ = ttost_paired(y, base, -margin, margin)
    assert p == pytest.approx(p_ref, rel=1e-10)
    # the duality the rule relies on: p ≤ α exactly when the (1 − 2α) interval lies inside ±δ
    assert (p <= ALPHA) == (-margin < low and high < margin)


def test_tost_by_hand():
    d = np.array([0.01, -0.02, 0.03, 0.0, 0.02])  # mean 0.008, sd 0.01924
    se = np.std(d, ddof=1) / math.sqrt(5)
    p, low, high = v.tost(d, 0.05, ALPHA)
    assert p == pytest.approx(max(stats.t.sf((0.008 + 0.05) / se, 4), stats.t.cdf((0.008 - 0.05) / se, 4)))
    assert (low, high) == pytest.approx((0.008 - 2.131847 * se, 0.008 + 2.131847 * se), rel=1e-6)


@pytest.mark.parametrize("low, high, possible, expected", [
    (-0.6, -0.4, True, "better"),  # entirely beyond −δ
    (0.4, 0.6, True, "worse"),  # entirely beyond +δ
    (0.02, 0.3, True, "inconclusive"),  # excludes 0 but not the margin: never better or worse
    (0.02, 0.08, True, "equivalent"),  # a detectable, practically irrelevant difference
    (0.02, 0.08, False, "inconclusive"),  # ... but a run diverged: equivalence is ruled out
    (-0.2, 0.2, True, "inconclusive"),
])
def test_the_four_verdicts_read_off_the_interval(low, high, possible, expected):
    assert v.claim(low, high, margin=0.1, sign=1.0, equivalence_possible=possible) == expected
    # for an accuracy (higher is better) the same difference has the opposite meaning
    flipped = {"better": "worse", "worse": "better"}.get(expected, expected)
    assert v.claim(low, high, margin=0.1, sign=-1.0, equivalence_possible=possible) == flipped


def test_the_same_algorithm_up_to_round_off_is_equivalent_not_worse():
    # the example: +3e-8 on a loss of 0.49 with 10 seeds, a test against 0 significant
    rng = np.random.default_rng(0)
    y_ref = 0.49 + rng.normal(0, 0.01, 10)
    y = y_ref + 3.08e-8 + rng.normal(0, 1e-8, 10)
    d = v.itt_differences(y, y_ref, DONE10, DONE10, 1.0).d
    assert stats.ttest_1samp(d, 0.0).pvalue < 1e-4
    st = v.pair_stats(d, 0.02 * np.median(y_ref))
    low, high = st.interval(ALPHA / 45)  # the strictest Holm level of a 45-row family
    assert v.claim(low, high, st.margin, 1.0, True) == "equivalent"


def test_a_diverged_seed_changes_the_verdict_as_intention_to_treat_says():
    # on the 7 surviving seeds the configuration is clearly better; it diverged on the other 3
    rng = np.random.default_rng(1)
    y_ref = 1.0 + rng.normal(0, 0.02, 10)
    y = y_ref - 0.3 + rng.normal(0, 0.01, 10)
    status = DONE10.copy()
    status[[2, 5, 8]] = "diverged"
    y[[2, 5, 8]] = np.nan
    margin = 0.02
    surv = v.pair_stats(v.survivor_differences(y, y_ref), margin)
    assert v.claim(*surv.interval(ALPHA), margin, 1.0, True) == "better"
    diffs = v.itt_differences(y, y_ref, status, DONE10, 1.0)
    assert diffs.d.size == 10 and np.isposinf(diffs.d).sum() == 3  # divergence is the worst outcome, not a gap
    itt = v.pair_stats(diffs.d, margin, equivalence_possible=False)
    assert itt.test == v.SIGN_TEST and itt.p_inside == 1.0
    assert itt.p_below == pytest.approx(stats.binom.sf(6, 10, 0.5))  # 7 of 10 beyond −δ
    assert v.claim(*itt.interval(ALPHA), margin, 1.0, False) == "inconclusive"
    # the reference diverging instead counts against the reference
    d_ref = v.itt_differences(y_ref, y, DONE10, status, 1.0)
    assert np.isneginf(d_ref.d).sum() == 3 and d_ref.n_reference_diverged == 3
    # both diverged on a seed: no difference at all (not a tie), but counted
    both = v.itt_differences(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]),
                             np.array(["diverged", "done"]), np.array(["diverged", "done"]), 1.0)
    assert both.d.tolist() == [0.0] and both.n_both_diverged == 1 and both.any_diverged


def test_a_diverged_seed_changes_the_verdict_in_a_store(make_store):
    # 10 seeds, effect −0.3 (better) for muphi[window=constant]; 3 of its runs diverge
    spec = Synthetic(n_seeds=10, tasks=("digits",), run_sd=0.02, log_optimizer=False,
                     effects=((BASELINE, 0.0), ("muphi[window=constant]", -0.3)))
    row = lambda a: a.verdict.set_index(["scope", "config"]).loc[("digits", "muphi[window=constant]")]  # noqa: E731
    assert row(analyse(make_store(spec))).verdict == "better"
    diverged = tuple(("digits", "muphi[window=constant]", s, 300) for s in (1, 4, 7))
    a = analyse(make_store(Synthetic(**{**spec.__dict__, "diverged": diverged})))
    r = row(a)
    assert (r.verdict, r.verdict_survivors, r.n, r.n_survivors, r.n_diverged) == ("inconclusive", "better", 10, 7, 3)


def test_failed_runs_leave_their_seed_out():
    status = np.array(["done", "failed", "done"], dtype=object)
    d = v.itt_differences(np.array([1.0, np.nan, 2.0]), np.array([0.5, 0.5, 0.5]), status,
                          np.array(["done"] * 3, dtype=object), 1.0)
    assert d.d.tolist() == [0.5, 1.5] and not d.any_diverged


def test_median_interval_uses_binomial_order_statistics():
    d = np.arange(1.0, 11.0)  # n = 10: P(Bin(10, ½) ≤ 1) = 0.0107 ≤ 0.05 < P(≤ 2) = 0.0547
    assert v.median_interval(d, 0.05) == (2.0, 9.0)
    assert v.median_interval(np.array([1.0, 2.0, 3.0]), 0.05) == (-math.inf, math.inf)  # ½³ > 0.05
    with_inf = np.r_[np.arange(7.0), [np.inf] * 3]
    low, high = v.median_interval(with_inf, 0.05)
    assert low == 1.0 and high == math.inf


def test_holm_levels_step_down_and_stop_where_holm_stops():
    # p sorted 0.01 (3 rows: α/3 = 0.0167 ✓), 0.03 (α/2 = 0.025 ✗): the procedure stops there
    levels = v.holm_levels(np.array([0.04, 0.03, 0.01, np.nan]), ALPHA)
    np.testing.assert_allclose(levels[:3], [ALPHA / 2, ALPHA / 2, ALPHA / 3])
    assert np.isnan(levels[3])
    # every step rejects: each row keeps its own step's level
    np.testing.assert_allclose(v.holm_levels(np.array([0.04, 0.02, 0.01]), ALPHA), [ALPHA, ALPHA / 2, ALPHA / 3])
    # adjusted p-values agree with statsmodels' Holm on the column that ordered the steps
    p = np.array([0.04, 0.03, 0.01])
    np.testing.assert_allclose(v.adjusted(p, p), [0.06, 0.06, 0.03])


def test_holm_runs_over_the_family_before_deciding():
    # three rows beyond the margin with one-sided p 0.021, 0.026, 0.031: alone each is worse; over
    # a family of 3 Holm's first step needs p ≤ α/3 = 0.0167 and none is
    rows = [v.pair_stats(np.array([0.30, 0.12, 0.25, 0.28]) + shift, 0.1) for shift in (0.0, -0.01, -0.02)]
    alone = v.decide_family(rows[:1], ALPHA, 1.0)[0]
    family = v.decide_family(rows, ALPHA, 1.0)
    assert alone.verdict == "worse" and alone.level == ALPHA
    assert [d.verdict for d in family] == ["inconclusive"] * 3
    assert all(d.level == pytest.approx(ALPHA / 3) for d in family)  # where Holm stopped
    # one row strong enough for the first step: it is decided, and the next row gets α/2
    rows[0] = v.pair_stats(np.array([0.30, 0.12, 0.25, 0.28]) + 0.2, 0.1)
    family = v.decide_family(rows, ALPHA, 1.0)
    assert [d.verdict for d in family] == ["worse", "inconclusive", "inconclusive"]
    assert family[1].level == pytest.approx(ALPHA / 2)
    for d, r in zip(family, rows):  # the printed interval is the one at the row's level
        assert (d.ci_low, d.ci_high) == pytest.approx(r.interval(d.level))
        assert (d.p_difference <= ALPHA) == (d.verdict == "worse")


def test_seeds_for_equivalence_is_the_first_n_reaching_80_percent_power():
    n = v.seeds_for_equivalence(0.01, 0.02, ALPHA)
    assert v.tost_power(int(n), 0.01, 0.02, ALPHA) >= 0.8 > v.tost_power(int(n) - 1, 0.01, 0.02, ALPHA)
    assert v.seeds_for_equivalence(0.02, 0.02, ALPHA) > n  # more noise, more seeds
    # the power approximation against simulation at that n (true difference 0)
    rng = np.random.default_rng(0)
    d = rng.normal(0.0, 0.01, (4000, int(n)))
    mean, se = d.mean(axis=1), d.std(axis=1, ddof=1) / math.sqrt(n)
    crit = stats.t.ppf(1 - ALPHA, n - 1)
    simulated = np.mean((mean - crit * se > -0.02) & (mean + crit * se < 0.02))
    assert simulated >= 0.78


def test_verdict_table_has_the_contract_columns(make_store):
    a = analyse(make_store(Synthetic(n_seeds=6)))
    assert tuple(a.verdict.columns[:len(v.VERDICT_COLUMNS)]) == v.VERDICT_COLUMNS
    assert set(a.verdict["verdict"]) <= set(v.VERDICTS)
    assert not (a.verdict["config"] == a.verdict["reference"]).any()
    tasks = a.verdict[a.verdict["scope"] != v.ALL_TASKS]
    # a relative margin of 2% on a positive loss: log(1.02) on log-ratios; in metric units 2% of the
    # reference's median (from its eval runs here: the store has no tune stage)
    for task, g in tasks.groupby("scope"):
        ref = a.endpoints[(a.endpoints["task"] == task) & (a.endpoints["config"] == BASELINE)]["final"]
        assert g["margin"].iloc[0] == pytest.approx(math.log(1.02)) and (g["scale"] == v.LOG_RATIO).all()
        assert g["margin_metric"].iloc[0] == pytest.approx(0.02 * abs(ref.median()))
    assert set(a.verdict["direction"]) == {"lower"}
    assert "2% of the reference's median" in a.comparison.describe()
