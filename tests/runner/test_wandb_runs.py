"""Each run's W&B run, read back from its offline files with wandb's own reader: one W&B run
across a kill and its resume, a ~200-character configuration, the summary and the step axis."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from annealbench.runner.run.execute import RunOptions, execute_run
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.common.wandb_names import MAX_TAG_CHARS, STEP_METRIC, wandb_run_id
from tests.runner.helpers import ROOT, TINY_SUITE, bench_env, run_bench, wandb_records

LONG_HPARAMS = (("beta", 0.912345678), ("decoupled_weight_decay", True), ("eps", 1.23456789e-09),
                ("eta", 0.0987654321), ("gamma", 0.123456789), ("numerator_beta", 0.987654321),
                ("weight_decay", 0.0123456789), ("weight_decay_in_step", True), ("window", "linear"))


def offline_runs(run_dir: Path) -> list[list[dict]]:
    """The records of every offline W&B run folder of `run_dir`, oldest first (wandb's reader)."""
    runs = []
    for folder in sorted((run_dir / "wandb").glob("offline-run-*")):
        out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(folder)],
                             capture_output=True, text=True, timeout=120, check=True)
        runs.append([json.loads(line) for line in out.stdout.splitlines() if line.strip()])
    return runs


def of_type(records: list[dict], kind: str) -> list[dict]:
    return [r[kind] for r in records if r["type"] == kind]


def summary_of(records: list[dict]) -> dict:
    """The run's summary as W&B holds it at the end: every summary update applied in order."""
    summary: dict = {}
    for record in of_type(records, "summary"):
        summary.update(record.get("update", {}))
    return summary


def history_steps(records: list[dict]) -> list[int]:
    return [h["item"][STEP_METRIC] for h in of_type(records, "history") if STEP_METRIC in h["item"]]


def spec_of(hparams: tuple = (("window", "linear"),), **kwargs) -> RunSpec:
    fields = dict(suite="wbsuite", stage="eval", task="quadratic", preset="smoke", task_overrides=(),
                  optimizer="muphi", hparams=hparams, lr=1e-2, seed=1) | kwargs
    return RunSpec(**fields)


@pytest.fixture(autouse=True)
def offline_env(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)


def test_finished_run_holds_summary_and_step_axis(tmp_path):
    spec = spec_of()
    run_dir = tmp_path / "run"
    assert execute_run(spec, run_dir, RunOptions(wandb="offline"), {}).status == "done"
    records = wandb_records(run_dir)
    (run,) = of_type(records, "run")
    assert run["run_id"] == wandb_run_id("wbsuite", "eval", "smoke", spec.run_id)
    assert run["project"] == "wbsuite"  # no WANDB_PROJECT: the suite's name
    assert run["run_group"] == "quadratic" and run["job_type"] == "eval"
    assert {"name": STEP_METRIC, "options": {"defined": True}} in of_type(records, "metric")
    assert any(m.get("glob_name") == "*" and m.get("step_metric") == STEP_METRIC
               for m in of_type(records, "metric"))
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    val = metrics[metrics["metric"] == "val/loss"].sort_values("step")
    summary = summary_of(records)
    assert summary["status"] == "done" and "diverged_step" not in summary
    assert summary["final/val/loss"] == pytest.approx(val["value"].iloc[-1])
    assert summary["best/val/loss"] == pytest.approx(val["value"].min())
    assert summary["best/val/loss"] < val["value"].iloc[0]  # it trained, so best is not the first
    train = metrics[metrics["metric"] == "train/loss"]
    assert summary["best/train/loss"] == pytest.approx(train["value"].min())
    assert of_type(records, "exit")[-1]["exit_code"] == 0


def test_diverged_run_summary_names_its_step(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "my-project")
    spec = spec_of(optimizer="sgd", hparams=(("window", "cosine"),), lr=1e3)  # SGD diverges here
    run_dir = tmp_path / "run"
    outcome = execute_run(spec, run_dir, RunOptions(wandb="offline"), {})
    assert outcome.status == "diverged"
    records = wandb_records(run_dir)
    assert of_type(records, "run")[0]["project"] == "my-project"
    summary = summary_of(records)
    assert summary["status"] == "diverged"
    assert summary["diverged_step"] == int(outcome.diverged_step)


