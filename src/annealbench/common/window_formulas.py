"""The window family Ϝ(r) as pure numpy functions of progress r ∈ [0, 1] (docs/theory.md §5).

This module is the one definition of the windows: the optimizers step with it (through
`annealbench.optimizers.window.Window`) and the analysis draws and checks windows with it. It imports
numpy only, never torch.

A window scales the trust-region radius, μ[t] = μ·Ϝ(r) (eq. W1). Every decay shape φ is a
closed-form minimiser of a (regularised) Dirichlet energy of the radius with φ(0) = 1 and
φ(1) = 0. Warm-up and plateau enter through the reparameterised input (eq. W2)

    x = (m - r)/m                      r < m            (warm-up, only when m > 0)
    x = 0                              m ≤ r ≤ m + e    (plateau at full radius)
    x = (r - (m+e)) / (1 - (m+e))      r > m + e        (decay)

and a floor lifts the result (eq. W3): Ϝ = Ϝ_min + (1 - Ϝ_min)·ψ(x), where ψ = φ except during
the warm-up of the `constant` window, which has no shape of its own and rises linearly, ψ = 1 - x.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

WINDOW_KINDS: tuple[str, ...] = ("constant", "linear", "root", "cosine", "cosine1")
"""Known decay shapes φ(x), x ∈ [0, 1] (eq. W4): constant 1; linear 1 - x; root (1 - x)^(1/p);
cosine cos²(πx/2) (cosine annealing); cosine1 cos(πx/2) (first-order raised cosine)."""


def _fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"window {name}={value!r} is not allowed: expected a finite number in [0, 1)")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"window {name}={value!r} is out of range: allowed is 0 <= {name} < 1")
    return float(value)


def check_window(kind: str, *, p: float = 1.0, warmup: float = 0.0, plateau: float = 0.0,
                 floor: float = 0.0) -> tuple[str, float, float, float, float]:
    """Validate a window's parameters; return them as (kind, p, warmup, plateau, floor) floats.

    Raises `ValueError` naming the bad parameter and what is allowed.
    """
    if kind not in WINDOW_KINDS:
        raise ValueError(f"window kind={kind!r} is unknown: allowed are {', '.join(WINDOW_KINDS)}")
    if isinstance(p, bool) or not isinstance(p, Real) or not math.isfinite(p) or p <= 0:
        raise ValueError(f"window p={p!r} is not allowed: expected a finite number p > 0")
    if kind != "root" and p != 1:
        raise ValueError(f"window p={p!r} is not allowed for kind={kind!r}: only 'root' takes p != 1")
    m, e, low = _fraction("warmup", warmup), _fraction("plateau", plateau), _fraction("floor", floor)
    if m + e >= 1.0:
        raise ValueError(f"window warmup + plateau = {m} + {e} = {m + e} is out of range: "
                         "allowed is warmup + plateau < 1 (the window must end with a decay)")
    return kind, float(p), m, e, low


def reparameterise(r, *, warmup: float = 0.0, plateau: float = 0.0):
    """The input x(r; m, e) ∈ [0, 1] of eq. W2 (m = warm-up, e = plateau fraction)."""
    m, e = warmup, plateau
    decay = np.minimum(np.maximum((r - (m + e)) / (1.0 - (m + e)), 0.0), 1.0)
    if m <= 0.0:
        return decay
    return np.where(r < m, np.minimum((m - r) / m, 1.0), decay)


def shape(kind: str, x, p: float = 1.0):
    """The decay shape φ(x) of eq. W4, φ(0) = 1, φ(1) = 0 (constant: φ ≡ 1)."""
    if kind == "constant":
        return np.ones_like(x) if isinstance(x, np.ndarray) else 1.0
    if kind == "linear":
        return 1.0 - x
    if kind == "root":
        return np.maximum(1.0 - x, 0.0) ** (1.0 / p)
    if kind == "cosine":
        return 0.5 * (1.0 + np.cos(np.pi * x))
    return np.cos(0.5 * np.pi * x)  # cosine1


def check_progress(r) -> np.ndarray:
    """`r` as a float64 array, after checking 0 ≤ r ≤ 1 everywhere (`ValueError` otherwise)."""
    arr = np.asarray(r, dtype=np.float64)
    ok = np.isfinite(arr) & (arr >= 0.0) & (arr <= 1.0)
    if not np.all(ok):
        raise ValueError(f"progress r={float(arr[~ok].flat[0])!r} is out of range: allowed is 0 <= r <= 1")
    return arr


def window(kind: str, r, *, p: float = 1.0, warmup: float = 0.0, plateau: float = 0.0,
           floor: float = 0.0):
    """Ϝ(r) of eqs. W2-W4 for progress r ∈ [0, 1]: a float for a scalar r, else an array.

    Parameters are validated (`check_window`); progress out of [0, 1] raises `ValueError`.
    """
    kind, p, m, e, low = check_window(kind, p=p, warmup=warmup, plateau=plateau, floor=floor)
    return _evaluate(kind, r, p, m, e, low)


def _shape_scalar(kind: str, x: float, p: float) -> float:
    """`shape` for one float, with `math`: the optimizer evaluates its window once per step."""
    if kind == "constant":
        return 1.0
    if kind == "linear":
        return 1.0 - x
    if kind == "root":
        return max(1.0 - x, 0.0) ** (1.0 / p)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * x))
    return math.cos(0.5 * math.pi * x)  # cosine1


def _evaluate_scalar(kind: str, r: float, p: float, m: float, e: float, low: float) -> float:
    """`_evaluate` for one progress value, the same formulas without numpy's per-call cost."""
    if not (math.isfinite(r) and 0.0 <= r <= 1.0):
        raise ValueError(f"progress r={r!r} is out of range: allowed is 0 <= r <= 1")
    x = min(max((r - (m + e)) / (1.0 - (m + e)), 0.0), 1.0)
    warming = m > 0.0 and r < m
    if warming:
        x = min((m - r) / m, 1.0)
    psi = 1.0 - x if kind == "constant" and warming else _shape_scalar(kind, x, p)
    return low + (1.0 - low) * psi


