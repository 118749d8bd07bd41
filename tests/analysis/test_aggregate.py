"""Across-task aggregates: normalised scores, stratified bootstrap, IQM, profiles."""

from __future__ import annotations

import json
import numpy as np
import pytest
from scipy import stats

from annealbench.analysis import aggregate


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


def test_profiles_count_steps_unless_every_run_ran_its_fastest_implementation(make_store):
    from annealbench.analysis.fairtime import SECONDS, STEPS, time_measure
    from annealbench.analysis.analyse import analyse
    from tests.analysis.synthetic import Synthetic

    fused = make_store(Synthetic(n_seeds=2, implementation="fused"))
    assert time_measure(fused)[0] == SECONDS and analyse(fused).time_measure == SECONDS
    measure, why = time_measure(make_store(Synthetic(n_seeds=2, implementation="single-tensor")))
    assert measure == STEPS and "fastest implementation" in why
    unrecorded = analyse(make_store(Synthetic(n_seeds=2)))
    assert unrecorded.time_measure == STEPS and any("count steps, not seconds" in n for n in unrecorded.notes)
    assert time_measure(make_store(Synthetic(n_seeds=2, implementation="fused", log_optimizer=False)))[0] == STEPS


def test_friedman_permutation_p_is_exact_for_small_tables():
    # N = 4 blocks, k = 3: χ²_F = 6.5 has exact p 0.042 (Demšar 2006, table of exact values),
    # and all blocks ranking alike gives the smallest p, (3!)^-(4-1)
    r = np.array([[1, 2, 3]] * 3 + [[2, 1, 3]], float)
    assert aggregate.friedman_permutation_p(r) == (pytest.approx(9 / 216), True)
    same = np.array([[1, 2, 3]] * 4, float)
    assert aggregate.friedman_permutation_p(same)[0] == pytest.approx(aggregate.smallest_friedman_p(4, 3))
    # χ²_F = 6.0 (rank sums 6, 6, 12) lies beyond the χ²₂ 5% point (p 0.0498), but its exact p is
    # 90/1296 = 0.069: 90 of the 6^4 equally likely rank arrangements reach it
    six = np.array([[1, 2, 3], [2, 1, 3], [1, 2, 3], [2, 1, 3]], float)
    result = aggregate.friedman(six, ("a", "b", "c"))
    assert result.chi2_demsar == pytest.approx(6.0) and result.p_asymptotic < 0.05
    assert result.p_value == pytest.approx(90 / 1296) and result.permutation_exact


def test_friedman_monte_carlo_agrees_with_exact_enumeration(monkeypatch):
    r = np.array([np.random.default_rng(i).permutation(4) + 1 for i in range(4)], float)
    exact, is_exact = aggregate.friedman_permutation_p(r)
    monkeypatch.setattr(aggregate, "EXACT_PERMUTATIONS", 0)
    mc, mc_exact = aggregate.friedman_permutation_p(r)
    assert is_exact and not mc_exact and mc == pytest.approx(exact, abs=0.02)


def test_a_run_ran_its_fastest_path_only_if_every_param_group_did():
    from annealbench.analysis.fairtime import ran_fastest
    from annealbench.optimizers import optimizer_info

    assert optimizer_info("adamw").ran_fastest(["fused", "fused"])
    assert not optimizer_info("adamw").ran_fastest(["fused", "foreach"])
    assert optimizer_info("sf-adamw").ran_fastest(["foreach"])  # its only path
    assert not optimizer_info("muphi").ran_fastest(["reference"])
    assert not optimizer_info("muphi").ran_fastest([])  # nothing recorded: not known to be fast
    # the analysis reads the runner's flag, never the registry
    assert ran_fastest(json.dumps({"optimizer_impl": ["fused"], "optimizer_fastest": True}))
    assert not ran_fastest(json.dumps({"optimizer_impl": ["fused"], "optimizer_fastest": False}))
    assert not ran_fastest(json.dumps({"optimizer_impl": ["fused"]}))  # older stores: steps


def test_runs_trained_in_run_groups_are_timed_in_steps(make_store):
    import dataclasses

    from annealbench.analysis.fairtime import STEPS, time_measure
    from tests.analysis.synthetic import Synthetic

    store = make_store(Synthetic(n_seeds=2, implementation="fused"))
    runs = store.runs.copy()
    runs["provenance"] = [json.dumps({**json.loads(p), "run_group": {"run_ids": ["a", "b"]}})
                          for p in runs["provenance"]]
    measure, why = time_measure(dataclasses.replace(store, runs=runs))
    assert measure == STEPS and "run groups" in why
