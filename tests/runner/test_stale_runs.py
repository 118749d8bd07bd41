"""Finished runs made by other code are never reused silently: `annealbench run` refuses naming them
and the two choices, `--rerun-stale` runs them again, `--accept-stale` keeps them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from annealbench import cli
from annealbench.runner.run.provenance import environment
from annealbench.runner.suite.run_spec import expand_eval
from annealbench.runner.store.results_store import Outcome, ResultsStore
from annealbench.runner.suite.suite import load_suite, parse_suite

OLD = "0123456789ab" + "c" * 28  # a commit 72 commits earlier, say
SUITE = """
name: stale
preset: smoke
tasks:
  - {name: quadratic}
optimizers:
  - {name: adamw, hparams: {window: cosine}, lr: [1.0e-2]}
seeds: {eval: [1, 2]}
"""


def fake_finished(store: ResultsStore, spec, provenance: dict) -> None:
    """A finished run folder, written by the store's own code, as the code in `provenance` left it."""
    folder = store.folder(spec)
    folder.start(spec, keep_checkpoints=False)
    rows = pd.DataFrame({"step": [30, 60], "metric": ["val/loss"] * 2, "value": [0.611, 0.577]})
    folder.finish(rows, provenance, Outcome("done", max_steps=60, wall_time_s=0.1))


@pytest.fixture
def old_store(tmp_path):
    """A suite file and a results directory whose two runs another commit made."""
    path = tmp_path / "stale.yaml"
    path.write_text(SUITE)
    store = ResultsStore(tmp_path / "out")
    store.ensure_writable()
    for spec in expand_eval(load_suite(str(path)), {}):
        fake_finished(store, spec, {"git_commit": OLD, "git_dirty": False})
    return path, store


def folder_bytes(store: ResultsStore) -> dict[str, bytes]:
    return {p.relative_to(store.root).as_posix(): p.read_bytes()
            for p in sorted(store.runs_dir.rglob("*")) if p.is_file()}


def run(suite: Path, store: ResultsStore, *flags: str) -> int:
    return cli.main(["run", str(suite), "--out", str(store.root), "--workers", "1",
                     "--wandb", "disabled", *flags])


def test_stale_runs_stop_the_sweep_in_one_line_naming_commits_and_choices(old_store, capsys):
    suite, store = old_store
    before = folder_bytes(store)
    assert run(suite, store) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "2 finished run(s) were made by other code than this checkout" in err
    assert f"{OLD[:12]} (2 runs)" in err and environment()["git_commit"][:12] in err
    assert "--rerun-stale" in err and "--accept-stale" in err
    assert folder_bytes(store) == before and not (store.root / "runs.parquet").exists()


def test_accept_stale_keeps_them_and_says_so(old_store, capsys, caplog):
    suite, store = old_store
    before = folder_bytes(store)
    assert run(suite, store, "--accept-stale") == 0
    assert folder_bytes(store) == before
    runs = pd.read_parquet(store.root / "runs.parquet")
    assert set(runs["git_commit"]) == {OLD}
    assert any("kept (--accept-stale)" in r.getMessage() for r in caplog.records)


def test_rerun_stale_runs_them_again_and_keeps_the_old_folders_aside(old_store):
    suite, store = old_store
    assert run(suite, store, "--rerun-stale") == 0
    runs = pd.read_parquet(store.root / "runs.parquet")
    assert set(runs["git_commit"]) == {environment()["git_commit"]} and set(runs["status"]) == {"done"}
    (aside,) = (store.root / "stale").iterdir()
    assert len(list(aside.iterdir())) == 2
    assert all(json.loads((p / "provenance.json").read_text())["git_commit"] == OLD for p in aside.iterdir())


def test_the_same_uncommitted_changes_are_the_same_code(tmp_path):
    from annealbench.runner.suite.stale import candidate_specs, stale_runs

    suite = parse_suite(SUITE, source="stale.yaml")
    store = ResultsStore(tmp_path / "out")
    store.ensure_writable()
    one, two = expand_eval(suite, {})
    commit = "f" * 40
    fake_finished(store, one, {"git_commit": commit, "git_dirty": True, "git_diff_sha256": "1" * 64})
    fake_finished(store, two, {"git_commit": commit, "git_dirty": True})  # no hash recorded
    current = (commit, "1" * 64)
    stale = stale_runs(candidate_specs(suite, []), store, current)
    assert stale == {(commit, "unrecorded"): [two]}
    stale = stale_runs(candidate_specs(suite, []), store, (commit, "2" * 64))
    assert sorted(stale) == [(commit, "1" * 64), (commit, "unrecorded")]
    assert stale_runs(candidate_specs(suite, []), store, (commit, ""))  # clean ≠ dirty


def test_changes_outside_the_code_a_run_executes_are_the_commit_itself():
    from annealbench.runner.run.provenance import code_version

    """A tree dirty only in docs, tests or the analysis records an empty hash: the commit's code."""
    assert code_version({"git_commit": "f" * 40, "git_dirty": True, "git_diff_sha256": ""}) == \
        code_version({"git_commit": "f" * 40, "git_dirty": False}) == ("f" * 40, "")


def test_every_evaluation_run_a_selection_could_keep_is_a_candidate():
    from annealbench.runner.suite.stale import candidate_specs

    suite = parse_suite(SUITE.replace("lr: [1.0e-2]", "lr: [1.0e-3, 1.0e-2, 1.0e-1]")
                        .replace("seeds: {eval: [1, 2]}", "seeds: {tune: [0], eval: [1, 2]}"),
                        source="grid.yaml")
    from annealbench.runner.suite.run_spec import expand_tune

    tune = expand_tune(suite)
    specs = candidate_specs(suite, tune)
    evals = {s.lr for s in specs if s.stage == "eval"}
    assert len(tune) == 3 and evals == {1e-3, 1e-2, 1e-1} and len(specs) == 3 + 3 * 2
