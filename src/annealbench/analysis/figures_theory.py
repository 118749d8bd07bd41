"""The theory's figures: (a) the window family of docs/theory.md section 5 and (f) the trust-region
diagnostics of section 5.2, with the bounds the theory puts on RMS(Δ)/μ[t]."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from annealbench.analysis import style
from annealbench.analysis.analyse import Analysis
from annealbench.analysis.panels import MAX_POINTS
from annealbench.analysis.window_curves import WINDOW_KINDS, window

DEFAULT_BETA = 0.9  # the smoothing pole of MuPhi and AdamW when a run does not record `betas`

TASK_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
TITLES = {"root": "root (p = 2)", "cosine": "raised cosine, 2nd order", "cosine1": "raised cosine, 1st order"}


def window_family() -> Figure:
    """(a) Every window shape Ϝ(r), plain, with warm-up, and with warm-up and plateau (WSD)."""
    r = np.linspace(0, 1, 501)
    variants = (("plain", {}), ("warm-up m = 0.1", {"warmup": 0.1}),
                ("WSD m = 0.1, e = 0.4", {"warmup": 0.1, "plateau": 0.4}))
    fig = Figure(figsize=(style.PAGE_IN, 3.6))
    axes = fig.subplots(2, 3, sharex=True, sharey=True).ravel()
    for ax, kind in zip(axes, WINDOW_KINDS):
        for (label, kw), line in zip(variants, style.LINE_STYLES):
            ax.plot(r, window(kind, r, p=2.0 if kind == "root" else 1.0, **kw), ls=line, label=label)
        ax.set_title(TITLES.get(kind, kind))
        ax.set_ylim(-0.05, 1.05)
    for ax in axes[len(WINDOW_KINDS):]:
        ax.set_visible(False)
    for ax in axes[::3]:
        ax.set_ylabel("Ϝ(r)")
    for ax in axes[len(WINDOW_KINDS) - 3:len(WINDOW_KINDS)]:
        ax.set_xlabel("progress r = t/τ")
        ax.tick_params(labelbottom=True)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, frameon=False)
    fig.suptitle("(a) The window family Ϝ(r)")
    return fig


def noise_bound(hparams: str | None) -> tuple[float, bool]:
    """The all-noise bound sqrt(η²/(1 − β²)) on RMS(Δ)/μ[t] (docs/theory.md section 6) from a
    run's hyperparameters (`beta`, else `betas` = (β, β2); `eta`; η defaults to 1 − β, or 1 when
    β = 0), and whether β was recorded (else β = DEFAULT_BETA)."""
    h = json.loads(hparams) if hparams else {}
    h = h if isinstance(h, dict) else {}
    betas = h.get("betas")
    recorded = h.get("beta") is not None or (isinstance(betas, (list, tuple)) and len(betas) == 2)
    beta = float(h["beta"]) if h.get("beta") is not None else float(betas[0]) if recorded else DEFAULT_BETA
    eta = h.get("eta")
    eta = float(eta) if eta is not None else (1.0 - beta if beta > 0 else 1.0)
    return math.sqrt(eta ** 2 / (1.0 - beta ** 2)), recorded


def _bounds(a: Analysis) -> dict[tuple[float, bool], list[str]]:
    runs = a.store.runs[a.store.runs["stage"] == "eval"].drop_duplicates("config")
    out: dict[tuple[float, bool], list[str]] = {}
    for config, hp in zip(runs["config"], runs["hparams"]):
        out.setdefault(noise_bound(hp), []).append(config)
    return out


def _draw_bounds(ax, bounds: dict) -> None:
    ax.axhline(1.0, color="0.3", lw=0.8, label="all-signal bound ≈ 1")
    for (low, recorded), configs in sorted(bounds.items()):
        ax.axhspan(low, 1.0, color="0.85", alpha=0.5, lw=0, zorder=0)
        which = "" if len(bounds) == 1 else f" ({', '.join(configs)})"
        assumed = "" if recorded else f", β = {DEFAULT_BETA:g} assumed"
        ax.axhline(low, color="0.3", lw=0.8, ls=":", label=f"all-noise bound √(η²/(1−β²)) = {low:.2f}{assumed}{which}")
    ax.legend(loc="upper right", frameon=False, fontsize=5.5)


def _trust_region_row(ax_size, ax_ratio, a: Analysis, task: str, looks: dict, bounds: dict) -> None:
    mu, rms = a.optimizer_curves[task]
    every = max(1, mu.steps.size // MAX_POINTS)
    r = mu.steps[::every] / mu.max_steps
    for c, config in enumerate(mu.configs):
        m, d = mu.values[c, :, ::every], rms.values[c, :, ::every]
        if not np.isfinite(m).any():
            continue
        look = looks[config]
        scale = np.nanmax(m)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns after divergence
            ratio = np.where(m > 0, d / m, np.nan)
            ax_size.plot(r, np.nanmedian(m, axis=0) / scale, color=look.colour, ls=look.line, lw=0.8, alpha=0.45)
            ax_size.plot(r, np.nanmedian(d, axis=0) / scale, color=look.colour, ls=look.line, label=config)
            ax_ratio.plot(r, np.nanmedian(ratio, axis=0), color=look.colour, ls=look.line)
    _draw_bounds(ax_ratio, bounds)
    label = style.wrap_label(task, style.HALF_CHARS)  # the task's own line(s) over each panel
    ax_size.set_title(f"{label}\nstep and radius (median over seeds)", loc="left")
    ax_size.set_ylabel("÷ μ (faint: μ[t])")
    ax_ratio.set_title(f"{label}\nRMS(Δ[t]) / μ[t] between the theory's bounds", loc="left")
    ax_ratio.set_ylabel("RMS(Δ) / μ[t]")
    ax_ratio.set_ylim(0, 1.5)


def relative_final(a: Analysis) -> pd.DataFrame:
    """Median window mean, L and final value per (task, config); the final value divided by the
    reference's median final value on the same task, so tasks of different scales share an axis."""
    per = a.diagnostics.groupby(["task", "config"], as_index=False)[["window_mean", "smoothness_L", "final"]].median()
    ref = a.per_config[a.per_config["config"] == a.baseline].set_index("task")["final_median"]
    per["relative_final"] = per["final"] / per["task"].map(ref).abs()
    return per


