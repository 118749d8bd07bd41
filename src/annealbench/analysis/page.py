"""The report's HTML page, in the order a reader asks: (1) the question and the verdict, (2) per
task the curves and the paired differences, (3) the across-task view, (4) the theory's
diagnostics, (5) the details — every claim, the tables, the methods, provenance — collapsed.

Everything is embedded (figures as base64 PNG, plotly.js once), so the file works offline.
"""

from __future__ import annotations

import base64
import html
import json
import math
from fnmatch import fnmatch
from pathlib import Path

import pandas as pd

from annealbench.analysis.claims import all_claims
from annealbench.analysis.differences import SURVIVORS, in_units, survivor_rows, verdict_differences
from annealbench.analysis.interactive import curve_plot, plotly_script
from annealbench.analysis.tables import _rounded, verdict_table
from annealbench.analysis.analyse import Analysis
from annealbench.common.store_schema import code_version, describe_code_version

SECTIONS = (  # section id → figure names (fnmatch patterns) drawn there, in order
    ("tasks", ("b_curves", "b_train_curves", "c_forest", "h_grid_*")),
    ("across", ("d_critical_difference", "e_profiles", "g_lr_sensitivity")),
    ("theory", ("f_diagnostics", "a_windows")),
)
VERDICT_COLOURS = {"better": "#c7e9c0", "worse": "#fdd0a2", "equivalent": "#c6dbef", "inconclusive": "#e0e0e0"}
CSS = (
    "body{font-family:'DejaVu Sans',sans-serif;max-width:1200px;margin:auto;padding:1em;line-height:1.4}"
    "img{max-width:100%} table{border-collapse:collapse;font-size:12px;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left} li{margin:0.3em 0}"
    "figure{margin:1em 0} figcaption{font-size:12px;color:#555}"
    "details>summary{cursor:pointer;font-size:1.4em;font-weight:bold;margin:1em 0}"
    ".plots{display:grid;gap:1em} .plots>div{min-width:0}"
    ".question{font-size:1.15em} .muted{color:#555}"
    ".mixed-code{background:#fdd0a2;padding:0.4em 0.6em}"
    + "".join(f"tr.verdict-{v} td{{background:{c}}}" for v, c in VERDICT_COLOURS.items())
    + "".join(f"td.verdict-{v}{{background:{c}}}" for v, c in VERDICT_COLOURS.items())
    + "table.matrix td{text-align:center;font-size:11px} table.matrix td.config{text-align:left;white-space:nowrap}"
)


def _table(df: pd.DataFrame, table_id: str = "") -> str:
    attrs = {"table_id": table_id} if table_id else {}
    return _rounded(df).to_html(index=False, escape=True, **attrs)


def _references(a: Analysis) -> tuple[str, ...]:
    """The references the verdicts compare against (the first of them before any comparison)."""
    return tuple(getattr(getattr(a, "comparison", None), "references", None) or (a.baseline,))


def question(a: Analysis) -> str:
    """The suite's question in one sentence, with the comparison's own description when the
    analysis has one (its references and margin rule)."""
    comparison = getattr(a, "comparison", None)
    refs = ", ".join(_references(a))
    text = (f"Does each configuration match, beat or trail the reference(s) {refs} in final "
            f"{getattr(a, 'metric_label', a.options.metric)} — on which tasks, and by how much?")
    if comparison is not None and hasattr(comparison, "describe"):
        text += " " + comparison.describe()
    return text


def _relative(row: pd.Series) -> str:
    """A verdict row's estimate and the interval its verdict was read from, in the verdict table's
    units (`annealbench.analysis.differences.in_units`), then the divergence rate when a run diverged."""
    estimate, low, high, unit = in_units(row)
    if not math.isfinite(estimate):
        return ""
    interval = f" [{low:+.3g}, {high:+.3g}]" if math.isfinite(low) and math.isfinite(high) else ""
    diverged = (f"; diverged {row['diverged_rate']:.0%}" if row.get("n_diverged") else "")
    return f"{estimate:+.3g}{unit}{interval}{diverged}"


