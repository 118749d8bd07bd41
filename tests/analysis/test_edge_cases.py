"""Edge cases give clear messages, not crashes: one seed, all diverged, missing baseline, one configuration."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from annealbench.cli import main
from annealbench.analysis.claims import all_claims
from annealbench.analysis.load import StoreError, load_store
from annealbench.analysis.analyse import Options, analyse
from tests.analysis.synthetic import BASELINE, Synthetic, write_store

CONFIGS = ((BASELINE, 0.0), ("muphi[window=linear]", 0.0))


def test_one_seed_says_no_test_is_possible(make_store):
    a = analyse(make_store(Synthetic(n_seeds=1, effects=CONFIGS)))
    assert (a.paired["n"] == 1).all()
    assert a.paired["note"].str.contains("no test possible: 1 paired seed").all()
    assert a.paired["p_t"].isna().all() and not a.maxt
    assert any("one seed only; no test is possible" in n for n in a.notes)
    sentences = " ".join(all_claims(a)["Verdicts"])
    assert "no test possible" in sentences and ": better" not in sentences
    assert (a.verdict["verdict"] == "inconclusive").all()


def test_all_runs_diverged_reports_failures_only(make_store):
    spec = Synthetic(n_seeds=3, effects=CONFIGS, tasks=("digits",),
                     diverged=tuple(("digits", c, s, 200) for c, _ in CONFIGS for s in range(3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no all-NaN slices along the way
        a = analyse(make_store(spec))
    assert a.failures["diverged"].tolist() == [3, 3]
    assert a.failures["diverged_ci_high"].tolist() == [1.0, 1.0]
    assert any("every eval run diverged or failed" in n for n in a.notes)
    assert any("no completed run, so there is no target" in n for n in a.notes)
    assert (a.paired["n"] == 0).all() and (a.paired["n_diverged"] == 3).all()
    assert "diverged in 3 of 3 runs" in " ".join(all_claims(a)["Failures"])


def test_missing_reference_names_the_configurations(make_store, tmp_path, capsys):
    store = make_store(Synthetic(n_seeds=2, effects=CONFIGS))
    with pytest.raises(ValueError, match=r"reference 'sgd' is not among the eval-stage configurations: \["):
        analyse(store, Options(references=("sgd",)))
    assert main(["report", str(store.root), "--reference", "sgd", "--out", str(tmp_path / "r")]) == 2
    assert "reference 'sgd' is not among" in capsys.readouterr().err


def test_reference_by_optimizer_name_and_ambiguity(make_store):
    store = make_store(Synthetic(n_seeds=2))
    assert analyse(store, Options(references=("adamw",))).baseline == BASELINE
    with pytest.raises(ValueError, match="reference 'muphi' is ambiguous"):
        analyse(store, Options(references=("muphi",)))


def test_a_task_with_one_configuration_is_described_not_compared(tmp_path):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=3))
    runs = pd.read_parquet(root / "runs.parquet")
    drop = (runs["task"] == "quadratic") & (runs["config"] != BASELINE)
    results = pd.read_parquet(root / "results.parquet")
    results[~results["run_id"].isin(runs.loc[drop, "run_id"])].to_parquet(root / "results.parquet")
    runs[~drop].to_parquet(root / "runs.parquet")
    a = analyse(load_store(root))
    assert set(a.paired["task"]) == {"digits"} and set(a.verdict["scope"]) == {"digits", "all tasks"}
    assert any("quadratic: only one configuration" in n for n in a.notes)
    assert a.friedman is None  # one task left: a block per task, never per seed
    assert any("needs more tasks" in n for n in a.notes)


def test_no_eval_stage_is_a_clear_error(tmp_path):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2))
    runs = pd.read_parquet(root / "runs.parquet")
    runs.assign(stage="tune").to_parquet(root / "runs.parquet")
    with pytest.raises(StoreError, match="no eval-stage runs"):
        analyse(load_store(root))


def test_options_are_checked():
    with pytest.raises(ValueError, match="alpha=1.5"):
        Options(alpha=1.5)


def test_tune_stage_runs_stay_out_of_the_comparisons(make_store):
    store = make_store(Synthetic(n_seeds=2, effects=CONFIGS, tune_lrs=(1e-2, 1e-4)))
    a = analyse(store)
    assert len(a.endpoints) == 2 * 2 * 2
    assert np.isin(a.endpoints["status"], ["done"]).all()


def test_higher_is_better_metrics_are_oriented(tmp_path):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=8, run_sd=0.03, log_optimizer=False,
                                                 tasks=("digits", "quadratic", "t2", "t3")))
    results = pd.read_parquet(root / "results.parquet")
    results = results.assign(metric="val/acc", value=3.0 - results["value"])  # an accuracy-like mirror
    results.to_parquet(root / "results.parquet")
    a = analyse(load_store(root), Options(metric="val/acc"))
    worse = a.paired[a.paired["config"] == "muphi[window=constant]"]
    assert (worse["mean_diff"] < 0).all() and (worse["a_better"] < 0.2).all()
    verdict = a.verdict[a.verdict["config"] == "muphi[window=constant]"]
    assert (verdict["verdict"] == "worse").all() and (verdict["posterior_worse"].dropna() > 0.9).all()
    ranks = dict(zip(a.friedman.configs, a.friedman.average_ranks))
    assert ranks["muphi[window=constant]"] == pytest.approx(3.0)
    sentences = [s for s in all_claims(a)["Verdicts"] if "window=constant] against adamw[window=cosine]: worse" in s]
    assert len(sentences) == 5  # four tasks and all tasks
    assert a.per_config["reached_fraction"].notna().all()
