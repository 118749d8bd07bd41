"""The loader refuses truncated, foreign and inconsistent files and names them (issue 6, points 5–6)."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

from annealbench.analysis.load import MixedCommitsWarning, StoreError, load_store, run_id_mismatch
from annealbench.common.store_schema import task_label
from tests.analysis.synthetic import Synthetic, write_store


@pytest.fixture
def root(tmp_path):
    return write_store(tmp_path / "store", Synthetic(n_seeds=3, diverged=(("digits", "muphi[window=linear]", 1, 500),)))


def test_a_valid_store_loads_with_every_run(root):
    store = load_store(root)
    assert len(store.runs) == 2 * 3 * 3
    assert set(store.runs["status"]) == {"done", "diverged"}
    assert store.selection["rule"].startswith("lowest")


def test_truncated_parquet_is_named_and_refused(root):
    path = root / "results.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match="results.parquet.*truncated"):
        load_store(root)


def test_foreign_parquet_is_named_and_refused(root):
    pd.DataFrame({"run_id": ["x"], "loss": [1.0]}).to_parquet(root / "results.parquet")
    with pytest.raises(StoreError, match=r"results.parquet: not a results-store file, missing columns \['step'"):
        load_store(root)


def test_mistyped_column_is_refused(root):
    runs = pd.read_parquet(root / "runs.parquet")
    runs["seed"] = runs["seed"].astype(str)
    runs.to_parquet(root / "runs.parquet")
    with pytest.raises(StoreError, match=r"runs.parquet: columns of the wrong type: seed"):
        load_store(root)


@pytest.mark.parametrize("column, value, message", [
    ("config", "muphi[window=cosine]", "does not match the run id"),
    ("seed", 7, "does not match the run id"),
    ("lr", 0.5, "does not match the run id"),
    ("status", "crashed", "status values"),
])
def test_a_row_that_disagrees_with_its_run_id_is_refused(root, column, value, message):
    runs = pd.read_parquet(root / "runs.parquet")
    runs.loc[0, column] = value
    runs.to_parquet(root / "runs.parquet")
    with pytest.raises(StoreError, match=f"runs.parquet.*{message}"):
        load_store(root)


def test_run_id_mismatch_explains_itself():
    row = pd.Series({"run_id": "digits/muphi[window=linear,lr=0.001]/seed=2", "task": "digits",
                     "optimizer": "muphi", "config": "muphi[window=linear]", "lr": 1e-3, "seed": 2})
    assert run_id_mismatch(row) is None
    assert "config" in run_id_mismatch(row.replace("muphi[window=linear]", "muphi[window=cosine]"))
    assert "task" in run_id_mismatch(pd.concat([row.drop("task"), pd.Series({"task": "lm"})]))


def test_metrics_of_unknown_runs_are_refused(root):
    results = pd.read_parquet(root / "results.parquet")
    extra = results.iloc[:3].assign(run_id="other/adamw[lr=0.1]/seed=0")
    pd.concat([results, extra]).to_parquet(root / "results.parquet")
    with pytest.raises(StoreError, match="results.parquet: metrics of 1 run.*absent from runs.parquet"):
        load_store(root)


def test_a_done_run_without_metrics_is_refused(root):
    results = pd.read_parquet(root / "results.parquet")
    first = results["run_id"].iloc[0]
    results[results["run_id"] != first].to_parquet(root / "results.parquet")
    with pytest.raises(StoreError, match="marked done in runs.parquet have no metrics"):
        load_store(root)


def test_invalid_selection_json_is_refused(root):
    (root / "selection.json").write_text("{not json")
    with pytest.raises(StoreError, match="selection.json: not valid JSON"):
        load_store(root)


def test_missing_store_files_are_named(tmp_path):
    with pytest.raises(StoreError, match="not a directory"):
        load_store(tmp_path / "absent")
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(StoreError, match="runs.parquet: missing"):
        load_store(tmp_path / "empty")


def test_mixed_commits_warn_and_can_be_refused(tmp_path):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2, commits=("a" * 40, "b" * 40)))
    with pytest.warns(MixedCommitsWarning, match="eval-stage runs mixes 2 git commits: aaaaaaaaaaaa, bbbbbbbbbbbb"):
        load_store(root)
    with pytest.raises(StoreError, match="refused"):
        load_store(root, refuse_mixed_commits=True)


def test_stages_from_different_commits_are_not_mixed_tables(tmp_path):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2, tune_lrs=(1e-2,)))
    runs = pd.read_parquet(root / "runs.parquet")
    runs.loc[runs["stage"] == "tune", "git_commit"] = "c" * 40
    runs.to_parquet(root / "runs.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MixedCommitsWarning)
        load_store(root, refuse_mixed_commits=True)


def test_hparams_that_are_not_json_are_refused(root):
    runs = pd.read_parquet(root / "runs.parquet")
    runs.loc[2, "hparams"] = "lr=0.1"
    runs.to_parquet(root / "runs.parquet")
    with pytest.raises(StoreError, match="runs.parquet: run .*seed=2: hparams is not a JSON object"):
        load_store(root)


def test_one_commit_gives_no_warning(root):
    with warnings.catch_warnings():
        warnings.simplefilter("error", MixedCommitsWarning)
        load_store(root, refuse_mixed_commits=True)


def test_selection_is_optional(root):
    (root / "selection.json").unlink()
    assert load_store(root).selection == {}


def _with_overrides(root, overrides: dict, *, in_column: bool = True) -> str:
    """Give the quadratic runs `overrides` (in the run id, and in the spec column if asked)."""
    runs = pd.read_parquet(root / "runs.parquet")
    results = pd.read_parquet(root / "results.parquet")
    quad = runs["task"] == "quadratic"
    label = task_label("quadratic", overrides)
    new_ids = dict(zip(runs.loc[quad, "run_id"], runs.loc[quad, "run_id"].str.replace("quadratic/", f"{label}/", regex=False)))
    runs["run_id"] = runs["run_id"].replace(new_ids)
    results["run_id"] = results["run_id"].replace(new_ids)
    if in_column:
        runs["task_overrides"] = "{}"
        runs.loc[quad, "task_overrides"] = json.dumps(overrides)
    runs.to_parquet(root / "runs.parquet")
    results.to_parquet(root / "results.parquet")
    return label


def test_task_overrides_make_separate_tasks(root):
    _with_overrides(root, {"dim": 8})
    store = load_store(root)
    assert set(store.runs["task"]) == {"digits", "quadratic[dim=8]"}
    assert set(store.runs["task_name"]) == {"digits", "quadratic"}


def test_an_override_with_slashes_is_one_task_read_from_the_spec_columns(root):
    label = _with_overrides(root, {"text_path": "/data/x,y[1]=2.txt", "data_dir": "/cache"})
    store = load_store(root)
    assert set(store.runs["task"]) == {"digits", label}
    assert "/" not in label and "text_path=%2Fdata%2Fx%2Cy%5B1%5D%3D2.txt" in label
    assert set(store.runs["task_name"]) == {"digits", "quadratic"}


def test_overrides_in_the_run_id_but_not_in_the_spec_columns_are_refused(root):
    _with_overrides(root, {"dim": 8}, in_column=False)
    with pytest.raises(StoreError, match="runs.parquet: .* does not match the run id.*task label"):
        load_store(root)
