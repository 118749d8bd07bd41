"""An unfinished run with a Lightning checkpoint resumes from it, keeps its earlier rows, and
trains on exactly as it would have without the interruption."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from annealbench.runner.run.execute import RunOptions, execute_run
from annealbench.runner.suite.run_spec import RunSpec
from tests.runner.helpers import ROOT, TIMING, bench_env


def test_resume_from_last_checkpoint_keeps_rows(tmp_path, caplog):
    spec = RunSpec(suite="t", stage="eval", task="quadratic", preset="smoke", task_overrides=(),
                   optimizer="muphi", hparams=(("window", "linear"),), lr=1e-2, seed=1)
    # kept after the run finished, to play the part of a checkpoint written just before a kill
    options = RunOptions(wandb="disabled", checkpoints=True, keep_checkpoints=True)
    run_dir = tmp_path / "run"
    assert execute_run(spec, run_dir, options, {}).status == "done"
    first = pd.read_parquet(run_dir / "metrics.parquet")
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 60
    rows = next(v["rows"] for k, v in ckpt["callbacks"].items() if "RowsInCheckpoint" in k)
    assert len(rows) == len(first)
    (run_dir / "DONE").unlink()  # as if killed after the checkpoint, before the marker
    with caplog.at_level("INFO", logger="annealbench.runner.run.execute"):
        assert execute_run(spec, run_dir, options, {}).status == "done"
    assert "resuming from" in caplog.text
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "metrics.parquet"), first,
                                  check_exact=True)


KILLED_MIDWAY = """
import sys
from pathlib import Path
from annealbench.runner.run.execute import RunOptions, execute_run
from annealbench.runner.suite.run_spec import RunSpec
spec = RunSpec.from_json({spec!r})
execute_run(spec, Path(sys.argv[1]), RunOptions(wandb="disabled", checkpoints=True), {{}})
"""


def _midway_spec(task: str) -> RunSpec:
    """A run shaped like a `paper` one (checkpoint after each validation), long enough to kill."""
    return RunSpec(suite="t", stage="eval", task=task, preset="smoke",
                   task_overrides=(("max_steps", 1500), ("val_every", 100)), optimizer="muphi",
                   hparams=(("window", "linear"),), lr=1e-2, seed=3)


@pytest.mark.parametrize("task", ["quadratic",  # state-free batches (a function of the step)
                                  pytest.param("diabetes", marks=pytest.mark.slow)])  # shuffled
def test_a_run_killed_midway_resumes_with_the_same_trajectory(tmp_path, task):
    """SIGKILL after the first checkpoint; the resumed run trains the rest and its every logged
    value equals, bit for bit, that of the same run left alone."""
    spec = _midway_spec(task)
    options = RunOptions(wandb="disabled", checkpoints=True)
    reference = tmp_path / "reference"
    assert execute_run(spec, reference, options, {}).status == "done"
    run_dir = tmp_path / "killed"
    script = KILLED_MIDWAY.format(spec=spec.to_json())
    proc = subprocess.Popen([sys.executable, "-c", script, str(run_dir)], cwd=ROOT,
                            env=bench_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "DONE").exists(), "the kill must land before the run finished"
    killed_at = torch.load(last, weights_only=False)["global_step"]
    assert 0 < killed_at < 1500  # so the resumed run trains after resuming
    assert execute_run(spec, run_dir, options, {}).status == "done"
    ours, theirs = (comparable(pd.read_parquet(d / "metrics.parquet")) for d in (run_dir, reference))
    assert ours["step"].max() == 1500
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)


def comparable(metrics: pd.DataFrame) -> pd.DataFrame:
    rows = metrics[~metrics["metric"].isin(TIMING)]
    return rows.sort_values(["metric", "step"], kind="stable").reset_index(drop=True)
