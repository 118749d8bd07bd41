"""The verdict rule: TOST against statsmodels and by hand, the four outcomes, ITT, power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.weightstats import ttost_paired

from analysis import verdict as v
from analysis.summary import analyse
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


@pytest.mark.parametrize("estimate, p_diff, p_eq, expected", [
    (-0.5, 0.001, 0.9, "better"),  # significant and beyond the margin
    (0.5, 0.001, 0.9, "worse"),
    (0.05, 1e-9, 0.9, "inconclusive"),  # significant, but inside the margin: never better or worse
    (0.05, 1e-9, 0.01, "equivalent"),  # a detectable, practically irrelevant difference
    (0.0, 0.8, 0.2, "inconclusive"),
    (-0.5, 0.2, 0.9, "inconclusive"),
])
def test_the_four_verdicts(estimate, p_diff, p_eq, expected):
    assert v.decide(estimate, p_diff, p_eq, margin=0.1, alpha=ALPHA, sign=1.0) == expected
    # for an accuracy (higher is better) the same difference has the opposite meaning
    flipped = {"better": "worse", "worse": "better"}.get(expected, expected)
    assert v.decide(estimate, p_diff, p_eq, margin=0.1, alpha=ALPHA, sign=-1.0) == flipped


def test_the_same_algorithm_up_to_round_off_is_equivalent_not_worse():
    # the example: +3e-8 on a loss of 0.49 with 10 seeds, the paired t-test significant
    rng = np.random.default_rng(0)
    y_ref = 0.49 + rng.normal(0, 0.01, 10)
    y = y_ref + 3.08e-8 + rng.normal(0, 1e-8, 10)
    st = v.pair_stats(v.itt_differences(y, y_ref, DONE10, DONE10, 1.0), 0.02 * np.median(y_ref), ALPHA)
    assert st.p_difference < 1e-4
    assert v.decide(st.estimate, st.p_difference * 45, st.p_equivalence * 45, 0.02 * np.median(y_ref), ALPHA, 1.0) \
        == "equivalent"


def test_a_diverged_seed_changes_the_verdict_as_intention_to_treat_says():
    # on the 7 surviving seeds the configuration is clearly better; it diverged on the other 3
    rng = np.random.default_rng(1)
    y_ref = 1.0 + rng.normal(0, 0.02, 10)
    y = y_ref - 0.3 + rng.normal(0, 0.01, 10)
    status = DONE10.copy()
    status[[2, 5, 8]] = "diverged"
    y[[2, 5, 8]] = np.nan
    margin = 0.02
    surv = v.pair_stats(v.survivor_differences(y, y_ref), margin, ALPHA)
    assert v.decide(surv.estimate, surv.p_difference, surv.p_equivalence, margin, ALPHA, 1.0) == "better"
    d = v.itt_differences(y, y_ref, status, DONE10, 1.0)
    assert d.size == 10 and np.isposinf(d).sum() == 3  # divergence is the worst outcome, not a gap
    itt = v.pair_stats(d, margin, ALPHA)
    assert itt.test == "Wilcoxon signed-rank (ITT)" and itt.p_equivalence == 1.0
    assert v.decide(itt.estimate, itt.p_difference, itt.p_equivalence, margin, ALPHA, 1.0) == "inconclusive"
    # the reference diverging instead counts against the reference
    d_ref = v.itt_differences(y_ref, y, DONE10, status, 1.0)
    assert np.isneginf(d_ref).sum() == 3
    # both diverged on a seed: a tie at the worst outcome
    both = v.itt_differences(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]),
                             np.array(["diverged", "done"]), np.array(["diverged", "done"]), 1.0)
    assert both.tolist() == [0.0, 0.0]


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
    assert d.tolist() == [0.5, 1.5]


def test_median_interval_uses_binomial_order_statistics():
    d = np.arange(1.0, 11.0)  # n = 10: P(Bin(10, ½) ≤ 1) = 0.0107 ≤ 0.05 < P(≤ 2) = 0.0547
    assert v.median_interval(d, 0.05) == (2.0, 9.0)
    assert v.median_interval(np.array([1.0, 2.0, 3.0]), 0.05) == (-math.inf, math.inf)  # ½³ > 0.05
    with_inf = np.r_[np.arange(7.0), [np.inf] * 3]
    low, high = v.median_interval(with_inf, 0.05)
    assert low == 1.0 and high == math.inf


def test_holm_runs_over_the_family_before_deciding():
    p_diff, p_eq, verdicts = v.decide_all([0.5, 0.5], [0.03, 0.02], [0.9, 0.9], [0.1, 0.1], ALPHA, 1.0)
    np.testing.assert_allclose(p_diff, [0.04, 0.04])
    assert verdicts == ["worse", "worse"]
    p3, _, three = v.decide_all([0.5] * 3, [0.04, 0.03, 0.01], [0.9] * 3, [0.1] * 3, ALPHA, 1.0)
    np.testing.assert_allclose(p3, [0.06, 0.06, 0.03])  # 3·0.01, then max(2·0.03, ·), 1·0.04 → 0.06
    assert three == ["inconclusive", "inconclusive", "worse"]


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
    # the relative margin is 2% of the reference's median final value on that task
    for task, g in tasks.groupby("scope"):
        ref = a.endpoints[(a.endpoints["task"] == task) & (a.endpoints["config"] == BASELINE)]["final"]
        assert g["margin"].iloc[0] == pytest.approx(0.02 * abs(ref.median()))
    assert "2% of the reference's median" in a.comparison.describe()
