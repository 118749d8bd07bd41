"""Run groups in the runner: planning, the `seed_batch` key, and a store that does not change."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

from annealbench import cli
from annealbench.runner.errors import SuiteError
from annealbench.runner.run.execute import RunOptions, execute_job, execute_run
from annealbench.runner.launch.jobs import AUTO_SEED_BATCH, group_size, make_jobs
from annealbench.runner.run.job import Job, Run
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.store.results_store import RunFolder
from annealbench.runner.suite.suite import load_suite, parse_suite
from annealbench.runner.sweep import SweepOptions, run_sweep
from tests.runner.helpers import ROOT, bench_cmd, bench_env, comparable_results, run_bench

SUITE = """
name: groups
preset: smoke
tasks: [quadratic, diabetes]
optimizers:
  - {name: muphi, hparams: {window: linear}, lr: [3.0e-2]}
  - {name: sf-adamw, lr: [1.0e-2]}
seeds: {eval: [10, 11, 12]}
"""
N_RUNS = 2 * 2 * 3


def spec(seed: int, optimizer: str = "adamw", lr: float = 1e-2, task: str = "diabetes") -> RunSpec:
    return RunSpec(suite="s", stage="eval", task=task, preset="smoke", task_overrides=(),
                   optimizer=optimizer, hparams=(("window", "cosine"),), lr=lr, seed=seed)


def jobs(specs: list[RunSpec], tmp_path) -> list[Run]:
    return [Run(s, tmp_path / s.key) for s in specs]


def sizes(planned: list[Job]) -> list[int]:
    return [len(j.members) for j in planned]


def test_auto_groups_seeds_of_one_configuration_in_balanced_chunks(tmp_path):
    specs = [spec(s) for s in range(25)] + [spec(s, lr=3e-2) for s in range(3)]
    planned = make_jobs(jobs(specs, tmp_path), "auto", RunOptions())
    assert AUTO_SEED_BATCH == 10 and sizes(planned) == [9, 8, 8, 3]
    for job in planned:  # a group never mixes learning rates, and keeps the seeds' order
        lrs = {m.spec.lr for m in job.members}
        assert len(lrs) == 1
        seeds = [m.spec.seed for m in job.members]
        assert seeds == sorted(seeds)
    assert sorted(m.spec.seed for j in planned[:3] for m in j.members) == list(range(25))


def test_explicit_sizes_and_the_one_seed_path(tmp_path):
    specs = jobs([spec(s) for s in range(5)], tmp_path)
    assert sizes(make_jobs(specs, 2, RunOptions())) == [2, 2, 1]
    assert sizes(make_jobs(specs, 1, RunOptions())) == [1] * 5
    assert sizes(make_jobs(specs, "auto", RunOptions(devices=2))) == [1] * 5
    assert sizes(make_jobs(specs[:1], "auto", RunOptions())) == [1]


def test_optimizers_that_are_not_elementwise_and_dropout_stay_on_the_one_seed_path():
    assert group_size(spec(0, optimizer="muon"), "auto", RunOptions()) == \
        (1, "optimizer muon is not elementwise")
    vit = RunSpec(suite="s", stage="eval", task="cifar10", preset="smoke",
                  task_overrides=(("dropout", 0.1), ("model", "vit")), optimizer="adamw",
                  hparams=(), lr=1e-3, seed=0)
    size, why = group_size(vit, 8, RunOptions())
    assert size == 1 and "dropout" in why
    assert group_size(spec(0), 4, RunOptions()) == (4, "")


@pytest.mark.parametrize("numerator", ["moment-c5b0935", "parcor-c5b0935"])
def test_tensor_wide_numerators_stay_on_the_one_seed_path(numerator):
    """Their statistics are means over a whole tensor: stacked seeds would share them."""
    ref = RunSpec(suite="s", stage="eval", task="diabetes", preset="smoke", task_overrides=(),
                  optimizer="muphi", hparams=(("numerator", numerator), ("window", "cosine")), lr=1e-2, seed=0)
    size, why = group_size(ref, "auto", RunOptions())
    assert size == 1 and numerator in why and "whole tensor" in why
    own = RunSpec(suite="s", stage="eval", task="diabetes", preset="smoke", task_overrides=(),
                  optimizer="muphi", hparams=(("numerator", "parcor"), ("window", "cosine")), lr=1e-2, seed=0)
    assert group_size(own, "auto", RunOptions())[0] > 1


def test_seed_batch_key_and_flag_are_checked():
    assert parse_suite(SUITE, source="t").seed_batch == "auto"
    assert parse_suite(SUITE + "seed_batch: 3\n", source="t").seed_batch == 3
    assert load_suite("quick").seed_batch == "auto"
    for bad in ("0", "many", "true", "2.5"):
        with pytest.raises(SuiteError, match="seed_batch.*'auto' or an integer ≥ 1"):
            parse_suite(SUITE + f"seed_batch: {bad}\n", source="t")
    with pytest.raises(ValueError, match="'auto' or an integer"):
        SweepOptions(out=ROOT, seed_batch=0)
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["run", "smoke", "--seed-batch", "zero"])
    assert cli.parser().parse_args(["run", "smoke", "--seed-batch", "4"]).seed_batch == 4


def test_a_group_writes_each_member_folder_as_its_one_seed_run(tmp_path):
    specs = [spec(s, optimizer="muphi", task="quadratic") for s in (10, 11, 12)]
    options = RunOptions(wandb="disabled")
    grouped = execute_job(Job(tuple(jobs(specs, tmp_path / "g"))), options, {"host": "h"})
    assert [o.status for o in grouped] == ["done"] * 3
    for s in specs:
        alone = execute_run(s, tmp_path / "one" / s.key, options, {"host": "h"})
        one, mine = RunFolder(tmp_path / "one" / s.key), RunFolder(tmp_path / "g" / s.key)
        assert sorted(p.name for p in one.path.iterdir()) == sorted(p.name for p in mine.path.iterdir())
        assert json.loads(one.spec_file.read_text()) == json.loads(mine.spec_file.read_text())
        a, b = (pd.read_parquet(f.metrics_file) for f in (one, mine))
        keep = a["metric"].ne("time/elapsed_s")
        pd.testing.assert_frame_equal(a[keep].drop(columns="value"), b[keep].drop(columns="value"))
        np.testing.assert_allclose(b["value"][keep], a["value"][keep], rtol=1e-3)
        done = json.loads(mine.done_file.read_text())
        assert done["status"] == "done" and done["max_steps"] == alone.max_steps
        provenance, alone_provenance = (json.loads(f.provenance_file.read_text())
                                        for f in (mine, one))
        assert provenance["run_group"]["run_ids"] == [x.run_id for x in specs]
        assert provenance["optimizer_impl"] == alone_provenance["optimizer_impl"]


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("groups")
    (root / "groups.yaml").write_text(SUITE)
    suite = load_suite(root / "groups.yaml")
    summaries = {}
    for batch in (1, 3):
        summaries[batch] = run_sweep(suite, SweepOptions(out=root / f"b{batch}", workers=2,
                                                         wandb="disabled", seed_batch=batch))
    return root, summaries


@pytest.mark.slow
def test_a_grouped_sweep_writes_the_store_of_the_one_seed_sweep(two_stores):
    root, summaries = two_stores
    assert summaries[1].counts == summaries[3].counts == {"done": N_RUNS}
    one, grouped = (pd.read_parquet(root / f"b{b}" / "runs.parquet").sort_values("run_id")
                    .reset_index(drop=True) for b in (1, 3))
    same = ["run_id", "task", "config", "lr", "seed", "derived_seed", "status", "max_steps"]
    pd.testing.assert_frame_equal(one[same], grouped[same])
    a, b = comparable_results(root / "b1"), comparable_results(root / "b3")
    pd.testing.assert_frame_equal(a.drop(columns="value"), b.drop(columns="value"))
    loose = a["metric"].eq("opt/rms_step").to_numpy()  # Δ from float32 weights: cancellation
    np.testing.assert_allclose(b["value"][~loose], a["value"][~loose], rtol=1e-4)
    np.testing.assert_allclose(b["value"][loose], a["value"][loose], rtol=5e-2)
    for run_id, provenance, alone in zip(grouped["run_id"], grouped["provenance"],
                                         one["provenance"]):
        group = json.loads(provenance)["run_group"]
        assert run_id in group["run_ids"] and len(group["run_ids"]) == 3
        assert "run_group" not in json.loads(alone)


KILLED = """
name: killed
preset: smoke
checkpoints: true
seed_batch: 3
tasks:
  - {name: quadratic, overrides: {max_steps: 1500, val_every: 100, log_every: 50}}
