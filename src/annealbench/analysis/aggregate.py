"""Across tasks: normalised scores, Friedman ranks and critical differences, performance profiles.

References: Demšar (2006) "Statistical comparisons of classifiers over multiple data sets";
Benavoli, Corani & Mangili (2016) "Should we really use post-hoc tests based on mean-ranks?";
Agarwal et al. (2021) for the IQM with stratified bootstrap; Dolan & Moré (2002) performance
profiles and the AlgoPerf integrated score (Dahl et al. 2023).

Across tasks the task is the unit: a block is one task (a per-task summary over seeds), never a
(task, seed) pair, because the claim is about tasks. With seeds as blocks, a task × configuration
interaction with no average effect makes Friedman's test reject far above its level.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from annealbench.analysis.verdict import holm


def normalised_scores(final: np.ndarray, sign: float) -> np.ndarray:
    """(C, S) scores of one task: 1 at the best configuration's median, 0 at the worst's.

    Diverged runs (NaN) score min(0, lowest observed score): never better than the worst median.
    """
    oriented = np.where(np.isfinite(final), sign * final, np.nan)
    if not np.isfinite(oriented).any():
        return np.zeros(final.shape)  # nothing completed: every run scores as the worst
    ran = np.isfinite(oriented).any(axis=1)
    medians = np.full(final.shape[0], np.nan)
    medians[ran] = np.nanmedian(oriented[ran], axis=1)
    best, worst = np.nanmin(medians), np.nanmax(medians)
    span = worst - best if worst > best else 1.0
    score = (worst - oriented) / span
    floor = min(0.0, float(np.nanmin(score))) if np.isfinite(score).any() else 0.0
    return np.where(np.isfinite(score), score, floor)


def task_block(final: np.ndarray, status: np.ndarray, sign: float) -> np.ndarray:
    """(C,) one task's block: each configuration's median over seeds of sign·final, a diverged
    run counted as +inf (worst, intention to treat); failed or missing runs left out. NaN for a
    configuration with no completed or diverged run."""
    ran = np.isin(status, ("done", "diverged"))
    oriented = np.where(status == "diverged", np.inf, np.where(ran, sign * final, np.nan))
    return np.array([np.nanmedian(row[ran[c]]) if ran[c].any() else np.nan
                     for c, row in enumerate(oriented)])


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the 25 %-trimmed mean (scipy.stats.trim_mean)."""
    return stats.trim_mean(x, 0.25, axis=axis)


def stratified_bootstrap(scores: list[np.ndarray], statistic, n_boot: int = 2000, level: float = 0.95,
                         seed: int = 0) -> tuple[float, float, float]:
    """Point estimate and percentile interval of `statistic` over the pooled scores, resampling
    seeds with replacement within each task (stratum). `scores` holds one 1-d array per task."""
    rng = np.random.default_rng(seed)
    pooled = np.concatenate(scores)
    draws = np.concatenate([s[rng.integers(0, s.size, size=(n_boot, s.size))] for s in scores], axis=1)
    boot = statistic(draws, axis=1)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return float(statistic(pooled[None, :], axis=1)[0]), float(lo), float(hi)


@dataclass(frozen=True)
class Friedman:
    """Friedman test over blocks (rows) and configurations (columns), with Nemenyi's CD."""

    configs: tuple[str, ...]
    n_blocks: int
    average_ranks: np.ndarray  # (k,) rank 1 = best
    chi2_demsar: float  # Demšar's formula, no tie correction
    chi2_scipy: float  # scipy.stats.friedmanchisquare, tie-corrected
    p_value: float  # permutation p-value: ranks permuted within blocks (exact when enumerable)
    iman_davenport_f: float
    p_iman_davenport: float
    critical_difference: float  # Nemenyi, at alpha
    alpha: float
    p_asymptotic: float = math.nan  # χ²_{k−1} approximation of the tie-corrected statistic
    permutation_exact: bool = True  # False: Monte Carlo over PERMUTATIONS random draws


