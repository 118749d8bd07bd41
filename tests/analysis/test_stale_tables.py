"""Tables that no longer describe their run folders are refused, naming the fix (issue: stale tables).

The stores here are written by the runner's own store code (`annealbench.runner.store.results_store`), run by run, without
training: what matters is which folders exist and what they hold when the analysis reads them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from annealbench.cli import main as analysis_main
from annealbench.analysis.load import StoreError, load_store
from annealbench.cli import main as bench_main
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.store.results_store import Outcome, ResultsStore

GATHERED_FILE = "gathered.json"  # annealbench.common.store_schema.GATHERED_FILE, spelled out as documented


def spec(seed: int) -> RunSpec:
    return RunSpec(suite="s", stage="eval", task="quadratic", preset="smoke", task_overrides=(),
                   optimizer="muphi", hparams=(("window", "linear"),), lr=1e-2, seed=seed)


def finish(store: ResultsStore, seed: int, steps: int = 5) -> None:
    folder = store.folder(spec(seed))
    folder.start(spec(seed), keep_checkpoints=False)
    rows = pd.DataFrame({"step": range(1, steps + 1), "metric": ["val/loss"] * steps,
                         "value": [1.0 / k for k in range(1, steps + 1)]})
    folder.finish(rows, {"git_commit": "a" * 40, "git_dirty": False},
                  Outcome("done", max_steps=steps, wall_time_s=0.1))


def gathered_store(tmp_path: Path, seeds=(1, 2)) -> ResultsStore:
    store = ResultsStore(tmp_path / "out")
    store.ensure_writable()
    for seed in seeds:
        finish(store, seed)
    store.gather([spec(s) for s in seeds])
    return store


def test_a_freshly_gathered_store_loads(tmp_path):
    store = gathered_store(tmp_path)
    assert json.loads((store.root / GATHERED_FILE).read_text())["runs"]
    assert len(load_store(store.root).runs) == 2


def test_an_interrupted_extension_is_refused_then_gathered(tmp_path, capsys):
    """A sweep that added runs 3-16 stopped before gathering: n = 2 would be analysed."""
    store = gathered_store(tmp_path)
    for seed in range(3, 17):
        finish(store, seed)
    with pytest.raises(StoreError, match=r"stale: 14 finished run folder\(s\) not gathered .*"
                                         r"annealbench gather .*annealbench status .* --verify"):
        load_store(store.root)
    assert bench_main(["gather", str(store.root)]) == 0
    assert len(load_store(store.root).runs) == 16


def test_a_deleted_run_folder_is_refused(tmp_path):
    store = gathered_store(tmp_path)
    shutil.rmtree(store.folder(spec(2)).path)
    with pytest.raises(StoreError, match=r"1 gathered run folder\(s\) deleted or restarted "
                                         rf"\({store.folder(spec(2)).path.name}\)"):
        load_store(store.root)


def test_a_restarted_run_is_refused(tmp_path):
    store = gathered_store(tmp_path)
    store.folder(spec(1)).start(spec(1), keep_checkpoints=False)  # a new attempt, in progress
    with pytest.raises(StoreError, match="deleted or restarted"):
        load_store(store.root)


def test_a_truncated_metrics_file_is_refused(tmp_path):
    store = gathered_store(tmp_path)
    metrics = store.folder(spec(1)).metrics_file
    os.truncate(metrics, metrics.stat().st_size // 2)
    with pytest.raises(StoreError, match=r"1 run folder\(s\) whose marker or metrics.parquet changed"):
        load_store(store.root)
    with pytest.raises(OSError, match="metrics.parquet is not a readable Parquet file"):
        ResultsStore(store.root).gather([spec(1), spec(2)])  # the fix names the damaged file


def test_a_rewritten_metrics_file_of_the_same_size_is_refused(tmp_path):
    store = gathered_store(tmp_path)
    metrics = store.folder(spec(1)).metrics_file
    stat = metrics.stat()
    os.utime(metrics, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(StoreError, match="changed since"):
        load_store(store.root)


def test_tables_written_by_something_else_are_refused(tmp_path):
    store = gathered_store(tmp_path)
    for name in ("runs.parquet", "results.parquet"):  # a consistent pair that drops a run
        table = pd.read_parquet(store.root / name)
        table[table["run_id"] != spec(2).run_id].to_parquet(store.root / name, index=False)
    with pytest.raises(StoreError, match="differs from what the last gather wrote"):
        load_store(store.root)


def test_a_store_gathered_without_a_record_is_refused(tmp_path):
    store = gathered_store(tmp_path)
    (store.root / GATHERED_FILE).unlink()
    with pytest.raises(StoreError, match=r"gathered.json: missing.*annealbench gather"):
        load_store(store.root)


def test_tables_without_run_folders_load_as_they_are(tmp_path):
    store = gathered_store(tmp_path)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("runs.parquet", "results.parquet"):
        shutil.copy(store.root / name, copy / name)
    assert len(load_store(copy).runs) == 2


def test_the_report_refuses_stale_tables_in_one_line(tmp_path, capsys):
    store = gathered_store(tmp_path)
    finish(store, 3)
    assert analysis_main(["report", str(store.root), "--no-wandb"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "not gathered" in err and "annealbench gather" in err


def test_checking_two_thousand_run_folders_is_cheap(tmp_path):
    """The check is stat calls only: 2,000 run folders in well under a second."""
    store = gathered_store(tmp_path, seeds=(1,))
    template = store.folder(spec(1)).path
    for k in range(2, 2001):
        shutil.copytree(template, store.runs_dir / f"copy-{k}")
    store.gather([spec(1)])  # the record covers every folder, in the suite or not
    from annealbench.analysis.load import check_gathered

    started = time.perf_counter()
    check_gathered(store.root)
    assert time.perf_counter() - started < 1.0
