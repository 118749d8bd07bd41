"""Drawing pieces shared by the figures: panel grids, curves with bands, axis scales, legends."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from annealbench.analysis import style
from annealbench.analysis.curves import TaskCurves, pointwise_band

MAX_POINTS = 400  # points per drawn curve; longer curves are thinned evenly for drawing
DECADES = 10.0  # a positive quantity whose max/min reaches this ratio is drawn on a log axis


def log_scale_fits(values) -> bool:
    """True when every finite value is positive and they span at least a decade."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size) and v.min() > 0 and v.max() / v.min() >= DECADES


def legend_below(fig: Figure, axes, ncols: int = 3) -> None:
    """One legend for the figure, below the panels (never over the data)."""
    seen: dict[str, object] = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=min(ncols, len(seen)),
                   frameon=False)


def panel_grid(n: int, width: float = style.PAGE_IN, row_height: float = 1.9, strip: bool = False):
    """Up to three panels a row, plus (strip=True) a thin strip under each panel; the unused
    panels are hidden. Returns the figure, the panels and the strips (None without)."""
    cols = min(3, max(n, 1))
    rows = -(-max(n, 1) // cols)
    ratios = [4, 1] * rows if strip else [1] * rows
    fig = Figure(figsize=(width, row_height * rows + 0.6))
    grid = fig.subplots(len(ratios), cols, squeeze=False, height_ratios=ratios)
    panels = grid[::2] if strip else grid
    strips = grid[1::2].ravel() if strip else None
    for k, ax in enumerate(panels.ravel()):
        if k >= n:
            ax.set_visible(False)
            if strip:
                strips[k].set_visible(False)
    return fig, panels.ravel()[:n], (strips[:n] if strip else None)


def draw_curves(ax, tc: TaskCurves, looks: dict, level: float) -> None:
    """Mean over seeds and the pointwise t-band of every configuration of one task."""
    mean, lo, hi = pointwise_band(tc.values, level)
    every = max(1, tc.steps.size // MAX_POINTS)  # drawing only: the statistics use every step
    x = tc.steps[::every]
    for c, config in enumerate(tc.configs):
        look = looks[config]
        ax.plot(x, mean[c, ::every], color=look.colour, ls=look.line, label=config)
        ax.fill_between(x, lo[c, ::every], hi[c, ::every], color=look.colour, alpha=0.15, lw=0)
    if log_scale_fits(mean):
        ax.set_yscale("log")
