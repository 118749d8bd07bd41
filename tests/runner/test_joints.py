"""Where the runner's parts meet (issue 14, item 8), each exercised by real processes and runs.

One sweep of real runs, three tuning seeds and an lr at which SGD really diverges, is driven by
one `annealbench run` while two more `annealbench run`s on the same directory either refuse or wait; the
store it leaves is then checked against the rules: diverged runs recorded as such, +inf in
tuning, the median over tuning seeds recomputed independently from `results.parquet`.
"""

from __future__ import annotations

import json
import math
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

from annealbench.analysis.load import load_store
from tests.runner.helpers import ROOT, bench_cmd, bench_env, run_bench

DIVERGE = """
name: diverge
preset: smoke
tasks: [quadratic]
optimizers:
  - {name: sgd, hparams: {window: cosine}, lr: [1.0e-2, 1.0e3]}
seeds: {tune: [1, 2, 3], eval: [10]}
"""
N_RUNS = 2 * 3 + 1


def _wait_for_owner(out, pid: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads((out / ".lock.owner").read_text())["pid"] == pid:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("the first `annealbench run` never took the lock")


@pytest.fixture(scope="module")
def contended(tmp_path_factory):
    """The sweep, with a second `annealbench run` refused and a third waiting for the first."""
    tmp = tmp_path_factory.mktemp("joints")
    (tmp / "diverge.yaml").write_text(DIVERGE)
    out = tmp / "out"
    args = ("run", str(tmp / "diverge.yaml"), "--out", str(out), "--wandb", "disabled",
            "--workers", "2")
    first = subprocess.Popen(bench_cmd(*args), cwd=ROOT, env=bench_env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_owner(out, first.pid, first)
    refused = run_bench(*args)
    waited = run_bench(*args, "--wait-lock", "600", timeout=700)
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-3000:]
    return out, stdout, refused, waited


def test_a_second_bench_run_on_the_directory_is_refused_naming_the_holder(contended):
    out, _, refused, _ = contended
    assert refused.returncode == 2
    assert f"results directory {out} is in use by pid" in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in refused.stderr  # one line, no traceback


def test_a_waiting_bench_run_resumes_after_the_first_and_runs_nothing_twice(contended):
    out, first_stdout, _, waited = contended
    assert f"{N_RUNS} runs — " in first_stdout and "(0 finished earlier)" in first_stdout
    assert waited.returncode == 0, waited.stderr[-2000:]
    assert f"({N_RUNS} finished earlier)" in waited.stdout
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == N_RUNS and runs["run_id"].is_unique


def test_divergence_is_recorded_and_counts_as_inf_in_tuning(contended):
    out, *_ = contended
    runs = pd.read_parquet(out / "runs.parquet")
    wild = runs[runs["lr"] == 1e3]
    assert len(wild) == 3 and set(wild["status"]) == {"diverged"}
    assert (wild["diverged_step"] >= 1).all() and (wild["diverged_step"] <= wild["max_steps"]).all()
    assert set(runs.loc[runs["lr"] == 1e-2, "status"]) == {"done"}
    choice = json.loads((out / "selection.json").read_text())["choices"][0]
    assert choice["scores"][repr(1e3)] is None  # +inf, written as null
    assert choice["lr"] == 1e-2
    assert set(runs.loc[runs["stage"] == "eval", "lr"]) == {1e-2}
    store = load_store(out)  # the analysis takes the diverged runs as they are
    assert set(store.runs.loc[store.runs["lr"] == 1e3, "status"]) == {"diverged"}


def test_the_selection_score_is_the_median_over_the_tuning_seeds(contended):
    out, *_ = contended
    runs = pd.read_parquet(out / "runs.parquet")
    results = pd.read_parquet(out / "results.parquet")
    tuned = runs[(runs["stage"] == "tune") & (runs["lr"] == 1e-2)]["run_id"]
    loss = results[(results["metric"] == "val/loss") & results["run_id"].isin(tuned)]
    finals = loss.sort_values("step").groupby("run_id")["value"].last().to_numpy()
    assert len(finals) == 3 and len(set(finals)) == 3
    assert not math.isclose(np.median(finals), np.mean(finals), rel_tol=1e-12)
    choice = json.loads((out / "selection.json").read_text())["choices"][0]
    assert choice["scores"][repr(1e-2)] == float(np.median(finals))  # exactly the median
