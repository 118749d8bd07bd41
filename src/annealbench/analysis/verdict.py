"""The verdict: better, worse, equivalent or inconclusive, from one rule (docs/statistics.md, §2).

For a task, a configuration c and a reference b, the seeds give paired differences d_s on the
*decision scale*: the log-ratio d_s = log(y_{c,s} / y_{b,s}) when the margin is relative and the
metric is positive (the margin is then θ = log(1 + δ_rel), fixed before any run), otherwise the
difference d_s = y_{c,s} − y_{b,s} against an absolute margin θ = δ. Let Δ be the location of
d (its mean; its median when a run diverged) and σ = +1 when lower is better, −1 when higher is.

Divergence (intention to treat, ITT). A run that diverged is the worst outcome on its task:
d_s = +∞·σ when only c diverged, −∞·σ when only b did. A seed where both diverged carries no
difference: it is left out of d, counted in `n_both_diverged`, and — like any diverged run in
either arm — rules out equivalence (a run that never finishes agrees with nothing). Failed or
missing runs are infrastructure, not outcomes, and leave their seed out.

Three one-sided questions, each about the margin (never about 0):

- above: H0 Δ ≤ θ (rejecting shows Δ > θ),  below: H0 Δ ≥ −θ (shows Δ < −θ),
- inside: TOST, H0 |Δ| ≥ θ (Schuirmann 1987), p = max of the two one-sided p-values.

All d finite: one-sample t on d. Some d infinite: the sign test, whose interval is the
order-statistic interval of the median (the t has no finite mean to work with), and `inside` is
impossible. The row's p-value is p_row = min(p_inside, p_above, p_below); Holm's step-down over
the rows of a family gives each row a level α_r (α/(m − j + 1) at step j, or the level where the
procedure stopped), and the row's (1 − 2α_r) interval decides: inside (−θ, θ) → equivalent,
entirely above θ → worse (σ = +1) or better (σ = −1), entirely below −θ → the other. The interval
printed is that interval: p_x ≤ α_r exactly when it lies in the region of claim x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

VERDICT_COLUMNS = ("scope", "config", "reference", "direction", "scale", "margin", "estimate", "ci_low",
                   "ci_high", "ci_level", "p_difference", "p_equivalence", "verdict")
VERDICTS = ("better", "worse", "equivalent", "inconclusive")
ALL_TASKS = "all tasks"
BUDGET_SCOPE = "budget: longest − shortest"  # rows on how a difference changes with the budget


def is_task_scope(scope: str) -> bool:
    """Whether a verdict row's scope is one task (at one budget), not a row across tasks."""
    return scope not in (ALL_TASKS, BUDGET_SCOPE)

LOG_RATIO, DIFFERENCE = "log ratio", "difference"
T_TEST, SIGN_TEST, NO_TEST = "paired t", "sign test (ITT)", "none"
EQUIVALENCE_POWER = 0.8
MAX_SEEDS_SEARCHED = 100_000


def direction(sign: float) -> str:
    """'lower' when lower values are better (σ = +1), 'higher' otherwise."""
    return "lower" if sign > 0 else "higher"


@dataclass(frozen=True)
class Differences:
    """The paired differences of one (task, configuration, reference) on the decision scale."""

    d: np.ndarray  # ±inf where one arm diverged; both-diverged seeds left out
    n_both_diverged: int
    n_config_diverged: int  # only the configuration diverged
    n_reference_diverged: int  # only the reference diverged

    @property
    def any_diverged(self) -> bool:
        return bool(self.n_both_diverged or self.n_config_diverged or self.n_reference_diverged)


