"""`python -m analysis report`: figures, tables, claims and provenance in one self-contained HTML."""

from __future__ import annotations

import base64
import html
import json
import logging
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

from analysis.claims import all_claims
from analysis.figures import all_figures
from analysis.sensitivity import lr_sensitivity
from analysis.store import load_store
from analysis.summary import Analysis, Options, analyse
from analysis.tables import _rounded, report_tables, write_tables

log = logging.getLogger(__name__)
MAX_LISTED = 4  # provenance values listed one by one; more distinct values are counted
ANALYSIS_LIBRARIES = ("numpy", "scipy", "pandas", "statsmodels", "baycomp", "scikit-posthocs", "matplotlib")


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
        f"the fraction that reached it is given). Against the baseline, runs are paired by seed (same "
        f"initialisation and data order); the paired t-test is primary with its {100 * o.level:g}% "
        f"t-interval, Holm's correction runs over every (task, configuration) comparison, and the "
        f"Wilcoxon signed-rank test is a sensitivity check (zero differences split evenly between the rank "
        f"sums, tied |differences| get average ranks). The Bayesian signed-rank test uses a region of "
        f"practical equivalence of ±{100 * o.rope_fraction:g}% of the baseline's median final value. "
        f"Diverged runs (non-finite loss) have no final value: they are counted in every table, left out "
        f"of the means and paired tests, ranked last in Friedman's test, and never reach the target in "
        f"the performance profiles. Normalised scores put each task's best configuration median at 1 and "
        f"its worst at 0; their intervals resample seeds within tasks ({o.n_boot} draws). Curve bands are "
        f"pointwise t-intervals; where along training two configurations differ is decided by the "
        f"sign-flip max-T test, which controls the family-wise error over steps.")


def _img(path: Path, name: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img id="fig-{name}" alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>")


def render_html(a: Analysis, figures: dict[str, Path], tables: dict[str, pd.DataFrame]) -> str:
    """The report as one HTML string with every figure embedded (no external files)."""
    o = a.options
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>annealbench report</title><style>",
        "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em;}"
        "img{max-width:100%;} table{border-collapse:collapse;font-size:12px;margin:0.5em 0;}"
        "td,th{border:1px solid #ccc;padding:2px 6px;} li{margin:0.3em 0;}",
        "</style></head><body>",
        f"<h1>annealbench report</h1><p>Store: <code>{html.escape(str(a.store.root))}</code>; "
        f"endpoint metric <code>{html.escape(o.metric)}</code>; baseline <code>{html.escape(a.baseline)}</code>; "
        f"eval-stage runs only; α = {o.alpha:g}, intervals at {100 * o.level:g}%.</p>",
        "<h2>Methods</h2>", f"<p>{html.escape(methods(a))}</p>",
        "<h2>Findings</h2>",
    ]
    for section, sentences in all_claims(a).items():
        if sentences:
            parts.append(f"<h3>{html.escape(section)}</h3><ul>")
            parts += [f"<li>{html.escape(s)}</li>" for s in sentences]
            parts.append("</ul>")
    parts.append("<h2>Figures</h2>")
    parts += [_img(p, n) for n, p in figures.items()]
    parts.append("<h2>Tables</h2>")
    for name, df in tables.items():
        parts.append(f"<h3>{html.escape(name)}</h3>{_rounded(df).to_html(index=False, escape=True)}")
    parts.append("<h2>Provenance</h2><dl>")
    for key, values in provenance(a).items():
        parts.append(f"<dt><b>{html.escape(key)}</b></dt>")
        parts += [f"<dd>{html.escape(v)}</dd>" for v in values]
    parts.append("</dl></body></html>")
    return "\n".join(parts)


def write_report(results_dir: str | Path, out: str | Path | None = None, options: Options = Options(),
                 *, refuse_mixed_commits: bool = False, wandb: bool = True) -> ReportPaths:
    """Analyse the store in `results_dir` and write figures, tables and report.html into `out`."""
    from analysis.wandb_tables import log_tables

    store = load_store(results_dir, refuse_mixed_commits=refuse_mixed_commits)
    out = Path(out) if out is not None else Path(results_dir) / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{out}: cannot create the output directory ({err})") from err
    a = analyse(store, options)
    sensitivity = lr_sensitivity(store, options.metric)
    figures = all_figures(a, out / "figures", sensitivity)
    tables = report_tables(a)
    if not sensitivity.empty:
        tables["lr_sensitivity"] = sensitivity
    written = write_tables(tables, out / "tables")
    page = out / "report.html"
    page.write_text(render_html(a, figures, tables), encoding="utf-8")
    run_dir = log_tables(store, tables, out) if wandb else None
    log.info("report written to %s (%d figures, %d table files)", page, len(figures), len(written))
    return ReportPaths(out=out, html=page, figures=figures, tables=written, wandb_run_dir=run_dir)
