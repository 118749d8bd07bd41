"""Finished runs made with other values under the same run id are never reused silently: each
run records its resolved configuration and its hash, and `annealbench run` refuses a store whose
finished runs disagree with what the suite now resolves to, naming the changed keys old → new;
`--rerun-changed` runs exactly those again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from annealbench import cli
from annealbench.runner.suite.run_spec import RunSpec, config_sha256, resolved_config, resolved_task
from annealbench.runner.store.results_store import ResultsStore

SUITE = """
name: changed
preset: smoke
tasks:
  - {name: quadratic}
optimizers:
  - {name: adamw, lr: [1.0e-2]}
seeds: {eval: [1, 2, 3]}
seed_batch: 1
"""


def run(suite: Path, store: ResultsStore, *flags: str) -> int:
    return cli.main(["run", str(suite), "--out", str(store.root), "--workers", "1",
                     "--wandb", "disabled", *flags])


def folder_bytes(store: ResultsStore) -> dict[str, bytes]:
    return {p.relative_to(store.root).as_posix(): p.read_bytes()
            for p in sorted(store.runs_dir.rglob("*")) if p.is_file()}


def spec_files(store: ResultsStore) -> list[Path]:
    return sorted(store.runs_dir.glob("*/spec.json"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """The suite file and a store where `annealbench run` finished its three runs (made once)."""
    root = tmp_path_factory.mktemp("changed")
    suite = root / "changed.yaml"
    suite.write_text(SUITE)
    assert run(suite, ResultsStore(root / "out")) == 0
    return suite, root / "out"


@pytest.fixture
def store(finished, tmp_path) -> tuple[Path, ResultsStore]:
    """A copy of the finished store, this test's own, and its suite file."""
    suite, out = finished
    shutil.copytree(out, tmp_path / "out")
    mine = tmp_path / "changed.yaml"
    shutil.copy(suite, mine)
    return mine, ResultsStore(tmp_path / "out")


def test_every_run_records_its_resolved_configuration_and_its_hash(store):
    _, results = store
    (first, *_) = docs = [json.loads(p.read_text()) for p in spec_files(results)]
    assert len(docs) == 3
    resolved = first["resolved"]
    assert first["resolved_sha256"] == config_sha256(resolved)
    assert resolved["preset"] == "smoke" and resolved["task.max_steps"] == 60  # the preset's
    assert resolved["optimizer.betas"] == [0.9, 0.999] and resolved["optimizer.lr"] == 0.01
    assert resolved["derived_seed"] == first["derived_seed"]
    assert resolved == resolved_config(RunSpec.from_json(first))


def test_a_suite_that_now_resolves_to_other_preset_values_is_refused_naming_them(store, capsys):
    """The suite file asks for the `quick` preset where its runs were made at `smoke`: the run
    ids stay (they do not hold the preset), every value the preset sets changes. Nothing is
    simulated: the values come from the task's own presets."""
    suite, results = store
    suite.write_text(SUITE.replace("preset: smoke", "preset: quick"))
    before = folder_bytes(results)
    capsys.readouterr()
    assert run(suite, results) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert ("3 finished run(s) were made with another configuration than the suite now "
            "resolves to") in err
    for change in ('preset "smoke" → "quick" (3 runs)', "task.max_steps 60 → 1000 (3 runs)",
                   "task.dim 200 → 2000 (3 runs)", "task.val_every 30 → 50 (3 runs)"):
        assert change in err
    assert "--rerun-changed" in err
    assert folder_bytes(results) == before and not (results.root / "changed").exists()


