"""The seed paper's figure type: one panel per level of a suite factor (the filter zero γ, the
numerator, the window, …), the arms at that level overlaid in each, a block of panels per task;
the verdicts of each panel's pairs at the end of training and at the best point of the curve.

Levels. A configuration's level is the value of FACTOR in the hyperparameters its eval runs
recorded (`runs.parquet` column `hparams`), else in its label (`muphi[window=linear,gamma=0.5]`).
Numeric levels are one level per value (`0`, `0.0` and `0e0` are one) and come in ascending order
of value (`0.31` before `0.9` before `0.47` is text order, not this one); other levels follow in
text order. Configurations that do not set FACTOR (a peer without that hyperparameter, say) are
drawn in every panel, as the common reference.

"Base". Where FACTOR belongs to a component that another hyperparameter can switch off, a
configuration with that component off is level "Base", whatever its value of FACTOR, drawn last.
For `gamma`, the zero of the smoothing filter, that switch is `beta = 0`: no smoothing filter, the
plain configuration the seed paper's reference implementation (somefunAgba/autosgm, release
c5b0935) opens its README with (`beta = 0 # off`) and the "Base" panel of its γ figures. The
published layout follows: at most four panels a row, so the paper's eight levels (γ = 0, 0.31,
β/(1+β), 1 − √(2(1−β)), 0.64, 0.85, 0.9, Base) fill two rows of four.

Panels. Each panel draws its arms' mean over seeds and pointwise band (`annealbench.analysis.panels`), against
steps, with a legend naming each arm by what differs inside the panel (`numerator=parcor-c5b0935`);
an arm keeps its colour from panel to panel, so the Eq. (5) arm has one colour throughout.

Verdicts. A panel's verdict rows are the rows of the analysis' verdict whose configuration and
reference both are arms of that panel (the comparison declares which pairs exist). "End" is the
verdict itself (the final value of each run). "Best" is the same verdict computed, by the same
code (`annealbench.analysis.comparisons.verdict_frame`: same pairs, margins, tests and Holm families), on each
run's best value along its evaluation curve — its minimum for a metric where lower is better, its
maximum otherwise — instead of its final value; a run that diverged stays diverged (its status
decides, as at the end) and failed runs stay out. The best point is the extreme of the logged
evaluations, so it carries their noise (the end averages the last evaluations); both arms of a pair
are read the same way.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from annealbench.analysis import comparisons
from annealbench.analysis import style
from annealbench.analysis.curves import TaskCurves
from annealbench.analysis.panels import draw_curves
from annealbench.analysis.analyse import Analysis
from annealbench.analysis.tables import VERDICT_SHOWN
from annealbench.analysis.differences import in_units
from annealbench.common.store_schema import parse_label

BASE = "Base"
OFF_SWITCHES = {"gamma": ("beta", 0.0)}  # factor → (hyperparameter, value): the factor's component off
SYMBOLS = {"gamma": "γ", "beta": "β", "eta": "η"}
MAX_COLUMNS = 4  # panels a row: the published 2 × 4
PANEL_ROW_IN = 1.6  # height of one row of panels, inches, with its title and tick labels
BOX_IN = 0.3  # and the verdict boxes under it
BLOCK_HEAD_IN = 0.3  # a task block's title
BOX_PT = LEGEND_PT = 5.5  # the verdict boxes' and the panel legends' font size
TICKS_PT, LABEL_PT = 15.0, 13.0  # the x tick labels' height under an axes, then the axis label's (points)
LEGEND_CHARS = 26  # characters of an arm's name per line inside a panel (a quarter of the page)
ENDPOINTS = ("end", "best")


def settings(config: str, hparams: str | None) -> dict:
    """The hyperparameters of a configuration: its label's `key=value` items, overridden by the
    recorded `hparams` JSON."""
    try:
        items = dict(parse_label(config, "configuration")[1])
    except ValueError:
        items = {}
    recorded = json.loads(hparams) if hparams else {}
    return items | (recorded if isinstance(recorded, dict) else {})


def _number(value) -> float | None:
    """A finite number written as a number or as text; None otherwise (booleans included)."""
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _level(h: dict, factor: str) -> str | None:
    """The level of `factor` in settings `h` (module docstring): "Base", a number's canonical
    text, the value's text, or None where `h` does not set it."""
    switch = OFF_SWITCHES.get(factor)
    if switch is not None and switch[0] in h and _number(h[switch[0]]) == switch[1]:
        return BASE
    if factor not in h:
        return None
    value = h[factor]
    x = _number(value)
    if x is not None:
        return str(int(x)) if x.is_integer() and abs(x) < 2 ** 53 else repr(x)
    return value if isinstance(value, str) else json.dumps(value)


