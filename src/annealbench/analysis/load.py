"""Loading and checking a results store (docs/architecture.md, `annealbench.runner` section).

The loader reads `runs.parquet`, `results.parquet` and `selection.json` only, with the columns
and run-id rules of `annealbench.common.store_schema` (the very module the runner writes with). A file that
is truncated, foreign (missing or mistyped columns) or inconsistent with the others raises
`StoreError` naming the file: it is never mixed silently into statistics. The analysis reads a
run's task, overrides and configuration from the spec columns, never out of its run id.

Tables that no longer describe the run folders beside them are refused too (`check_gathered`):
`gathered.json` records the state of every run folder at the last gather, and a store whose
folders differ (an interrupted sweep's new runs, a deleted folder, a truncated metrics file)
must be gathered again first. A store without finished run folders (tables copied elsewhere)
has nothing to compare and is read as it is.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from annealbench.common.errors import StoreError
from annealbench.common.store_schema import (GATHERED_FILE, OPTIONAL_RUN_COLUMNS, RESULT_COLUMNS, RUN_COLUMNS,
                                 STAGES, STATUSES, gathered_mismatch, parse_label, parse_run_id,
                                 run_fingerprints, task_label)

log = logging.getLogger(__name__)


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


def _read_parquet(path: Path, columns: dict[str, str], categories: tuple[str, ...] = (),
                  optional: tuple[str, ...] = ()) -> pd.DataFrame:
    if not path.is_file():
        raise StoreError(f"{path}: missing; a results store holds runs.parquet and results.parquet")
    try:
        table = pq.read_table(path, read_dictionary=[c for c in categories if c in pq.read_schema(path).names])
    except (pa.ArrowException, OSError) as err:
        raise StoreError(f"{path}: cannot be read as Parquet (truncated or not Parquet): {err}") from err
    schema = table.schema
    columns = {c: kind for c, kind in columns.items() if c in schema.names or c not in optional}
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise StoreError(f"{path}: not a results-store file, missing columns {missing}; "
                         f"expected {list(columns)}")
    wrong = [f"{c} ({schema.field(c).type}, expected {kind})" for c, kind in columns.items()
             if not _type_ok(kind, schema.field(c).type)]
    if wrong:
        raise StoreError(f"{path}: columns of the wrong type: {', '.join(wrong)}")
    return table.select(list(columns)).to_pandas()  # dictionary columns arrive as categoricals


def _lr_mismatch(id_lr: str, lr: float) -> str | None:
    try:
        same = math.isclose(float(id_lr), float(lr), rel_tol=1e-6)
    except ValueError:
        return f"lr {id_lr!r} in the run id is not a number"
    return None if same else f"lr {lr} ≠ {id_lr}"


def run_id_mismatch(row: Mapping[str, Any]) -> str | None:
    """Why the run id disagrees with the row's task, optimizer, config, lr and seed (None if it agrees)."""
    try:
        parsed = parse_run_id(row["run_id"])
    except ValueError as err:
        return str(err)
    if parsed.task != row["task"]:
        return f"task {row['task']!r} ≠ {parsed.task!r}"
    if parsed.optimizer != row["optimizer"]:
        return f"optimizer {row['optimizer']!r} ≠ {parsed.optimizer!r}"
    if parsed.seed != int(row["seed"]):
        return f"seed {row['seed']} ≠ {parsed.seed}"
    label = row.get("task_label")
    if label is not None and row["run_id"].split("/", 1)[0] != label:
        return f"task label {label!r} ≠ the run id's"
    try:
        optimizer, hparams = parse_label(row["config"], "config")
    except ValueError:
        optimizer, hparams = None, ()
    if optimizer != row["optimizer"]:
        return f"config {row['config']!r} does not name optimizer {row['optimizer']!r}"
    if parsed.hparams != hparams:
        return f"config {row['config']!r} ≠ the run id's configuration {row['run_id']!r}"
    return _lr_mismatch(parsed.lr, row["lr"]) if parsed.lr else None


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
    problems = [(row["run_id"], why) for row in runs.to_dict("records")
                if (why := run_id_mismatch(row)) is not None]
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


def _fill_optional(runs: pd.DataFrame) -> pd.DataFrame:
    """Columns an older store lacks, with their defaults; the task label from the spec columns."""
    for column, default in OPTIONAL_RUN_COLUMNS.items():
        if column not in runs.columns:
            runs[column] = default
    missing = runs["task_label"].isna()
    if missing.any():
        runs.loc[missing, "task_label"] = [
            task_label(task, json.loads(overrides or "{}"))
            for task, overrides in zip(runs.loc[missing, "task"], runs.loc[missing, "task_overrides"])]
    return runs


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


def check_gathered(root: Path) -> None:
    """Refuse tables that disagree with the run folders in `root/runs` (see the module docstring),
    naming what disagrees and the commands that fix it."""
    if not (root / "runs").is_dir():
        return  # the tables alone, copied elsewhere: nothing to compare them with
    fix = (f"`annealbench gather {root}` rebuilds them from the run folders (after "
           f"`annealbench status {root} --verify` to find damaged runs), or finish the sweep "
           f"with `annealbench run SUITE --out {root}`")
    path = root / GATHERED_FILE
    if not path.is_file():
        if not run_fingerprints(root / "runs"):
            return  # no finished run folder (tables copied elsewhere): nothing to compare
        raise StoreError(f"{path}: missing, so runs.parquet and results.parquet cannot be checked "
                         f"against the run folders in {root / 'runs'}; {fix}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise StoreError(f"{path}: not readable JSON ({err}); {fix}") from err
    if not isinstance(doc, dict):
        raise StoreError(f"{path}: expected a JSON object; {fix}")
    mismatch = gathered_mismatch(root, doc)
    if mismatch:
        raise StoreError(f"{root}: the tables are stale: {mismatch}; {fix}")


def load_store(root: str | Path, *, refuse_mixed_commits: bool = False) -> Store:
    """Read and check the store in `root`; raise StoreError naming the first bad file."""
    root = Path(root)
    if not root.is_dir():
        raise StoreError(f"{root}: not a directory; pass the results directory of a sweep")
    runs_path, results_path = root / "runs.parquet", root / "results.parquet"
    runs = _fill_optional(_read_parquet(runs_path, RUN_COLUMNS, optional=tuple(OPTIONAL_RUN_COLUMNS)))
    runs["git_dirty"] = runs["git_dirty"].astype(bool)
    _check_runs(runs, runs_path)
    # The analysis unit is the task label (`digits[hidden=64]`), which tells apart one task run
    # with different overrides; the registry name stays in `task_name`.
    runs.insert(runs.columns.get_loc("task") + 1, "task_name", runs["task"])
    runs["task"] = runs["task_label"]
    results = _read_parquet(results_path, RESULT_COLUMNS, categories=("run_id", "metric"))
    for col in ("run_id", "metric"):  # categories: millions of rows, few distinct strings
        results[col] = results[col].astype("category")
    results["step"] = results["step"].astype("int64")
    results["value"] = results["value"].astype("float64")
    _check_results(results, runs, results_path)
    check_gathered(root)
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
