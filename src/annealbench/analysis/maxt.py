"""Where along training two configurations differ: the sign-flip max-T test over steps.

For paired differences D[s, j] (seed s, grid step j) under H0 (no difference at any step) each
seed's whole difference curve is symmetric about 0, so flipping its sign leaves the joint law
unchanged. With T_j = mean_j / (sd_j/√n) and M = max_j |T_j|, the adjusted p-value of step j is
the fraction of sign vectors whose M is ≥ |T_j| (Westfall & Young 1993, single-step max-T): the
family-wise error over all steps is controlled. With n ≤ EXACT_MAX_SEEDS all 2^n sign vectors
are enumerated (exact); otherwise RANDOM_FLIPS random vectors plus the identity.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

EXACT_MAX_SEEDS = 12
RANDOM_FLIPS = 4095


@dataclass(frozen=True)
class MaxT:
    """Result over the steps kept (those where every seed has a finite difference)."""

    steps: np.ndarray  # (J,) steps tested
    t: np.ndarray  # (J,) observed t statistics
    p_adjusted: np.ndarray  # (J,) family-wise adjusted p-values
    null_max: np.ndarray  # (B,) max_j |T_j| under each sign vector (identity first)
    exact: bool
    n: int = 0  # seeds (pairs) tested


def sign_vectors(n: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """(B, n) ±1 matrix: all 2^n vectors for n ≤ EXACT_MAX_SEEDS, else the identity + random ones."""
    if n <= EXACT_MAX_SEEDS:
        return np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    rng = rng or np.random.default_rng(0)
    flips = rng.choice((1.0, -1.0), size=(RANDOM_FLIPS, n))
    return np.vstack([np.ones((1, n)), flips])


def t_statistics(signs: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(B, J) one-sample t of sign-flipped differences; Σd² is flip-invariant, so only the mean moves."""
    return np.sign(signs @ d) * np.sqrt(_t_squared(signs, d, (d ** 2).sum(axis=0)))


def _t_squared(signs: np.ndarray, d: np.ndarray, ss: np.ndarray) -> np.ndarray:
    """(B, J) t² = (n − 1)·q / (Σd² − q) with q = (Σ_s ε_s d_s)²/n, computed in place.

    Steps where every difference is 0 must be removed beforehand (0/0 there)."""
    n = d.shape[0]
    q = signs @ d
    np.square(q, out=q)
    q /= n
    denom = ss - q
    np.maximum(denom, 0.0, out=denom)
    with np.errstate(divide="ignore"):
        np.divide(q, denom, out=q)
    q *= n - 1
    return q


def max_t_test(d: np.ndarray, steps: np.ndarray, rng: np.random.Generator | None = None,
               chunk: int = 1024) -> MaxT:
    """Sign-flip max-T test of H0: E[D[:, j]] = 0 for every step j, over seeds (axis 0)."""
    d = np.asarray(d, dtype=float)
    if d.ndim != 2 or d.shape[1] != len(steps):
        raise ValueError(f"differences must be (seeds, steps) matching {len(steps)} steps, got {d.shape}")
    keep = np.isfinite(d).all(axis=0)
    d, steps = d[:, keep], np.asarray(steps)[keep]
    n = d.shape[0]
    if n < 2 or d.shape[1] == 0:
        raise ValueError(f"max-T needs ≥ 2 seeds and ≥ 1 step with every seed finite; got {n} seed(s), "
                         f"{d.shape[1]} step(s)")
    ss = (d ** 2).sum(axis=0)
    informative = ss > 0  # steps where every difference is 0 carry no evidence: t = 0, p = 1
    signs = sign_vectors(n, rng)
    exact = n <= EXACT_MAX_SEEDS
    t_obs = np.zeros(d.shape[1])
    p = np.ones(d.shape[1])
    if not informative.any():
        return MaxT(steps=steps, t=t_obs, p_adjusted=p, null_max=np.zeros(signs.shape[0]), exact=exact,
                    n=n)
    di, ssi = d[:, informative], ss[informative]
    t_obs[informative] = t_statistics(np.ones((1, n)), di)[0]
    # |T| is unchanged when every sign flips, so the exact enumeration needs only the half with ε_1 = +1
    half = signs[signs[:, 0] > 0] if exact else signs
    null_sq = np.concatenate([_t_squared(half[i:i + chunk], di, ssi).max(axis=1)
                              for i in range(0, half.shape[0], chunk)])
    null_max = np.sqrt(np.concatenate([null_sq, null_sq]) if exact else null_sq)
    sorted_null = np.sort(null_max)
    count = sorted_null.size - np.searchsorted(sorted_null, np.abs(t_obs) * (1 - 1e-12), side="left")
    return MaxT(steps=steps, t=t_obs, p_adjusted=count / sorted_null.size, null_max=null_max, exact=exact, n=n)
