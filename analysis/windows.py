"""Closed-form windows Ϝ(r) of THEORY.md section 4, re-stated in numpy for figures and checks.

`analysis/` never imports the optimizer package, so the window family is drawn from these
closed forms; the theory diagnostics themselves read the radius μ[t] logged by the runs
(`opt/mu_t`), never these functions.
"""

from __future__ import annotations

import numpy as np

WINDOW_FORMS = ("constant", "linear", "root", "cosine", "cosine1")


def reparameterise(r: np.ndarray, *, warmup: float = 0.0, plateau: float = 0.0) -> np.ndarray:
    """The input x(r; m, e) ∈ [0, 1] of THEORY.md section 4 (m = warm-up, e = plateau fraction)."""
    if not 0.0 <= warmup < 1.0 or not 0.0 <= plateau < 1.0 or warmup + plateau >= 1.0:
        raise ValueError(
            f"warmup={warmup!r}, plateau={plateau!r}: each must lie in [0, 1) and their sum below 1"
        )
    r = np.clip(np.asarray(r, dtype=float), 0.0, 1.0)
    x = np.zeros_like(r)
    if warmup > 0:
        x = np.where(r < warmup, (warmup - r) / warmup, x)
    start = warmup + plateau
    return np.where(r > start, (r - start) / (1.0 - start), x)


def window(kind: str, r, *, p: float = 1.0, warmup: float = 0.0, plateau: float = 0.0,
           floor: float = 0.0) -> np.ndarray:
    """Ϝ(r) for `kind` in WINDOW_FORMS; `root` is (1 - x)^(1/p), `cosine` is cos²(πx/2),
    `cosine1` is cos(πx/2); a floor Ϝ_min gives Ϝ_min + (1 - Ϝ_min)·Ϝ."""
    if kind not in WINDOW_FORMS:
        raise ValueError(f"window kind {kind!r} is unknown; allowed: {', '.join(WINDOW_FORMS)}")
    if p <= 0:
        raise ValueError(f"p={p!r} must be positive")
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"floor={floor!r} must lie in [0, 1)")
    x = reparameterise(r, warmup=warmup, plateau=plateau)
    if kind == "constant":
        phi = np.ones_like(x)
    elif kind == "linear":
        phi = 1.0 - x
    elif kind == "root":
        phi = (1.0 - x) ** (1.0 / p)
    elif kind == "cosine":
        phi = np.cos(np.pi * x / 2.0) ** 2
    else:
        phi = np.cos(np.pi * x / 2.0)
    return floor + (1.0 - floor) * phi


def mean_and_smoothness(r: np.ndarray, phi: np.ndarray) -> tuple[float, float]:
    """Mean of Ϝ and smoothness factor L = ∫ φ'(r)² dr of a sampled window (THEORY.md section 4).

    Both are Riemann sums over the samples `(r_k, φ_k)`, with r increasing: the mean is the
    trapezoidal integral of φ over [r_0, r_K] divided by its length, L = Σ_k (Δφ_k)² / Δr_k.
    """
    r = np.asarray(r, dtype=float)
    phi = np.asarray(phi, dtype=float)
    if r.ndim != 1 or r.shape != phi.shape or r.size < 2:
        raise ValueError(f"need two equal 1-d arrays with ≥ 2 samples, got shapes {r.shape}, {phi.shape}")
    dr = np.diff(r)
    if np.any(dr <= 0):
        raise ValueError("progress r must be strictly increasing")
    mean = float(np.trapezoid(phi, r) / (r[-1] - r[0]))
    smooth = float(np.sum(np.diff(phi) ** 2 / dr))
    return mean, smooth