def _scatter_row(axes, a: Analysis, looks: dict) -> None:
    per = relative_final(a)
    markers = {t: TASK_MARKERS[k % len(TASK_MARKERS)] for k, t in enumerate(sorted(per["task"].unique()))}
    for ax, col, label in ((axes[0], "window_mean", "window mean ∫Ϝ dr"),
                           (axes[1], "smoothness_L", "smoothness L = ∫Ϝ′² dr")):
        for row in per.itertuples():
            ax.scatter(getattr(row, col), row.relative_final, color=looks[row.config].colour,
                       marker=markers[row.task], s=16)
        ax.axhline(1.0, color="0.6", lw=0.6)
        ax.set_xlabel(label)
        ax.set_ylabel(f"final {a.metric_axis} ÷ reference's")
    for task, marker in markers.items():  # marker key: one entry per task, drawn in grey
        axes[1].scatter([], [], color="0.4", marker=marker, s=16, label=style.wrap_label(task, style.PANEL_CHARS))
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, title="task")


def diagnostics(a: Analysis, looks: dict) -> Figure:
    """(f) Per task: RMS(Δ) and μ[t] over progress r, and their ratio between the theory's
    bounds (all-signal ≈ 1, all-noise sqrt(η²/(1−β²))); last row: window mean and smoothness L
    against the final value relative to the reference (docs/theory.md section 6)."""
    tasks = list(a.optimizer_curves) if not a.diagnostics.empty else []
    if not tasks:
        fig = Figure(figsize=(style.PAGE_IN, 1.4))
        ax = fig.subplots()
        ax.text(0.5, 0.5, "opt/mu_t and opt/rms_step were not logged", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    fig = Figure(figsize=(style.PAGE_IN, 1.75 * (len(tasks) + 1) + 0.7))
    axes = fig.subplots(len(tasks) + 1, 2, squeeze=False)
    bounds = _bounds(a)
    for (ax_size, ax_ratio), task in zip(axes[:-1], tasks):
        _trust_region_row(ax_size, ax_ratio, a, task, looks, bounds)
    for ax in axes[-2]:
        ax.set_xlabel("progress r = t/τ")
    _scatter_row(axes[-1], a, looks)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(labels)), frameon=False)
    fig.suptitle("(f) Trust-region diagnostics")
    return fig
