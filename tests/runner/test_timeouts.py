"""A run past its time limit is killed, recorded `failed: timeout`, retried, and the sweep finishes.

The tasks registry offers no way to add a task from outside `tasks/` (its table is private and a
spawned worker would not see a test's registration anyway), so a hung run is made at the process
level: its worker is stopped with SIGSTOP the moment it starts the run — a process that makes no
progress at all, as a run stuck on a dead file system would be.
"""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest

from annealbench.runner.store.atomic import read_json
from annealbench.runner.run.execute import RunOptions
from annealbench.runner.launch.pool import WorkerPool
from annealbench.runner.run.job import Job
from annealbench.runner.run.provenance import environment
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.store.results_store import ResultsStore
from tests.runner.helpers import run_bench


def spec(task: str = "quadratic", seed: int = 10) -> RunSpec:
    return RunSpec(suite="t", stage="eval", task=task, preset="smoke", task_overrides=(),
                   optimizer="adamw", hparams=(("window", "cosine"),), lr=1e-2, seed=seed)


def test_a_hung_run_is_killed_at_its_limit_and_recorded_timeout(tmp_path):
    store = ResultsStore(tmp_path / "out")
    store.ensure_writable()
    hung, healthy = spec(seed=11), [spec(seed=10)]
    jobs = [Job.of(hung, store.folder(hung).path, timeout_s=3.0)]
    jobs += [Job.of(s, store.folder(s).path, timeout_s=300.0) for s in healthy]
    finished = []
    with WorkerPool(2, 1, environment()) as pool:
        def on_event(kind, job, outcome):
            if kind == "started" and job.spec == hung:
                worker = next(w for w in pool._workers if w.job and job in w.job.members)
                os.kill(worker.proc.pid, signal.SIGSTOP)  # no progress from here on
            if kind == "finished":
                finished.append(job.spec.run_id)
        outcomes = pool.run(jobs, RunOptions(wandb="disabled"), on_event)
    assert outcomes[hung.run_id].status == "failed"
    assert outcomes[hung.run_id].reason == "timeout"
    assert "past its limit of 3 s" in outcomes[hung.run_id].error
    assert all(outcomes[s.run_id].status == "done" for s in healthy)  # the pool carried on
    assert sorted(finished) == sorted(j.spec.run_id for j in jobs)
    record = read_json(store.folder(hung).failed_file)
    assert record["reason"] == "timeout" and record["attempts"] == 1
    runs = store.gather([hung, *healthy]).set_index("run_id")
    assert runs.loc[hung.run_id, "status"] == "failed"
    assert runs.loc[hung.run_id, "failure_reason"] == "timeout"
    assert set(runs.loc[[s.run_id for s in healthy], "failure_reason"]) == {""}


SLOW = """
name: slow
preset: smoke
tasks:
  - {name: quadratic, overrides: {max_steps: 100000000, val_every: 50000000}}
optimizers:
  - {name: adamw, hparams: {window: cosine}, lr: [1.0e-2]}
seeds: {eval: [10]}
"""


@pytest.mark.slow  # two sweeps, each starting a worker and waiting out the limit
def test_bench_run_timeout_records_the_run_finishes_the_sweep_and_retries(tmp_path):
    (tmp_path / "slow.yaml").write_text(SLOW)
    out = tmp_path / "out"
    args = ("run", str(tmp_path / "slow.yaml"), "--out", str(out), "--workers", "1",
            "--wandb", "disabled", "--run-timeout", "5")
    first = run_bench(*args, "--max-retries", "1", timeout=240)
    assert first.returncode == 1, first.stderr[-3000:]  # a failed run: exit status 1
    runs = pd.read_parquet(out / "runs.parquet").set_index("task")
    assert len(runs) == 1  # the sweep finished and gathered its tables
    assert runs.loc["quadratic", "status"] == "failed"
    assert runs.loc["quadratic", "failure_reason"] == "timeout"
    assert runs.loc["quadratic", "error"].startswith("Timeout:")
    second = run_bench(*args, "--max-retries", "1", timeout=240)  # retried: 1 failure ≤ 1 retry
    assert second.returncode == 1
    failed = [read_json(p) for p in out.glob("runs/*/FAILED")]
    assert len(failed) == 1 and failed[0]["attempts"] == 2 and failed[0]["reason"] == "timeout"
    assert "(0 finished earlier)" in second.stdout
