"""The selection metric is a declared validation metric, optimised in its declared direction.

Issue: "Nothing silently wrong", case 1. `selection: {metric: val/acc}` used to *minimise*
accuracy (it chose the lr at chance), and a typo scored every lr +inf and ran the evaluation
stage anyway.
"""

from __future__ import annotations

import json

import pandas as pd

from tests.runner.helpers import run_bench

ACC = """
name: acc
preset: smoke
tasks: [digits]
optimizers:
  - {name: adamw, hparams: {window: cosine}, lr: [1.0e-6, 1.0e-2]}
seeds: {tune: [1], eval: [10]}
selection: {metric: SELECT}
"""


def _suite(tmp_path, metric: str):
    path = tmp_path / "acc.yaml"
    path.write_text(ACC.replace("SELECT", metric))
    return path


def test_case1_an_accuracy_selection_maximises_accuracy(tmp_path):
    out = tmp_path / "out"
    done = run_bench("run", str(_suite(tmp_path, "val/acc")), "--out", str(out), "--wandb", "disabled",
                     "--workers", "1", "--seed-batch", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads((out / "selection.json").read_text())
    choice = doc["choices"][0]
    assert doc["direction"] == "higher" and "highest median" in doc["rule"]
    accuracy = {float(lr): score for lr, score in choice["scores"].items()}
    assert accuracy[1e-2] > accuracy[1e-6] + 0.3  # a real difference: trained vs near chance
    assert choice["lr"] == 1e-2  # the higher accuracy wins
    runs = pd.read_parquet(out / "runs.parquet")
    assert set(runs.loc[runs["stage"] == "eval", "lr"]) == {1e-2}
    declared = json.loads((out / "metrics.json").read_text())["tasks"]["digits"]
    assert declared["acc"]["better"] == "higher" and declared["loss"]["better"] == "lower"


def test_case1_an_undeclared_selection_metric_is_refused_before_any_run(tmp_path):
    out = tmp_path / "out"
    refused = run_bench("run", str(_suite(tmp_path, "val/lss")), "--out", str(out), "--wandb", "disabled")
    assert refused.returncode == 2
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in refused.stderr
    assert "selection.metric" in errors[0] and "'val/lss'" in errors[0] and "val/acc" in errors[0]
    assert not (out / "runs").exists()


def test_case1_selecting_on_the_test_split_is_refused(tmp_path):
    refused = run_bench("run", str(_suite(tmp_path, "test/loss")), "--out", str(tmp_path / "out"),
                        "--dry-run")
    assert refused.returncode == 2
    assert "must be a validation metric" in refused.stderr and "Traceback" not in refused.stderr
