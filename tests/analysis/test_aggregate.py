"""Across-task aggregates: normalised scores, stratified bootstrap, IQM, profiles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis import aggregate


def test_normalised_scores_put_best_median_at_one_and_worst_at_zero():
    final = np.array([[1.0, 1.2, 1.1], [2.0, 2.2, 2.1], [np.nan, 1.5, 1.6]])  # lower is better
    score = aggregate.normalised_scores(final, sign=1.0)
    assert np.median(score[0]) == pytest.approx(1.0) and np.median(score[1]) == pytest.approx(0.0)
    assert score[2, 0] == pytest.approx(min(0.0, np.nanmin(score[:, 1:])))  # diverged: no better than worst
    flipped = aggregate.normalised_scores(-final, sign=-1.0)  # accuracy-like orientation, same scores
    np.testing.assert_allclose(flipped, score)


def test_stratified_bootstrap_resamples_within_tasks():
    # task A always scores 0, task B always 1: every stratified resample has mean exactly ½,
    # whereas resampling the pooled runs would not
    parts = [np.zeros(5), np.ones(5)]
    point, lo, hi = aggregate.stratified_bootstrap(parts, np.mean, n_boot=500)
    assert point == lo == hi == pytest.approx(0.5)


def test_stratified_bootstrap_interval_covers_a_known_mean():
    rng = np.random.default_rng(0)
    covered, reps = 0, 200
    for _ in range(reps):
        parts = [rng.normal(0.0, 1.0, 10) for _ in range(6)]
        _, lo, hi = aggregate.stratified_bootstrap(parts, np.mean, n_boot=400, seed=int(rng.integers(1e9)))
        covered += lo <= 0.0 <= hi
    assert covered / reps >= 0.88  # nominal 0.95 with 60 pooled runs; percentile intervals run a little short


def test_iqm_is_the_quarter_trimmed_mean():
    x = np.arange(12.0)
    assert aggregate.iqm(x) == pytest.approx(stats.trim_mean(x, 0.25)) == pytest.approx(np.mean(x[3:9]))


def test_performance_ratios_and_profile():
    times = np.array([[10.0, 20.0], [np.inf, 5.0], [np.inf, np.inf], [8.0, np.nan]])
    ratios = aggregate.performance_ratios(times)
    np.testing.assert_array_equal(ratios, [[1.0, 2.0], [np.inf, 1.0], [np.inf, np.inf], [1.0, np.inf]])
    rho = aggregate.profile(ratios, np.array([1.0, 2.0]))
    np.testing.assert_allclose(rho, [[0.5, 0.25], [0.5, 0.5]])
    np.testing.assert_allclose(aggregate.integrated_score(ratios, 4.0), [0.5, (3 + 2) / 3 / 4])


def test_profiles_use_wall_clock_time_when_every_reaching_run_has_it():
    import pandas as pd

    from analysis.summary import profile_measure

    frame = pd.DataFrame({"steps_to_target": [10.0, np.inf, np.nan], "time_to_target_s": [1.5, np.inf, np.nan]})
    assert profile_measure(frame) == "time_to_target_s"
    assert profile_measure(frame.assign(time_to_target_s=[np.nan, np.inf, np.nan])) == "steps_to_target"
