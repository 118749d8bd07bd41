"""The hierarchical Bayesian model: it recovers a known mean difference across tasks and puts its
probability in the right region; bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest

from annealbench.analysis import hierarchical


def _tasks(true: float, q: int, seed: int, between: float = 0.2, within: float = 0.3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [true + rng.normal(0, between) + rng.normal(0, within, 10) for _ in range(q)]


def test_the_posterior_of_the_mean_difference_covers_the_truth():
    post = hierarchical.sample(_tasks(0.5, 12, seed=0), draws=2000, burn_in=500)
    low, high = np.quantile(post[:, 0], [0.025, 0.975])
    assert low < 0.5 < high and high - low < 0.6
    assert 0.05 < np.median(post[:, 1]) < 0.6  # the between-task sd (true 0.2)


@pytest.mark.parametrize("true, region", [(0.0, 1), (3.0, 2), (-3.0, 0)])
def test_probabilities_put_the_mass_where_the_differences_are(true, region):
    probs = hierarchical.probabilities(_tasks(true, 4, seed=1), rope=1.0, draws=1500)
    assert probs[region] > 0.9 and sum(probs) == pytest.approx(1.0)


def test_the_model_needs_two_tasks_with_two_finite_differences():
    with pytest.raises(ValueError, match="≥ 2 tasks"):
        hierarchical.sample([np.zeros(5)])
    with pytest.raises(ValueError, match="finite"):
        hierarchical.sample([np.array([1.0, np.inf]), np.ones(3)])


def test_a_task_whose_seeds_agree_exactly_is_handled():
    x = [np.zeros(6), np.array([0.01, -0.02, 0.0, 0.01, 0.02, -0.01]), np.full(6, 0.001)]
    left, rope, right = hierarchical.probabilities(x, rope=1.0, draws=1500)
    assert rope > 0.9 and np.isfinite([left, right]).all()
