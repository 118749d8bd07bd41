"""Calibration on simulated curves: family-wise error at or below nominal, known effects found,
interval coverage near nominal. Repetitions are modest (seconds); the bound adds 3 Monte-Carlo SE."""

from __future__ import annotations

import math

import numpy as np
import pytest

from annealbench.analysis import paired
from annealbench.analysis.maxt import max_t_test
from annealbench.analysis.verdict import holm
from annealbench.analysis.analyse import analyse
from tests.analysis.synthetic import BASELINE, Synthetic

ALPHA = 0.05


def _bound(reps: int, p: float = ALPHA) -> float:
    return p + 3 * math.sqrt(p * (1 - p) / reps)


def _curves(rng, n_seeds, n_steps, shift):
    """(n_seeds, n_steps) noisy decreasing curves with AR(1) noise along steps, plus `shift`."""
    t = np.linspace(0, 1, n_steps)
    noise = np.zeros((n_seeds, n_steps))
    e = rng.normal(0, 0.05, (n_seeds, n_steps))
    for j in range(n_steps):
        noise[:, j] = (0.8 * noise[:, j - 1] if j else 0) + e[:, j]
    return np.exp(-3 * t) + rng.normal(0, 0.1, (n_seeds, 1)) + noise + shift


@pytest.mark.parametrize("reps", [300, pytest.param(20000, marks=pytest.mark.slow)])
def test_max_t_family_wise_error_under_no_difference(reps):
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(reps):
        d = _curves(rng, 7, 30, 0.0) - _curves(rng, 7, 30, 0.0)
        hits += bool((max_t_test(d, np.arange(30)).p_adjusted <= ALPHA).any())
    assert hits / reps <= _bound(reps)


def test_max_t_finds_a_late_difference_and_no_early_one():
    rng = np.random.default_rng(12)
    steps = np.arange(30)
    late = np.where(steps >= 20, 0.3, 0.0)
    reps, found, early = 60, 0, 0
    for _ in range(reps):
        d = _curves(rng, 10, 30, late) - _curves(rng, 10, 30, 0.0)
        sig = max_t_test(d, steps).p_adjusted <= ALPHA
        found += bool(sig[20:].any())
        early += bool(sig[:20].any())
    assert found / reps >= 0.9
    assert early / reps <= _bound(reps)


def test_holm_family_wise_error_over_paired_comparisons():
    rng = np.random.default_rng(13)
    reps, hits, n = 400, 0, 6
    done = np.array(["done"] * n, dtype=object)
    for _ in range(reps):
        seed_effect = rng.normal(0, 0.2, n)
        base = 1 + seed_effect + rng.normal(0, 0.05, n)
        p = [paired.compare("t", f"c{i}", "b", 1 + seed_effect + rng.normal(0, 0.05, n), base, done, done).p_t
             for i in range(4)]
        hits += bool((holm(np.array(p)) <= ALPHA).any())
    assert hits / reps <= _bound(reps)


def test_paired_t_interval_covers_the_true_difference():
    rng = np.random.default_rng(14)
    reps, covered, n, true = 1000, 0, 5, -0.04
    done = np.array(["done"] * n, dtype=object)
    for _ in range(reps):
        base = 1 + rng.normal(0, 0.2, n)
        y = base + true + rng.standard_t(5, n) * 0.03
        r = paired.compare("t", "c", "b", y, base, done, done)
        covered += r.ci_low <= true <= r.ci_high
    assert abs(covered / reps - 0.95) <= 3 * math.sqrt(0.95 * 0.05 / reps)


def test_known_effects_in_a_store_are_found_and_null_ones_are_not(make_store):
    a = analyse(make_store(Synthetic(n_seeds=8, run_sd=0.03, random_seed=0, tasks=("digits", "quadratic", "t2", "t3"))))
    rows = a.paired.set_index(["task", "config"])
    verdict = a.verdict.set_index(["scope", "config"])
    for task in ("digits", "quadratic"):
        worse = rows.loc[(task, "muphi[window=constant]")]
        assert worse.p_holm <= ALPHA and worse.ci_low > 0
        true = 0.3 * np.mean(np.array([0.9, 0.95, 1.0]) ** 2)  # effect·r² over the last 3 evaluations
        assert abs(worse.mean_diff - true) < 3 * worse.sd_diff / math.sqrt(worse.n)
        assert verdict.loc[(task, "muphi[window=constant]")].verdict == "worse"
        assert verdict.loc[(task, "muphi[window=constant]")].posterior_worse > 0.9
        same = rows.loc[(task, "muphi[window=linear]")]
        assert same.p_holm > ALPHA and same.ci_low <= 0 <= same.ci_high
        assert verdict.loc[(task, "muphi[window=linear]")].verdict in ("equivalent", "inconclusive")
        assert (a.maxt[(task, "muphi[window=constant]")].p_adjusted <= ALPHA).any()
    assert verdict.loc[("all tasks", "muphi[window=constant]")].verdict == "worse"
    assert verdict.loc[("all tasks", "muphi[window=constant]")].posterior_worse > 0.9  # hierarchical model
    ranks = dict(zip(a.friedman.configs, a.friedman.average_ranks))
    assert a.friedman.n_blocks == 4  # one block per task
    assert ranks["muphi[window=constant]"] == pytest.approx(3.0)
    assert ranks[BASELINE] < 3.0
