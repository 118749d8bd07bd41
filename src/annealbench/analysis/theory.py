"""The theory's own prediction: does a window matter beyond its mean radius?

docs/theory.md section 5 characterises every window by its mean and its smoothness factor L, and
section 5 predicts that any smooth vanishing window reaches about the same final loss as cosine.
The mean radius μ̄ = mean_t μ[t] combines the selected μ with the window's mean. Per task, over
the completed runs that logged μ[t], fit

    y = β₀ + β₁·log μ̄ + ε                                    (the relation; β₁ with its t-interval)

and test whether the window's shape still matters once μ̄ is matched, by comparing it with the
model with one mean per configuration, y = α_c + ε: because μ̄ is fixed by the configuration (its
selected μ and its window), the F statistic of the extra configuration terms is the lack-of-fit
test of the line (Draper & Smith 1998, section 2.1): F = ((RSS₀ − RSS₁)/(C − 2)) / (RSS₁/(n − C)).
A small p says configurations differ beyond what their mean radius explains.

The theory is about the μ[t]·Φ optimizer's windows, so the fit takes only its configurations
(`THEORY_OPTIMIZERS`): pooling SGD or other peers would test how those optimizers differ from the
line, not whether a window's shape matters.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from annealbench.common.store_schema import parse_label

COLUMNS = ["task", "configs", "runs", "slope", "slope_ci_low", "slope_ci_high", "r_squared",
           "shape_f", "shape_df", "resid_df", "p_shape"]
MIN_CONFIGS = 3  # a line through C points leaves C − 2 ≥ 1 degrees of freedom for shape
THEORY_OPTIMIZERS = ("muphi",)  # the optimizers whose configurations are windows of μ[t]·Φ


def _fit(task: str, g: pd.DataFrame, level: float) -> dict:
    row = dict.fromkeys(COLUMNS, math.nan) | {"task": task, "configs": g["config"].nunique(), "runs": len(g)}
    if row["configs"] < MIN_CONFIGS or len(g) <= row["configs"] or g["log_radius"].nunique() < 2:
        return row
    line = smf.ols("final ~ log_radius", data=g).fit()
    means = smf.ols("final ~ C(config)", data=g).fit()
    low, high = line.conf_int(alpha=1 - level).loc["log_radius"]
    table = anova_lm(line, means)
    row.update(slope=float(line.params["log_radius"]), slope_ci_low=float(low), slope_ci_high=float(high),
               r_squared=float(line.rsquared), shape_f=float(table["F"].iloc[1]),
               shape_df=float(table["df_diff"].iloc[1]), resid_df=float(table["df_resid"].iloc[1]),
               p_shape=float(table["Pr(>F)"].iloc[1]))
    return row


def radius_relation(diagnostics: pd.DataFrame, level: float = 0.95,
                    optimizers: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One row per task (COLUMNS); NaN statistics where too few configurations or runs. With
    `optimizers`, only configurations of those optimizers enter the fit."""
    needed = {"task", "config", "status", "mean_radius", "final"}
    if diagnostics.empty or not needed <= set(diagnostics.columns):
        return pd.DataFrame(columns=COLUMNS)
    d = diagnostics[(diagnostics["status"] == "done") & np.isfinite(diagnostics["final"])
                    & (diagnostics["mean_radius"] > 0)]
    if optimizers is not None:
        ours = np.array([parse_label(c, "configuration")[0] in optimizers for c in d["config"]], bool)
        d = d[ours]
    d = d.assign(log_radius=np.log(d["mean_radius"].astype(float)))
    rows = [_fit(task, g, level) for task, g in d.groupby("task", sort=True)]
    return pd.DataFrame(rows, columns=COLUMNS)
