"""The seed paper's figure type: one panel per level of a suite factor (the filter zero γ, the
numerator, the window, …), the compared configurations overlaid in each, one row per task.

A configuration's level is the value of FACTOR in the hyperparameters its eval runs recorded
(`runs.parquet` column `hparams`), else in its label (`muphi[window=linear,gamma=0.5]`). Configurations that do not set FACTOR (a peer without that
hyperparameter, say) are drawn in every panel, as the common reference.
"""

from __future__ import annotations

import dataclasses
import json

from matplotlib.figure import Figure

from analysis import style
from analysis.curves import TaskCurves
from analysis.panels import draw_curves, legend_below
from analysis.summary import Analysis


def settings(config: str, hparams: str | None) -> dict:
    """The hyperparameters of a configuration: its label's `key=value` items, overridden by the
    recorded `hparams` JSON."""
    inside = config[config.index("[") + 1:config.rindex("]")] if "[" in config and config.endswith("]") else ""
    items = dict(item.split("=", 1) for item in inside.split(",") if "=" in item)
    recorded = json.loads(hparams) if hparams else {}
    return items | (recorded if isinstance(recorded, dict) else {})


def factor_levels(a: Analysis, factor: str) -> dict[str, str | None]:
    """Configuration → its level of `factor` (as text), None where it does not set it.

    Raises ValueError when no eval run sets `factor`, naming the factors that vary between
    configurations (the useful choices) and every recorded one."""
    runs = a.store.runs[a.store.runs["stage"] == "eval"].drop_duplicates("config")
    hparams = {c: settings(c, h) for c, h in zip(runs["config"], runs["hparams"])}
    levels = {c: (json.dumps(h[factor]) if not isinstance(h.get(factor, ""), str) else h[factor])
              if factor in h else None for c, h in hparams.items()}
    if all(v is None for v in levels.values()):
        keys = sorted({k for h in hparams.values() for k in h})
        varying = [k for k in keys if len({json.dumps(h.get(k)) for h in hparams.values()}) > 1]
        raise ValueError(f"grid factor {factor!r} is not a hyperparameter of any eval-stage configuration; "
                         f"factors that vary: {varying or 'none'}; recorded: {keys or 'none'}")
    return levels


def _subset(tc: TaskCurves, configs: list[str]) -> TaskCurves:
    keep = [tc.configs.index(c) for c in configs if c in tc.configs]
    return dataclasses.replace(tc, configs=tuple(tc.configs[k] for k in keep), values=tc.values[keep],
                               status=tc.status[keep])


def factor_grid(a: Analysis, factor: str, looks: dict) -> Figure:
    """Rows: tasks; columns: the levels of `factor`; in each panel the evaluation curves of the
    configurations at that level plus those that do not set it, with pointwise bands."""
    levels = factor_levels(a, factor)
    ordered = sorted({v for v in levels.values() if v is not None})
    shared = [c for c, v in levels.items() if v is None]
    tasks = list(a.curves)
    fig = Figure(figsize=(min(style.PAGE_IN, 2.0 * len(ordered) + 0.6), 1.7 * len(tasks) + 0.9))
    axes = fig.subplots(len(tasks), len(ordered), squeeze=False, sharey="row")
    for row, task in zip(axes, tasks):
        for ax, level in zip(row, ordered):
            chosen = [c for c, v in levels.items() if v == level] + shared
            draw_curves(ax, _subset(a.curves[task], chosen), looks, a.options.level)
        row[0].set_ylabel(f"{style.wrap_label(task, style.PANEL_CHARS)}\n{a.metric_axis}")  # titles stay short
    for ax, level in zip(axes[0], ordered):
        ax.set_title(f"{factor} = {level}")
    for ax in axes[-1]:
        ax.set_xlabel("step")
    legend_below(fig, axes)
    fig.suptitle(f"(h) {a.options.metric} by {factor}: mean over seeds, pointwise "
                 f"{100 * a.options.level:g}% band")
    return fig
