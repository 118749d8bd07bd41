"""Bad suites fail before any run starts; CLI arguments are checked; one run is deterministic."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from annealbench import cli
from annealbench.runner.errors import SuiteError
from annealbench.runner.run.execute import RunOptions, execute_run
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.suite.suite import load_suite, parse_suite
from annealbench.runner.suite.validate import validate_suite
from annealbench.runner.run.wandb_logger import resolve_wandb_mode

BASE = """
name: bad
preset: smoke
tasks: [quadratic]
optimizers:
  - {name: muphi, hparams: {window: linear}, lr: [1.0e-2, 3.0e-2]}
seeds: {tune: [1], eval: [2]}
"""


@pytest.mark.parametrize("old, new, words", [
    ("tasks: [quadratic]", "tasks: [imagenet]", "unknown task 'imagenet'"),
    ("name: muphi", "name: lion", "unknown optimizer 'lion'"),
    ("window: linear", "window: zigzag", "zigzag"),
    ("window: linear}", "window: linear, warmup: 1.5}", "warmup"),
    ("lr: [1.0e-2, 3.0e-2]", "lr: [-1.0e-2]", "> 0"),
    ("lr: [1.0e-2, 3.0e-2]", "lr: []", "empty grid"),
    ("tasks: [quadratic]", "tasks: [{name: quadratic, overrides: {max_steps: -3}}]", "max_steps"),
])
def test_bad_suite_fails_before_any_run(tmp_path, capsys, old, new, words):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE.replace(old, new))
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and words in err
    assert not out.exists()  # nothing was started, not even the results directory


def test_duplicate_configurations_are_refused():
    text = BASE.replace("seeds:", "  - {name: muphi, hparams: {window: linear}, lr: [1.0e-1]}\nseeds:")
    with pytest.raises(SuiteError, match="duplicate run ids"):
        validate_suite(parse_suite(text, source="dup.yaml"))


def test_shipped_suites_validate_against_the_registries():
    # paper and paper-filter: tests/runner/test_dryrun.py (skipped until their peers are registered)
    for name in ("smoke", "quick"):
        suite = load_suite(name)
        if all(t.name in __import__("annealbench.tasks", fromlist=["TASK_NAMES"]).TASK_NAMES for t in suite.tasks):
            validate_suite(suite)


@pytest.mark.parametrize("argv, words", [
    (["run", "smoke", "--workers", "-1"], "--workers"),
    (["run", "smoke", "--launcher", "k8s"], "'local', 'slurm'"),
    (["run", "smoke", "--wandb", "maybe"], "'offline', 'online', 'disabled'"),
    (["run", "smoke", "--devices", "0"], "--devices"),
    (["run", "smoke", "--run-timeout", "0"], "--run-timeout: must be a number of seconds > 0"),
    (["run", "smoke", "--run-timeout", "soon"], "--run-timeout: must be a number of seconds"),
    (["train", "quadratic", "muphi", "--set", "novalue"], "key=value"),
    (["train", "quadratic", "muphi", "--preset", "huge"], "'smoke', 'quick', 'paper'"),
    (["frobnicate"], "'run', 'status', 'gather', 'list', 'train'"),
])
def test_cli_argument_errors_name_argument_and_choices(capsys, argv, words):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert words in capsys.readouterr().err


def test_train_rejects_bad_hyperparameters(tmp_path, capsys):
    assert cli.main(["train", "quadratic", "muphi", "--set", "window=zigzag",
                     "--out", str(tmp_path)]) == 2
    assert "zigzag" in capsys.readouterr().err
    assert cli.main(["train", "quadratic", "muphi", "--set", "lr=-1", "--out", str(tmp_path)]) == 2


def test_unwritable_output_directory_is_reported(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["run", "smoke", "--out", str(blocker / "out")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_same_run_twice_gives_identical_metrics(tmp_path):
    spec = RunSpec(suite="t", stage="eval", task="diabetes", preset="smoke", task_overrides=(),
                   optimizer="muphi", hparams=(("window", "cosine"),), lr=1e-2, seed=4)
    frames = []
    for attempt in ("a", "b"):
        outcome = execute_run(spec, tmp_path / attempt, RunOptions(wandb="disabled"), {})
        assert outcome.status == "done"
        frame = pd.read_parquet(tmp_path / attempt / "metrics.parquet")
        frames.append(frame[frame.metric != "time/elapsed_s"].reset_index(drop=True))
    assert len(frames[0]) > 0
    pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=True)
    other = RunSpec(**{**spec.__dict__, "seed": 5})
    execute_run(other, tmp_path / "c", RunOptions(wandb="disabled"), {})
    third = pd.read_parquet(tmp_path / "c" / "metrics.parquet")
    ours, theirs = (f[f.metric == "val/loss"].sort_values("step") for f in (frames[0], third))
    assert list(ours["step"]) == list(theirs["step"]) and len(ours) > 0  # the same steps …
    assert (ours["value"].to_numpy() != theirs["value"].to_numpy()).all()  # … other values


def test_wandb_online_without_key_falls_back_to_offline(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    with caplog.at_level(logging.WARNING, logger="annealbench.runner.run.wandb_logger"):
        assert resolve_wandb_mode("online") == "offline"
    assert "online mode unavailable" in caplog.text and "wandb sync" in caplog.text
    assert resolve_wandb_mode("disabled") == "disabled"


def test_train_prints_one_json_line(tmp_path, capsys):
    assert cli.main(["train", "quadratic", "sgd", "--set", "window=cosine", "--set", "lr=1e-2",
                     "--seed", "3", "--out", str(tmp_path), "--wandb", "disabled"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.strip()]
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["status"] == "done" and doc["run_id"] == "quadratic/sgd[window=cosine,lr=1e-2]/seed=3"
    assert {"val/loss", "train/loss"} <= set(doc["metrics"])
