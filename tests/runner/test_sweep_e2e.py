"""`annealbench run smoke` end to end with the real tasks and optimizers, then resume after a kill."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from annealbench.analysis.load import load_store
from annealbench.runner.suite.run_spec import expand_tune
from annealbench.runner.suite.suite import load_suite
from annealbench.common.store_schema import folder_name
from tests.runner.helpers import (ROOT, bench_cmd, bench_env, comparable_results, run_bench,
                                 wandb_records)

SMOKE = load_suite("smoke")
N_TUNE = len(expand_tune(SMOKE))
N_EVAL = len(SMOKE.tasks) * len(SMOKE.optimizers) * len(SMOKE.eval_seeds)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("smoke") / "results"
    proc = run_bench("run", "smoke", "--out", str(out), "--workers", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_every_run_done_with_expected_rows(smoke_run):
    out, proc = smoke_run
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == N_TUNE + N_EVAL and runs["run_id"].is_unique
    assert set(runs["status"]) <= {"done", "diverged"}
    assert (runs["stage"] == "tune").sum() == N_TUNE
    assert sorted(runs.loc[runs.stage == "eval", "seed"].unique()) == list(SMOKE.eval_seeds)
    assert runs["git_commit"].str.len().min() >= 7
    prov = json.loads(runs["provenance"].iloc[0])
    assert prov["libraries"]["torch"] and prov["cpu_count"] >= 1 and "derived_seed" in prov
    results = pd.read_parquet(out / "results.parquet")
    assert list(results.columns) == ["run_id", "step", "metric", "value"]
    assert set(results["run_id"]) == set(runs["run_id"])
    finals = results[results.metric == "val/loss"].groupby("run_id")["step"].max()
    assert (finals == runs.set_index("run_id")["max_steps"].reindex(finals.index)).all()
    assert f"{N_TUNE + N_EVAL} runs — " in proc.stdout


def test_selection_recorded_and_used(smoke_run):
    out, _ = smoke_run
    doc = json.loads((out / "selection.json").read_text())
    assert "median" in doc["rule"] and doc["metric"] == "val/loss"
    assert len(doc["choices"]) == len(SMOKE.tasks) * len(SMOKE.optimizers)
    runs = pd.read_parquet(out / "runs.parquet")
    for choice in doc["choices"]:
        evals = runs[(runs.stage == "eval") & (runs.config == choice["config"])
                     & (runs.task == choice["task"])]
        assert set(evals["lr"]) == {choice["lr"]}
        if choice["tuned"]:
            scores = {float(k): v for k, v in choice["scores"].items()}
            assert choice["lr"] == min(scores, key=lambda lr: (scores[lr] is None, scores[lr]))
            edge = choice["lr"] in (choice["grid"][0], choice["grid"][-1])
            assert choice["at_grid_edge"] == (edge and scores[choice["lr"]] is not None)


def test_the_analysis_loads_the_store_the_runner_wrote(smoke_run):
    """The runner → analysis joint on a real store: every run, the runner's selection.json."""
    out, _ = smoke_run
    store = load_store(out)
    runs = pd.read_parquet(out / "runs.parquet")
    assert sorted(store.runs["run_id"]) == sorted(runs["run_id"])
    assert set(store.runs["task"]) == {t.name for t in SMOKE.tasks}  # no overrides: label = name
    assert set(store.runs["stage"]) == {"tune", "eval"}
    assert store.selection == json.loads((out / "selection.json").read_text())
    assert set(store.results["run_id"].unique()) == set(runs["run_id"])
    assert len(store.results) == len(pd.read_parquet(out / "results.parquet"))
    impl = [json.loads(p)["optimizer_impl"] for p in runs["provenance"]]
    assert all(isinstance(groups, list) and groups for groups in impl)  # one entry per group


def test_status_verify_clean(smoke_run):
    out, _ = smoke_run
    proc = run_bench("status", str(out), "--verify")
    assert proc.returncode == 0, proc.stdout
    assert f"{N_TUNE + N_EVAL} done" in proc.stdout and "verify: 0 problem(s)" in proc.stdout


def test_wandb_offline_files_readable(smoke_run):
    out, _ = smoke_run
    runs = pd.read_parquet(out / "runs.parquet")
    row = runs[runs.stage == "eval"].iloc[0]
    run_dir = out / "runs" / folder_name(row["run_id"])
    records = wandb_records(run_dir)
    run = next(r["run"] for r in records if r["type"] == "run")
    assert run["project"] == "smoke" and run["run_group"] == row["task"]
    assert run["job_type"] == "eval"
    assert run["config"]["update"]["run_id"] == row["run_id"]
    logged = set()
    for r in records:
        if r["type"] == "history":
            logged |= set(r["history"]["item"])
    assert {"val/loss", "train/loss"} <= logged


def test_rerun_skips_everything(smoke_run, tmp_path):
    out, _ = smoke_run
    before = comparable_results(out)
    proc = run_bench("run", "smoke", "--out", str(out), "--workers", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"({N_TUNE + N_EVAL} finished earlier)" in proc.stdout
    pd.testing.assert_frame_equal(comparable_results(out), before,
                                  check_exact=True)


def test_resume_after_sigkill_matches_uninterrupted(smoke_run, tmp_path):
    reference, _ = smoke_run
    out = tmp_path / "killed"
    proc = subprocess.Popen(bench_cmd("run", "smoke", "--out", str(out), "--workers", "2"),
                            cwd=ROOT, env=bench_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("runs/*/DONE"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = len(list(out.glob("runs/*/DONE")))
    assert 0 < done_at_kill < N_TUNE + N_EVAL, "the kill must land mid-sweep"
    resumed = run_bench("run", "smoke", "--out", str(out), "--workers", "2")
    failures = {p.parent.name: p.read_text()[-1500:] for p in out.glob("runs/*/FAILED")}
    assert resumed.returncode == 0, f"{resumed.stderr[-2000:]}\nFAILED records: {failures}"
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == N_TUNE + N_EVAL and runs["run_id"].is_unique
    pd.testing.assert_frame_equal(comparable_results(out), comparable_results(reference),
                                  check_exact=True)
    assert run_bench("status", str(out), "--verify").returncode == 0
