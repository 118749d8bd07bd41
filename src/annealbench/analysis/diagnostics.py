"""Trust-region diagnostics (docs/theory.md section 6) from the logged radius and step size.

For every run that logged `opt/mu_t` (μ[t] = μ·Ϝ[t]) and `opt/rms_step` (RMS of Δ over
coordinates), the theory predicts RMS(Δ[t]) ≈ μ[t]. In the vanishing part of a window
(here: the last VANISHING_FRACTION of the budget) the step contracts; its geometric rate is
the slope of log RMS(Δ) against progress r = t/τ. The window's mean and smoothness factor L
come from the logged φ = μ[t]/max_t μ[t] on r (annealbench.analysis.window_curves.mean_and_smoothness); the mean
radius is μ̄ = max_t μ[t] · mean(φ), the average of μ[t] over progress.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from annealbench.analysis.curves import TaskCurves
from annealbench.analysis.window_curves import mean_and_smoothness

log = logging.getLogger(__name__)
VANISHING_FRACTION = 0.2


def run_diagnostics(mu: TaskCurves, rms: TaskCurves | None) -> pd.DataFrame:
    """One row per run of the task: window mean, L, median RMS(Δ)/μ[t], log-contraction slope."""
    rows = []
    r = mu.steps / float(mu.max_steps)
    for c, config in enumerate(mu.configs):
        for s, seed in enumerate(mu.seeds):
            m = mu.values[c, s]
            ok = np.isfinite(m)
            if ok.sum() < 3 or np.nanmax(m) <= 0:
                continue
            phi = m[ok] / np.nanmax(m)
            mean, smooth = mean_and_smoothness(r[ok], phi)
            row = {"task": mu.task, "config": config, "seed": int(seed), "status": mu.status[c, s],
                   "window_mean": mean, "smoothness_L": smooth, "mean_radius": float(mean * np.nanmax(m)),
                   "rms_over_mu": np.nan, "contraction_slope": np.nan}
            if rms is not None and rms.values.shape == mu.values.shape:
                step = rms.values[c, s]
                both = ok & np.isfinite(step) & (m > 0)
                if both.any():
                    row["rms_over_mu"] = float(np.median(step[both] / m[both]))
                tail = both & (r >= 1 - VANISHING_FRACTION) & (step > 0)
                if tail.sum() >= 3:
                    row["contraction_slope"] = float(np.polyfit(r[tail], np.log(step[tail]), 1)[0])
            rows.append(row)
    return pd.DataFrame(rows)
