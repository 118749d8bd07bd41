"""Ctrl-C: `annealbench run` and `annealbench train` stop with one line and exit 130; a sweep's workers are
stopped and its store is left to be resumed (the runs cut short are neither done nor failed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from annealbench.runner.store.lock import results_lock
from annealbench.runner.store.status import run_states
from annealbench.runner.store.results_store import ResultsStore
from annealbench.runner.suite.suite import load_suite
from annealbench.runner.suite.run_spec import expand_tune
from annealbench.runner.sweep import plan
from tests.runner.helpers import ROOT, bench_cmd, bench_env

# The smoke suite cut to one task and one configuration, its runs long enough to be interrupted.
SLOW_SMOKE = """
name: slow-smoke
preset: smoke
tasks: [{name: quadratic, overrides: {max_steps: 300000}}]
optimizers:
  - {name: muphi, hparams: {window: linear}, lr: [1.0e-2, 3.0e-2]}
seeds: {tune: [1, 2], eval: [10]}
"""


def _start(*args: str) -> subprocess.Popen:
    """`annealbench ARGS` in its own session: SIGINT to its group is a terminal's Ctrl-C."""
    return subprocess.Popen(bench_cmd(*args), cwd=ROOT, env=bench_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out waiting for the command to get going"
        time.sleep(0.1)


def _interrupt(proc: subprocess.Popen) -> tuple[str, str]:
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return out, err


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _a_run_started(out: Path) -> bool:
    """A worker is up and has begun a run (its folder holds the spec)."""
    return any((out / "runs").glob("*/spec.json")) and any((out / "logs").glob("worker-*.log"))


def test_ctrl_c_in_bench_run_stops_the_workers_and_leaves_the_store_resumable(tmp_path):
    suite_file, out = tmp_path / "slow-smoke.yaml", tmp_path / "out"
    suite_file.write_text(SLOW_SMOKE)
    proc = _start("run", str(suite_file), "--out", str(out), "--workers", "1",
                  "--seed-batch", "1", "--wandb", "disabled")
    _wait_for(lambda: _a_run_started(out), proc)
    time.sleep(1.0)  # well inside the first run
    stdout, stderr = _interrupt(proc)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: the workers were stopped") and str(out) in last
    assert [line for line in stderr.splitlines() if "interrupt" in line.lower()] == [last]
    workers = [int(p.stem.split("-")[1]) for p in (out / "logs").glob("worker-*.log")]
    assert workers and not any(_alive(pid) for pid in workers)  # the workers are gone
    assert not (out / ".lock.owner").exists()
    with results_lock(out):  # released: the next `annealbench run` may start at once
        pass
    # the run cut short is neither done nor failed: the next `annealbench run` starts it again,
    # without counting a failed attempt against --max-retries
    states = run_states(out)
    assert states and {s.state for s in states} == {"unfinished"}
    suite = load_suite(suite_file)
    tune = expand_tune(suite)
    todo, kept = plan(tune, ResultsStore(out), max_retries=0)
    assert todo == tune and not kept


def test_ctrl_c_in_bench_train_exits_130_naming_the_unfinished_run(tmp_path):
    out = tmp_path / "out"
    proc = _start("train", "quadratic", "sgd", "--set", "window=cosine",
                  "--set", "task.max_steps=300000", "--out", str(out), "--wandb", "disabled")
    _wait_for(lambda: any((out / "runs").glob("*/spec.json")), proc)
    time.sleep(2.0)  # training
    stdout, stderr = _interrupt(proc)
    assert proc.returncode == 130, stderr
    assert stdout == "" and "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    run_dir = next((out / "runs").iterdir())
    assert lines[-1] == (f"interrupted: the run in {run_dir} did not finish (it is not "
                         "recorded); the same `annealbench train` starts it again")
    assert not (run_dir / "DONE").exists() and not (run_dir / "FAILED").exists()
    assert json.loads((run_dir / "spec.json").read_text())["run_id"].startswith("quadratic[")
