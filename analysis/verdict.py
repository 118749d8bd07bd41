"""The verdict: better, worse, equivalent or inconclusive, from one rule (docs/statistics.md).

For a task, a configuration c and a reference b, the paired differences over seeds are
d_s = y_{c,s} − y_{b,s} in the metric's units. Intention to treat (ITT): a diverged run is the
worst outcome on its task, so d_s = +∞·σ when only c diverged (σ = +1 for losses, −1 for
accuracies), −∞·σ when only b diverged, and 0 when both did; failed or missing runs are
infrastructure, not outcomes, and leave their seed out.

- All d_s finite: the paired t-test gives p_difference; TOST (Schuirmann 1987) gives
  p_equivalence = max(P(T ≥ (d̄ + δ)/se), P(T ≤ (d̄ − δ)/se)), T ~ t_{n−1}, which is ≤ α exactly
  when the (1 − 2α) t-interval d̄ ± t_{1−α, n−1}·se lies inside (−δ, δ). The estimate is d̄ and
  the interval printed is that (1 − 2α) interval.
- Some d_s infinite: the Wilcoxon signed-rank test (zeros split) gives p_difference, ±∞ ranking
  beyond every finite |d|; the estimate is the median of d with its distribution-free
  order-statistic interval; equivalence cannot be shown (a diverged run has no bounded loss), so
  p_equivalence = 1.

Holm's method adjusts p_difference and p_equivalence over the family of rows of one scope kind
(every (task, config, reference), or every all-tasks row). With adjusted p-values at level α:
equivalent if p_equivalence ≤ α; else better or worse (by the sign of σ·estimate) if
p_difference ≤ α and |estimate| > δ; else inconclusive. A difference inside the margin is never
better or worse, whatever its p-value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis.paired import holm

VERDICT_COLUMNS = ("scope", "config", "reference", "margin", "estimate", "ci_low", "ci_high",
                   "p_difference", "p_equivalence", "verdict")
VERDICTS = ("better", "worse", "equivalent", "inconclusive")
ALL_TASKS = "all tasks"
EQUIVALENCE_POWER = 0.8
MAX_SEEDS_SEARCHED = 100_000


@dataclass(frozen=True)
class PairStats:
    """Paired statistics of differences d against a margin δ (see the module docstring)."""

    n: int  # pairs used
    estimate: float
    ci_low: float  # (1 − 2α) interval
    ci_high: float
    p_difference: float
    p_equivalence: float
    sd: float  # sd of finite d (ddof = 1); NaN when n < 2 or any d is infinite
    test: str  # "paired t + TOST", "Wilcoxon signed-rank (ITT)" or "none"


def itt_differences(y: np.ndarray, y_ref: np.ndarray, status: np.ndarray, status_ref: np.ndarray,
                    sign: float) -> np.ndarray:
    """d = y − y_ref per seed, a diverged run counted as the worst outcome (module docstring)."""
    div, div_ref = status == "diverged", status_ref == "diverged"
    d = np.asarray(y, float) - np.asarray(y_ref, float)
    d = np.where(div & ~div_ref, sign * np.inf, d)
    d = np.where(div_ref & ~div, -sign * np.inf, d)
    d = np.where(div & div_ref, 0.0, d)
    ran = np.isin(status, ("done", "diverged")) & np.isin(status_ref, ("done", "diverged"))
    keep = ran & (np.isfinite(d) | np.isinf(d))
    return d[keep]


def survivor_differences(y: np.ndarray, y_ref: np.ndarray) -> np.ndarray:
    """d over the seeds where both runs completed (the secondary analysis)."""
    both = np.isfinite(y) & np.isfinite(y_ref)
    return np.asarray(y, float)[both] - np.asarray(y_ref, float)[both]


def tost(d: np.ndarray, margin: float, alpha: float) -> tuple[float, float, float]:
    """(p_equivalence, low, high): two one-sided t-tests of |E d| < δ and the (1 − 2α) interval.

    Degenerate sd = 0: the interval is the point; p = 0 inside the margin, 1 outside."""
    d = np.asarray(d, float)
    n, mean = d.size, float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return (0.0 if abs(mean) < margin else 1.0), mean, mean
    se = sd / math.sqrt(n)
    p_low = stats.t.sf((mean + margin) / se, n - 1)  # H0: E d ≤ −δ
    p_high = stats.t.cdf((mean - margin) / se, n - 1)  # H0: E d ≥ δ
    half = stats.t.ppf(1 - alpha, n - 1) * se
    p = float(max(p_low, p_high)) if math.isfinite(margin) else math.nan
    return p, mean - half, mean + half


def median_interval(d: np.ndarray, alpha: float) -> tuple[float, float]:
    """Distribution-free (1 − 2α) interval for the median: [d_(k), d_(n+1−k)] with k the largest
    integer such that P(Bin(n, ½) ≤ k − 1) ≤ α; (−∞, ∞) when no such k ≥ 1 exists."""
    x = np.sort(np.asarray(d, float))
    n = x.size
    k = int(stats.binom.ppf(alpha, n, 0.5))  # smallest j with P(Bin ≤ j) ≥ α
    k = k if stats.binom.cdf(k, n, 0.5) <= alpha else k - 1  # now P(Bin ≤ k) ≤ α, so use d_(k+1)
    if k < 0:
        return -math.inf, math.inf
    return float(x[k]), float(x[n - 1 - k])


def pair_stats(d: np.ndarray, margin: float, alpha: float) -> PairStats:
    """The statistics of the verdict rule for differences `d` and margin δ = `margin`."""
    d = np.asarray(d, float)
    n, nan = int(d.size), math.nan
    if n < 2:
        return PairStats(n, float(d.mean()) if n else nan, nan, nan, nan, nan, nan, "none")
    if np.isfinite(d).all():
        p_eq, low, high = tost(d, margin, alpha)
        mean, sd = float(d.mean()), float(d.std(ddof=1))
        if sd == 0.0:
            p_diff = 1.0 if mean == 0 else 0.0
        else:
            p_diff = float(stats.ttest_1samp(d, 0.0).pvalue)
        return PairStats(n, mean, low, high, p_diff, p_eq, sd, "paired t + TOST")
    finite = d[np.isfinite(d)]
    cap = 2.0 * (float(np.abs(finite).max()) + 1.0) if finite.size else 1.0
    capped = np.clip(d, -cap, cap)  # same ranks: ±∞ beyond every finite |d|
    p_diff = 1.0 if np.all(capped == 0) else float(stats.wilcoxon(capped, zero_method="zsplit").pvalue)
    low, high = median_interval(d, alpha)
    return PairStats(n, float(np.median(d)), low, high, p_diff, 1.0, nan, "Wilcoxon signed-rank (ITT)")


def decide(estimate: float, p_difference: float, p_equivalence: float, margin: float, alpha: float,
           sign: float) -> str:
    """The rule, on Holm-adjusted p-values (module docstring)."""
    if not math.isfinite(margin) or margin <= 0:
        return "inconclusive"
    if p_equivalence <= alpha:
        return "equivalent"
    if p_difference <= alpha and abs(estimate) > margin:
        return "better" if sign * estimate < 0 else "worse"
    return "inconclusive"


def decide_all(estimates, p_difference, p_equivalence, margins, alpha: float, sign: float):
    """Holm-adjust both columns over the family, then decide each row.

    Returns (adjusted p_difference, adjusted p_equivalence, verdicts)."""
    p_diff = holm(np.asarray(p_difference, float), alpha)
    p_eq = holm(np.asarray(p_equivalence, float), alpha)
    verdicts = [decide(e, pd_, pe, m, alpha, sign)
                for e, pd_, pe, m in zip(estimates, p_diff, p_eq, margins)]
    return p_diff, p_eq, verdicts


def tost_power(n: int, sd: float, margin: float, alpha: float) -> float:
    """Power of TOST with n pairs when the true difference is 0: 1 − 2·P(t'_{n−1}(λ) ≤ t_{1−α}),
    λ = δ√n/σ (noncentral t; the usual approximation, slightly conservative)."""
    if n < 2 or not (sd > 0) or not (margin > 0):
        return math.nan
    crit = stats.t.ppf(1 - alpha, n - 1)
    return float(max(0.0, 1.0 - 2.0 * stats.nct.cdf(crit, n - 1, margin * math.sqrt(n) / sd)))


def seeds_for_equivalence(sd: float, margin: float, alpha: float, power: float = EQUIVALENCE_POWER) -> float:
    """Smallest number of seeds whose TOST shows equivalence at δ with `power` when the true
    difference is 0 and the paired differences have sd `sd`; NaN when sd or δ is unknown."""
    if not (math.isfinite(sd) and math.isfinite(margin)) or sd < 0 or margin <= 0:
        return math.nan
    if sd == 0:
        return 2.0
    low, high = 2, 4
    while tost_power(high, sd, margin, alpha) < power:
        low, high = high, high * 2
        if high > MAX_SEEDS_SEARCHED:
            return math.inf
    while low < high:  # power grows with n: bisect for the first n that reaches it
        mid = (low + high) // 2
        if tost_power(mid, sd, margin, alpha) >= power:
            high = mid
        else:
            low = mid + 1
    return float(low)
