"""Trust-region windows Ϝ(r): pure functions of progress r = k/τ ∈ [0, 1] (THEORY.md section 4).

A window scales the trust-region radius, μ[t] = μ·Ϝ[t]. Every shape here is a closed-form
minimiser of a (regularised) Dirichlet energy of the radius with boundary values Ϝ(0) = 1 and
Ϝ(1) = 0, optionally preceded by a warm-up and a plateau through the reparameterised input

    x = (m - r)/m                      r < m            (warm-up, only when m > 0)
    x = 0                              m ≤ r ≤ m + e    (plateau at full radius)
    x = (r - (m+e)) / (1 - (m+e))      r > m + e        (decay)

and lifted by a floor: Ϝ = Ϝ_min + (1 - Ϝ_min)·φ(x).

`progress(step, total_steps)` is the one place in the code base where a step count becomes
progress; every optimizer and schedule goes through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np

WINDOW_KINDS: tuple[str, ...] = ("constant", "linear", "root", "cosine", "cosine1")
"""Known window shapes φ(x), x ∈ [0, 1] the decay coordinate:
constant 1; linear 1 - x; root (1 - x)^(1/p); cosine cos²(πx/2) (cosine annealing);
cosine1 cos(πx/2) (first-order raised cosine)."""


def _check_fraction(name: str, value: object, *, upper_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"window {name}={value!r} is not allowed: expected a finite number in [0, 1)")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"window {name}={value!r} is out of range: allowed is 0 <= {name} < 1")
    return float(value)


@dataclass(frozen=True)
class Window:
    """A trust-region window Ϝ(r) on progress r ∈ [0, 1].

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
        if self.kind not in WINDOW_KINDS:
            raise ValueError(f"window kind={self.kind!r} is unknown: allowed are {', '.join(WINDOW_KINDS)}")
        p = self.p
        if isinstance(p, bool) or not isinstance(p, Real) or not math.isfinite(p) or p <= 0:
            raise ValueError(f"window p={p!r} is not allowed: expected a finite number p > 0")
        if self.kind != "root" and p != 1:
            raise ValueError(f"window p={p!r} is not allowed for kind={self.kind!r}: only 'root' takes p != 1")
        warmup = _check_fraction("warmup", self.warmup)
        plateau = _check_fraction("plateau", self.plateau)
        floor = _check_fraction("floor", self.floor)
        if warmup + plateau >= 1.0:
            raise ValueError(
                f"window warmup + plateau = {warmup} + {plateau} = {warmup + plateau} is out of range: "
                "allowed is warmup + plateau < 1 (the window must end with a decay)"
            )
        # Normalise to plain floats so equal windows hash and compare equal.
        for name, value in (("p", float(p)), ("warmup", warmup), ("plateau", plateau), ("floor", floor)):
            object.__setattr__(self, name, value)

    def shape(self, x: np.ndarray) -> np.ndarray:
        """φ(x) of the decay part, x ∈ [0, 1], φ(0) = 1, φ(1) = 0 (constant: φ ≡ 1)."""
        if self.kind == "constant":
            return np.ones_like(x)
        if self.kind == "linear":
            return 1.0 - x
        if self.kind == "root":
            return np.power(np.clip(1.0 - x, 0.0, 1.0), 1.0 / self.p)
        if self.kind == "cosine":
            return 0.5 * (1.0 + np.cos(np.pi * x))
        return np.cos(0.5 * np.pi * x)  # cosine1

    def _shape_scalar(self, x: float) -> float:
        """`shape` for one float, with `math` (the optimizer calls this once per step)."""
        if self.kind == "constant":
            return 1.0
        if self.kind == "linear":
            return 1.0 - x
        if self.kind == "root":
            return min(max(1.0 - x, 0.0), 1.0) ** (1.0 / self.p)
        if self.kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * x))
        return math.cos(0.5 * math.pi * x)

    def _scalar(self, r: float) -> float:
        if not (math.isfinite(r) and 0.0 <= r <= 1.0):
            raise ValueError(f"progress r={r!r} is out of range: allowed is 0 <= r <= 1")
        m, e = self.warmup, self.plateau
        phi = self._shape_scalar(min(max((r - (m + e)) / (1.0 - (m + e)), 0.0), 1.0))
        if m > 0.0 and r < m:
            x_warm = min(max((m - r) / m, 0.0), 1.0)
            phi = 1.0 - x_warm if self.kind == "constant" else self._shape_scalar(x_warm)
        return self.floor + (1.0 - self.floor) * phi

    def __call__(self, r: float | np.ndarray) -> float | np.ndarray:
        """Ϝ(r) for progress r ∈ [0, 1] (float → float, array → array of the same shape)."""
        if isinstance(r, (float, int)) and not isinstance(r, bool):
            return self._scalar(float(r))
        arr = np.asarray(r, dtype=np.float64)
        if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0):
            bad = arr[~((arr >= 0.0) & (arr <= 1.0))].flat[0]
            raise ValueError(f"progress r={float(bad)!r} is out of range: allowed is 0 <= r <= 1")
        m, e = self.warmup, self.plateau
        decay = np.clip((arr - (m + e)) / (1.0 - (m + e)), 0.0, 1.0)
        phi = self.shape(decay)
        if m > 0.0:
            x_warm = np.clip((m - arr) / m, 0.0, 1.0)
            warm = 1.0 - x_warm if self.kind == "constant" else self.shape(x_warm)
            phi = np.where(arr < m, warm, phi)
        value = self.floor + (1.0 - self.floor) * phi
        return float(value) if np.ndim(r) == 0 else value

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
    """Build a validated `Window` (THEORY.md section 4); bad values raise `ValueError`."""
    return Window(kind=kind, p=p, warmup=warmup, plateau=plateau, floor=floor)


def progress(step: int, total_steps: int) -> float:
    """Progress r = k/τ of step k (counting from 0) in a window of τ = total_steps steps.

    Steps past the end keep the window's end value: r = min(k/τ, 1).
    """
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step={step!r} is not allowed: expected an integer step >= 0")
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
        raise ValueError(f"total_steps={total_steps!r} is not allowed: expected an integer >= 1")
    return min(int(step) / int(total_steps), 1.0)


def _samples(window: Window, steps: int) -> np.ndarray:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps={steps!r} is not allowed: expected an integer number of steps >= 2")
    return window(np.arange(steps + 1, dtype=np.float64) / steps)


def window_mean(window: Window, steps: int) -> float:
    """Mean radius factor of the τ = `steps` steps taken: (1/τ) Σ_{k=0}^{τ-1} Ϝ(k/τ).

    Its limit as τ → ∞ is ∫₀¹ Ϝ(r) dr.
    """
    return float(np.mean(_samples(window, steps)[:-1]))


def window_smoothness(window: Window, steps: int) -> float:
    """Smoothness factor L = (1/τ) Σ_{k=1}^{τ} Ϝ'(r_k)², the normalised Dirichlet energy.

    Discretisation: the derivative is the backward finite difference of the sampled window
    scaled by τ, Ϝ'(r_k) ≈ τ·(Ϝ(k/τ) - Ϝ((k-1)/τ)), over the τ + 1 samples r = 0, 1/τ, …, 1,
    so L = τ Σ_k (Ϝ(k/τ) - Ϝ((k-1)/τ))². Its limit is ∫₀¹ Ϝ'(r)² dr (infinite for root
    windows with p ≥ 2, whose discrete L grows with τ).
    """
    values = _samples(window, steps)
    return float(steps * np.sum(np.diff(values) ** 2))
