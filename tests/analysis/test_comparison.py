"""The declared comparison read from the store, its command-line overrides, the test metric."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from annealbench.cli import main
from annealbench.analysis.load import load_store
from annealbench.analysis.analyse import Options, analyse
from annealbench.analysis.theory import radius_relation
from tests.analysis.synthetic import BASELINE, Synthetic, write_store

LINEAR = "muphi[window=linear]"


def _store_with_compare(tmp_path, doc, spec=Synthetic(n_seeds=4)):
    root = write_store(tmp_path / "s", spec)
    (root / "compare.json").write_text(json.dumps(doc))
    return load_store(root)


def test_the_declared_comparison_is_read_from_the_store(tmp_path):
    store = _store_with_compare(tmp_path, {"references": [LINEAR], "margin": {"absolute": 0.05},
                                           "per_task": {"digits": {"relative": 0.1}}})
    a = analyse(store)
    assert a.comparison.references == (LINEAR,) and a.baseline == LINEAR
    assert "compare.json" in a.comparison.describe()
    assert set(a.verdict["reference"]) == {LINEAR}
    by_task = a.verdict.groupby("scope")[["margin", "scale", "margin_metric", "margin_source"]].first()
    assert by_task.loc["quadratic", "margin"] == 0.05 and by_task.loc["quadratic", "scale"] == "difference"
    # a relative margin on a positive loss is log(1 + δ) on log-ratios, fixed before any run; in metric
    # units it is δ·median of the reference, here from its eval runs (no tune stage), and the row says so
    ref = a.endpoints[(a.endpoints["task"] == "digits") & (a.endpoints["config"] == LINEAR)]["final"]
    assert by_task.loc["digits", "margin"] == pytest.approx(np.log1p(0.1))
    assert by_task.loc["digits", "scale"] == "log ratio"
    assert by_task.loc["digits", "margin_metric"] == pytest.approx(0.1 * abs(ref.median()))
    assert "fallback" in by_task.loc["digits", "margin_source"]


def test_command_line_overrides_the_declared_comparison(tmp_path):
    store = _store_with_compare(tmp_path, {"references": [LINEAR], "margin": {"absolute": 0.05},
                                           "per_task": {"digits": {"relative": 0.1}}})
    a = analyse(store, Options(references=(BASELINE, LINEAR), margin_abs=0.2))
    assert a.comparison.references == (BASELINE, LINEAR) and a.comparison.origin == "command line"
    assert (a.verdict["margin"][a.verdict["scope"] != "all tasks"] == 0.2).all()  # per-task margins replaced too
    assert ((a.verdict["config"] == LINEAR) & (a.verdict["reference"] == BASELINE)).any()
    assert not ((a.verdict["config"] == BASELINE) & (a.verdict["reference"] == LINEAR)).any()


@pytest.mark.parametrize("args, words", [
    (["--margin", "-0.1"], "--margin must be a finite number > 0"),
    (["--margin-abs", "0"], "--margin-abs must be a finite number > 0"),
    (["--reference", "lion"], "reference 'lion' is not among the eval-stage configurations"),
])
def test_bad_command_line_values_name_what_is_allowed(tmp_path, capsys, args, words):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2))
    assert main(["report", str(root), "--no-wandb", "--out", str(tmp_path / "r"), *args]) == 2
    err = capsys.readouterr().err
    assert words in err
    if "lion" in args:
        assert BASELINE in err  # the allowed configurations are listed


def test_both_margins_are_refused(tmp_path, capsys):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2))
    with pytest.raises(SystemExit):
        main(["report", str(root), "--margin", "0.02", "--margin-abs", "0.1"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not both"):
        Options(margin=0.02, margin_abs=0.1)


def test_a_bad_compare_json_names_the_file_and_key(tmp_path):
    store = _store_with_compare(tmp_path, {"references": [BASELINE], "margin": {"relative": -1}})
    with pytest.raises(ValueError, match=r"compare.json: compare.margin.relative: must be a finite number > 0"):
        analyse(store)


def test_verdicts_use_the_test_split_when_it_is_logged(make_store):
    with_test = analyse(make_store(Synthetic(n_seeds=3, test_shift=0.5)))
    assert with_test.options.metric == "test/loss"
    assert not any("logs no test/loss" in n for n in with_test.notes)
    base = with_test.endpoints[with_test.endpoints["config"] == BASELINE]["final"]
    val_only = analyse(make_store(Synthetic(n_seeds=3)))
    assert val_only.options.metric == "val/loss" and any("logs no test/loss" in n for n in val_only.notes)
    # the same runs, read on the test split: every final value is shifted by 0.5
    np.testing.assert_allclose(base.to_numpy() - 0.5,
                               val_only.endpoints[val_only.endpoints["config"] == BASELINE]["final"].to_numpy())
    chosen = analyse(make_store(Synthetic(n_seeds=3, test_shift=0.5)), Options(metric="val/loss"))
    assert chosen.options.metric == "val/loss"


def _diag(rng, slope, shape_effect):
    """Runs of four windows at four mean radii; `shape_effect` moves one window off the line."""
    rows = []
    for j, (config, radius) in enumerate([("a", 1e-3), ("b", 3e-3), ("c", 1e-2), ("d", 3e-2)]):
        for seed in range(6):
            final = 1.0 + slope * np.log(radius) + (shape_effect if config == "c" else 0.0) + rng.normal(0, 0.01)
            rows.append({"task": "t", "config": config, "seed": seed, "status": "done",
                         "mean_radius": radius, "final": final})
    return pd.DataFrame(rows)


def test_the_mean_radius_relation_and_its_shape_test():
    rng = np.random.default_rng(0)
    on_line = radius_relation(_diag(rng, -0.05, 0.0)).iloc[0]
    assert on_line.slope_ci_low <= -0.05 <= on_line.slope_ci_high
    assert on_line.p_shape > 0.01 and on_line.shape_df == 2 and on_line.resid_df == 20
    off_line = radius_relation(_diag(rng, -0.05, 0.1)).iloc[0]
    assert off_line.p_shape < 1e-6  # one window's shape matters beyond its mean radius
    too_few = radius_relation(_diag(rng, -0.05, 0.0).query("config in ['a', 'b']")).iloc[0]
    assert np.isnan(too_few.p_shape)