def test_rerun_changed_runs_again_exactly_the_runs_made_with_other_values(store, capsys):
    """One run's record is rewritten as code whose smoke preset had `max_steps: 40` would have
    written it: the same functions give its values and its hash, with that one value older.
    (A store from other code cannot be made in a test without checking that code out; the record
    is the only thing the check reads of it, so this is the store it would have left.)"""
    suite, results = store
    older = spec_files(results)[1]
    doc = json.loads(older.read_text())
    doc["resolved"]["task.max_steps"] = 40
    doc["resolved_sha256"] = config_sha256(doc["resolved"])
    older.write_text(json.dumps(doc))
    untouched = {k: v for k, v in folder_bytes(results).items()
                 if not k.startswith(f"runs/{older.parent.name}/")}
    capsys.readouterr()
    assert run(suite, results) == 2
    err = capsys.readouterr().err
    assert "1 finished run(s) were made with another configuration" in err
    assert "task.max_steps 40 → 60 (1 run)" in err and "task.dim" not in err

    assert run(suite, results, "--rerun-changed") == 0
    (aside,) = (results.root / "changed").iterdir()
    assert [p.name for p in aside.iterdir()] == [older.parent.name]
    assert json.loads((aside / older.parent.name / "spec.json").read_text()) == doc
    after = folder_bytes(results)
    assert {k: after[k] for k in untouched} == untouched  # the other runs were not run again
    rerun = json.loads(older.read_text())
    assert rerun["resolved"]["task.max_steps"] == 60
    assert rerun["resolved_sha256"] == config_sha256(resolved_config(RunSpec.from_json(rerun)))
    runs = pd.read_parquet(results.root / "runs.parquet")
    assert len(runs) == 3 and set(runs["status"]) == {"done"}


@pytest.mark.parametrize("flags", [(), ("--rerun-changed",)])
def test_an_unchanged_store_refuses_nothing_and_reruns_nothing(store, flags):
    suite, results = store
    before = folder_bytes(results)
    assert run(suite, results, *flags) == 0
    assert folder_bytes(results) == before and not (results.root / "changed").exists()


def test_runs_from_before_the_record_are_kept_and_said_so(store, caplog):
    """A store written before runs recorded their configuration: nothing to compare, so the runs
    are kept (older code made them; the code check is what refuses those) and a warning says how
    many; `--rerun-changed` does not pretend to know they changed."""
    suite, results = store
    for path in spec_files(results)[:2]:
        doc = json.loads(path.read_text())
        del doc["resolved"], doc["resolved_sha256"]
        path.write_text(json.dumps(doc))
    before = folder_bytes(results)
    assert run(suite, results, "--rerun-changed") == 0
    assert folder_bytes(results) == before and not (results.root / "changed").exists()
    assert any("2 finished run(s) record no resolved configuration" in r.getMessage()
               for r in caplog.records)


def test_the_resolved_configuration_holds_defaults_and_leaves_out_where_data_lives():
    def spec(task: str, overrides=(), hparams=(), seed=0) -> RunSpec:
        return RunSpec("s", "eval", task, "smoke", tuple(overrides), "adamw", tuple(hparams),
                       1e-2, seed)

    plain = resolved_config(spec("cifar10"))
    elsewhere = resolved_config(spec("cifar10", [("data_dir", "/no/such/place"),
                                                 ("download", True)]))
    assert plain == elsewhere and "task.data_dir" not in plain and "task.download" not in plain
    assert plain["task.model"] == "resnet18" and plain["task.channels_last"] is False
    # a default written out is the default: the same computation, the same hash
    explicit = resolved_config(spec("quadratic", hparams=[("weight_decay", 0.0)]))
    implicit = resolved_config(spec("quadratic"))
    assert config_sha256(explicit) == config_sha256(implicit)
    assert config_sha256(resolved_config(spec("quadratic", hparams=[("weight_decay", 0.1)]))) \
        != config_sha256(implicit)
    assert config_sha256(resolved_config(spec("quadratic", seed=1))) != config_sha256(implicit)


def test_a_task_is_resolved_once_per_task_preset_and_overrides():
    """Checking a large store resolves each task configuration once, not once per run."""
    resolved_task.cache_clear()
    for seed in range(50):
        for lr in (1e-3, 1e-2):
            resolved_config(RunSpec("s", "eval", "digits", "smoke", (("hidden", 16),), "sgd", (),
                                    lr, seed))
    assert resolved_task.cache_info().misses == 1 and resolved_task.cache_info().hits == 99