def factor_levels(a: Analysis, factor: str) -> dict[str, str | None]:
    """Configuration → its level of `factor` (as text; "Base" by the module docstring's rule),
    None where it does not set it.

    Raises ValueError when no eval run sets `factor`, naming the factors that vary between
    configurations (the useful choices) and every recorded one."""
    runs = a.store.runs[a.store.runs["stage"] == "eval"].drop_duplicates("config")
    hparams = {c: settings(c, h) for c, h in zip(runs["config"], runs["hparams"])}
    levels = {c: _level(h, factor) for c, h in hparams.items()}
    if all(v is None for v in levels.values()):
        keys = sorted({k for h in hparams.values() for k in h})
        varying = [k for k in keys if len({json.dumps(h.get(k)) for h in hparams.values()}) > 1]
        raise ValueError(f"grid factor {factor!r} is not a hyperparameter of any eval-stage configuration; "
                         f"factors that vary: {varying or 'none'}; recorded: {keys or 'none'}")
    return levels


def level_order(levels) -> list[str]:
    """The distinct levels in the published order: numbers ascending by value, then text levels
    in text order, then "Base"."""
    distinct = {v for v in levels if v is not None}
    numbers = sorted((v for v in distinct if _number(v) is not None), key=lambda v: (_number(v), v))
    texts = sorted(v for v in distinct if _number(v) is None and v != BASE)
    return numbers + texts + ([BASE] if BASE in distinct else [])


def level_title(factor: str, level: str) -> str:
    """A panel's title: `γ = 0.31`, `window = cosine`, `Base`."""
    if level == BASE:
        return BASE
    x = _number(level)
    return f"{SYMBOLS.get(factor, factor)} = {level if x is None else f'{x:.3g}'}"


# --- the best point ------------------------------------------------------------------------------

def best_values(tc: TaskCurves, sign: float) -> np.ndarray:
    """(C, S) each completed run's best value along its curve: the minimum when lower is better
    (sign +1), the maximum otherwise; NaN for runs that did not complete (as `final_values`)."""
    out = np.full(tc.status.shape, np.nan)
    for c, s in zip(*np.nonzero(tc.status == "done")):
        v = tc.values[c, s]
        v = v[np.isfinite(v)]
        if v.size:
            out[c, s] = sign * np.min(sign * v)
    return out


def best_verdict(a: Analysis) -> pd.DataFrame:
    """The verdict (every column of `a.verdict`) on each run's best value instead of its final
    value: the same comparison, margins, tests and Holm families (module docstring)."""
    sign = a.declared.sign
    parts = []
    for task, tc in a.curves.items():
        best = best_values(tc, sign)
        cc, ss = np.meshgrid(np.arange(len(tc.configs)), np.arange(tc.seeds.size), indexing="ij")
        parts.append(pd.DataFrame({"task": task, "config": np.array(tc.configs)[cc.ravel()],
                                   "seed": tc.seeds[ss.ravel()], "best": best.ravel()}))
    if not parts:
        return a.verdict.iloc[0:0].copy()
    endpoints = a.endpoints.merge(pd.concat(parts, ignore_index=True), on=["task", "config", "seed"], how="left")
    endpoints["final"] = endpoints.pop("best")
    return comparisons.verdict_frame(a.curves, endpoints, a.comparison, a.options.alpha, sign, [], store=a.store,
                                     positive=a.declared.positive)


def verdict_best_table(best: pd.DataFrame) -> pd.DataFrame:
    """`verdict.csv`'s columns for the best-point verdict, and `endpoint` = "best"."""
    return best[[c for c in VERDICT_SHOWN if c in best.columns]].assign(endpoint="best")


def _number_text(x: float, unit: str) -> str:
    return f"{x:+.1f}" if unit == "%" and math.isfinite(x) else f"{x:+.3g}"


def interval_text(row) -> str:
    """`[+1.1, +5.3]` in the row's units (±inf where the sign test's interval is unbounded); ''
    without an interval."""
    _, low, high, unit = in_units(row)
    if math.isnan(low) or math.isnan(high):
        return ""
    return f"[{_number_text(low, unit)}, {_number_text(high, unit)}]"


def verdict_text(endpoint: str, row) -> str:
    """`end: better (+3.2% [+1.1, +5.3])`."""
    estimate, _, _, unit = in_units(row)
    if math.isnan(estimate):
        return f"{endpoint}: {row['verdict']}"
    interval = interval_text(row)
    return f"{endpoint}: {row['verdict']} ({_number_text(estimate, unit)}{unit}{' ' + interval if interval else ''})"