def verdict_matrix_html(a: Analysis) -> str:
    """The answer at a glance: per reference, configurations × tasks (and all tasks), each cell
    its verdict with the estimate and (1 − 2α) interval relative to the reference."""
    verdict = verdict_table(a, details=True)
    if verdict is None or verdict.empty:
        return ""
    parts = []
    for ref, rows in verdict.groupby("reference", sort=False):
        scopes = list(dict.fromkeys(rows["scope"]))
        head = "".join(f"<th>{html.escape(str(s))}</th>" for s in scopes)
        body = []
        for config, by_config in rows.groupby("config", sort=False):
            cells = {r["scope"]: r for _, r in by_config.iterrows()}
            tds = "".join(
                f"<td class='verdict-{html.escape(cells[s]['verdict'])}'><b>{html.escape(cells[s]['verdict'])}</b>"
                f"<br>{html.escape(_relative(cells[s]))}</td>" if s in cells else "<td></td>" for s in scopes)
            body.append(f"<tr><td class='config'>{html.escape(str(config))}</td>{tds}</tr>")
        parts.append(f"<h3>Against {html.escape(str(ref))}</h3><table class='matrix'><thead><tr>"
                     f"<th>configuration</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    return ("<div id='verdict-matrix'>" + "".join(parts) +
            f"<p class='muted'>Each cell: the verdict, then the paired difference in final "
            f"{html.escape(a.options.metric)} (configuration against reference: the ratio's change in % on "
            f"log-ratio rows, in % of the reference's median on difference rows, in margins δ across tasks) "
            f"with the interval the verdict was read from — at the level Holm's procedure gave the row "
            f"(column ci_level), not an unadjusted 90% — and the divergence rate when a run diverged. "
            f"Every row of the table below gives its margin, test, n and p-values.</p></div>")


def verdict_html(a: Analysis) -> str:
    """The verdict table, one row per (scope, config), each row coloured by its verdict, or a
    line saying that no verdict was computed."""
    verdict = verdict_table(a)
    if verdict is None or verdict.empty:
        return ("<p id='no-verdict' class='muted'>No verdict computed for this store: the paired "
                "differences per task (section 2) are the evidence.</p>")
    shown = _rounded(verdict)
    rows = []
    for (_, raw), (_, row) in zip(verdict.iterrows(), shown.iterrows()):
        cells = "".join(f"<td><b>{html.escape(str(v))}</b></td>" if col == "verdict" else
                        f"<td>{html.escape(str(v))}</td>" for col, v in row.items())
        rows.append(f"<tr class='verdict-{html.escape(str(raw['verdict']))}'>{cells}</tr>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in verdict.columns)
    key = ", ".join(f"<span style='background:{c};padding:0 4px'>{v}</span>" for v, c in VERDICT_COLOURS.items())
    return (f"<details id='verdict-rows'><summary>Every verdict row: margin, test, n, p-values</summary>"
            f"<table id='verdict'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<p class='muted'>Rows coloured by verdict: {key}. The margin is on the row's scale: log(1 + δ) "
            f"for log-ratio rows, δ in {html.escape(a.options.metric)} for difference rows, 1 (each task's "
            f"margin) for all tasks. The interval is the (1 − 2α_r) interval at the level α_r that Holm's "
            f"step-down gave the row (ci_level): equivalent when it lies inside ±margin with no diverged "
            f"run, worse or better when it lies entirely beyond the margin; p-values are Holm-adjusted. "
            f"Across tasks, equivalence also needs the prediction interval for a new task (pi_low, pi_high) "
            f"inside ±1.</p></details>")


def figure_html(name: str, png: Path) -> str:
    """A static figure embedded as PNG, with a link to its PDF beside the report."""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return (f"<figure><img id='fig-{name}' alt='{html.escape(name)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(name)} (<a href='figures/{html.escape(name)}.pdf'>PDF</a>)"
            f"</figcaption></figure>")


def _figures_in(section: str, figures: dict[str, Path]) -> list[str]:
    patterns = dict(SECTIONS)[section]
    return [figure_html(n, p) for pattern in patterns for n, p in figures.items() if fnmatch(n, pattern)]


def grid_html(a: Analysis, figures: dict[str, Path], tables: dict[str, pd.DataFrame]) -> list[str]:
    """The grid table (`grid_<factor>`, written when the report drew a factor grid) under the
    grid figures, with what its "best point" means and which test decides it."""
    parts = []
    for name, table in tables.items():
        if not name.startswith("grid_"):
            continue
        factor = name[len("grid_"):]
        shown = [f"<code>{html.escape(f)}</code>" for f in (f"h_grid_{factor}", f"h_grid_{factor}_train")
                 if f in figures]
        tests = sorted({t for col in ("test_end", "test_best") for t in table[col].dropna()})
        extreme = "minimum" if a.declared.better == "lower" else "maximum"
        parts.append(
            f"<h3 id='grid-{html.escape(factor)}'>By {html.escape(factor)}: verdicts per panel</h3>"
            f"<p>Figures {' and '.join(shown)} draw one panel per level of {html.escape(factor)}; the table "
            f"<code>tables/{html.escape(name)}.csv</code> gives each panel's pairs, at the end of training (the "
            f"verdict above) and at the best point (every row: <code>tables/verdict_best.csv</code>). "
            f"The best point is each run's best {html.escape(a.options.metric)} along its evaluation curve (its "
            f"{extreme}) in place of its final value, decided by the same rule — "
            f"{html.escape(' or '.join(tests) or 'the paired test')} on the per-seed paired differences "
            f"against the same margin, at the level Holm's procedure gives the row in the same family, a "
            f"diverged run still counted as diverged.</p>" + _table(table, f"table-{name}"))
    return parts


def _number(x: float, unit: str) -> str:
    """`+1.23%`; ±inf where a sign-test interval is unbounded; – for none."""
    return "–" if math.isnan(x) else f"{x:+.3g}{unit}"


def differences_table(rows: pd.DataFrame) -> str:
    """One reference's rows of `verdict_differences` on one task: each configuration once, with
    the verdict's estimate and interval in the verdict table's units, test, n and Holm p-values."""
    shown = pd.DataFrame({
        "configuration": rows["config"], "verdict": rows["verdict"], "test": rows["test"], "n": rows["n"],
        "estimate": [_number(x, u) for x, u in zip(rows["estimate_rel"], rows["unit"])],
        "interval": [f"[{_number(lo, u)}, {_number(hi, u)}]" if not (math.isnan(lo) or math.isnan(hi)) else "–"
                     for lo, hi, u in zip(rows["ci_low_rel"], rows["ci_high_rel"], rows["unit"])],
        "ci_level": rows["ci_level"], "p_difference": rows["p_difference"], "p_equivalence": rows["p_equivalence"],
        "diverged (config, reference)": [f"{c}, {r}" for c, r in zip(rows["n_diverged"],
                                                                      rows["n_diverged_reference"])]})
    body = "".join(f"<tr class='verdict-{html.escape(str(v))}'>"
                   + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"
                   for v, cells in zip(rows["verdict"], _rounded(shown).itertuples(index=False)))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown.columns)
    return f"<table class='differences'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def survivors_html(a: Analysis, task: str, survivors: pd.DataFrame) -> str:
    """The secondary analysis on one task, collapsed under its own label, a table per reference."""
    rows = survivors[survivors["task"] == task] if not survivors.empty else survivors
    if rows.empty:
        return ""
    label = SURVIVORS.format(level=100 * a.options.level)
    cols = ["config", "n", "n_diverged", "mean_diff", "ci_low", "ci_high", "mean_diff_pct", "ci_low_pct",
            "ci_high_pct", "p_t", "p_holm"]
    parts = [f"<details class='survivors'><summary>Secondary, not the verdict: {html.escape(label)}</summary>"
             f"<p class='muted'>Surviving runs only (seeds where both runs completed; a diverged run is left out, "
             f"not counted as the worst outcome), paired t against 0 with its {a.options.level:.0%} t-interval, "
             f"the difference config − reference in {html.escape(a.options.metric)} and (_pct) in % of the "
             f"reference's mean final value; p_holm over the verdict's per-task family. The verdict above "
             f"is the analysis; this is its sensitivity to divergence.</p>"]
    for ref, g in rows.groupby("reference", sort=False):
        parts.append(f"<h5>{html.escape(label)}: against {html.escape(str(ref))}</h5>" + _table(g[cols]))
    return "".join(parts) + "</details>"


