"""Through the real CLI and runner: one run for `1000` and `1000.0`, a `/` in an override value,
errors as one line with the traceback in a log file, and W&B without its per-run notice."""

from __future__ import annotations

import json

import pandas as pd

from annealbench.analysis.load import load_store
from annealbench import cli
from annealbench.runner.suite.suite import parse_suite
from annealbench.runner.sweep import SweepOptions, run_sweep
from annealbench.runner.run.wandb_logger import make_wandb_logger


def _train(tmp_path, capsys, *sets: str) -> dict:
    argv = ["train", "quadratic", "adamw", "--set", "window=cosine", "--set", "lr=1e-2",
            "--out", str(tmp_path), "--wandb", "disabled"]
    for assignment in sets:
        argv += ["--set", assignment]
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_an_override_written_1000_or_1000_point_0_is_one_run_with_one_seed(tmp_path, capsys):
    a = _train(tmp_path, capsys, "task.condition=1000")
    b = _train(tmp_path, capsys, "task.condition=1000.0")
    assert a["run_id"] == b["run_id"] == "quadratic[condition=1000]/adamw[window=cosine,lr=1e-2]/seed=0"
    folders = list((tmp_path / "runs").iterdir())
    assert len(folders) == 1  # the second attempt reused the first one's folder
    spec = json.loads((folders[0] / "spec.json").read_text())
    prov = json.loads((folders[0] / "provenance.json").read_text())
    assert spec["task_overrides"] == {"condition": 1000.0} and prov["derived_seed"] == spec["derived_seed"]
    timing = {"time/elapsed_s"}
    assert {k: v for k, v in a["metrics"].items() if k not in timing} == \
        {k: v for k, v in b["metrics"].items() if k not in timing}  # one seed: the same numbers


TEXT_SUITE = """
name: slashes
preset: smoke
tasks:
  - {{name: shakespeare, overrides: {{text_path: "{path}"}}}}
optimizers:
  - {{name: adamw, hparams: {{window: cosine}}, lr: [1.0e-2]}}
seeds: {{eval: [10]}}
"""


def test_a_suite_with_a_slash_in_an_override_runs_and_is_analysed(tmp_path):
    corpus = tmp_path / "my corpus, v1" / "text=[x].txt"  # every character the id structures
    corpus.parent.mkdir()
    corpus.write_text("To be, or not to be, that is the question.\n" * 400, encoding="utf-8")
    suite = parse_suite(TEXT_SUITE.format(path=corpus), source="slashes.yaml")
    out = tmp_path / "out"
    summary = run_sweep(suite, SweepOptions(out=out, workers=1, wandb="disabled"))
    assert summary.counts.get("done") == 1, summary.line
    store = load_store(out)
    (label,) = set(store.runs["task"])
    assert label.startswith("shakespeare[text_path=") and "/" not in label
    assert json.loads(store.runs["task_overrides"].iloc[0]) == {"text_path": str(corpus)}
    assert len(store.results) > 0 and set(store.runs["status"]) == {"done"}
    (folder,) = (out / "runs").iterdir()
    assert len(folder.name.encode()) <= 255 and "/" not in folder.name


def test_an_error_is_one_line_and_its_traceback_is_in_a_log(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ANNEALBENCH_LOGS", str(tmp_path / "logs"))
    assert cli.main(["train", "quadratic", "adamw", "--set", "task.condition=0.5",
                     "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "condition must be >= 1" in err[0]
    (log,) = (tmp_path / "logs").iterdir()
    assert f"(traceback: {log})" in err[0]
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "ValueError: condition must be" in text
    assert "train quadratic adamw --set task.condition=0.5" in text


def test_wandb_runs_without_the_anonymous_notice(tmp_path, capfd):
    spec = {"run_id": "q/adamw[lr=1e-2]/seed=0", "suite": "s", "task": "q", "stage": "eval",
            "optimizer": "adamw", "config": "adamw"}
    logger = make_wandb_logger(spec, str(tmp_path), "offline")
    logger.experiment.finish()
    captured = capfd.readouterr()
    assert "anonymous" not in captured.out + captured.err
    assert list((tmp_path / "wandb").glob("offline-run-*"))  # it did log, offline
