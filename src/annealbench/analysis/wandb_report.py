"""A W&B Report (dashboard) of a suite, built with the W&B reports API (`wandb-workspaces`).

`build_report` returns the report's definition — blocks, panels and the run filters of each
panel grid — from the results store alone, without a server, so it can be built and checked
offline. `save_report` saves it to the server, which needs an API key and the server reachable.

The report holds, in this order:
- the verdict table, read from the analysis run (`annealbench report`, job type
  `analysis`) that logged it as a `wandb.Table`;
- per task, the eval runs' curves of every evaluation metric and `train/loss` against the
  training step, the runs grouped by configuration (mean and standard error over seeds);
- where the suite has a γ or window grid (or `grid` names a factor), one panel grid per task and
  level of that factor, holding the configurations at that level (levels as `annealbench.analysis.grid`
  defines them: γ with β = 0 is "Base").
Runs are selected by the names the runner gives them (`annealbench.common.wandb_names`): project, the
suite in their config, job type = stage, group = task label.
"""

from __future__ import annotations

import logging
import os

from annealbench.analysis.grid import _level, level_order, settings
from annealbench.analysis.load import Store
from annealbench.analysis.wandb_tables import store_suite
from annealbench.common.wandb_names import ANALYSIS_JOB_TYPE, STEP_METRIC, table_key, wandb_project
from annealbench.common.wandb_server import server_unavailable

log = logging.getLogger(__name__)
GRID_FACTORS = ("gamma", "window")  # looked for, in this order, when no factor is named
CURVE_PREFIXES = ("val/", "train/loss")  # metrics drawn as curves (test/ is logged once, at the end)
MAX_TITLE_CHARS = 128  # the reports API's limit


class ReportNotSaved(RuntimeError):
    """The report's definition was built but could not be saved to the server."""


def _wr():
    try:
        import wandb_workspaces.reports.v2 as wr
        from wandb_workspaces import expr
    except ImportError as err:
        raise ValueError("--wandb-report needs the package wandb-workspaces "
                         "(pip install wandb-workspaces)") from err
    return wr, expr


def grid_levels(store: Store, factor: str) -> dict[str, list[str]]:
    """Level of `factor` → the eval configurations at that level (those that set it)."""
    runs = store.runs[store.runs["stage"] == "eval"].drop_duplicates("config")
    by_level: dict[str, list[str]] = {}
    for config, hparams in zip(runs["config"], runs["hparams"]):
        level = _level(settings(config, hparams), factor)
        if level is not None:
            by_level.setdefault(level, []).append(config)
    return {level: sorted(by_level[level]) for level in level_order(by_level)}


def grid_factor(store: Store, grid: str | None) -> str | None:
    """`grid` when named (ValueError when no eval configuration sets it), else the first of
    `GRID_FACTORS` with two levels or more, else None."""
    if grid is not None:
        if not grid_levels(store, grid):
            raise ValueError(f"grid factor {grid!r} is not a hyperparameter of any eval-stage "
                             "configuration of this store")
        return grid
    return next((f for f in GRID_FACTORS if len(grid_levels(store, f)) >= 2), None)


def curve_metrics(store: Store) -> dict[str, list[str]]:
    """Task label → the metrics its eval runs logged that are drawn as curves."""
    runs = store.runs[store.runs["stage"] == "eval"][["run_id", "task_label"]]
    logged = store.results[["run_id", "metric"]].drop_duplicates().merge(runs, on="run_id")
    logged = logged[logged["metric"].astype(str).str.startswith(CURVE_PREFIXES)]
    return {task: sorted(group["metric"].astype(str).unique())
            for task, group in logged.groupby("task_label", sort=True)}


def build_report(store: Store, *, grid: str | None = None, entity: str | None = None):
    """The W&B Report of the store's suite (`wandb_workspaces.reports.v2.Report`), unsaved.
    `entity` defaults to WANDB_ENTITY (empty: the API key's default entity, filled in on save)."""
    wr, expr = _wr()
    suite = store_suite(store)
    project = wandb_project(suite)
    entity = os.environ.get("WANDB_ENTITY", "") if entity is None else entity
    suites = sorted(store.runs["suite"].astype(str).unique())

    def runset(name: str, *filters, groupby: tuple[str, ...] = ()):
        return wr.Runset(entity=entity, project=project, name=name[:MAX_TITLE_CHARS],
                         filters=[expr.Config("suite").isin(suites), *filters], groupby=list(groupby))

    def curves(metrics: list[str]) -> list:
        return [wr.LinePlot(title=m, x=STEP_METRIC, y=[m], groupby_aggfunc="mean",
                            groupby_rangefunc="stderr", layout=wr.Layout(w=12, h=8))
                for m in metrics]

    eval_runs = expr.Metric("JobType") == "eval"
    by_config = ("config.config",)  # the configuration label the runner puts in each run's config
    blocks = [wr.H2("Verdict"),
              wr.P("Each configuration against its reference on the endpoint metric: paired "
                   "difference, interval and verdict, as in the report's verdict table."),
              wr.PanelGrid(runsets=[runset("analysis", expr.Metric("JobType") == ANALYSIS_JOB_TYPE)],
                           panels=[wr.WeavePanelSummaryTable(table_name=table_key("verdict"),
                                                             layout=wr.Layout(w=24, h=12))]),
              wr.H2("Curves per task"),
              wr.P("Eval runs, grouped by configuration: the mean over seeds with its standard "
                   f"error, against the training step ({STEP_METRIC}).")]
    for task, metrics in curve_metrics(store).items():
        blocks += [wr.H3(task),
                   wr.PanelGrid(runsets=[runset(task, eval_runs, expr.Metric("Group") == task,
                                                groupby=by_config)], panels=curves(metrics))]
    factor = grid_factor(store, grid)
    if factor is not None:
        blocks += [wr.H2(f"{factor} grid"),
                   wr.P(f"Per task, one panel grid per level of {factor}: the configurations at "
                        "that level, grouped by configuration.")]
        levels = grid_levels(store, factor)
        for task, metrics in curve_metrics(store).items():
            for level, configs in levels.items():
                blocks += [wr.H3(f"{task}: {factor} = {level}"),
                           wr.PanelGrid(runsets=[runset(f"{task} {factor}={level}", eval_runs,
                                                        expr.Metric("Group") == task,
                                                        expr.Config("config").isin(configs),
                                                        groupby=by_config)],
                                        panels=curves([m for m in metrics if m.startswith("val/")]))]
    return wr.Report(project=project, entity=entity, title=f"annealbench: {suite}"[:MAX_TITLE_CHARS],
                     description=f"Verdict and training curves of the suite {', '.join(suites)} "
                                 f"({len(store.runs)} runs in {store.root}).", blocks=blocks)


def save_report(report) -> str:
    """Save `report` to the W&B server and return its URL; `ReportNotSaved` naming why not."""
    reason = server_unavailable()
    if reason is not None:
        raise ReportNotSaved(f"W&B report not saved: {reason}")
    import wandb

    if not report.entity:
        report.entity = wandb.Api().default_entity
        for block in report.blocks:
            for runset in getattr(block, "runsets", []):
                runset.entity = runset.entity or report.entity
    try:
        report.save()
    except Exception as err:  # the server's answer, whatever its type: one line for the user
        raise ReportNotSaved(f"W&B report not saved: {type(err).__name__}: {err}") from err
    return report.url
