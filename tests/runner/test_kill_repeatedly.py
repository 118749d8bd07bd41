"""Issue 6.1: a sweep SIGKILLed ≥ 20 times at random moments, then resumed, equals a clean one."""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pandas as pd
import pytest

from annealbench.runner.store.atomic import read_parquet
from tests.runner.helpers import ROOT, bench_cmd, bench_env, comparable_results, run_bench

KILLS = 20
# One seed per run: twelve separate runs give the kills many moments between two finished runs
# (a killed run group is tested in tests/runner/test_groups.py).
ONE_SEED = ("--seed-batch", "1")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_twenty_random_kills_then_resume(tmp_path):
    reference = tmp_path / "reference"
    started = time.monotonic()
    clean = run_bench("run", "smoke", "--out", str(reference), "--workers", "2",
                      "--wandb", "disabled", *ONE_SEED)
    assert clean.returncode == 0, clean.stderr[-2000:]
    clean_s = time.monotonic() - started  # kills land from start-up on; progress accumulates
    out = tmp_path / "killed"
    rng = random.Random(20261128)
    finished_between = []
    for _ in range(KILLS):
        proc = subprocess.Popen(bench_cmd("run", "smoke", "--out", str(out), "--workers", "2",
                                          "--wandb", "disabled", *ONE_SEED), cwd=ROOT, env=bench_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, clean_s))  # start-up alone can take most of a clean sweep
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = list(out.glob("runs/*/DONE"))
        for marker in done:  # a marker is only ever written after complete metrics
            assert not read_parquet(marker.parent / "metrics.parquet").empty
        finished_between.append(len(done))
    assert any(0 < n < 12 for n in finished_between), finished_between  # kills mid-sweep
    resumed = run_bench("run", "smoke", "--out", str(out), "--workers", "2", "--wandb", "disabled",
                        *ONE_SEED)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 12 and runs["run_id"].is_unique and set(runs["status"]) == {"done"}
    ref_runs = pd.read_parquet(reference / "runs.parquet")
    assert sorted(runs["run_id"]) == sorted(ref_runs["run_id"])
    pd.testing.assert_frame_equal(comparable_results(out), comparable_results(reference),
                                  check_exact=True)
    status = run_bench("status", str(out), "--verify")
    assert status.returncode == 0, status.stdout
