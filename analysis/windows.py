"""The window family for figures and checks: a thin layer over `common.windows`.

The analysis draws and checks windows with the very functions the optimizers step with
(`common.windows`, numpy only); the theory diagnostics themselves read the radius μ[t] logged by
the runs (`opt/mu_t`). See docs/theory.md §5 for the formulas (eqs. W1-W6).
"""

from __future__ import annotations

import numpy as np

from common import windows as _common
from common.windows import WINDOW_KINDS, mean_and_smoothness

WINDOW_FORMS = WINDOW_KINDS
__all__ = ["WINDOW_FORMS", "mean_and_smoothness", "reparameterise", "window"]


def reparameterise(r: np.ndarray, *, warmup: float = 0.0, plateau: float = 0.0) -> np.ndarray:
    """The input x(r; m, e) ∈ [0, 1] of eq. W2 (m = warm-up, e = plateau fraction); r is clipped to [0, 1]."""
    _common.check_window("linear", warmup=warmup, plateau=plateau)
    r = np.clip(np.asarray(r, dtype=float), 0.0, 1.0)
    return np.asarray(_common.reparameterise(r, warmup=warmup, plateau=plateau), dtype=float)


def window(kind: str, r, *, p: float = 1.0, warmup: float = 0.0, plateau: float = 0.0,
           floor: float = 0.0) -> np.ndarray:
    """Ϝ(r) for `kind` in WINDOW_FORMS (eqs. W2-W4), as an array; the optimizers' own values.

    `p` shapes `root` windows only; the other kinds ignore it (so one call can draw every kind).
    """
    p = p if kind == "root" else 1.0
    return np.asarray(_common.window(kind, np.asarray(r, dtype=float), p=p, warmup=warmup,
                                     plateau=plateau, floor=floor), dtype=float)