# --- panels --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Panel:
    """One panel of a task's block: its level, its arms (configurations at that level) and the
    configurations drawn in every panel."""

    task: str
    level: str
    arms: tuple[str, ...]
    shared: tuple[str, ...]

    def rows(self, verdict: pd.DataFrame) -> pd.DataFrame:
        """The verdict rows of this panel: its task's, configuration and reference both arms."""
        if verdict is None or verdict.empty:
            return pd.DataFrame(columns=list(getattr(verdict, "columns", [])))
        keep = ((verdict["scope"] == self.task) & verdict["config"].isin(self.arms)
                & verdict["reference"].isin(self.arms))
        return verdict[keep]


def panels(a: Analysis, factor: str, curves: dict[str, TaskCurves] | None = None) -> dict[str, list[Panel]]:
    """Task → its panels in the published order (levels with an arm run on that task)."""
    levels = factor_levels(a, factor)
    order = level_order(levels.values())
    out = {}
    for task, tc in (a.curves if curves is None else curves).items():
        shared = tuple(c for c in tc.configs if levels.get(c) is None)
        out[task] = [Panel(task, level, arms, shared) for level in order
                     if (arms := tuple(c for c in tc.configs if levels.get(c) == level))]
    return out


def arm_names(arms: tuple[str, ...], factor: str) -> dict[str, str]:
    """Each arm named by what differs between the arms of its panel: the optimizer when it
    differs, then the label's differing `key=value` items (the factor and its switch left out);
    a lone arm by its label without the factor."""
    skip = {factor, *OFF_SWITCHES.get(factor, ())[:1]}
    parsed = {}
    for c in arms:
        try:
            name, items = parse_label(c, "configuration")
        except ValueError:
            name, items = c, ()
        parsed[c] = (name, {k: v for k, v in items if k not in skip})
    if len(arms) == 1:
        name, items = parsed[arms[0]]
        return {arms[0]: f"{name}[{','.join(f'{k}={v}' for k, v in items.items())}]" if items else name}
    keys = sorted({k for _, items in parsed.values() for k in items})
    differ = [k for k in keys if len({items.get(k) for _, items in parsed.values()}) > 1]
    by_name = len({name for name, _ in parsed.values()}) > 1
    out = {}
    for c, (name, items) in parsed.items():
        text = ",".join(f"{k}={items[k]}" for k in differ if k in items)
        out[c] = (f"{name}[{text}]" if text else name) if by_name else (text or c)
    return out if len(set(out.values())) == len(out) else {c: c for c in arms}


def _by_pair(verdict: pd.DataFrame | None) -> dict[tuple[str, str, str], dict]:
    """(scope, config, reference) → the verdict row as a mapping."""
    if verdict is None or verdict.empty:
        return {}
    return {(r["scope"], r["config"], r["reference"]): r for r in verdict.to_dict("records")}


def _renamed(tc: TaskCurves, names: dict[str, str]) -> TaskCurves:
    """The curves of the configurations in `names`, under those names."""
    keep = [tc.configs.index(c) for c in names if c in tc.configs]
    return dataclasses.replace(tc, configs=tuple(names[tc.configs[k]] for k in keep), values=tc.values[keep],
                               status=tc.status[keep])


def _legend_name(name: str) -> str:
    return style.wrap_label(name, LEGEND_CHARS, max_lines=2)


def _box(ax, panel: Panel, names: dict[str, str], end: pd.DataFrame, best: pd.DataFrame | None,
         below_pt: float) -> None:
    """The panel's verdicts, end and best, in a box `below_pt` points under its axes (below the
    tick labels and the axis label)."""
    rows = panel.rows(end)
    if rows.empty:
        return
    lookup = _by_pair(best)
    lines = []
    for _, row in rows.iterrows():
        if len(rows) > 1:
            config, ref = row["config"], row["reference"]
            lines.append(f"{names.get(config, config)} vs {names.get(ref, ref)}:")
        lines.append(verdict_text("end", row))
        found = lookup.get((row["scope"], row["config"], row["reference"]))
        if found is not None:
            lines.append(verdict_text("best", found))
    ax.annotate("\n".join(lines), xy=(0.5, 0.0), xycoords="axes fraction", xytext=(0.0, -below_pt),
                textcoords="offset points", ha="center", va="top", fontsize=BOX_PT, linespacing=1.15,
                bbox={"boxstyle": "round,pad=0.25", "fc": "#f4f4f4", "ec": "#bbbbbb", "lw": 0.5})


