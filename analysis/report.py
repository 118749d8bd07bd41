"""`python -m analysis report`: figures, tables, claims and provenance in one self-contained HTML.

`write_report` reads the store and analyses it; `write_analysis` writes the files of one
analysis (so an analysis built elsewhere, with a verdict attached, is reported the same way).
"""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


from analysis import style
from analysis.figures import all_figures, train_curves
from analysis.page import render_html
from analysis.sensitivity import lr_sensitivity
from analysis.store import load_store
from analysis.summary import Analysis, Options, analyse
from analysis.tables import report_tables, write_tables

log = logging.getLogger(__name__)
MAX_LISTED = 4  # provenance values listed one by one; more distinct values are counted
ANALYSIS_LIBRARIES = ("numpy", "scipy", "pandas", "statsmodels", "baycomp", "scikit-posthocs", "matplotlib",
                      "seaborn", "plotly")


@dataclass(frozen=True)
class ReportPaths:
    """Where the report went."""

    out: Path
    html: Path
    figures: dict[str, Path]
    tables: list[Path]
    wandb_run_dir: Path | None


def provenance(a: Analysis) -> dict[str, list[str]]:
    """Commits, seeds, library versions and hardware of the analysed runs, and of the analysis."""
    runs = a.store.runs[a.store.runs["stage"] == "eval"]
    commits = runs.groupby("git_commit")["run_id"].count()
    info: dict[str, list[str]] = {
        "git commits": [f"{c} ({n} runs)" for c, n in commits.items()],
        "runs from a dirty tree": [str(int(runs["git_dirty"].sum()))],
        "seeds": [", ".join(str(s) for s in sorted(runs["seed"].unique()))],
        "derived seeds": [f"{len(runs['derived_seed'].unique())} distinct"],
        "suites / presets": [", ".join(sorted(set(runs["suite"] + " / " + runs["preset"])))],
    }
    keys: dict[str, set] = {}
    for text in runs["provenance"].dropna().unique():
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            keys.setdefault("unreadable provenance", set()).add(text[:60])
            continue
        for k, v in (data.items() if isinstance(data, dict) else []):
            keys.setdefault(str(k), set()).add(json.dumps(v) if not isinstance(v, str) else v)
    for k, v in sorted(keys.items()):  # shared facts in full; per-run values (seeds, metrics) as a count
        info[f"runs: {k}"] = sorted(v) if len(v) <= MAX_LISTED else [f"{len(v)} distinct values"]
    versions = []
    for lib in ANALYSIS_LIBRARIES:
        try:
            versions.append(f"{lib} {metadata.version(lib)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{lib} (not installed)")
    info["analysis: libraries"] = [f"python {platform.python_version()}"] + versions
    if a.store.selection:
        info["stage-1 selection"] = [json.dumps(a.store.selection)[:2000]]
    return info


def methods(a: Analysis) -> str:
    """The rules fixed before looking at the data, in one paragraph."""
    o = a.options
    return (
        f"Endpoints per run, on each task's grid of logged steps (runs logged elsewhere are interpolated "
        f"linearly, never extrapolated): the final value is the mean of the last 3 evaluations of a "
        f"completed run; the area under the curve is taken over log(step) and divided by log(τ) − "
        f"log(first step); the target is the baseline's median final value, and steps to target is the "
        f"first evaluation reaching it (runs that never do are censored: medians may be infinite, and "
        f"the fraction that reached it is given). Verdicts compare every configuration with each "
        f"reference ({a.comparison.describe()}), on runs paired by seed (same initialisation and data "
        f"order), d = configuration − reference in final {o.metric}. A diverged run counts as the worst "
        f"outcome on its task (intention to treat): with any infinite d, the Wilcoxon signed-rank test "
        f"and the order-statistic interval of the median, and equivalence cannot be shown; otherwise "
        f"the paired t-test for a difference and TOST for equivalence at the margin, with the "
        f"{100 * (1 - 2 * o.alpha):g}% t-interval. Holm's correction runs over the task rows and, "
        f"separately, over the all-tasks rows; a row is equivalent when TOST rejects, better or worse "
        f"only when the difference test rejects and the estimate lies outside the margin, else "
        f"inconclusive. Across tasks the task is the unit: each contributes its estimate in units of "
        f"its margin, and rank tests use one block per task. The analysis of surviving runs is "
        f"secondary (the paired table); posterior probabilities (signed-rank per task, the "
        f"hierarchical model of Benavoli et al. 2017 across tasks) use the margin as their region of "
        f"practical equivalence and decide nothing (docs/statistics.md). Diverged runs are counted in "
        f"every table, ranked last in Friedman's test, and never reach the target in "
        f"the performance profiles. Normalised scores put each task's best configuration median at 1 and "
        f"its worst at 0; their intervals resample seeds within tasks ({o.n_boot} draws). Curve bands are "
        f"pointwise t-intervals; where along training two configurations differ is decided by the "
        f"sign-flip max-T test, which controls the family-wise error over steps. {FIGURE_NOTES}")


