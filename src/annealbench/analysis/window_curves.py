"""The window family for figures and checks: a thin layer over `annealbench.common.window_formulas`.

The analysis draws and checks windows with the very functions the optimizers step with
(`annealbench.common.window_formulas`, numpy only); the theory diagnostics themselves read the radius μ[t] logged by
the runs (`opt/mu_t`). See docs/theory.md §5 for the formulas (eqs. W1-W6).
"""

from __future__ import annotations

import numpy as np

from annealbench.common import window_formulas as _common
from annealbench.common.window_formulas import WINDOW_KINDS, mean_and_smoothness

__all__ = ["WINDOW_KINDS", "mean_and_smoothness", "window"]


def window(kind: str, r, *, p: float = 1.0, warmup: float = 0.0, plateau: float = 0.0,
           floor: float = 0.0) -> np.ndarray:
    """Ϝ(r) for `kind` in WINDOW_KINDS (eqs. W2-W4), as an array; the optimizers' own values."""
    return np.asarray(_common.window(kind, np.asarray(r, dtype=float), p=p, warmup=warmup,
                                     plateau=plateau, floor=floor), dtype=float)