def _grid(a: Analysis, factor: str, curves: dict[str, TaskCurves], ylabel: str, title: str,
          end: pd.DataFrame | None, best: pd.DataFrame | None) -> Figure:
    """The blocks of panels, one block per task, stacked; verdict boxes when `end` is given."""
    blocks = panels(a, factor, curves)
    tasks = [t for t in blocks if blocks[t]]
    names = {t: [arm_names(p.arms, factor) for p in blocks[t]] for t in tasks}
    labels = sorted({n for t in tasks for m in names[t] for n in m.values()}
                    | {c for t in tasks for p in blocks[t] for c in p.shared})
    looks = style.looks(labels)
    shape = {t: (-(-len(blocks[t]) // min(MAX_COLUMNS, len(blocks[t]))), min(MAX_COLUMNS, len(blocks[t])))
             for t in tasks}
    box_in = BOX_IN if end is not None else 0.0
    heights = [shape[t][0] * (PANEL_ROW_IN + box_in) + BLOCK_HEAD_IN for t in tasks] or [1.0]
    fig = Figure(figsize=(style.PAGE_IN, sum(heights) + 0.45))
    subs = np.ravel(fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False))
    for sub, task in zip(subs, tasks):
        rows, cols = shape[task]
        axes = sub.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
        for k, ax in enumerate(axes.ravel()):
            if k >= len(blocks[task]):
                ax.set_visible(False)
                continue
            panel, arm_name = blocks[task][k], names[task][k]
            draw_curves(ax, _renamed(curves[task], arm_name | {c: c for c in panel.shared}), looks, a.options.level)
            ax.set_title(level_title(factor, panel.level))
            handles, texts = ax.get_legend_handles_labels()
            ax.legend(handles, [_legend_name(t) for t in texts], loc="upper right", fontsize=LEGEND_PT,
                      framealpha=0.8, edgecolor="none", handlelength=1.6, borderpad=0.3, labelspacing=0.25)
            ax.tick_params(labelbottom=True)  # each panel's steps are read off its own axis
            bottom = k + cols >= len(blocks[task])  # no panel under it
            if bottom:
                ax.set_xlabel("step")
            if k % cols == 0:
                ax.set_ylabel(ylabel)
            if end is not None:
                _box(ax, panel, arm_name, end, best, TICKS_PT + (LABEL_PT if bottom else 0.0))
        sub.suptitle(style.wrap_label(task, 2 * style.HALF_CHARS), x=0.02, ha="left", fontweight="bold")
    fig.suptitle(title)
    return fig


def factor_grid(a: Analysis, factor: str, best: pd.DataFrame | None = None) -> Figure:
    """The evaluation metric by level of `factor` (module docstring), each panel with the end and
    best-point verdicts of its pairs; `best`: `best_verdict(a)` when the caller has it."""
    best = best_verdict(a) if best is None else best
    title = (f"(h) {a.options.metric} by {SYMBOLS.get(factor, factor)}: mean over seeds, pointwise "
             f"{100 * a.options.level:g}% band.\nBoxes: paired verdict at the end of training and at each run's "
             f"best point")
    return _grid(a, factor, a.curves, a.metric_axis, title, a.verdict, best)


def factor_grid_train(a: Analysis, factor: str, train: dict[str, TaskCurves]) -> Figure:
    """The companion of `factor_grid` on the logged training loss (`annealbench.analysis.figures.train_curves`)."""
    metric = next(iter(train.values())).metric
    title = (f"(h′) {metric} by {SYMBOLS.get(factor, factor)}: mean over seeds, pointwise "
             f"{100 * a.options.level:g}% band")
    return _grid(a, factor, train, metric, title, None, None)


def grid_table(a: Analysis, factor: str, best: pd.DataFrame) -> pd.DataFrame:
    """One row per task, level and panel pair (a level without a pair: one row, no verdict):
    end and best verdicts with estimate and interval in the verdict table's units."""
    lookup = _by_pair(best)
    rows = []
    for task, task_panels in panels(a, factor).items():
        for panel in task_panels:
            pairs = panel.rows(a.verdict)
            if pairs.empty:
                rows.append({"task": task, "level": panel.level})
                continue
            for _, end in pairs.iterrows():
                row = {"task": task, "level": panel.level, "config": end["config"], "reference": end["reference"],
                       "n": end["n"], "unit": in_units(end)[3]}
                found = lookup.get((task, end["config"], end["reference"]))
                for endpoint, r in (("end", end), ("best", found)):
                    if r is not None:
                        row |= {f"verdict_{endpoint}": r["verdict"], f"estimate_{endpoint}": in_units(r)[0],
                                f"ci_{endpoint}": interval_text(r), f"test_{endpoint}": r["test"]}
                rows.append(row)
    columns = ["task", "level", "config", "reference", "verdict_end", "estimate_end", "ci_end", "verdict_best",
               "estimate_best", "ci_best", "n", "unit", "test_end", "test_best"]
    return pd.DataFrame(rows, columns=columns)