FIGURE_NOTES = (
    "Static figures are PDF (TrueType fonts embedded; the results store's SHA-256 and the runs' git "
    "commits in the metadata) and 200-dpi PNG, sized for a two-column paper, one colour-blind-safe "
    "colour and line style per configuration throughout; a positive quantity spanning a decade or "
    "more is drawn on a log axis. The forest plot gives differences in % of the reference's mean "
    "final value, one panel per task. In the diagnostics, RMS(Δ)/μ[t] is drawn between the theory's "
    "bounds: about 1 for an all-signal gradient and sqrt(η²/(1−β²)) for an all-noise one (β, η "
    "from each run's recorded hyperparameters, else β = 0.9 and η = 1−β). The interactive curves use "
    "plotly: its JavaScript is one file embedded in this page, so the report works offline, and hover, "
    "legend-click hiding, zoom and a linear/log switch come built in; Vega-Lite (altair) would need "
    "three scripts (vega, vega-lite, vega-embed) embedded by hand for the same offline page.")


def write_analysis(a: Analysis, out: str | Path, *, grid: str | None = None, wandb: bool = True) -> ReportPaths:
    """Write the figures, tables and report.html of analysis `a` into `out`.

    grid: a hyperparameter name (`window`, `gamma`, `numerator`, …): also draw `h_grid_<grid>`,
    one panel per level of that factor and task, the configurations at that level overlaid
    (`analysis.grid`); ValueError when no configuration sets it."""
    from analysis.wandb_tables import log_tables

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{out}: cannot create the output directory ({err})") from err
    store = a.store
    sensitivity = lr_sensitivity(store, a.options.metric)
    provenance_ = style.store_provenance(store.root, store.runs["git_commit"])
    train = train_curves(store)  # once, for the static figure and the page's interactive plot
    figures = all_figures(a, out / "figures", sensitivity, grid=grid, provenance=provenance_, train=train)
    tables = report_tables(a)
    if not sensitivity.empty:
        tables["lr_sensitivity"] = sensitivity
    written = write_tables(tables, out / "tables")
    page = out / "report.html"
    page.write_text(render_html(a, figures, tables, looks=style.looks(store.runs["config"]), train=train,
                                methods=methods(a), provenance=provenance(a)), encoding="utf-8")
    run_dir = log_tables(store, tables, out) if wandb else None
    log.info("report written to %s (%d figures, %d table files)", page, len(figures), len(written))
    return ReportPaths(out=out, html=page, figures=figures, tables=written, wandb_run_dir=run_dir)


def write_report(results_dir: str | Path, out: str | Path | None = None, options: Options = Options(),
                 *, refuse_mixed_commits: bool = False, wandb: bool = True, grid: str | None = None) -> ReportPaths:
    """Analyse the store in `results_dir` and write figures, tables and report.html into `out`
    (default `results_dir/report`); `grid` as in `write_analysis`."""
    store = load_store(results_dir, refuse_mixed_commits=refuse_mixed_commits)
    out = Path(out) if out is not None else Path(results_dir) / "report"
    return write_analysis(analyse(store, options), out, grid=grid, wandb=wandb)
