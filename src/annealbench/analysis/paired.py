"""The secondary analysis: surviving runs only, tested against 0 (the verdict is `annealbench.analysis.verdict`'s).

For one task, configuration c and reference b, d_s = y_{c,s} − y_{b,s} over the seeds s where
both runs completed (`annealbench.analysis.verdict.survivor_differences`, the one place paired differences
are formed). Test: paired t on d with its (default 95%) t-interval; sensitivity: Wilcoxon
signed-rank with zeros split evenly between the rank sums and tied |d| given average ranks
(Demšar 2006, section 3.1.3). Its Holm family is the verdict's per-task family (the same rows),
asked its own question (Δ = 0, not the margin). The report shows it only under its own label
(`annealbench.analysis.differences.SURVIVORS`), never beside the verdict's numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.power import TTestPower

from annealbench.analysis.verdict import both_completed, survivor_differences

BAYES_SAMPLES = 3000  # posterior draws of the Bayesian signed-rank test (MC error ≈ 0.01)
POWER = 0.8  # power at which the smallest detectable effect is quoted


@dataclass(frozen=True)
class PairedResult:
    """One configuration against a reference on one task, surviving runs only; differences are
    config − reference in metric units."""

    task: str
    config: str
    reference: str
    n: int  # seeds with both runs completed
    n_diverged: int  # config runs that diverged (not in n)
    n_diverged_reference: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p_t: float
    p_wilcoxon: float
    d_z: float  # mean(d)/sd(d), signed like d
    sd_diff: float  # sd(d), ddof = 1
    a_better: float  # Vargha–Delaney A: P(config run better than reference run), ties ½
    p_holm: float = math.nan  # Holm-adjusted p_t over the verdict's per-task family
    min_detectable: float = math.nan  # |mean diff| detectable with POWER at the family's α
    note: str = ""


def vargha_delaney(better: np.ndarray, other: np.ndarray, sign: float) -> float:
    """A = P(X better than Y) + ½·P(tie) for X ~ `better`, Y ~ `other` (unpaired; Vargha & Delaney 2000).

    `sign` = +1 when lower values are better. Equals U/(n·m) of the Mann–Whitney U statistic.
    """
    x, y = sign * np.asarray(better)[:, None], sign * np.asarray(other)[None, :]
    return float(np.mean((x < y) + 0.5 * (x == y)))


def smallest_detectable_dz(n: int, alpha: float, power: float = POWER) -> float:
    """|d_z| a two-sided paired t-test with n pairs detects with `power` at level `alpha`."""
    if n < 2:
        return math.nan
    return float(TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power,
                                          alternative="two-sided"))


def seeds_needed(d_z: float, alpha: float, power: float = POWER) -> int:
    """Smallest n whose two-sided paired t-test detects `d_z` with `power` at `alpha`."""
    n = TTestPower().solve_power(effect_size=d_z, nobs=None, alpha=alpha, power=power,
                                 alternative="two-sided")
    return int(math.ceil(float(np.squeeze(n))))


def compare(task: str, config: str, reference: str, y: np.ndarray, y_ref: np.ndarray,
            status: np.ndarray, status_ref: np.ndarray, *, sign: float = 1.0,
            level: float = 0.95) -> PairedResult:
    """Paired statistics of `y` (config) against `y_ref` over seeds; NaN entries are unpaired."""
    y, y_ref = np.asarray(y, float), np.asarray(y_ref, float)
    both = both_completed(y, y_ref)
    d = survivor_differences(y, y_ref)
    n = int(d.size)
    common = dict(task=task, config=config, reference=reference, n=n,
                  n_diverged=int(np.sum(status == "diverged")),
                  n_diverged_reference=int(np.sum(status_ref == "diverged")))
    nan = math.nan
    if n < 2:
        return PairedResult(**common, mean_diff=float(d.mean()) if n else nan, ci_low=nan,
                            ci_high=nan, p_t=nan, p_wilcoxon=nan, d_z=nan, sd_diff=nan, a_better=nan,
                            note=f"no test possible: {n} paired seed(s), at least 2 needed")
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        mean = float(d.mean())
        return PairedResult(**common, mean_diff=mean, ci_low=mean, ci_high=mean,
                            p_t=1.0 if mean == 0 else 0.0, p_wilcoxon=nan,
                            d_z=0.0 if mean == 0 else math.copysign(math.inf, mean), sd_diff=0.0,
                            a_better=vargha_delaney(y[both], y_ref[both], sign),
                            note="all paired differences are equal; t-test degenerate")
    test = stats.ttest_1samp(d, 0.0)  # the paired t (scipy's ttest_rel on the pairs)
    ci = test.confidence_interval(confidence_level=level)
    if np.all(d == 0):
        p_w = 1.0
    else:
        p_w = float(stats.wilcoxon(d, zero_method="zsplit").pvalue)
    return PairedResult(**common, mean_diff=float(d.mean()), ci_low=float(ci.low),
                        ci_high=float(ci.high), p_t=float(test.pvalue), p_wilcoxon=p_w,
                        d_z=float(d.mean() / sd), sd_diff=sd, a_better=vargha_delaney(y[both], y_ref[both], sign))


def bayes_signed_rank(d: np.ndarray, rope: float, sign: float, seed: int = 0,
                      nsamples: int = BAYES_SAMPLES, prior: float = 0.5) -> tuple[float, float, float]:
    """(P(config better), P(within the ROPE), P(config worse)) of the Bayesian signed-rank test
    (Benavoli et al. 2017) on paired differences d = config − reference.

    Let z = (0, improvements), z > 0 meaning the configuration is better, and w ~ Dirichlet(prior,
    1, …, 1). Each draw gives θ_better = Σ_ij w_i w_j [z_i + z_j > 2r] (½ at equality), θ_worse
    alike for < −2r, θ_rope = 1 − both; the probabilities are the fractions of draws in which each θ
    is the largest. This is baycomp's `SignedRankTest` computed with one einsum instead of a
    Python loop over draws (baycomp takes ≈ 0.1 s per call); it reproduces baycomp's draws
    exactly for the same seed, which a test checks."""
    z = np.concatenate([[0.0], -sign * np.asarray(d, dtype=float)])
    sums = z[:, None] + z[None, :]
    above = (sums > 2 * rope) + 0.5 * (sums == 2 * rope)
    below = (-sums > 2 * rope) + 0.5 * (-sums == 2 * rope)
    weights = np.ones(z.size)
    weights[0] = prior
    w = np.random.RandomState(seed).dirichlet(weights, nsamples)
    worse = np.einsum("bi,ij,bj->b", w, below, w)
    better = np.einsum("bi,ij,bj->b", w, above, w)
    draws = np.stack([worse, 1.0 - worse - better, better], axis=1)
    p_worse, p_rope, p_better = np.bincount(np.argmax(draws, axis=1), minlength=3) / nsamples
    return float(p_better), float(p_rope), float(p_worse)
