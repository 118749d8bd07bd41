"""Trust-region windows Ϝ(r) for the optimizers: a frozen `Window` over `annealbench.common.window_formulas`.

The formulas (eqs. W1-W6 of docs/theory.md) live once, in `annealbench.common.window_formulas`, which the analysis
uses too; this module gives them the validated, hashable object the optimizers keep, and the
per-step statistics of a window τ steps long. `progress(step, total_steps)` (re-exported from
`annealbench.common.window_formulas`) is the one place where a step count becomes progress.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass

import numpy as np

from annealbench.common import window_formulas as W
from annealbench.common.window_formulas import WINDOW_KINDS, progress

__all__ = ["WINDOW_KINDS", "Window", "make_window", "progress", "window_mean", "window_smoothness"]


@dataclass(frozen=True)
class Window:
    """A trust-region window Ϝ(r) on progress r ∈ [0, 1] (eqs. W2-W4).

    Fields (all dimensionless):
        kind:    the shape φ, one of WINDOW_KINDS.
        p:       the root order of `root` windows, Ϝ = (1 - x)^(1/p); p = 1 is linear, p = 2
                 "square-root linear". Only `root` accepts p ≠ 1.
        warmup:  warm-up fraction m ∈ [0, 1) of the window.
        plateau: plateau fraction e ∈ [0, 1) at full radius after the warm-up; m + e < 1.
        floor:   Ϝ_min ∈ [0, 1), the value the window decays to.

    During a warm-up the decaying shapes rise along their own shape, Ϝ = φ((m - r)/m); the
    `constant` window has no shape of its own and rises linearly, Ϝ = 1 - (m - r)/m.
    """

    kind: str
    p: float = 1.0
    warmup: float = 0.0
    plateau: float = 0.0
    floor: float = 0.0

    def __post_init__(self) -> None:
        checked = W.check_window(self.kind, p=self.p, warmup=self.warmup, plateau=self.plateau,
                                 floor=self.floor)
        # Normalised to plain floats so equal windows hash and compare equal.
        for name, value in zip(("kind", "p", "warmup", "plateau", "floor"), checked):
            object.__setattr__(self, name, value)

    def __call__(self, r: float | np.ndarray) -> float | np.ndarray:
        """Ϝ(r) for progress r ∈ [0, 1] (float → float, array → array of the same shape)."""
        return W._evaluate(self.kind, r, self.p, self.warmup, self.plateau, self.floor)

    @property
    def label(self) -> str:
        """A short readable name, e.g. `linear`, `cosine+warmup=0.05`, `root(p=2)+floor=0.1`."""
        text = f"root(p={self.p:g})" if self.kind == "root" else self.kind
        for name in ("warmup", "plateau", "floor"):
            value = getattr(self, name)
            if value:
                text += f"+{name}={value:g}"
        return text


def make_window(kind: str, *, p: float = 1.0, warmup: float = 0.0, plateau: float = 0.0,
                floor: float = 0.0) -> Window:
    """Build a validated `Window`; bad values raise `ValueError` naming them."""
    return Window(kind=kind, p=p, warmup=warmup, plateau=plateau, floor=floor)


def _samples(window: Window, steps: int) -> np.ndarray:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps={steps!r} is not allowed: expected an integer number of steps >= 2")
    return window(np.arange(steps + 1, dtype=np.float64) / steps)


def window_mean(window: Window, steps: int) -> float:
    """Mean radius factor of the τ = `steps` steps taken: (1/τ) Σ_{k=0}^{τ-1} Ϝ(k/τ) (eq. W5).

    Its limit as τ → ∞ is ∫₀¹ Ϝ(r) dr.
    """
    return float(np.mean(_samples(window, steps)[:-1]))


def window_smoothness(window: Window, steps: int) -> float:
    """Smoothness factor L = (1/τ) Σ_{k=1}^{τ} Ϝ'(r_k)² (eq. W6), the normalised Dirichlet energy.

    With the backward difference Ϝ'(r_k) ≈ τ·(Ϝ(k/τ) - Ϝ((k-1)/τ)) over the τ + 1 samples
    r = 0, 1/τ, …, 1 this is `annealbench.common.window_formulas.mean_and_smoothness`'s L on those samples. Its limit
    is ∫₀¹ Ϝ'(r)² dr (infinite for root windows with p ≥ 2, whose discrete L grows with τ).
    """
    values = _samples(window, steps)
    return W.mean_and_smoothness(np.arange(steps + 1, dtype=np.float64) / steps, values)[1]


@functools.lru_cache(maxsize=256)
def cached_window(kind: str, p: float, warmup: float, plateau: float, floor: float) -> Window:
    """`make_window` for the window a param group names, built and checked once (optimizers
    look it up every step)."""
    return make_window(kind, p=p, warmup=warmup, plateau=plateau, floor=floor)
