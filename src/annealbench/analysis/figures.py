"""The paper figures, drawn with matplotlib (Agg) in seaborn's style; bands computed in numpy.

(a) windows and (f) diagnostics live in `annealbench.analysis.figures_theory`, the `--grid` figure in
`annealbench.analysis.grid`. Every figure is built as a `Figure` first (`build_figures`), so the tests can
inspect its layout, then saved by `annealbench.analysis.style.save` as PNG and PDF. A configuration has one
colour and line style in every figure (`annealbench.analysis.style.looks`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import scikit_posthocs as sp
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, SymmetricalLogLocator

from annealbench.analysis import style
from annealbench.analysis.aggregate import integrated_score, profile
from annealbench.analysis.curves import TaskCurves, task_curves
from annealbench.analysis.differences import verdict_differences
from annealbench.analysis.figures_theory import diagnostics, window_family
from annealbench.analysis.grid import factor_grid, factor_grid_train
from annealbench.analysis.panels import draw_curves, legend_below, log_scale_fits, panel_grid
from annealbench.analysis.analyse import Analysis
from annealbench.analysis.verdict import NO_TEST

log = logging.getLogger(__name__)
FIGURE_NAMES = ("a_windows", "b_curves", "c_forest", "d_critical_difference", "e_profiles", "f_diagnostics")
TRAIN_METRIC = "train/loss"


def significance_strip(ax, a: Analysis, task: str, looks: dict) -> None:
    """One row per configuration: ticks at the steps where it differs from the reference
    (sign-flip max-T at α, family-wise over steps)."""
    rows = [c for c in a.curves[task].configs if (task, c) in a.maxt]
    for k, config in enumerate(rows):
        r = a.maxt[(task, config)]
        sig = r.steps[r.p_adjusted <= a.options.alpha]
        ax.plot(sig, np.full(sig.size, k), "|", color=looks[config].colour, ms=4)
    ax.set_ylim(-0.7, max(len(rows), 1) - 0.3)
    ax.set_yticks([])
    ax.set_ylabel("max-T", fontsize=6)
    ax.set_xlabel("step")


def convergence(a: Analysis, looks: dict) -> Figure:
    """(b) Evaluation curves per task with pointwise bands; the strip under each panel marks
    where a configuration differs from the reference (sign-flip max-T)."""
    tasks = list(a.curves)
    titles = style.task_titles(tasks)
    fig, panels, strips = panel_grid(len(tasks), strip=True)
    for ax, strip, task in zip(panels, strips, tasks):
        draw_curves(ax, a.curves[task], looks, a.options.level)
        strip.sharex(ax)
        significance_strip(strip, a, task, looks)
        ax.tick_params(labelbottom=False)
        ax.set_title(style.wrap_label(titles[task], style.PANEL_CHARS))
        ax.set_ylabel(a.metric_axis)
    legend_below(fig, panels)
    fig.suptitle(f"(b) {a.options.metric}: mean over seeds, pointwise {100 * a.options.level:g}% band; "
                 f"strip: differs from {a.baseline} (max-T, α = {a.options.alpha:g})")
    return fig


def training_curves(curves: dict[str, TaskCurves], looks: dict, level: float) -> Figure:
    """(b′) Training loss per task from the logged steps, mean over seeds with pointwise bands."""
    fig, panels, _ = panel_grid(len(curves))
    titles = style.task_titles(curves)
    for ax, (task, tc) in zip(panels, curves.items()):
        draw_curves(ax, tc, looks, level)
        ax.set_title(style.wrap_label(titles[task], style.PANEL_CHARS))
        ax.set_xlabel("step")
        ax.set_ylabel(TRAIN_METRIC)
    legend_below(fig, panels)
    fig.suptitle(f"(b′) {TRAIN_METRIC}: mean over seeds, pointwise {100 * level:g}% band")
    return fig


def outlier_scale(ax, bounds: np.ndarray, ratio: float = 10.0) -> float | None:
    """A symmetric-log x-axis when the widest interval bound exceeds `ratio` × the median one
    (one far configuration would squeeze the others into a dot); linear within ± the median's
    decade (returned; None for a linear axis), so the intervals near zero keep their shape."""
    size = np.abs(bounds[np.isfinite(bounds)])
    if not (size.size and size.max() > ratio * np.median(size) > 0):
        return None
    linthresh = 10.0 ** np.ceil(np.log10(np.median(size)))
    ax.set_xscale("symlog", linthresh=linthresh)
    ax.xaxis.set_major_locator(SymmetricalLogLocator(linthresh=linthresh, base=10, subs=(1, 3)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    return linthresh


def _clipped(values: np.ndarray, limit: float) -> np.ndarray:
    """±∞ (a sign-test interval or median with a diverged run) drawn at ±`limit`."""
    return np.where(np.isposinf(values), limit, np.where(np.isneginf(values), -limit, values))


def forest(a: Analysis, looks: dict) -> Figure:
    """(c) The verdict's paired differences (`annealbench.analysis.differences.verdict_differences`): one panel
    per reference and task, titled with the reference, each configuration's estimate and the
    interval its verdict was read from (at the row's Holm level), with the ±margin dashed.
    Unbounded ends are drawn at the panel's edge with an arrow head."""
    rows = verdict_differences(a)
    rows = rows[rows["test"] != NO_TEST]
    panels = list(dict.fromkeys(zip(rows["reference"], rows["task"])))
    titles = style.task_titles(dict.fromkeys(t for _, t in panels))
    sizes = [int(((rows["reference"] == r) & (rows["task"] == t)).sum()) for r, t in panels]
    fig = Figure(figsize=(style.PAGE_IN, 1.1 + sum(0.22 * k + 0.45 for k in sizes) if panels else 1.6))  # 3-line x label
    if not panels:
        ax = fig.subplots()
        ax.text(0.5, 0.5, "no comparison with ≥ 2 paired seeds", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    axes = np.atleast_1d(fig.subplots(len(panels), 1, height_ratios=[k + 1.5 for k in sizes]))
    for ax, (ref, task) in zip(axes, panels):
        g = rows[(rows["reference"] == ref) & (rows["task"] == task)]
        y = np.arange(len(g))
        colours = [looks[c].colour for c in g["config"]]
        margins = g[["margin_low_rel", "margin_high_rel"]].to_numpy(float)
        bounds = g[["ci_low_rel", "ci_high_rel", "estimate_rel"]].to_numpy(float)
        finite = np.abs(np.r_[bounds[np.isfinite(bounds)], margins[np.isfinite(margins)]])
        limit = 1.2 * float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        low, high = _clipped(g["ci_low_rel"].to_numpy(float), limit), _clipped(g["ci_high_rel"].to_numpy(float), limit)
        ax.hlines(y, low, high, colors=colours, lw=1.6)
        ax.scatter(_clipped(g["estimate_rel"].to_numpy(float), limit), y, c=colours, s=14, zorder=3)
        for end, marker in ((g["ci_low_rel"], "<"), (g["ci_high_rel"], ">")):
            open_end = np.isinf(end.to_numpy(float))
            if open_end.any():
                ax.scatter(_clipped(end.to_numpy(float), limit)[open_end], y[open_end], marker=marker,
                           c=np.array(colours)[open_end], s=18, zorder=3)
        ax.set_yticks(y, [f"{c} (n={n}): {v}" for c, n, v in zip(g["config"], g["n"], g["verdict"])])
        ax.axvline(0, color="grey", lw=0.8)
        for m in np.unique(margins[np.isfinite(margins)]):
            ax.axvline(m, color="grey", lw=0.6, ls="--")
        linthresh = outlier_scale(ax, np.c_[low, high])
        ax.set_ylim(len(g) - 0.5, -0.5)
        scale = f" (log beyond ±{linthresh:g}%)" if linthresh else ""
        ax.set_title(style.titled(style.wrap_label(titles[task], style.HALF_CHARS),
                                  f": against {style.wrap_label(ref, style.HALF_CHARS)}{scale}",
                                  style.HALF_CHARS), loc="left")
    units = "; metric units where the median is unknown" if set(rows["unit"]) - {"%"} else ""
    fig.supxlabel(f"final {a.options.metric}: configuration against reference, in %\n(the ratio's change on "
                  f"log-ratio rows, of the reference's median on difference rows{units})\nthe verdict's "
                  f"estimate and interval (ITT, at the row's Holm level); dashed: ±margin")
    fig.suptitle("(c) The verdict's paired differences, per reference")
    return fig


def fit_inside(fig: Figure, ax, pad: float = 4.0, rounds: int = 10) -> None:
    """Shrink `ax` until its tight box (labels placed in data coordinates included) lies inside
    the figure with `pad` pixels to spare; constrained layout cannot, as such labels move with
    the axes it resizes."""
    fig.set_layout_engine("none")
    for _ in range(rounds):
        box, tight = fig.bbox, ax.get_tightbbox(style.drawn(fig))
        left, right = max(0.0, box.x0 + pad - tight.x0), max(0.0, tight.x1 - box.x1 + pad)
        bottom, top = max(0.0, box.y0 + pad - tight.y0), max(0.0, tight.y1 - box.y1 + pad)
        if not any((left, right, bottom, top)):
            return
        pos = ax.get_position()
        w, h = box.width, box.height
        ax.set_position([pos.x0 + left / w, pos.y0 + bottom / h, pos.width - (left + right) / w,
                         pos.height - (bottom + top) / h])


def critical_difference(a: Analysis, looks: dict) -> Figure:
    """(d) Average ranks over the Friedman blocks; a bar joins configurations that the pairwise
    Wilcoxon–Holm tests do not separate at α."""
    fig = Figure(figsize=(style.PAGE_IN, 1.2 + 0.18 * len(looks)))
    ax = fig.subplots()
    f = a.friedman
    if f is None or a.pairwise_p is None:
        ax.text(0.5, 0.5, "Friedman's test not possible (see the notes)", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    ranks = pd.Series(f.average_ranks, index=list(f.configs))
    sp.critical_difference_diagram(ranks, a.pairwise_p, ax=ax, alpha=a.options.alpha,
                                   color_palette={c: looks[c].colour for c in f.configs},
                                   label_props={"fontsize": 6.5})
    low, high = ax.get_xlim()
    ax.set_xlim(min(low, 1), max(high, len(f.configs)))  # ranks run from 1 to k
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"(d) Average ranks over N = {f.n_blocks} blocks (Friedman p = {f.p_value:.2g});\n"
                 f"bars: not separated by Wilcoxon–Holm at α = {a.options.alpha:g}")
    fit_inside(fig, ax)
    return fig


def profiles(a: Analysis, looks: dict) -> Figure:
    """(e) Dolan–Moré performance profiles over steps (or time) to the target."""
    fig = Figure(figsize=(style.PAGE_IN * 0.75, 2.6))
    ax = fig.subplots()
    ax.set_title("(e) Performance profiles (B: AlgoPerf integrated score)", loc="left")
    if a.profile_ratios is None:
        ax.text(0.5, 0.5, "no configuration reached a target", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    ratios = a.profile_ratios.to_numpy()
    taus = np.linspace(1, a.options.r_max, 400)
    rho = profile(ratios, taus)
    score = integrated_score(ratios, a.options.r_max)
    for j, config in enumerate(a.profile_ratios.columns):
        look = looks[config]
        ax.step(taus, rho[:, j], where="post", color=look.colour, ls=look.line, label=f"{config} (B = {score[j]:.2f})")
    what = "time" if a.time_measure == "time_to_target_s" else "steps"
    ax.set_xlabel(f"τ: {what} to target / best {what} to target")
    ax.set_ylabel("fraction of problems")
    ax.set_ylim(0, 1.02)
    fig.legend(loc="outside right center", frameon=False)
    return fig


def lr_sensitivity(a: Analysis, table: pd.DataFrame, looks: dict) -> Figure:
    """(g) Tune stage: median final value over seeds against the learning rate; × marks a
    learning rate at which some run diverged."""
    tasks = sorted(table["task"].unique())
    titles = style.task_titles(tasks)
    fig, panels, _ = panel_grid(len(tasks))
    for ax, task in zip(panels, tasks):
        part = table[table["task"] == task]
        for config, g in part.groupby("config"):
            g = g.sort_values("lr")
            look = looks[config]
            ax.plot(g["lr"], g["final_median"], "o", ls=look.line, color=look.colour, label=config, ms=3)
            bad = g[g["diverged"] > 0]
            ax.plot(bad["lr"], np.zeros(len(bad)) + 0.95, "x", color=look.colour, ms=5,
                    transform=ax.get_xaxis_transform())
        ax.set_xscale("log")
        if log_scale_fits(part["final_median"]):
            ax.set_yscale("log")
        ax.set_xlabel("learning rate / μ")
        ax.set_ylabel(f"median final {a.metric_axis}")
        ax.set_title(style.wrap_label(titles[task], style.PANEL_CHARS))
    legend_below(fig, panels)
    fig.suptitle("(g) Learning-rate sensitivity (tune stage; ×: a run diverged)")
    return fig


def train_curves(store) -> dict:
    """The logged training-loss curves per task (empty when no run logged `train/loss`)."""
    return task_curves(store, TRAIN_METRIC) if TRAIN_METRIC in set(store.results["metric"].unique()) else {}


def build_figures(a: Analysis, sensitivity: pd.DataFrame | None = None, grid: str | None = None,
                  train: dict | None = None, grid_best: pd.DataFrame | None = None) -> dict[str, Figure]:
    """Every figure of the report, unsaved: (a)–(f), (b′) when `train/loss` was logged, (g) when
    the tune stage is in the store, and the panel grid over `grid`'s levels when asked (with its
    training-loss companion when `train/loss` was logged). `train`: the training curves when the
    caller has them already (`train_curves`); `grid_best`: the best-point verdict likewise
    (`annealbench.analysis.grid.best_verdict`)."""
    style.apply()
    looks = style.looks(a.store.runs["config"])
    figures = {"a_windows": window_family(), "b_curves": convergence(a, looks)}
    train = train_curves(a.store) if train is None else train
    if train:
        figures["b_train_curves"] = training_curves(train, looks, a.options.level)
    figures.update({"c_forest": forest(a, looks), "d_critical_difference": critical_difference(a, looks),
                    "e_profiles": profiles(a, looks), "f_diagnostics": diagnostics(a, looks)})
    if sensitivity is not None and not sensitivity.empty:
        figures["g_lr_sensitivity"] = lr_sensitivity(a, sensitivity, looks)
    if grid is not None:
        figures[f"h_grid_{grid}"] = factor_grid(a, grid, grid_best)
        if train:
            figures[f"h_grid_{grid}_train"] = factor_grid_train(a, grid, train)
    return figures


def all_figures(a: Analysis, out: Path, sensitivity: pd.DataFrame | None = None, *, grid: str | None = None,
                provenance: style.Provenance | None = None, train: dict | None = None,
                grid_best: pd.DataFrame | None = None) -> dict[str, Path]:
    """Draw every figure (`build_figures`) into `out` as PNG and PDF; name → PNG path. The paper
    style holds while drawing and saving only (the caller's matplotlib settings are restored)."""
    with matplotlib.rc_context():
        return {name: style.save(fig, out, name, provenance)
                for name, fig in build_figures(a, sensitivity, grid, train, grid_best).items()}
