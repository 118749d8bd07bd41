"""A finished run's checkpoints are deleted once its DONE is written; `--keep-checkpoints` keeps
them; a failed run keeps its own (its next attempt resumes from them).

The suite trains its tuning runs one seed per run and its evaluation runs as a run group (two
seeds of one configuration), so both ways a checkpoint is written are covered: `checkpoints/
last.ckpt` of a one-seed run, `checkpoints/group/last.ckpt` in a group's first member.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from annealbench import cli
from annealbench.runner.run.checkpoint import remove_checkpoints
from annealbench.runner.run.execute import RunOptions, execute_run
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.store.results_store import RunFolder
from tests.runner.test_launchers import TINY

# test_launchers' tiny suite with checkpoints on
SUITE = TINY.replace("name: tiny", "name: cleanup\ncheckpoints: true")


def sweep(tmp_path: Path, out: Path, *flags: str) -> None:
    path = tmp_path / "cleanup.yaml"
    path.write_text(SUITE)
    assert cli.main(["run", str(path), "--out", str(out), "--workers", "2", "--wandb",
                     "disabled", *flags]) == 0
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 4 and set(runs["status"]) == {"done"}


def checkpoint_files(out: Path) -> list[Path]:
    return sorted(p for p in (out / "runs").rglob("*") if p.is_file() and "checkpoints" in p.parts)


def test_finished_runs_leave_no_checkpoint(tmp_path):
    out = tmp_path / "out"
    sweep(tmp_path, out)
    assert checkpoint_files(out) == []
    assert not list((out / "runs").glob("*/checkpoints"))


def test_keep_checkpoints_keeps_them(tmp_path):
    out = tmp_path / "out"
    sweep(tmp_path, out, "--keep-checkpoints")
    names = [p.relative_to(p.parents[2] if p.parent.name == "group" else p.parents[1]).as_posix()
             for p in checkpoint_files(out)]
    assert sorted(names) == ["checkpoints/group/last.ckpt"] + ["checkpoints/last.ckpt"] * 2
    for path in checkpoint_files(out):
        assert torch.load(path, map_location="cpu", weights_only=False)["global_step"] == 60


def spec(**hparams) -> RunSpec:
    return RunSpec(suite="t", stage="eval", task="quadratic", preset="smoke", task_overrides=(),
                   optimizer="muphi", hparams=tuple(sorted(hparams.items())), lr=1e-2, seed=1)


def test_a_failed_run_keeps_its_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    held = run_dir / "checkpoints" / "last.ckpt"
    held.parent.mkdir(parents=True)
    held.write_bytes(b"an earlier attempt's state")
    outcome = execute_run(spec(window="no-such-window"), run_dir,
                          RunOptions(wandb="disabled", checkpoints=True), {})
    assert outcome.status == "failed" and RunFolder(run_dir).state() == "failed"
    assert held.read_bytes() == b"an earlier attempt's state"


def test_checkpoints_go_only_with_a_done_marker(tmp_path):
    run_dir = tmp_path / "run"
    options = RunOptions(wandb="disabled", checkpoints=True, keep_checkpoints=True)
    assert execute_run(spec(window="linear"), run_dir, options, {}).status == "done"
    folder = RunFolder(run_dir)
    assert (folder.checkpoint_dir / "last.ckpt").is_file()  # kept on request
    folder.done_file.rename(run_dir / "DONE.aside")  # as if killed before its marker
    remove_checkpoints(run_dir)
    assert (folder.checkpoint_dir / "last.ckpt").is_file()  # an unfinished run keeps them
    (run_dir / "DONE.aside").rename(folder.done_file)
    remove_checkpoints(run_dir)
    assert not folder.checkpoint_dir.exists()
