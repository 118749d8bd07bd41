"""The paper figures (a)–(f), drawn with matplotlib's Agg backend; bands computed in numpy.

Each configuration keeps one colour in every figure (`palette`).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scikit_posthocs as sp  # noqa: E402

from analysis.aggregate import integrated_score, profile  # noqa: E402
from analysis.curves import pointwise_band  # noqa: E402
from analysis.summary import Analysis, profile_measure  # noqa: E402
from analysis.windows import WINDOW_FORMS, window  # noqa: E402

log = logging.getLogger(__name__)
MAX_POINTS = 400  # points per drawn curve; longer curves are thinned evenly for drawing
FIGURE_NAMES = ("a_windows", "b_curves", "c_forest", "d_critical_difference", "e_profiles", "f_diagnostics")


def palette(configs) -> dict[str, tuple]:
    """One fixed colour per configuration, by sorted label (stable across figures and reports)."""
    labels = sorted(set(configs))
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {c: cmap(i % cmap.N) for i, c in enumerate(labels)}


def _save(fig, out: Path, name: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{name}.png"
    fig.savefig(png, dpi=110)  # laid out by tight_layout; bbox_inches="tight" would draw twice
    fig.savefig(out / f"{name}.pdf")
    plt.close(fig)
    return png


def _grid(n: int, width: float = 4.2, height: float = 3.2):
    cols = min(3, max(n, 1))
    rows = -(-max(n, 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def window_family(out: Path) -> Path:
    """(a) Every window shape of THEORY.md section 4, plain, with warm-up, and warm-up + plateau."""
    r = np.linspace(0, 1, 501)
    variants = (("plain", {}), ("warm-up m=0.1", {"warmup": 0.1}),
                ("WSD m=0.1, e=0.4", {"warmup": 0.1, "plateau": 0.4}))
    fig, axes = _grid(len(WINDOW_FORMS), 3.4, 2.6)
    for ax, kind in zip(axes, WINDOW_FORMS):
        for (label, kw), style in zip(variants, ("-", "--", ":")):
            ax.plot(r, window(kind, r, p=2.0, **kw), style, label=label, lw=1.8)
        ax.set_title({"root": "root (p = 2)", "cosine": "raised cosine, 2nd order",
                      "cosine1": "raised cosine, 1st order"}.get(kind, kind))
        ax.set_xlabel("progress r = t/τ")
        ax.set_ylabel("Ϝ(r)")
        ax.set_ylim(-0.05, 1.05)
    axes[0].legend(fontsize=8)
    fig.suptitle("(a) The window family")
    fig.tight_layout()
    return _save(fig, out, "a_windows")


def convergence(a: Analysis, out: Path, colours: dict) -> Path:
    """(b) Mean curve per configuration with its pointwise t-band, and max-T significance rugs."""
    tasks = list(a.curves)
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks):
        tc = a.curves[task]
        mean, lo, hi = pointwise_band(tc.values, a.options.level)
        every = max(1, tc.steps.size // MAX_POINTS)  # drawing only: the statistics use every step
        x = tc.steps[::every]
        for c, config in enumerate(tc.configs):
            ax.plot(x, mean[c, ::every], color=colours[config], lw=1.6, label=config)
            ax.fill_between(x, lo[c, ::every], hi[c, ::every], color=colours[config], alpha=0.2, lw=0)
        finite = np.concatenate([m[np.isfinite(m)] for m in mean]) if np.isfinite(mean).any() else np.zeros(1)
        low, high = np.percentile(finite, [0, 95])
        pad = 0.12 * (high - low or 1.0)
        ax.set_ylim(low - pad * (1 + len(tc.configs) * 0.5), high + pad)
        rug = 0
        for config in tc.configs:
            r = a.maxt.get((task, config))
            if r is None:
                continue
            sig = r.steps[r.p_adjusted <= a.options.alpha]
            y = 0.02 + 0.035 * rug
            ax.plot(sig, np.full(sig.size, y), "|", color=colours[config], ms=6,
                    transform=ax.get_xaxis_transform())
            rug += 1
        ax.set_title(f"{task} (band: pointwise {100 * a.options.level:g}% t-interval)", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel(a.options.metric)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"(b) Convergence; rugs: steps where a configuration differs from {a.baseline} "
                 f"(sign-flip max-T, α = {a.options.alpha:g})", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _save(fig, out, "b_curves")


def forest(a: Analysis, out: Path, colours: dict) -> Path:
    """(c) Paired mean differences against the baseline with their t-intervals."""
    rows = a.paired[a.paired["n"] >= 2] if not a.paired.empty else a.paired
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(rows), 2) + 1.2))
    y = np.arange(len(rows))
    colour = [colours[c] for c in rows["config"]] if len(rows) else []
    ax.hlines(y, rows["ci_low"], rows["ci_high"], colors=colour, lw=1.8)  # one call per artist kind
    ax.scatter(rows["mean_diff"], y, c=colour, s=22, zorder=3)
    ax.set_yticks(range(len(rows)), [f"{r.task} · {r.config} (n={r.n})" for r in rows.itertuples()],
                  fontsize=8)
    ax.axvline(0, color="grey", lw=1)
    ax.invert_yaxis()
    ax.set_xlabel(f"final {a.options.metric}: config − {a.baseline} ({100 * a.options.level:g}% t-interval)")
    ax.set_title("(c) Paired differences against the baseline")
    if rows.empty:
        ax.text(0.5, 0.5, "no comparison with ≥ 2 paired seeds", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    return _save(fig, out, "c_forest")


def critical_difference(a: Analysis, out: Path, colours: dict) -> Path:
    """(d) Critical-difference diagram: average ranks over (task, seed) blocks, Wilcoxon–Holm bars."""
    fig, ax = plt.subplots(figsize=(7, 2.6))
    f = a.friedman
    if f is None or a.pairwise_p is None:
        ax.text(0.5, 0.5, "Friedman's test not possible (see the notes)", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        ranks = pd.Series(f.average_ranks, index=list(f.configs))
        sp.critical_difference_diagram(ranks, a.pairwise_p, ax=ax, alpha=a.options.alpha,
                                       color_palette={c: colours[c] for c in f.configs})
        ax.set_title(f"(d) Average ranks over N = {f.n_blocks} (task, seed) blocks; Nemenyi CD = "
                     f"{f.critical_difference:.2f}", fontsize=9)
    fig.tight_layout()
    return _save(fig, out, "d_critical_difference")


def profiles(a: Analysis, out: Path, colours: dict) -> Path:
    """(e) Dolan–Moré performance profiles over steps to the target."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    if a.profile_ratios is None:
        ax.text(0.5, 0.5, "no configuration reached a target", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        ratios = a.profile_ratios.to_numpy()
        taus = np.linspace(1, a.options.r_max, 400)
        rho = profile(ratios, taus)
        score = integrated_score(ratios, a.options.r_max)
        for j, config in enumerate(a.profile_ratios.columns):
            ax.step(taus, rho[:, j], where="post", color=colours[config], label=f"{config} (B = {score[j]:.2f})")
        what = "time" if profile_measure(a.endpoints) == "time_to_target_s" else "steps"
        ax.set_xlabel(f"τ: {what} to target / best {what} to target")
        ax.set_ylabel("fraction of (task, seed) problems")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
    ax.set_title("(e) Performance profiles (B: AlgoPerf integrated score)", fontsize=10)
    fig.tight_layout()
    return _save(fig, out, "e_profiles")


def diagnostics(a: Analysis, out: Path, colours: dict) -> Path:
    """(f) RMS(Δ) against μ[t] over training, their ratio, and window mean / smoothness L against
    the final value (THEORY.md section 5.2)."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    if not a.optimizer_curves or a.diagnostics.empty:
        for ax in axes:
            ax.set_axis_off()
        axes[1].text(0.5, 0.5, "opt/mu_t and opt/rms_step were not logged", ha="center",
                     transform=axes[1].transAxes)
    else:
        task = next(iter(a.optimizer_curves))
        mu, rms = a.optimizer_curves[task]
        every = max(1, mu.steps.size // MAX_POINTS)
        r = mu.steps[::every] / mu.max_steps
        for c, config in enumerate(mu.configs):
            m, d = mu.values[c, :, ::every], rms.values[c, :, ::every]
            if not np.isfinite(m).any():
                continue
            scale = np.nanmax(m)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.where(m > 0, d / m, np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns after divergence
                axes[0].plot(r, np.nanmedian(m, axis=0) / scale, color=colours[config], lw=1, ls="--")
                axes[0].plot(r, np.nanmedian(d, axis=0) / scale, color=colours[config], lw=1.6, label=config)
                axes[1].plot(r, np.nanmedian(ratio, axis=0), color=colours[config], lw=1.6)
        axes[0].set_xlabel("progress r = t/τ")
        axes[0].set_ylabel("RMS(Δ)/μ (solid), μ[t]/μ (dashed)")
        axes[0].set_title(f"trust region on {task} (median over seeds)", fontsize=9)
        axes[0].legend(fontsize=7)
        axes[1].axhline(1.0, color="grey", lw=1)
        axes[1].set_xlabel("progress r = t/τ")
        axes[1].set_ylabel("RMS(Δ[t]) / μ[t]  (theory: 1)")
        axes[1].set_title("step size against the radius", fontsize=9)
        per = a.diagnostics.groupby(["task", "config"], as_index=False)[["window_mean", "smoothness_L", "final"]].median()
        for ax, col, label in ((axes[2], "window_mean", "window mean ∫φ dr"),
                               (axes[3], "smoothness_L", "smoothness L = ∫φ'² dr")):
            for config, g in per.groupby("config"):
                ax.scatter(g[col], g["final"], color=colours[config], label=config, s=25)
            ax.set_xlabel(label)
            ax.set_ylabel(f"median final {a.options.metric} (one point per task)")
    fig.suptitle("(f) Trust-region diagnostics", fontsize=10)
    fig.tight_layout()
    return _save(fig, out, "f_diagnostics")


def lr_sensitivity(a: Analysis, table: pd.DataFrame, out: Path, colours: dict) -> Path:
    """(g) Tune stage: median final value over seeds against the learning rate; × marks a learning
    rate at which some run diverged."""
    tasks = sorted(table["task"].unique())
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks):
        for config, g in table[table["task"] == task].groupby("config"):
            g = g.sort_values("lr")
            ax.plot(g["lr"], g["final_median"], "o-", color=colours[config], label=config, ms=4)
            bad = g[g["diverged"] > 0]
            ax.plot(bad["lr"], np.zeros(len(bad)) + 0.97, "x", color=colours[config], ms=7,
                    transform=ax.get_xaxis_transform())
        ax.set_xscale("log")
        ax.set_xlabel("learning rate / μ")
        ax.set_ylabel(f"median final {a.options.metric}")
        ax.set_title(task, fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.suptitle("(g) Learning-rate sensitivity (tune stage; ×: a run diverged)", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _save(fig, out, "g_lr_sensitivity")


def all_figures(a: Analysis, out: Path, sensitivity: pd.DataFrame | None = None) -> dict[str, Path]:
    """Draw (a)–(f) into `out`, and (g) when the tune stage is in the store; PNG path of each."""
    colours = palette(a.store.runs["config"])
    figures = {"a_windows": window_family(out), "b_curves": convergence(a, out, colours),
               "c_forest": forest(a, out, colours), "d_critical_difference": critical_difference(a, out, colours),
               "e_profiles": profiles(a, out, colours), "f_diagnostics": diagnostics(a, out, colours)}
    if sensitivity is not None and not sensitivity.empty:
        figures["g_lr_sensitivity"] = lr_sensitivity(a, sensitivity, out, colours)
    return figures
