"""The slurm launcher through submitit's local executor, and one run on two CPU processes (DDP)."""

from __future__ import annotations

import json

import pandas as pd

from annealbench.common.store_schema import folder_name
from tests.runner.helpers import run_bench


TINY = """
name: tiny
preset: smoke
tasks: [quadratic]
optimizers:
  - {name: muphi, hparams: {window: linear}, lr: [1.0e-2, 3.0e-2]}
seeds: {tune: [1], eval: [2, 3]}
"""


def test_slurm_launcher_with_submitit_local_executor(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "tiny.yaml").write_text(TINY)
    proc = run_bench("run", str(tmp_path / "tiny.yaml"), "--out", str(out), "--launcher", "slurm",
                     "--submitit-cluster", "local", "--wandb", "disabled", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = pd.read_parquet(out / "runs.parquet")
    assert set(runs["status"]) <= {"done", "diverged"} and len(runs) == 4
    # one submission per stage: tune's 2 runs in 2 array tasks; eval's 2 seeds, one run group,
    # in 1 (a single task is a plain job, not an array)
    for stage, n in (("tune", 2), ("eval", 1)):
        jobs = [p for p in (out / "submitit" / stage).iterdir() if p.name.isdigit()]
        assert len(jobs) == n
    assert run_bench("status", str(out), "--verify").returncode == 0


def test_ddp_two_cpu_processes(tmp_path):
    proc = run_bench("train", "quadratic", "adamw", "--set", "window=cosine", "--set", "lr=1e-2",
                     "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu",
                     "--out", str(tmp_path), "--wandb", "disabled", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    assert len(lines) == 1  # only rank 0 reports
    doc = json.loads(lines[0])
    assert doc["status"] == "done" and "val/loss" in doc["metrics"]
    prov = json.loads((tmp_path / "runs" / folder_name(doc["run_id"]) /
                       "provenance.json").read_text())
    assert prov["devices"] == 2 and prov["strategy"] == "ddp"