def itt_differences(y: np.ndarray, y_ref: np.ndarray, status: np.ndarray, status_ref: np.ndarray,
                    sign: float, log: bool = False) -> Differences:
    """d per seed under intention to treat (module docstring); `log`: log-ratios."""
    y, y_ref = np.asarray(y, float), np.asarray(y_ref, float)
    div, div_ref = status == "diverged", status_ref == "diverged"
    ran = np.isin(status, ("done", "diverged")) & np.isin(status_ref, ("done", "diverged"))
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log(y) - np.log(y_ref) if log else y - y_ref
    d = np.where(div & ~div_ref, sign * np.inf, d)
    d = np.where(div_ref & ~div, -sign * np.inf, d)
    both = ran & div & div_ref
    keep = ran & ~both & ~np.isnan(d)
    return Differences(d[keep], int(both.sum()), int((ran & div & ~div_ref).sum()),
                       int((ran & div_ref & ~div).sum()))


def both_completed(y: np.ndarray, y_ref: np.ndarray) -> np.ndarray:
    """The seeds where both runs have a final value (NaN: diverged, failed or missing)."""
    return np.isfinite(np.asarray(y, float)) & np.isfinite(np.asarray(y_ref, float))


def survivor_differences(y: np.ndarray, y_ref: np.ndarray, log: bool = False) -> np.ndarray:
    """d over the seeds where both runs completed: the surviving-runs analyses (the verdict's
    secondary family and `annealbench.analysis.paired`) take their differences from here."""
    both = both_completed(y, y_ref)
    y, y_ref = np.asarray(y, float)[both], np.asarray(y_ref, float)[both]
    return np.log(y) - np.log(y_ref) if log else y - y_ref


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


def sign_test_k(n: int, alpha: float) -> int:
    """The largest k with P(Bin(n, ½) ≤ k) ≤ α (−1 when even k = 0 exceeds α)."""
    k = int(stats.binom.ppf(alpha, n, 0.5))  # smallest j with P(Bin ≤ j) ≥ α
    return k if stats.binom.cdf(k, n, 0.5) <= alpha else k - 1


def median_interval(d: np.ndarray, alpha: float) -> tuple[float, float]:
    """Distribution-free (1 − 2α) interval for the median: [d_(k+1), d_(n−k)] with k the largest
    integer such that P(Bin(n, ½) ≤ k) ≤ α; (−∞, ∞) when no such k ≥ 0 exists. Its lower end
    exceeds θ exactly when the one-sided sign test of median ≤ θ gives p ≤ α."""
    x = np.sort(np.asarray(d, float))
    k = sign_test_k(x.size, alpha)
    if k < 0:
        return -math.inf, math.inf
    return float(x[k]), float(x[x.size - 1 - k])


@dataclass(frozen=True)
class PairStats:
    """The one-sided tests of differences d against ±θ (module docstring), and the data to
    compute the interval at whatever level Holm's procedure gives the row."""

    d: np.ndarray  # the differences tested (may hold ±inf)
    margin: float  # θ on the decision scale
    n: int
    estimate: float  # mean (t) or median (sign test)
    sd: float  # sd of d (ddof = 1); NaN for the sign test or n < 2
    se: float
    p_above: float  # H0: Δ ≤ θ
    p_below: float  # H0: Δ ≥ −θ
    p_inside: float  # TOST; 1 when equivalence is ruled out
    test: str  # T_TEST, SIGN_TEST or NO_TEST
    equivalence_possible: bool

    @property
    def p_row(self) -> float:
        return min(self.p_inside, self.p_above, self.p_below) if self.test != NO_TEST else math.nan

    def interval(self, alpha: float) -> tuple[float, float]:
        """The (1 − 2α) interval of Δ: d̄ ± t_{1−α, n−1}·se, or the order-statistic interval."""
        if self.test == NO_TEST or not math.isfinite(alpha):
            return math.nan, math.nan
        if self.test == SIGN_TEST:
            return median_interval(self.d, alpha)
        half = stats.t.ppf(1 - alpha, self.n - 1) * self.se if self.se > 0 else 0.0
        return self.estimate - half, self.estimate + half

    def smallest_p(self) -> float:
        """The smallest one-sided p-value this test can reach at this n: 2^−n for the sign test."""
        return 0.5 ** self.n if self.test == SIGN_TEST else 0.0