def ranks(blocks: np.ndarray, sign: float = 1.0) -> np.ndarray:
    """(N, k) ranks within each block, 1 = best, ties averaged; +inf (diverged) ranks last."""
    return stats.rankdata(sign * blocks, axis=1)


def friedman(blocks: np.ndarray, configs: tuple[str, ...], *, sign: float = 1.0,
             alpha: float = 0.05) -> Friedman:
    """Friedman's test on an (N blocks × k configurations) table (Demšar 2006, section 3.2.2)."""
    n, k = blocks.shape
    if k < 2 or n < 2:
        raise ValueError(f"Friedman's test needs ≥ 2 configurations and ≥ 2 blocks; got k={k}, N={n}")
    r = ranks(blocks, sign)
    if np.all(r == r[:, :1]):
        raise ValueError(f"Friedman's test is undefined: all {n} blocks are complete ties "
                         f"(e.g. every run diverged)")
    avg = r.mean(axis=0)
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(avg ** 2) - k * (k + 1) ** 2 / 4)
    if k >= 3:
        scipy_result = stats.friedmanchisquare(*(sign * blocks).T)
        chi2_s, p = float(scipy_result.statistic), float(scipy_result.pvalue)
    else:  # scipy needs 3 groups; the same tie-corrected formula by hand
        ties = sum(np.sum(c ** 3 - c) for c in (np.unique(row, return_counts=True)[1] for row in r))
        chi2_s = float(chi2 / (1 - ties / (n * (k ** 3 - k))))
        p = float(stats.chi2.sf(chi2_s, k - 1))
    denom = n * (k - 1) - chi2
    f = (n - 1) * chi2 / denom if denom > 0 else math.inf
    p_f = float(stats.f.sf(f, k - 1, (k - 1) * (n - 1))) if math.isfinite(f) else 0.0
    p_perm, exact = friedman_permutation_p(r)
    return Friedman(configs=tuple(configs), n_blocks=n, average_ranks=avg, chi2_demsar=float(chi2),
                    chi2_scipy=chi2_s, p_value=p_perm, iman_davenport_f=float(f), p_iman_davenport=p_f,
                    critical_difference=critical_difference(k, n, alpha), alpha=alpha, p_asymptotic=p,
                    permutation_exact=exact)


EXACT_PERMUTATIONS = 50_000  # enumerate (k!)^(N−1) rank arrangements up to this many
PERMUTATIONS = 9_999  # Monte Carlo draws otherwise


def friedman_permutation_p(ranks_: np.ndarray, seed: int = 0) -> tuple[float, bool]:
    """P(S* ≥ S) with S = Σ_j R_j², R_j the rank sum of configuration j, under H0 that the ranks
    within each block are exchangeable (no configuration effect). The first block is held fixed
    (S is invariant to relabelling all blocks alike); the rest are enumerated when
    (k!)^(N−1) ≤ EXACT_PERMUTATIONS, else PERMUTATIONS random draws give (1 + #{S* ≥ S})/(1 + B).
    Exact where the χ² approximation is not: with N = 4 tasks and k = 3, χ² ≥ 6.0 has χ²₂ tail
    0.0498 but exact probability 0.069."""
    r = np.asarray(ranks_, float)
    n, k = r.shape
    observed = float(np.sum(r.sum(axis=0) ** 2))
    tol = 1e-9 * max(observed, 1.0)
    if math.factorial(k) ** (n - 1) <= EXACT_PERMUTATIONS:
        per_block = [np.array(list(itertools.permutations(row))) for row in r[1:]]
        sums = r[0][None, :]
        for options in per_block:  # all arrangements, block by block
            sums = (sums[:, None, :] + options[None, :, :]).reshape(-1, k)
        return float(np.mean(np.sum(sums ** 2, axis=1) >= observed - tol)), True
    rng = np.random.default_rng(seed)
    draws = rng.permuted(np.broadcast_to(r, (PERMUTATIONS, n, k)), axis=2)
    stat = np.sum(draws.sum(axis=1) ** 2, axis=1)
    return float((1 + np.sum(stat >= observed - tol)) / (1 + PERMUTATIONS)), False