def test_configuration_label_of_200_characters_logs(tmp_path):
    spec = spec_of(hparams=LONG_HPARAMS)
    assert len(spec.config) > 190
    run_dir = tmp_path / "run"
    assert execute_run(spec, run_dir, RunOptions(wandb="offline"), {}).status == "done"
    records = wandb_records(run_dir)
    (run,) = of_type(records, "run")
    assert all(len(tag) <= MAX_TAG_CHARS for tag in run["tags"])
    assert set(run["tags"]) == {"muphi", "eval", "smoke", "quadratic"}
    config = run["config"]["update"]
    assert config["config"] == spec.config and config["run_id"] == spec.run_id  # in full, here
    assert summary_of(records)["status"] == "done"


KILLED_AFTER_CHECKPOINT = """
import sys
from pathlib import Path
from annealbench.runner.run.execute import RunOptions, execute_run
from annealbench.runner.suite.run_spec import RunSpec
execute_run(RunSpec.from_json({spec!r}), Path(sys.argv[1]),
            RunOptions(wandb="offline", checkpoints=True), {{}})
"""


def test_run_killed_after_checkpoint_resumes_its_wandb_run(tmp_path):
    """SIGKILL after the first checkpoint, run again: both attempts write to one W&B run id,
    the second continues after the checkpoint's step, and the summary covers the whole run."""
    spec = spec_of(task_overrides=(("max_steps", 1500), ("val_every", 100)))
    run_dir = tmp_path / "killed"
    env = bench_env()  # without this process's W&B service, which would outlive the kill
    proc = subprocess.Popen([sys.executable, "-c", KILLED_AFTER_CHECKPOINT.format(spec=spec.to_json()),
                             str(run_dir)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "DONE").exists(), "the kill must land before the run finished"
    killed_at = torch.load(last, weights_only=False)["global_step"]
    assert 0 < killed_at < 1500
    assert execute_run(spec, run_dir, RunOptions(wandb="offline", checkpoints=True), {}).status == "done"

    first, second = offline_runs(run_dir)  # one folder per attempt, the first kept for the sync
    ids = {run["run_id"] for records in (first, second) for run in of_type(records, "run")}
    assert ids == {wandb_run_id("wbsuite", "eval", "smoke", spec.run_id)}
    assert of_type(second, "run")[0]["resume"] is True
    assert min(history_steps(second)) >= killed_at  # continues, does not restart at step 0
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    val = metrics[metrics["metric"] == "val/loss"]
    summary = summary_of(second)
    assert summary["best/val/loss"] == pytest.approx(val["value"].min())
    assert summary["status"] == "done"


def test_run_restarted_from_scratch_drops_the_earlier_wandb_files(tmp_path):
    """Without a checkpoint, a new attempt starts at step 0: the earlier attempt's W&B files go,
    so a sync does not put two step-0 histories in one W&B run."""
    spec = spec_of()
    run_dir = tmp_path / "run"
    options = RunOptions(wandb="offline", checkpoints=True)
    assert execute_run(spec, run_dir, options, {}).status == "done"  # its checkpoints deleted
    (run_dir / "DONE").unlink()
    assert execute_run(spec, run_dir, options, {}).status == "done"
    assert len(offline_runs(run_dir)) == 1


def test_sweep_workers_start_a_wandb_service_of_their_own(tmp_path):
    """A sweep started from a process that exported WANDB_SERVICE (a notebook, a test session that
    used W&B) does not hand that service to its workers: it outlives a killed worker and holds the
    worker's W&B run, so the run's next attempt was refused ("run ID … is in use"). Here the
    inherited token names no service at all, so a worker that joined it would fail its runs."""
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_SUITE)
    env = bench_env() | {"WANDB_SERVICE": "no-such-service-token"}
    proc = run_bench("run", str(suite), "--out", str(tmp_path / "out"), "--workers", "1", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = pd.read_parquet(tmp_path / "out" / "runs.parquet")
    assert list(runs["status"]) == ["done", "done"]
    for folder in (tmp_path / "out" / "runs").iterdir():  # W&B did log each run
        assert len(list(folder.glob("wandb/offline-run-*"))) == 1, folder