def _t_one_sided(d: np.ndarray, margin: float) -> tuple[float, float, float, float, float, float]:
    """(mean, sd, se, p_above, p_below, p_inside) of the one-sample t against ±θ."""
    n, mean, sd = d.size, float(d.mean()), float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0.0:  # every difference equal: the point decides
        p_above, p_below = float(mean > margin), float(mean < -margin)
        p_inside = float(abs(mean) < margin)
        return mean, sd, se, 1.0 - p_above, 1.0 - p_below, 1.0 - p_inside
    p_above = float(stats.t.sf((mean - margin) / se, n - 1))
    p_below = float(stats.t.cdf((mean + margin) / se, n - 1))
    p_inside = float(max(stats.t.sf((mean + margin) / se, n - 1), stats.t.cdf((mean - margin) / se, n - 1)))
    return mean, sd, se, p_above, p_below, p_inside


def pair_stats(d: np.ndarray, margin: float, *, equivalence_possible: bool = True) -> PairStats:
    """The one-sided tests of `d` against the margin θ = `margin` (module docstring)."""
    d = np.asarray(d, float)
    n, nan = int(d.size), math.nan
    if n < 2 or not (math.isfinite(margin) and margin > 0):
        est = float(np.median(d)) if n else nan
        return PairStats(d, margin, n, est, nan, nan, nan, nan, nan, NO_TEST, False)
    if np.isfinite(d).all():
        mean, sd, se, p_above, p_below, p_inside = _t_one_sided(d, margin)
        return PairStats(d, margin, n, mean, sd, se, p_above, p_below,
                         p_inside if equivalence_possible else 1.0, T_TEST, equivalence_possible)
    # sign test: ties at ±θ count against the claim, so p ≤ α exactly when the order-statistic
    # interval lies beyond θ (median_interval)
    p_above = float(stats.binom.sf(int(np.sum(d > margin)) - 1, n, 0.5))
    p_below = float(stats.binom.sf(int(np.sum(d < -margin)) - 1, n, 0.5))
    return PairStats(d, margin, n, float(np.median(d)), nan, nan, p_above, p_below, 1.0, SIGN_TEST, False)


