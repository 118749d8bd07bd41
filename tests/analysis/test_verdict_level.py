"""Level and power of the verdict rule by simulation, through the real decision functions
(`annealbench.analysis.verdict`: itt_differences → pair_stats → decide_family, and across_tasks →
across_claim). Every rate comes with its Clopper–Pearson 95% Monte Carlo interval.

- Equivalence claimed at the margin (true difference exactly θ): ≤ 5%, for normal and t₃
  differences (absolute margin, differences) and lognormal losses (relative margin, log-ratios;
  their raw differences are strongly skewed), at n = 10 and 30.
- "Worse" claimed at Δ = 0.9 θ: ≤ 5%, same shapes.
- "Equivalent across tasks" when the tasks' true differences spread with sd one margin around 0
  (so a new task falls outside ±1 a third of the time): ≤ 5%.
- Power: equivalence is found when the difference is 0 and the seeds are enough.

The data are drawn with numpy in one array per scenario; the decision runs once per replication.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from annealbench.analysis import verdict as v

ALPHA = 0.05
THETA = 0.1  # absolute margin of the difference scenarios
DELTA = 0.02  # relative margin of the lognormal scenarios: θ = log(1.02)
DONE = np.array(["done"] * 30, dtype=object)
SHAPES = ("normal", "t3", "lognormal")


def _noise(rng: np.random.Generator, shape: str, size) -> np.ndarray:
    """Mean 0, sd 1."""
    if shape == "t3":
        return rng.standard_t(3, size) / math.sqrt(3.0)
    return rng.standard_normal(size)


def _pairs(rng: np.random.Generator, shape: str, true: float, sd: float, reps: int, n: int):
    """(y, y_ref, margin rule) for `reps` replications of n seeds at a true difference of `true`
    margins. Normal, t₃: y = y_ref + true·θ + sd·θ·noise on the raw scale (absolute margin).
    Lognormal: losses exp(seed effect + run noise) with a seed effect of sd 1 on the log scale,
    y = (1 + δ)^true · y_ref-like, so raw differences are lognormal-shaped and log-ratios normal."""
    if shape == "lognormal":
        theta = math.log1p(DELTA)
        seed = rng.normal(0.0, 1.0, (reps, n))
        y_ref = np.exp(seed + rng.normal(0.0, sd * theta / math.sqrt(2), (reps, n)))
        y = np.exp(seed + true * theta + rng.normal(0.0, sd * theta / math.sqrt(2), (reps, n)))
        return y, y_ref, ("relative", theta)
    y_ref = 1.0 + rng.normal(0.0, 0.3, (reps, n))
    return y_ref + true * THETA + sd * THETA * _noise(rng, shape, (reps, n)), y_ref, ("absolute", THETA)


def _verdicts(y: np.ndarray, y_ref: np.ndarray, rule: tuple[str, float]) -> list[str]:
    """The verdict of each replication as one row (a family of one: level α)."""
    log = rule[0] == "relative"
    out = []
    done = DONE[:y.shape[1]]
    for yi, ri in zip(y, y_ref):
        d = v.itt_differences(yi, ri, done, done, 1.0, log=log).d
        out.append(v.decide_family([v.pair_stats(d, rule[1])], ALPHA, 1.0)[0].verdict)
    return out


def _rate(hits: int, reps: int) -> tuple[float, float, float]:
    low, high = proportion_confint(hits, reps, alpha=0.05, method="beta")
    return hits / reps, float(low), float(high)


def _check_level(name: str, hits: int, reps: int, bound: float = 0.065) -> str:
    rate, low, high = _rate(hits, reps)
    text = f"{name}: {hits}/{reps} = {rate:.4f} (95% Clopper–Pearson {low:.4f}–{high:.4f})"
    print(text)
    assert low <= ALPHA and high <= bound, text
    return text


def _equivalent_at_margin(shape: str, n: int, reps: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    # sd a quarter of the margin: the test at −θ always rejects, so the rate is that of the test at +θ
    y, y_ref, rule = _pairs(rng, shape, 1.0, 0.25, reps, n)
    return _verdicts(y, y_ref, rule).count("equivalent")


def _worse_inside(shape: str, n: int, reps: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    # sd of two margins: the worst case for "worse" at 0.9 θ is a noisy difference
    y, y_ref, rule = _pairs(rng, shape, 0.9, 2.0, reps, n)
    return _verdicts(y, y_ref, rule).count("worse")


def _across_equivalent(reps: int, seed: int, tau: float = 1.0, k: int = 5, n: int = 30,
                       within: float = 0.5) -> tuple[int, int]:
    """(across-task 'equivalent' claims, replications where every task was equivalent) when the
    k tasks' true differences (in margins) are N(0, τ²) and each task has n seeds of sd `within`."""
    rng = np.random.default_rng(seed)
    effects = rng.normal(0.0, tau, (reps, k, 1))
    d = effects + within * rng.standard_normal((reps, k, n))
    claims = all_tasks = 0
    for rep in d:
        tasks = [v.pair_stats(x, 1.0) for x in rep]
        all_tasks += all(dec.verdict == "equivalent" for dec in v.decide_family(tasks, ALPHA, 1.0))
        across = v.across_tasks(np.array([t.estimate for t in tasks]), np.array([t.se ** 2 for t in tasks]), True)
        decision = v.decide_family([across.stats], ALPHA, 1.0)[0]
        claims += v.across_claim(decision, across)[0] == "equivalent"
    return claims, all_tasks