def task_section(a: Analysis, figures: dict[str, Path], looks: dict, train: dict,
                 tables: dict[str, pd.DataFrame] | None = None) -> list[str]:
    """Per task: the interactive curves (evaluation, then training loss when logged) and the
    verdict's paired differences, one table per reference (`differences_table`), then the
    surviving-runs secondary under its own label (`survivors_html`); then the static figures of
    this section, and the grid's verdict table when the report drew a factor grid (`grid_html`)."""
    parts = ["<section id='tasks'><h2>2. Per task: curves and paired differences</h2>"]
    differences = verdict_differences(a)
    survivors = survivor_rows(a)
    for k, (task, tc) in enumerate(a.curves.items()):
        parts.append(f"<h3>{html.escape(task)}</h3>")
        plots = [curve_plot(tc, looks, a.options.level, f"curve-{k}", getattr(a, "metric_label", None))]
        if task in train:
            plots.append(curve_plot(train[task], looks, a.options.level, f"train-{k}"))
        # the columns are fixed before plotly sizes the first plot (it measures its cell once)
        parts.append(f"<div class='plots' style='grid-template-columns:repeat({len(plots)},minmax(0,1fr))'>"
                     + "".join(f"<div>{p}</div>" for p in plots) + "</div>")
        rows = differences[differences["task"] == task]
        for ref, g in rows.groupby("reference", sort=False):
            parts.append(f"<h4 class='against'>Against {html.escape(str(ref))}: the verdict's paired differences</h4>"
                         + differences_table(g))
        if not rows.empty:
            parts.append(
                f"<p class='muted'>Configuration against reference in final {html.escape(a.options.metric)}, per "
                f"seed: the ratio's change in % on log-ratio rows, in % of the reference's median on difference "
                f"rows; a diverged run is its arm's worst outcome (intention to treat). The interval is the one "
                f"the verdict was read from, at the level Holm's procedure gave the row (ci_level); p-values "
                f"are Holm-adjusted over the per-task family (verdict.csv).</p>")
        parts.append(survivors_html(a, task, survivors))
    parts += _figures_in("tasks", figures) + grid_html(a, figures, tables or {}) + ["</section>"]
    return parts


