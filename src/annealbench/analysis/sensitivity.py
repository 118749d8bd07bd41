"""Learning-rate sensitivity from the tune stage (stage 1): the final value at every learning rate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from annealbench.analysis.curves import FINAL_LAST_K, _by_run
from annealbench.analysis.load import Store

COLUMNS = ["task", "config", "lr", "runs", "done", "diverged", "failed", "final_median"]


def lr_sensitivity(store: Store, metric: str | None = None) -> pd.DataFrame:
    """One row per (task, config, lr) of the tune stage: run counts by status and the median over
    completed seeds of the final value (mean of the last FINAL_LAST_K finite evaluations).

    `metric` None: the metric the learning rate was selected on (selection.json; val/loss)."""
    if metric is None:
        metric = store.selection.get("metric", "val/loss")
    runs = store.runs[store.runs["stage"] == "tune"]
    if runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = store.results[(store.results["metric"] == metric) & store.results["run_id"].isin(runs["run_id"])]
    by_run = _by_run(rows)
    finals = {}
    for rid in runs.loc[runs["status"] == "done", "run_id"]:
        values = by_run.get(rid, (None, np.zeros(0)))[1]
        values = values[np.isfinite(values)]
        finals[rid] = values[-FINAL_LAST_K:].mean() if values.size else np.nan
    runs = runs.assign(final=runs["run_id"].map(finals).astype(float))
    out = (runs.groupby(["task", "config", "lr"], as_index=False)
           .agg(runs=("run_id", "size"), done=("status", lambda s: int((s == "done").sum())),
                diverged=("status", lambda s: int((s == "diverged").sum())),
                failed=("status", lambda s: int((s == "failed").sum())), final_median=("final", "median")))
    return out[COLUMNS]
