"""`annealbench report`: figures, tables, claims and provenance in one self-contained HTML.

`write_report` reads the store and analyses it; `write_analysis` writes the files of one
analysis (so an analysis built elsewhere, with a verdict attached, is reported the same way).

The report folder is replaced whole: everything is written into a hidden staging folder beside
it, which then takes the old folder's place (two renames). A failure while writing (a full
disk) leaves the previous report as it was, and a re-run with other options leaves no figure
of the earlier one behind. A folder that holds anything but a report is never replaced.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import secrets
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


from annealbench.analysis import style
from annealbench.analysis.claims import verdict_methods
from annealbench.analysis.figures import all_figures, train_curves
from annealbench.analysis.grid import best_verdict, factor_levels, grid_table, verdict_best_table
from annealbench.analysis.page import render_html
from annealbench.analysis.sensitivity import lr_sensitivity
from annealbench.analysis.load import load_store
from annealbench.analysis.analyse import Analysis, Options, analyse
from annealbench.common.errorlog import pid_alive
from annealbench.analysis.tables import report_tables, write_tables

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
        f"the fraction that reached it is given). {verdict_methods(a)} Rank tests across tasks use one "
        f"block per task, a per-task summary over seeds. "
        f"Diverged runs are counted in "
        f"every table, ranked last in Friedman's test, and never reach the target in "
        f"the performance profiles. Normalised scores put each task's best configuration median at 1 and "
        f"its worst at 0; their intervals resample seeds within tasks ({o.n_boot} draws). Curve bands are "
        f"pointwise t-intervals; where along training two configurations differ is decided by the "
        f"sign-flip max-T test, which controls the family-wise error over steps. {FIGURE_NOTES}")


FIGURE_NOTES = (
    "Static figures are PDF (TrueType fonts embedded; the results store's SHA-256 and the runs' git "
    "commits in the metadata) and 200-dpi PNG, sized for a two-column paper, one colour-blind-safe "
    "colour and line style per configuration throughout; a positive quantity spanning a decade or "
    "more is drawn on a log axis. The forest plot draws the verdict's paired differences, one panel per "
    "reference and task: each configuration's estimate and the interval its verdict was read from (the "
    "ratio's change in % on log-ratio rows, % of the reference's median on difference rows), the margin "
    "dashed. In the diagnostics, RMS(Δ)/μ[t] is drawn between the theory's "
    "bounds: about 1 for an all-signal gradient and sqrt(η²/(1−β²)) for an all-noise one (β, η "
    "from each run's recorded hyperparameters, else β = 0.9 and η = 1−β). The interactive curves use "
    "plotly: its JavaScript is one file embedded in this page, so the report works offline, and hover, "
    "legend-click hiding, zoom and a linear/log switch come built in; Vega-Lite (altair) would need "
    "three scripts (vega, vega-lite, vega-embed) embedded by hand for the same offline page.")


class ReportWriteError(OSError):
    """The report could not be written (a full disk, say); the previous one is unchanged."""

    def __str__(self) -> str:  # the message, without OSError's "[Errno N]" prefix
        return str(self.strerror)


_STAGING, _OLD = ".staging-", ".old-"


def check_replaceable(out: Path, store_root: Path) -> None:
    """ValueError unless `out` is absent, empty or a report folder (it holds `report.html`), and
    holds no results store."""
    root, target = store_root.resolve(), out.resolve()
    if target == root or target in root.parents:
        raise ValueError(f"{out}: the output directory holds the results store {store_root}; "
                         "the report goes into a folder of its own (default RESULTS_DIR/report)")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory; pass a new or report folder as --out")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held and "report.html" not in held:
        raise ValueError(f"{out}: holds {', '.join(held[:3])} but no report.html, so it is not a report "
                         "folder; the report replaces its folder whole, so pass an empty, new or report "
                         "folder as --out")


def _sibling(out: Path, kind: str) -> Path:
    return out.with_name(f".{out.name}{kind}{os.getpid()}-{secrets.token_hex(4)}")


def _remove_leftovers(out: Path) -> None:
    """Staging and old folders beside `out` that a killed report left (their process is gone)."""
    for kind in (_STAGING, _OLD):
        prefix = f".{out.name}{kind}"
        for path in out.parent.glob(f"{prefix}*"):
            pid = path.name[len(prefix):].split("-")[0]
            if pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)


def _swap_in(staging: Path, out: Path) -> None:
    """Put `staging` where `out` is: the old folder steps aside, the new one takes its name, the
    old one goes; if the second rename fails the old folder is put back."""
    if not out.exists():
        os.replace(staging, out)
        return
    old = _sibling(out, _OLD)
    os.replace(out, old)
    try:
        os.replace(staging, out)
    except OSError:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _moved(paths: ReportPaths, staging: Path, out: Path) -> ReportPaths:
    """`paths`, written under `staging`, as they are under `out`."""
    def at(p: Path | None) -> Path | None:
        return None if p is None else out / p.relative_to(staging)
    return dataclasses.replace(paths, out=out, html=at(paths.html),
                               figures={k: at(v) for k, v in paths.figures.items()},
                               tables=[at(p) for p in paths.tables], wandb_run_dir=at(paths.wandb_run_dir))


def write_analysis(a: Analysis, out: str | Path, *, grid: str | None = None, wandb: bool = True) -> ReportPaths:
    """Write the figures, tables and report.html of analysis `a` into `out`, replacing the
    folder whole (see the module docstring); `ReportWriteError` when that fails.

    grid: a hyperparameter name (`window`, `gamma`, `numerator`, …): also draw `h_grid_<grid>`,
    one panel per level of that factor and task, the configurations at that level overlaid, and
    `h_grid_<grid>_train` on the training loss when it was logged (`annealbench.analysis.grid`); and write
    `tables/verdict_best.csv` (the verdict on each run's best point) and `tables/grid_<grid>.csv`
    (per task and level, the end and best verdicts); ValueError when no configuration sets it."""
    out = Path(out)
    check_replaceable(out, a.store.root)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(out)
        staging = _sibling(out, _STAGING)
        staging.mkdir()
    except OSError as err:
        raise ValueError(f"{out}: cannot create the output directory ({err.strerror or err})") from err
    try:
        paths = _write_into(a, staging, grid=grid, wandb=wandb)
        _swap_in(staging, out)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        raise ReportWriteError(err.errno, f"{out}: the report could not be written: "
                                          f"{err.strerror or err}{where}; the previous report is "
                                          "unchanged") from err
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("report written to %s (%d figures, %d table files)", out / "report.html",
             len(paths.figures), len(paths.tables))
    return _moved(paths, staging, out)


def _write_into(a: Analysis, out: Path, *, grid: str | None, wandb: bool) -> ReportPaths:
    """The report's files, written into the empty folder `out`."""
    from annealbench.analysis.wandb_tables import log_tables

    store = a.store
    sensitivity = lr_sensitivity(store, a.options.metric)
    provenance_ = style.store_provenance(store.root, store.runs["git_commit"])
    train = train_curves(store)  # once, for the static figure and the page's interactive plot
    best = None
    if grid is not None:
        factor_levels(a, grid)  # an unknown factor stops the report before any work
        best = best_verdict(a)  # once, for the grid's boxes and its tables
    figures = all_figures(a, out / "figures", sensitivity, grid=grid, provenance=provenance_, train=train,
                          grid_best=best)
    tables = report_tables(a)
    if grid is not None:
        tables["verdict_best"] = verdict_best_table(best)
        tables[f"grid_{grid}"] = grid_table(a, grid, best)
    if not sensitivity.empty:
        tables["lr_sensitivity"] = sensitivity
    written = write_tables(tables, out / "tables")
    page = out / "report.html"
    page.write_text(render_html(a, figures, tables, looks=style.looks(store.runs["config"]), train=train,
                                methods=methods(a), provenance=provenance(a)), encoding="utf-8")
    run_dir = log_tables(store, tables, out) if wandb else None
    return ReportPaths(out=out, html=page, figures=figures, tables=written, wandb_run_dir=run_dir)


def write_report(results_dir: str | Path, out: str | Path | None = None, options: Options = Options(),
                 *, refuse_mixed_commits: bool = False, wandb: bool = True, grid: str | None = None) -> ReportPaths:
    """Analyse the store in `results_dir` and write figures, tables and report.html into `out`
    (default `results_dir/report`); `grid` as in `write_analysis`."""
    store = load_store(results_dir, refuse_mixed_commits=refuse_mixed_commits)
    out = Path(out) if out is not None else Path(results_dir) / "report"
    check_replaceable(out, store.root)  # before the analysis's minutes, not after
    return write_analysis(analyse(store, options), out, grid=grid, wandb=wandb)
