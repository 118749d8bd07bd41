"""Loading and checking a results store (docs/architecture.md, `bench/` section).

The loader reads `runs.parquet`, `results.parquet` and `selection.json` only. A file that is
truncated, foreign (missing or mistyped columns) or inconsistent with the others raises
`StoreError` naming the file: it is never mixed silently into statistics.
"""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

RUN_COLUMNS: dict[str, str] = {
    "run_id": "string", "suite": "string", "stage": "string", "task": "string",
    "preset": "string", "optimizer": "string", "config": "string", "lr": "float",
    "seed": "integer", "derived_seed": "integer", "hparams": "string", "status": "string",
    "diverged_step": "float", "max_steps": "integer", "wall_time_s": "float",
    "git_commit": "string", "git_dirty": "bool", "provenance": "string", "error": "string",
}
RESULT_COLUMNS: dict[str, str] = {
    "run_id": "string", "step": "integer", "metric": "string", "value": "float",
}
STATUSES = ("done", "diverged", "failed")
STAGES = ("tune", "eval")


class StoreError(ValueError):
    """A results store that cannot be analysed as it is; the message names the file."""


class MixedCommitsWarning(UserWarning):
    """The runs of one analysis come from more than one git commit."""


@dataclass(frozen=True)
class Store:
    """A checked results store: the run table, the tidy metrics and stage 1's selection."""

    root: Path
    runs: pd.DataFrame  # one row per run, columns RUN_COLUMNS (+ task_name; `task` is the task label)
    results: pd.DataFrame  # tidy rows of `done` and `diverged` runs, columns RESULT_COLUMNS
    selection: dict  # selection.json, {} when absent