optimizers:
  - {name: muphi, hparams: {window: cosine}, lr: [3.0e-2]}
seeds: {eval: [5, 6, 7]}
"""


@pytest.mark.slow
def test_a_killed_group_resumes_with_the_same_results(tmp_path):
    suite = tmp_path / "killed.yaml"
    suite.write_text(KILLED)
    reference = run_bench("run", str(suite), "--out", str(tmp_path / "ref"), "--workers", "1")
    assert reference.returncode == 0, reference.stderr[-2000:]
    out = tmp_path / "killed"
    proc = subprocess.Popen(bench_cmd("run", str(suite), "--out", str(out), "--workers", "1"),
                            cwd=ROOT, env=bench_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(out.glob("runs/*/checkpoints/group/last.ckpt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(out.glob("runs/*/checkpoints/group/last.ckpt")), "no checkpoint before the kill"
    assert not list(out.glob("runs/*/DONE")), "the kill must land mid-group"
    resumed = run_bench("run", str(suite), "--out", str(out), "--workers", "1")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    pd.testing.assert_frame_equal(comparable_results(out), comparable_results(tmp_path / "ref"))


def test_a_diverged_member_records_the_exact_step_of_its_one_seed_run(tmp_path):
    specs = [spec(s, optimizer="sgd", lr=1e3, task="quadratic") for s in (10, 11)]
    options = RunOptions(wandb="disabled")
    grouped = execute_job(Job(tuple(jobs(specs, tmp_path / "g"))), options, {"host": "h"})
    for s, outcome in zip(specs, grouped):
        alone = execute_run(s, tmp_path / "one" / s.key, options, {"host": "h"})
        assert outcome.status == alone.status == "diverged"
        assert outcome.diverged_step == alone.diverged_step
        a, b = (pd.read_parquet(RunFolder(tmp_path / d / s.key).metrics_file) for d in ("one", "g"))
        keep = a["metric"].ne("time/elapsed_s")
        pd.testing.assert_frame_equal(a[keep].drop(columns="value"), b[keep].drop(columns="value"))
        np.testing.assert_allclose(b["value"][keep], a["value"][keep], rtol=1e-4)