def _evaluate(kind: str, r, p: float, m: float, e: float, low: float):
    """`window` without the parameter checks (for callers that validated them once)."""
    if isinstance(r, (float, int, np.floating, np.integer)) and not isinstance(r, bool):
        return _evaluate_scalar(kind, float(r), p, m, e, low)
    scalar = np.ndim(r) == 0
    arr = check_progress(r)
    x = reparameterise(arr, warmup=m, plateau=e)
    psi = shape(kind, x, p)
    if kind == "constant" and m > 0.0:
        psi = np.where(arr < m, 1.0 - x, psi)
    value = low + (1.0 - low) * psi
    return float(value) if scalar else np.asarray(value, dtype=np.float64)


def progress(step: int, total_steps: int) -> float:
    """Progress r = min(k/τ, 1) of step k (counting from 0) in a window of τ = total_steps steps.

    The one place where a step count becomes progress; steps past the end keep the end value.
    """
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step={step!r} is not allowed: expected an integer step >= 0")
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
        raise ValueError(f"total_steps={total_steps!r} is not allowed: expected an integer >= 1")
    return min(int(step) / int(total_steps), 1.0)


def mean_and_smoothness(r, phi) -> tuple[float, float]:
    """Mean of Ϝ and smoothness factor L of a sampled window (eqs. W5, W6).

    Both are Riemann sums over the samples `(r_k, Ϝ_k)`, r strictly increasing: the mean is the
    trapezoidal integral of Ϝ over [r_0, r_K] divided by its length, and
    L = Σ_k (ΔϜ_k)² / Δr_k, the discrete Dirichlet energy, whose limit is ∫ Ϝ'(r)² dr.
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