def _type_ok(kind: str, dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if kind == "string":
        return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_null(dtype)
    if kind == "float":
        return pa.types.is_floating(dtype) or pa.types.is_integer(dtype) or pa.types.is_null(dtype)
    if kind == "integer":
        return pa.types.is_integer(dtype)
    return pa.types.is_boolean(dtype)


def _read_parquet(path: Path, columns: dict[str, str], categories: tuple[str, ...] = ()) -> pd.DataFrame:
    if not path.is_file():
        raise StoreError(f"{path}: missing; a results store holds runs.parquet and results.parquet")
    try:
        table = pq.read_table(path, read_dictionary=[c for c in categories if c in pq.read_schema(path).names])
    except (pa.ArrowException, OSError) as err:
        raise StoreError(f"{path}: cannot be read as Parquet (truncated or not Parquet): {err}") from err
    schema = table.schema
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise StoreError(f"{path}: not a results-store file, missing columns {missing}; "
                         f"expected {list(columns)}")
    wrong = [f"{c} ({schema.field(c).type}, expected {kind})" for c, kind in columns.items()
             if not _type_ok(kind, schema.field(c).type)]
    if wrong:
        raise StoreError(f"{path}: columns of the wrong type: {', '.join(wrong)}")
    return table.select(list(columns)).to_pandas()  # dictionary columns arrive as categoricals


_RUN_ID = re.compile(r"^(?P<task>[^/]+)/(?P<opt>[^/\[]+)(?:\[(?P<items>[^\]]*)\])?/seed=(?P<seed>-?\d+)$")


def _items(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    return dict(part.split("=", 1) if "=" in part else (part, "") for part in text.split(","))


def run_id_mismatch(row: pd.Series) -> str | None:
    """Why the run id disagrees with the row's task, optimizer, config, lr and seed (None if it agrees)."""
    match = _RUN_ID.match(row["run_id"])
    if match is None:
        return "run id is not task/optimizer[k=v,...]/seed=S"
    if match["task"].split("[")[0] != row["task"]:  # the id carries the task label: task[overrides]
        return f"task {row['task']!r} ≠ {match['task']!r}"
    if match["opt"] != row["optimizer"]:
        return f"optimizer {row['optimizer']!r} ≠ {match['opt']!r}"
    if int(match["seed"]) != int(row["seed"]):
        return f"seed {row['seed']} ≠ {match['seed']}"
    config = re.match(r"^(?P<opt>[^\[]+)(?:\[(?P<items>[^\]]*)\])?$", row["config"])
    if config is None or config["opt"] != row["optimizer"]:
        return f"config {row['config']!r} does not name optimizer {row['optimizer']!r}"
    id_items = _items(match["items"])
    id_lr = id_items.pop("lr", None)
    if id_items != _items(config["items"]):
        return f"config {row['config']!r} ≠ run id's {match['items']!r}"
    if id_lr is not None:
        try:
            same = math.isclose(float(id_lr), float(row["lr"]), rel_tol=1e-6)
        except ValueError:
            return f"lr {id_lr!r} in the run id is not a number"
        if not same:
            return f"lr {row['lr']} ≠ {id_lr}"
    return None


def _check_runs(runs: pd.DataFrame, path: Path) -> None:
    dup = runs["run_id"][runs["run_id"].duplicated()].unique()
    if len(dup):
        raise StoreError(f"{path}: run ids appear more than once: {list(dup[:5])}")
    for col, allowed in (("status", STATUSES), ("stage", STAGES)):
        bad = sorted(set(runs[col]) - set(allowed))
        if bad:
            raise StoreError(f"{path}: {col} values {bad} are not allowed; allowed: {list(allowed)}")
    for rid, text in zip(runs["run_id"], runs["hparams"]):
        try:
            ok = isinstance(json.loads(text), dict)
        except (TypeError, json.JSONDecodeError):
            ok = False
        if not ok:
            raise StoreError(f"{path}: run {rid}: hparams is not a JSON object: {str(text)[:80]!r}")
    problems = [(rid, why) for rid, why in zip(runs["run_id"], runs.apply(run_id_mismatch, axis=1))
                if why is not None]
    if problems:
        listed = "; ".join(f"{rid}: {why}" for rid, why in problems[:5])
        raise StoreError(f"{path}: {len(problems)} run(s) whose row does not match the run id: {listed}")


def _has_duplicates(results: pd.DataFrame) -> bool:
    """Whether some (run_id, metric, step) repeats; sort-based on integer codes (fast on millions of rows)."""
    run = results["run_id"].cat.codes.to_numpy(np.int64)
    metric = results["metric"].cat.codes.to_numpy(np.int64)
    step = results["step"].to_numpy(np.int64)
    order = np.lexsort((step, metric, run))
    same = ((np.diff(run[order]) == 0) & (np.diff(metric[order]) == 0) & (np.diff(step[order]) == 0))
    return bool(same.any())


def _check_results(results: pd.DataFrame, runs: pd.DataFrame, path: Path) -> None:
    known = set(runs["run_id"])
    logged = set(results["run_id"].cat.remove_unused_categories().cat.categories)
    foreign = sorted(logged - known)
    if foreign:
        raise StoreError(f"{path}: metrics of {len(foreign)} run(s) absent from runs.parquet: {foreign[:5]}")
    failed = sorted(logged & set(runs.loc[runs["status"] == "failed", "run_id"]))
    if failed:
        raise StoreError(f"{path}: metrics of failed runs, which the store never records: {failed[:5]}")
    silent = sorted(set(runs.loc[runs["status"] == "done", "run_id"]) - logged)
    if silent:
        raise StoreError(f"{path}: {len(silent)} run(s) marked done in runs.parquet have no metrics: {silent[:5]}")
    if _has_duplicates(results):
        raise StoreError(f"{path}: a (run_id, metric, step) appears more than once")


def check_commits(runs: pd.DataFrame, *, refuse: bool, what: str) -> None:
    """Warn (or, with `refuse`, raise) when `runs` come from several git commits or a dirty tree."""
    commits = sorted(runs["git_commit"].dropna().unique())
    if len(commits) > 1:
        message = f"{what} mixes {len(commits)} git commits: {', '.join(c[:12] for c in commits)}"
        if refuse:
            raise StoreError(message + " (refused: --refuse-mixed-commits)")
        warnings.warn(message, MixedCommitsWarning, stacklevel=2)
        log.warning(message)
    if runs["git_dirty"].any():
        log.warning("%s: %d run(s) were made from a git tree with uncommitted changes",
                    what, int(runs["git_dirty"].sum()))


def load_store(root: str | Path, *, refuse_mixed_commits: bool = False) -> Store:
    """Read and check the store in `root`; raise StoreError naming the first bad file."""
    root = Path(root)
    if not root.is_dir():
        raise StoreError(f"{root}: not a directory; pass the results directory of a sweep")
    runs_path, results_path = root / "runs.parquet", root / "results.parquet"
    runs = _read_parquet(runs_path, RUN_COLUMNS)
    runs["git_dirty"] = runs["git_dirty"].astype(bool)
    _check_runs(runs, runs_path)
    # The analysis unit is the task label of the run id (`digits[hidden=64]`), which tells apart one
    # task run with different overrides; the registry name stays in `task_name`.
    runs.insert(runs.columns.get_loc("task") + 1, "task_name", runs["task"])
    runs["task"] = runs["run_id"].str.split("/", n=1).str[0]
    results = _read_parquet(results_path, RESULT_COLUMNS, categories=("run_id", "metric"))
    for col in ("run_id", "metric"):  # categories: millions of rows, few distinct strings
        results[col] = results[col].astype("category")
    results["step"] = results["step"].astype("int64")
    results["value"] = results["value"].astype("float64")
    _check_results(results, runs, results_path)
    selection_path = root / "selection.json"
    selection: dict = {}
    if selection_path.is_file():
        try:
            selection = json.loads(selection_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise StoreError(f"{selection_path}: not valid JSON: {err}") from err
        if not isinstance(selection, dict):
            raise StoreError(f"{selection_path}: expected a JSON object, got {type(selection).__name__}")
    else:
        log.info("%s: absent; the report shows no stage-1 selection", selection_path)
    for stage, stage_runs in runs.groupby("stage", sort=True):  # each stage is analysed as one table
        check_commits(stage_runs, refuse=refuse_mixed_commits, what=f"{runs_path}: {stage}-stage runs")
    return Store(root=root, runs=runs, results=results, selection=selection)
