"""The slurm launcher against a fake SLURM (tests/cluster/fake_slurm): chunking to MaxArraySize,
options on the #SBATCH lines, reattaching without resubmitting, and a detached sweep under time
limits, preemptions and node failures that ends equal to the local launcher's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from tests.runner.helpers import bench_env, comparable_results, run_bench
from tests.runner.test_stage_gating import SUITE as GATING

FAKE = Path(__file__).resolve().parent / "fake_slurm"

SUITE = """
name: cluster
preset: smoke
checkpoints: true
tasks: [quadratic, diabetes]
optimizers:
  - {name: muphi, hparams: {window: linear}, lr: [1.0e-2, 3.0e-2]}
  - {name: adamw, hparams: {window: cosine}, lr: [1.0e-2]}
seeds: {tune: [1], eval: [10, 11]}
"""

WIDE = """
name: wide
preset: smoke
tasks: [quadratic]
optimizers:
  - {name: adamw, hparams: {window: cosine}, lr: [1.0e-3, 2.0e-3, 3.0e-3, 5.0e-3, 1.0e-2]}
seeds: {tune: [1, 2], eval: [10]}
"""


class FakeSlurm:
    """The fake's environment and state: sbatch calls, array tasks and their attempts."""

    def __init__(self, root: Path, **settings: str) -> None:
        self.dir = root / "slurm-state"
        self.env = {**bench_env(), "PATH": f"{FAKE}{os.pathsep}{os.environ['PATH']}",
                    "FAKE_SLURM_DIR": str(self.dir), "FAKE_SLURM_PYTHON": os.sys.executable,
                    **{f"FAKE_SLURM_{k.upper()}": str(v) for k, v in settings.items()}}

    def bench(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return run_bench(*args, env=self.env, timeout=timeout)

    def submissions(self) -> list[dict]:
        log = self.dir / "sbatch.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def tasks(self) -> dict[str, dict]:
        state = self.dir / "state.json"
        return json.loads(state.read_text())["tasks"] if state.exists() else {}

    def stop(self) -> None:
        """End the scheduler and every task process it started (each its own session)."""
        pid_file = self.dir / "scheduler.pid"
        pids = [int(pid_file.read_text())] if pid_file.exists() else []
        for pid in pids:
            _kill(pid, signal.SIGKILL, group=False)
        for task in self.tasks().values():
            for attempt in task["attempts"]:
                if attempt.get("end") is None:
                    _kill(attempt["pid"], signal.SIGKILL, group=True)


def _kill(pid: int, sig: int, *, group: bool) -> None:
    try:
        os.killpg(pid, sig) if group else os.kill(pid, sig)
    except OSError:
        pass


@pytest.fixture
def fake(tmp_path):
    made = []

    def make(**settings: str) -> FakeSlurm:
        made.append(FakeSlurm(tmp_path, **settings))
        return made[-1]

    yield make
    for each in made:
        each.stop()


def _ledger(out: Path) -> list[dict]:
    return json.loads((out / "slurm" / "ledger.json").read_text())["submissions"]


def test_chunks_options_and_reattach(tmp_path, fake):
    """Nothing runs (no nodes): 10 tuning runs in arrays of at most 4 tasks, every option on
    the #SBATCH lines; a second `annealbench run` submits nothing that is queued."""
    slurm = fake(max_array_size=4, nodes=0)
    (tmp_path / "wide.yaml").write_text(WIDE)
    out = tmp_path / "out"
    args = ("run", str(tmp_path / "wide.yaml"), "--out", str(out), "--launcher", "slurm",
            "--detach", "--wandb", "disabled", "--seed-batch", "1", "--account", "proj42",
            "--qos", "high", "--partition", "gpu", "--mem", "16G", "--constraint", "a100",
            "--gres", "gpu:a100:1", "--cpus-per-task", "3", "--timeout-min", "7",
            "--sbatch", "mail-type=END", "--sbatch=--begin=now",
            "--sbatch", "#SBATCH --exclusive")
    first = slurm.bench(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "queued" in first.stdout
    submissions = slurm.submissions()
    # tune: 10 runs; eval (adamw has a 5-point grid: tuned) waits for them: a follow-up job
    # (no array) submits it once the three arrays have ended
    assert [s["indices"] for s in submissions][-1] == [None]
    arrays, follow_up = submissions[:-1], submissions[-1]
    assert [len(s["indices"]) for s in arrays] == [4, 4, 2]
    assert all(max(s["indices"]) < 4 for s in arrays)
    after = ":".join(str(s["job_id"]) for s in arrays)
    assert f"#SBATCH --dependency=afterany:{after}" in follow_up["lines"], follow_up["lines"]
    assert "#SBATCH --cpus-per-task=1" in follow_up["lines"]
    assert not any("gres" in line or "gpus" in line for line in follow_up["lines"])
    lines = submissions[0]["lines"]
    for expected in ("--account=proj42", "--qos=high", "--partition=gpu", "--mem=16G",
                     "--constraint=a100", "--gres=gpu:a100:1", "--cpus-per-task=3",
                     "--time=7", "--mail-type=END", "--begin=now", "--exclusive", "--requeue"):
        assert f"#SBATCH {expected}" in lines, (expected, lines)
    assert not any(line.startswith("#SBATCH --gpus-per-node") for line in lines)
    assert f"follow-up job {follow_up['job_id']}" in first.stdout, first.stdout
    ledger = _ledger(out)
    run_ids = [r for s in ledger for task in s["tasks"] for r in task]
    assert len(run_ids) == 10 == len(set(run_ids))
    assert [s["job_id"] for s in ledger] == [str(s["job_id"]) for s in submissions]

    again = slurm.bench(*args)  # reattaches: every run is queued, nothing is submitted (the
    assert again.returncode == 0, again.stderr[-3000:]  # follow-up waits for the same arrays)
    assert len(slurm.submissions()) == 4 and len(_ledger(out)) == 4
    status = slurm.bench("status", str(out))
    assert status.returncode == 0, status.stderr
    assert "tune: 10 queued" in status.stdout, status.stdout
    assert f"follow-up job {follow_up['job_id']}: runs this sweep's `annealbench run` again once " \
           f"jobs {after.replace(':', ', ')} have ended" in status.stdout, status.stdout

    subprocess.run(["scancel", *[str(s["job_id"]) for s in arrays]], env=slurm.env,
                   check=True)
    deadline = time.monotonic() + 30
    while any(t["state"] == "PENDING" for tid, t in slurm.tasks().items()
              if tid != str(follow_up["job_id"])):
        assert time.monotonic() < deadline, slurm.tasks()
        time.sleep(0.2)
    third = slurm.bench(*args)  # cancelled before they ran: submitted again, once each, and
    assert third.returncode == 0, third.stderr[-3000:]  # a follow-up after them, not the old one
    submitted = slurm.submissions()
    assert [len(s["indices"]) for s in submitted[4:]] == [4, 4, 2, 1]
    assert slurm.tasks()[str(follow_up["job_id"])]["state"] == "CANCELLED"
    assert _ledger(out)[3]["ended"] and not _ledger(out)[-1]["ended"]


# test_stage_gating's suite without its MuPhi configuration: SGD's tuning all diverges, AdamW
# (one lr) goes straight to evaluation
GATED = GATING.replace("  - {name: muphi, hparams: {window: linear}, lr: [1.0e-2, 3.0e-2]}\n",
                       "").replace("eval: [10, 11]", "eval: [10]")


def test_a_configuration_whose_tuning_all_diverged_is_not_evaluated(tmp_path, fake):
    """SGD at lr 1e3 and 3e3 diverges on the quadratic: the follow-up job finds its tuning
    complete but all diverged, and submits no evaluation of it; AdamW (one lr) is evaluated."""
    slurm = fake(nodes=2)
    (tmp_path / "gated.yaml").write_text(GATED)
    out = tmp_path / "out"
    args = ("run", str(tmp_path / "gated.yaml"), "--out", str(out), "--launcher", "slurm",
            "--detach", "--wandb", "disabled", "--runs-per-task", "2", "--wait-lock", "300")
    first = slurm.bench(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    deadline = time.monotonic() + 300
    while _in_queue(slurm):  # the arrays, then the follow-up job
        assert time.monotonic() < deadline, slurm.tasks()
        time.sleep(1)
    last = slurm.bench(*args)
    assert last.returncode == 1, last.stdout + last.stderr[-3000:]  # evaluation not started
    assert "no run of this sweep is queued or running" in last.stdout
    assert "1 evaluation runs not started" in last.stdout, last.stdout
    ledger = _ledger(out)
    assert [s["stage"] for s in ledger] == ["tune", "eval", "follow-up"]  # and no second eval
    assert all("adamw" in r for task in ledger[1]["tasks"] for r in task)
    assert {t["attempts"][-1]["state"] for t in slurm.tasks().values()} == {"COMPLETED"}
    runs = pd.read_parquet(out / "runs.parquet")
    assert sorted(zip(runs["stage"], runs["status"])) == [("eval", "done"), ("tune", "diverged"),
                                                          ("tune", "diverged")]
    choice = {c["config"]: c for c in json.loads((out / "selection.json").read_text())["choices"]}
    assert choice["sgd[window=cosine]"]["lr"] is None
    assert "every one of its 2 tuning runs diverged" in choice["sgd[window=cosine]"]["skipped"]


def _in_queue(slurm: FakeSlurm) -> list[str]:
    """squeue's lines: every job pending or running, those sbatch has just written included."""
    out = subprocess.run(["squeue", "--noheader", "--format", "%i|%j|%T"], env=slurm.env,
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_detached_sweep_under_preemption_equals_local(tmp_path, fake):
    """One detached `annealbench run`; follow-up jobs advance the sweep; an `annealbench run` by hand in the
    middle reattaches; by hand again only when a node failure took a follow-up job."""
    (tmp_path / "cluster.yaml").write_text(SUITE)
    reference = tmp_path / "reference"
    local = run_bench("run", str(tmp_path / "cluster.yaml"), "--out", str(reference),
                      "--workers", "2", "--wandb", "disabled", timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]
    # 20 s per SLURM minute: --timeout-min 1 is a 20 s limit, signalled 5 s before it
    slurm = fake(max_array_size=7, nodes=2, minute_s=20, preempt_rate=0.04,
                 node_fail_rate=0.01, seed=7, grace_s=2)
    out = tmp_path / "out"
    args = ("run", str(tmp_path / "cluster.yaml"), "--out", str(out), "--launcher", "slurm",
            "--detach", "--wandb", "disabled", "--timeout-min", "1", "--runs-per-task", "2",
            "--max-retries", "20", "--wait-lock", "600")
    first = slurm.bench(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "follow-up job" in first.stdout, first.stdout
    by_hand, reattached, deadline = 1, None, time.monotonic() + 1200
    while True:
        assert time.monotonic() < deadline, (_in_queue(slurm), slurm.tasks())
        if reattached is None and any(a["state"] == "COMPLETED" for t in slurm.tasks().values()
                                      for a in t["attempts"]):
            before = len(slurm.submissions())
            reattached = slurm.bench(*args)  # mid-sweep: leaves every queued or running run be
            by_hand += 1
            assert reattached.returncode == 0, reattached.stderr[-3000:]
            assert "in SLURM jobs still queued or running: not submitted again" in \
                reattached.stderr, reattached.stderr[-3000:]
            assert len(slurm.submissions()) >= before
        elif not _in_queue(slurm):  # nothing queued or running: done, or a follow-up was lost
            proc = slurm.bench(*args)
            by_hand += 1
            assert proc.returncode in (0, 1), proc.stderr[-3000:]
            if "no run of this sweep is queued or running" in proc.stdout:
                break
        time.sleep(2)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 12 and runs["run_id"].is_unique and set(runs["status"]) == {"done"}
    pd.testing.assert_frame_equal(comparable_results(out), comparable_results(reference),
                                  check_exact=True)
    ledger, tasks = _ledger(out), slurm.tasks()
    # the follow-up jobs did the advancing: by hand only the first run, the one mid-sweep, the
    # last (which finds nothing to do), and one per follow-up job a node failure took
    follow_ups = [tasks[sub["job_id"]] for sub in ledger if sub["stage"] == "follow-up"
                  and sub["job_id"] in tasks]
    lost = sum(t["attempts"][-1]["state"] == "NODE_FAIL" for t in follow_ups if t["attempts"])
    assert any(t["state"] == "COMPLETED" for t in follow_ups), follow_ups
    assert by_hand <= 3 + lost, (by_hand, lost)
    assert any(sub["stage"] == "eval" for sub in ledger)
    # no run was ever in two attempts at once, and the fake did interrupt some
    spans: dict[str, list[tuple[float, float]]] = {}
    for sub in ledger:
        for index, run_ids in enumerate(sub["tasks"]):
            task = tasks.get(f"{sub['job_id']}_{index}") or tasks[sub["job_id"]]  # 1: no array
            for attempt in task["attempts"]:
                for run_id in run_ids:
                    spans.setdefault(run_id, []).append((attempt["start"], attempt["end"]))
    for run_id, each in spans.items():
        each.sort()
        assert all(a[1] <= b[0] for a, b in zip(each, each[1:])), (run_id, each)
    endings = Counter(a["state"] for t in tasks.values() for a in t["attempts"])
    assert endings["COMPLETED"] > 0 and set(endings) - {"COMPLETED"}, endings
    status = slurm.bench("status", str(out), "--verify")
    assert status.returncode == 0, status.stdout
    print(f"{by_hand} bench runs by hand, {len(follow_ups)} follow-up jobs ({lost} lost); "
          f"attempts ended {dict(endings)}")