def holm(p_values: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Holm-adjusted p-values: sorted p_(i) ↦ max_{j ≤ i} min(1, (m − j + 1)·p_(j)); NaN entries
    (no test) stay NaN and are not counted in m. Same values as statsmodels'
    `multipletests(method="holm")`, which calls gc.collect() on every call (≈ 70 ms in a large
    process); tested against it."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m:
        order = np.argsort(p[ok], kind="stable")
        scaled = np.minimum(1.0, (m - np.arange(m)) * p[ok][order])
        adjusted = np.empty(m)
        adjusted[order] = np.maximum.accumulate(scaled)
        out[ok] = adjusted
    return out


def _step_down_order(p_row: np.ndarray) -> np.ndarray:
    """Indices of the finite p-values, smallest first (ties in row order): Holm's steps."""
    ok = np.flatnonzero(np.isfinite(p_row))
    return ok[np.argsort(p_row[ok], kind="stable")]


def holm_levels(p_row: np.ndarray, alpha: float) -> np.ndarray:
    """Each row's level in Holm's step-down procedure over the finite p-values: α/(m − j + 1) for
    the row at step j when every step up to j rejected, else the level of the first step that did
    not (so p_row ≤ level exactly when Holm rejects the row); NaN where p_row is NaN."""
    p = np.asarray(p_row, float)
    out = np.full(p.shape, np.nan)
    order = _step_down_order(p)
    m = order.size
    if not m:
        return out
    levels = alpha / (m - np.arange(m))
    stop = np.flatnonzero(p[order] > levels)
    if stop.size:
        levels[stop[0]:] = levels[stop[0]]
    out[order] = levels
    return out


def adjusted(p: np.ndarray, p_row: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values of a claim's column `p`, stepping down in the order of `p_row`:
    max(adjusted p_row of the earlier steps, min(1, (m − j + 1)·p_j)); ≤ α exactly when the claim
    is made at the row's Holm level."""
    p, p_row = np.asarray(p, float), np.asarray(p_row, float)
    out = np.full(p.shape, np.nan)
    order = _step_down_order(p_row)
    m = order.size
    if not m:
        return out
    row_adj = holm(p_row, alpha=1.0)[order]
    before = np.r_[0.0, row_adj[:-1]]
    out[order] = np.maximum(before, np.minimum(1.0, (m - np.arange(m)) * p[order]))
    return out


def claim(low: float, high: float, margin: float, sign: float, equivalence_possible: bool) -> str:
    """The verdict read off the row's interval [low, high] against ±θ."""
    if not (math.isfinite(margin) and margin > 0) or math.isnan(low) or math.isnan(high):
        return "inconclusive"
    if equivalence_possible and -margin < low and high < margin:
        return "equivalent"
    if low > margin:
        return "worse" if sign > 0 else "better"
    if high < -margin:
        return "better" if sign > 0 else "worse"
    return "inconclusive"


@dataclass(frozen=True)
class Decision:
    """One row's decision: its Holm level, interval, adjusted p-values and verdict."""

    level: float  # one-sided α_r; the interval is (1 − 2α_r)
    ci_low: float
    ci_high: float
    p_difference: float  # adjusted p of the claim beyond the margin in the estimate's direction
    p_equivalence: float  # adjusted TOST p (1 when equivalence is ruled out)
    verdict: str


def decide_family(rows: list[PairStats], alpha: float, sign: float) -> list[Decision]:
    """Holm over the rows by p_row, then each row's interval at its level and its verdict."""
    p_row = np.array([r.p_row for r in rows], float)
    levels = holm_levels(p_row, alpha)
    toward = np.array([r.p_above if (r.estimate >= 0 or math.isnan(r.estimate)) else r.p_below
                       for r in rows], float)
    p_diff = adjusted(toward, p_row)
    p_eq = adjusted(np.array([r.p_inside for r in rows], float), p_row)
    out = []
    for r, level, pd_, pe in zip(rows, levels, p_diff, p_eq):
        low, high = r.interval(level)
        out.append(Decision(level, low, high, pd_, pe, claim(low, high, r.margin, sign, r.equivalence_possible)))
    return out


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


def random_effects(estimates: np.ndarray, variances: np.ndarray) -> tuple[float, float, float]:
    """(μ̂, τ̂, s_pred): the random-effects mean of per-task estimates with within-task variances,
    the between-task sd τ̂ by Paule–Mandel (1982; statsmodels' `combine_effects`), and
    s_pred = sqrt(τ̂² + se(μ̂)²), the scale of the Higgins–Thompson–Spiegelhalter (2009)
    prediction interval; NaN below 3 tasks.

    Why Paule–Mandel and not DerSimonian–Laird: DL's moment estimator divides the excess Q by
    Σw − Σw²/Σw, which a few tasks with tiny within-task variances dominate. On the broad suite's
    pilot (26 cells, within-task se from 0.002 to 6 margins, Q = 4,144 on 25 df) DL gave τ̂ = 0.17
    margins and a prediction interval of [0.10, 0.96] margins although the cells' estimates ran
    from −4.7 to +34; Paule–Mandel, which solves the generalised Q = k − 1, gave τ̂ = 4.6. Veroniki
    et al. (2016) recommend it (or REML) over DL for this reason."""
    from statsmodels.stats.meta_analysis import combine_effects

    y, v = np.asarray(estimates, float), np.asarray(variances, float)
    k = y.size
    if k < 3 or not (np.isfinite(y).all() and np.isfinite(v).all()):
        return math.nan, math.nan, math.nan
    v = np.maximum(v, 1e-12 * max(float(np.max(v)), 1.0))  # seeds that agree exactly; 1 margin: the unit
    with np.errstate(all="ignore"):  # I² of a perfectly homogeneous set divides by zero; unused here
        fit = combine_effects(y, v, method_re="pm")
    tau2 = max(0.0, float(fit.tau2))
    return float(fit.mean_effect_re), math.sqrt(tau2), math.sqrt(tau2 + float(fit.var_eff_w_re))


def prediction_interval(mu: float, s_pred: float, k: int, alpha: float) -> tuple[float, float]:
    """The (1 − 2α) prediction interval for a new task's true difference, μ̂ ± t_{1−α, k−2}·s_pred."""
    if k < 3 or not (math.isfinite(mu) and math.isfinite(s_pred) and math.isfinite(alpha)):
        return math.nan, math.nan
    half = float(stats.t.ppf(1 - alpha, k - 2)) * s_pred
    return mu - half, mu + half


def p_prediction(mu: float, s_pred: float, k: int) -> float:
    """The smallest α at which the (1 − 2α) prediction interval lies inside (−1, 1):
    P(t_{k−2} ≥ (1 − |μ̂|)/s_pred); ≤ α exactly when that interval is inside."""
    if k < 3 or not (math.isfinite(mu) and math.isfinite(s_pred)):
        return math.nan
    if s_pred == 0.0:
        return float(abs(mu) >= 1.0)
    return float(stats.t.sf((1.0 - abs(mu)) / s_pred, k - 2))


MIN_TASKS = 3  # an across-task t-interval needs ≥ 2 degrees of freedom, a prediction interval k − 2 ≥ 1
CAP = 2.0  # a task with an infinite median enters the across-task mean at ≥ this many margins


def capped(s: np.ndarray) -> np.ndarray:
    """Per-task values in margins, ±∞ replaced by the most extreme finite value and at least ±CAP
    margins, so that a task lost to divergence counts as the worst task, never as a better one."""
    s = np.asarray(s, float)
    finite = s[np.isfinite(s)]
    high = max(CAP, float(finite.max())) if finite.size else CAP
    low = min(-CAP, float(finite.min())) if finite.size else -CAP
    return np.where(np.isposinf(s), high, np.where(np.isneginf(s), low, s))


@dataclass(frozen=True)
class Across:
    """The statistics of one all-tasks row: the t over per-task values (in margins) and the
    random-effects prediction for a new task."""

    stats: PairStats  # p_inside includes the prediction interval's p (equivalence needs both)
    mu: float  # random-effects mean (Paule–Mandel τ)
    tau: float  # between-task sd
    s_pred: float

    def prediction(self, level: float) -> tuple[float, float]:
        return prediction_interval(self.mu, self.s_pred, self.stats.n, level)


def across_tasks(values: np.ndarray, variances: np.ndarray, equivalence_possible: bool) -> Across:
    """Per-task values in margins (±∞ capped) and their within-task variances → the all-tasks row's
    statistics. Equivalence needs every task finite with a variance and `equivalence_possible`."""
    s, v = capped(values), np.asarray(variances, float)
    if s.size < MIN_TASKS:
        return Across(pair_stats(s[:0], 1.0), math.nan, math.nan, math.nan)
    mu, tau, s_pred = random_effects(s, v)
    possible = equivalence_possible and math.isfinite(tau)
    st = pair_stats(s, 1.0, equivalence_possible=possible)
    p_pi = p_prediction(mu, s_pred, s.size) if possible else 1.0
    return Across(replace(st, p_inside=max(st.p_inside, p_pi), equivalence_possible=possible), mu, tau, s_pred)


def across_claim(decision: Decision, across: Across) -> tuple[str, float, float]:
    """(verdict, pi_low, pi_high): the family's decision, with 'equivalent' kept only when the
    prediction interval at the row's level lies inside ±1 too."""
    low, high = across.prediction(decision.level)
    verdict = decision.verdict
    if verdict == "equivalent" and not (-1.0 < low and high < 1.0):
        verdict = "inconclusive"
    return verdict, low, high
