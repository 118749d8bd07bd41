"""The results store: atomic writes, a full disk, markers, locks, and `verify`."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import annealbench.runner.store.atomic
from annealbench.runner.store.atomic import atomic_write_bytes, atomic_write_parquet, read_parquet
from annealbench.runner.errors import LockedError, StoreError
from annealbench.runner.store.lock import results_lock
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.store.status import verify
from annealbench.runner.store.results_store import Outcome, ResultsStore, stray_temporaries

ROOT = Path(__file__).resolve().parents[2]


def spec(seed: int = 1) -> RunSpec:
    return RunSpec(suite="s", stage="eval", task="quadratic", preset="smoke", task_overrides=(),
                   optimizer="muphi", hparams=(("window", "linear"),), lr=1e-2, seed=seed)


def metrics(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame({"step": range(n), "metric": ["val/loss"] * n,
                         "value": [1.0 / (k + 1) for k in range(n)]})


def finished_store(tmp_path: Path, seeds=(1, 2)) -> ResultsStore:
    store = ResultsStore(tmp_path / "out")
    store.ensure_writable()
    for seed in seeds:
        folder = store.folder(spec(seed))
        folder.start(spec(seed), keep_checkpoints=False)
        folder.finish(metrics(), {"git_commit": "abc", "git_dirty": True},
                      Outcome("done", max_steps=5, wall_time_s=0.5))
    store.gather([spec(s) for s in seeds])
    return store


def full_disk(after_bytes: int):
    """An `os.write` replacement that writes `after_bytes`, then fails like a full disk."""
    def write_all(fd, data):
        os.write(fd, bytes(data[:after_bytes]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return write_all


def test_atomic_write_replaces_whole(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert stray_temporaries(tmp_path) == []


def test_full_disk_keeps_old_file_and_leaves_no_partial(tmp_path, monkeypatch):
    target = tmp_path / "results.parquet"
    atomic_write_parquet(target, metrics(3))
    before = target.read_bytes()
    monkeypatch.setattr(annealbench.runner.store.atomic, "_write_all", full_disk(10))
    with pytest.raises(StoreError, match="No space left") as err:
        atomic_write_parquet(target, metrics(1000))
    assert str(target) in str(err.value)
    assert target.read_bytes() == before
    assert list(tmp_path.iterdir()) == [target]


def test_full_disk_during_gather_leaves_tables_unchanged(tmp_path, monkeypatch):
    store = finished_store(tmp_path)
    tables = {n: (store.root / n).read_bytes() for n in ("runs.parquet", "results.parquet")}
    monkeypatch.setattr(annealbench.runner.store.atomic, "_write_all", full_disk(100))
    with pytest.raises(StoreError):
        store.gather([spec(1), spec(2), spec(3)])
    monkeypatch.undo()
    assert {n: (store.root / n).read_bytes() for n in tables} == tables
    assert verify(store.root) == []


def test_full_disk_before_marker_leaves_run_unfinished(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path / "out")
    store.ensure_writable()
    folder = store.folder(spec())
    folder.start(spec(), keep_checkpoints=False)
    monkeypatch.setattr(annealbench.runner.store.atomic, "_write_all", full_disk(0))
    with pytest.raises(StoreError):
        folder.finish(metrics(), {}, Outcome("done", max_steps=5))
    monkeypatch.undo()
    assert folder.state() == "unfinished" and not folder.done_file.exists()


def test_gathered_tables_have_contract_types(tmp_path):
    store = finished_store(tmp_path)
    runs = read_parquet(store.root / "runs.parquet")
    results = read_parquet(store.root / "results.parquet")
    assert list(runs["run_id"]) == [spec(1).run_id, spec(2).run_id]
    assert runs["status"].tolist() == ["done", "done"]
    assert runs["git_dirty"].dtype == bool and runs["diverged_step"].isna().all()
    assert str(results["step"].dtype) == "int64" and str(results["value"].dtype) == "float64"
    assert len(results) == 10


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="not writable"):
        ResultsStore(blocker / "out").ensure_writable()
    # A directory this user cannot write to. Root ignores permission bits, so as root (how CI
    # runs) it is sysfs, where not even root may create a directory.
    if os.geteuid() != 0:
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
    else:
        locked = Path("/sys")
    with pytest.raises(StoreError, match=f"{locked}/out is not writable"):
        ResultsStore(locked / "out").ensure_writable()


def test_failed_attempts_are_counted_and_cleared_by_success(tmp_path):
    store = ResultsStore(tmp_path)
    folder = store.folder(spec())
    folder.start(spec(), keep_checkpoints=False)
    assert folder.fail("RuntimeError: boom", {}, 0.1) == 1
    folder.start(spec(), keep_checkpoints=False)
    assert folder.state() == "failed" and folder.fail("again", {}, 0.1) == 2
    folder.start(spec(), keep_checkpoints=False)
    folder.finish(metrics(), {}, Outcome("done", max_steps=5))
    assert folder.state() == "done" and folder.attempts() == 0


def test_verify_detects_corruption(tmp_path):
    store = finished_store(tmp_path, seeds=(1, 2, 3))
    assert verify(store.root) == []
    runs_dir = store.runs_dir
    # a truncated metrics file
    m = runs_dir / spec(1).key / "metrics.parquet"
    m.write_bytes(m.read_bytes()[:40])
    # a run folder without its marker
    (runs_dir / spec(2).key / "DONE").unlink()
    # a config edited after the fact: it no longer matches its run id
    s3 = runs_dir / spec(3).key / "spec.json"
    s3.write_text(s3.read_text().replace('"linear"', '"cosine"'))
    # a truncated table and a stray temporary file
    t = store.root / "results.parquet"
    t.write_bytes(t.read_bytes()[:-30])
    (store.root / ".runs.parquet.tmp-1-ab").write_bytes(b"x")
    problems = "\n".join(verify(store.root))
    assert "metrics.parquet is not a readable Parquet file" in problems
    assert "no DONE marker" in problems
    assert "does not match the folder" in problems
    assert "results.parquet is not a readable Parquet file" in problems
    assert "left by an interrupted write" in problems
    assert f"lists {spec(2).run_id!r} as finished" in problems


HOLDER = """
import sys, time
from annealbench.runner.store.lock import results_lock
with results_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_lock_refuses_then_takes_over_from_dead_holder(tmp_path, caplog):
    tmp_path.mkdir(exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=f"pid {holder.pid}"):
            with results_lock(tmp_path):
                pass
        t0 = time.perf_counter()
        with pytest.raises(LockedError):
            with results_lock(tmp_path, timeout_s=0.5):
                pass
        assert time.perf_counter() - t0 >= 0.5  # it waited before refusing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with caplog.at_level("WARNING", logger="annealbench.runner.store.lock"):
        with results_lock(tmp_path):
            pass
    assert f"from pid {holder.pid}" in caplog.text