def details_section(a: Analysis, tables: dict[str, pd.DataFrame], methods: str,
                    provenance: dict[str, list[str]]) -> list[str]:
    """Every claim sentence, the notes, every table, the methods and provenance, collapsed."""
    parts = ["<details id='details'><summary>5. Details: every claim, tables, methods, provenance</summary>",
             "<h3>Methods</h3>", f"<p id='methods'>{html.escape(methods)}</p>"]
    if a.notes:
        parts += ["<h3>Notes</h3><ul>"] + [f"<li>{html.escape(n)}</li>" for n in a.notes] + ["</ul>"]
    for section, sentences in all_claims(a).items():
        if sentences:
            parts.append(f"<h3>{html.escape(section)}</h3><ul>")
            parts += [f"<li>{html.escape(s)}</li>" for s in sentences]
            parts.append("</ul>")
    parts.append("<h3>Tables</h3>")
    parts += [f"<h4>{html.escape(name)}</h4>{_table(df)}" for name, df in tables.items()]
    parts.append("<h3>Provenance</h3><dl>")
    for key, values in provenance.items():
        parts.append(f"<dt><b>{html.escape(key)}</b></dt>")
        parts += [f"<dd>{html.escape(v)}</dd>" for v in values]
    parts.append("</dl></details>")
    return parts


def _code_version(commit: str, dirty: bool, provenance: str) -> str:
    try:
        changes = json.loads(provenance).get("git_diff_sha256")
    except (TypeError, ValueError, AttributeError):
        changes = None
    return describe_code_version(code_version(commit, dirty, changes))


def code_versions_html(a: Analysis) -> str:
    """The code that made the analysed (eval-stage) runs; a warning naming every version and its
    run count when there is more than one (runs kept with `annealbench run --accept-stale`, say)."""
    runs = a.store.runs[a.store.runs["stage"] == "eval"]
    versions = pd.Series([_code_version(c, d, p) for c, d, p in
                          zip(runs["git_commit"], runs["git_dirty"], runs["provenance"])], dtype=object)
    counts = versions.value_counts(sort=False).sort_index().sort_values(ascending=False, kind="stable")
    listed = ", ".join(f"<code>{html.escape(v)}</code> ({n} run{'s' * (n != 1)})" for v, n in counts.items())
    if len(counts) <= 1:
        return f"<p class='muted' id='code-versions'>Runs made by {listed or 'no recorded commit'}.</p>"
    return (f"<p class='mixed-code' id='code-versions'><b>These results mix {len(counts)} code versions:</b> "
            f"{listed}. The same run id may give other values under other code; rerun the older runs "
            f"with <code>annealbench run SUITE --rerun-stale</code> for results of one version.</p>")


def render_html(a: Analysis, figures: dict[str, Path], tables: dict[str, pd.DataFrame], *, looks: dict,
                train: dict, methods: str, provenance: dict[str, list[str]]) -> str:
    """The report as one self-contained HTML string."""
    o = a.options
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>annealbench report</title>",
        f"<style>{CSS}</style>", plotly_script(), "</head><body>",
        "<h1>annealbench report</h1>",
        f"<p class='muted'>Store <code>{html.escape(str(a.store.root))}</code>; endpoint "
        f"<code>{html.escape(o.metric)}</code>; references "
        f"{', '.join(f'<code>{html.escape(r)}</code>' for r in _references(a))}; eval-stage runs only; "
        f"α = {o.alpha:g}; verdict intervals at each row's Holm level (column ci_level), curve bands at "
        f"{100 * o.level:g}%.</p>",
        code_versions_html(a),
        "<section id='question'><h2>1. The question and the verdict</h2>",
        f"<p class='question'>{html.escape(question(a))}</p>", verdict_matrix_html(a), verdict_html(a),
        "</section>",
    ]
    parts += task_section(a, figures, looks, train, tables)
    parts += ["<section id='across'><h2>3. Across tasks</h2>"]
    if not a.aggregate.empty:
        parts.append("<p>Normalised scores (1: the task's best configuration median, 0: its worst):</p>"
                     + _table(a.aggregate))
    parts += _figures_in("across", figures) + ["</section>"]
    parts += ["<section id='theory'><h2>4. Theory diagnostics</h2>"] + _figures_in("theory", figures) + ["</section>"]
    parts += details_section(a, tables, methods, provenance)
    parts.append("</body></html>")
    return "\n".join(parts)