# --- fast, in the default run -------------------------------------------------------------------

def test_level_at_the_margin_fast():
    reps = 1500
    _check_level("equivalent at the margin, lognormal losses, n = 10", _equivalent_at_margin("lognormal", 10, reps, 1),
                 reps, bound=0.08)
    _check_level("worse at 0.9 θ, t3, n = 10", _worse_inside("t3", 10, reps, 2), reps, bound=0.08)


def test_equivalence_has_power_when_the_difference_is_zero():
    rng = np.random.default_rng(3)
    y, y_ref, rule = _pairs(rng, "lognormal", 0.0, 1.0, 400, 30)
    rate, low, _ = _rate(_verdicts(y, y_ref, rule).count("equivalent"), 400)
    # TOST power at n = 30, sd = θ, true difference 0: 1 − 2·P(t'(√30) ≤ t_0.95) ≈ 0.999
    assert low > 0.95, f"equivalence found in {rate:.3f} of replications"


# --- slow: the full grid ----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("n", [10, 30])
@pytest.mark.parametrize("shape", SHAPES)
def test_equivalence_at_the_margin_holds_its_level(shape, n):
    reps = 10_000
    _check_level(f"equivalent at the margin, {shape}, n = {n}", _equivalent_at_margin(shape, n, reps, 10 + n), reps)


@pytest.mark.slow
@pytest.mark.parametrize("n", [10, 30])
@pytest.mark.parametrize("shape", SHAPES)
def test_worse_at_nine_tenths_of_the_margin_holds_its_level(shape, n):
    reps = 10_000
    _check_level(f"worse at 0.9 θ, {shape}, n = {n}", _worse_inside(shape, n, reps, 20 + n), reps)


@pytest.mark.slow
def test_equivalent_across_tasks_with_a_spread_of_one_margin_holds_its_level():
    reps = 4000
    claims, all_tasks = _across_equivalent(reps, seed=30)
    _check_level("equivalent across 5 tasks, between-task sd 1 margin", claims, reps)
    rate, low, high = _rate(all_tasks, reps)
    # for the record: equivalent on every one of these tasks happens far more often, which is why the
    # across-task verdict rests on the prediction for a new task, not on the intersection alone
    print(f"every one of the 5 tasks equivalent: {all_tasks}/{reps} = {rate:.4f} (95% {low:.4f}–{high:.4f})")


@pytest.mark.slow
def test_skewed_raw_differences_are_why_the_rule_uses_log_ratios():
    """The limit of the difference scale, which an absolute margin uses: paired differences that
    are themselves lognormal-shaped (skewness 6), at a true mean of exactly θ, make TOST claim
    equivalence far above 5% at n = 10 (no test of a mean holds its level under arbitrary skew at
    this n). The suites therefore declare relative margins, decided on log-ratios, and a row whose
    paired values have |skewness| > 1 says so in its note."""
    rng = np.random.default_rng(40)
    reps, n = 4000, 10
    sigma = 1.0
    x = rng.lognormal(0.0, sigma, (reps, n))
    shape = (x - math.exp(sigma ** 2 / 2)) / math.sqrt((math.exp(sigma ** 2) - 1) * math.exp(sigma ** 2))
    d = THETA + 0.25 * THETA * shape
    hits = sum(v.decide_family([v.pair_stats(di, THETA)], ALPHA, 1.0)[0].verdict == "equivalent" for di in d)
    rate, low, high = _rate(hits, reps)
    print(f"lognormal-shaped raw differences at the margin, n = {n}: equivalent {hits}/{reps} = {rate:.4f} "
          f"(95% {low:.4f}–{high:.4f})")
    assert low > 2 * ALPHA
