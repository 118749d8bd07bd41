"""Crashes and dying workers become `failed` runs with their error; retries happen on resume."""

from __future__ import annotations

import os
import signal

import pandas as pd

from annealbench import cli
from annealbench.runner.run.execute import RunOptions
from annealbench.runner.launch.pool import WorkerPool
from annealbench.runner.run.job import Job
from annealbench.runner.run.provenance import environment
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.store.results_store import ResultsStore
from annealbench.runner.suite.suite import load_suite
from annealbench.runner.sweep import SweepOptions, cpu_count, run_sweep
from annealbench.common.store_schema import folder_name
from tests.runner.helpers import TINY_SUITE


def spec(task="quadratic", seed=10, **hparams) -> RunSpec:
    hp = hparams or {"window": "cosine"}
    return RunSpec(suite="smoke", stage="eval", task=task, preset="smoke", task_overrides=(),
                   optimizer="adamw", hparams=tuple(sorted(hp.items())), lr=1e-2, seed=seed)


def test_crash_and_worker_death_are_recorded_and_retried(tmp_path):
    store = ResultsStore(tmp_path / "out")
    store.ensure_writable()
    broken = spec(window="no-such-window")  # passes no check: it raises inside the run
    victim = spec(task="diabetes", seed=11)  # its worker is killed while it runs
    healthy = [spec(seed=10), spec(task="diabetes", seed=10)]
    jobs = [Job.of(s, store.folder(s).path) for s in [broken, victim, *healthy]]
    events = []
    with WorkerPool(2, 1, environment()) as pool:
        def on_event(kind, job, outcome):
            events.append((kind, job.spec.run_id))
            if kind == "started" and job.spec == victim:
                worker = next(w for w in pool._workers if w.job and job in w.job.members)
                os.kill(worker.proc.pid, signal.SIGKILL)
        outcomes = pool.run(jobs, RunOptions(wandb="disabled"), on_event)
    assert outcomes[broken.run_id].status == "failed"
    assert "no-such-window" in outcomes[broken.run_id].error
    assert "Traceback" in outcomes[broken.run_id].error
    assert outcomes[victim.run_id].status == "failed"
    assert "SIGKILL" in outcomes[victim.run_id].error
    assert all(outcomes[s.run_id].status == "done" for s in healthy)  # the others carried on
    assert store.folder(victim).state() == "failed" and store.folder(victim).attempts() == 1
    assert sum(k == "finished" for k, _ in events) == len(jobs)


def test_failed_run_is_retried_on_the_next_run_up_to_max_retries(tmp_path, capsys):
    """A real sweep; one run's record says two attempts failed; later `annealbench run`s retry it."""
    (tmp_path / "tiny.yaml").write_text(TINY_SUITE)
    suite = load_suite(tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    first = run_sweep(suite, SweepOptions(out=out, workers=1, wandb="disabled"))
    # The utilisation is measured (its value depends on the machine's load, so no window on it).
    assert first.cpu_utilisation is not None and first.cpu_utilisation > 0, first.line
    assert f"% CPU of {cpu_count()} cores" in first.line
    runs = pd.read_parquet(out / "runs.parquet")
    target = runs[runs.stage == "eval"].iloc[0]
    folder = out / "runs" / folder_name(target["run_id"])
    (folder / "DONE").unlink()  # pretend its attempts failed: record two real failures
    from annealbench.runner.store.results_store import RunFolder

    RunFolder(folder).fail("WorkerDied: exit code -9", {}, 1.0)
    RunFolder(folder).fail("WorkerDied: exit code -9", {}, 1.0)
    summary = run_sweep(suite, SweepOptions(out=out, workers=1, wandb="disabled", max_retries=1))
    assert summary.counts["failed"] == 1  # 2 failures > 1 retry: left failed, not rerun
    runs = pd.read_parquet(out / "runs.parquet").set_index("run_id")
    assert runs.loc[target["run_id"], "status"] == "failed"
    assert "WorkerDied" in runs.loc[target["run_id"], "error"]
    results = pd.read_parquet(out / "results.parquet")
    assert target["run_id"] not in set(results["run_id"])  # a failed run has no rows
    assert cli.main(["status", str(out)]) == 0
    listing = capsys.readouterr().out
    assert f"failed     {target['run_id']}  WorkerDied: exit code -9" in listing
    summary = run_sweep(suite, SweepOptions(out=out, workers=1, wandb="disabled", max_retries=2))
    assert summary.counts.get("failed", 0) == 0 and summary.skipped == len(runs) - 1
    assert pd.read_parquet(out / "runs.parquet").set_index("run_id").loc[
        target["run_id"], "status"] == "done"