def smallest_friedman_p(n_blocks: int, k: int) -> float:
    """The smallest permutation p-value N blocks of k configurations can give: every block ranks
    alike, (k!)^(1−N). A test whose smallest p exceeds α cannot reject: more tasks are needed."""
    return float(math.factorial(k) ** (1 - n_blocks)) if n_blocks >= 1 else 1.0


def smallest_pairwise_p(n_blocks: int, k: int) -> float:
    """The smallest Holm-adjusted p of the k(k−1)/2 exact Wilcoxon signed-rank tests over N blocks:
    each exact two-sided p is at least 2/2^N, and Holm multiplies the smallest by the family size."""
    return min(1.0, k * (k - 1) / 2 * 2.0 / 2 ** n_blocks)


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi CD = q_α·sqrt(k(k+1)/(6N)), q_α the studentized range quantile / √2."""
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


def pairwise_wilcoxon_holm(blocks: np.ndarray, configs: tuple[str, ...], sign: float = 1.0) -> np.ndarray:
    """(k, k) Holm-adjusted p-values of pairwise Wilcoxon signed-rank tests over blocks
    (zeros split, Benavoli et al. 2016); the diagonal is 1. Diverged (+inf) entries take the
    largest finite value of the table plus one so that they rank worst but stay finite."""
    x = sign * blocks
    finite = np.isfinite(x)
    cap = (np.max(np.abs(x[finite])) + 1.0) * 2 if finite.any() else 1.0
    x = np.where(np.isposinf(x) | np.isnan(x), cap, x)
    k = len(configs)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    raw = []
    for i, j in pairs:
        d = x[:, i] - x[:, j]
        raw.append(1.0 if np.all(d == 0) else float(stats.wilcoxon(d, zero_method="zsplit").pvalue))
    adj = holm(np.array(raw))
    out = np.ones((k, k))
    for (i, j), p in zip(pairs, adj):
        out[i, j] = out[j, i] = p
    return out


def cliques(avg_ranks: np.ndarray, p_matrix: np.ndarray, alpha: float = 0.05) -> list[list[int]]:
    """Maximal runs of configurations, consecutive in average rank, with no pair significantly
    different (adjusted p > alpha): the bars of a critical-difference diagram."""
    order = np.argsort(avg_ranks, kind="stable")
    found: list[list[int]] = []
    for start in range(order.size):
        end = start
        while end + 1 < order.size and all(p_matrix[order[a], order[end + 1]] > alpha
                                           for a in range(start, end + 1)):
            end += 1
        group = [int(i) for i in order[start:end + 1]]
        if len(group) > 1 and not any(set(group) <= set(g) for g in found):
            found.append(group)
    return found


def performance_ratios(times: np.ndarray) -> np.ndarray:
    """(P, k) Dolan–Moré ratios t_{p,s} / min_s t_{p,s}; problems nobody solved give +inf."""
    times = np.where(np.isnan(times), np.inf, times)
    best = times.min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isfinite(best), times / best, np.inf)
    return np.where(np.isnan(ratio), np.inf, ratio)


def profile(ratios: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """(len(taus), k) ρ_s(τ): fraction of problems with ratio ≤ τ."""
    return (ratios[None, :, :] <= taus[:, None, None]).mean(axis=1)


def integrated_score(ratios: np.ndarray, r_max: float = 4.0) -> np.ndarray:
    """AlgoPerf's B_s = 1/(r_max − 1) ∫_1^{r_max} ρ_s(τ) dτ, in closed form: ρ_s is a step
    function, so each problem adds (r_max − max(r, 1))₊ / (r_max − 1)."""
    contrib = np.clip(r_max - np.maximum(ratios, 1.0), 0.0, None)
    return contrib.mean(axis=0) / (r_max - 1.0)
