"""Curves on a shared grid, bands, endpoints and the diagnostics read from logged μ[t]."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from annealbench.analysis.curves import TaskCurves, final_values, normalised_auc, pointwise_band, steps_to_target, task_curves
from annealbench.analysis.diagnostics import run_diagnostics
from annealbench.analysis.load import load_store
from tests.analysis.synthetic import BASELINE, Synthetic, write_store


def _curves(values, status, steps=None, metric="val/loss", max_steps=None):
    values = np.asarray(values, dtype=float)
    steps = np.arange(1, values.shape[-1] + 1) * 10 if steps is None else np.asarray(steps)
    return TaskCurves(task="t", metric=metric, steps=steps, configs=tuple(f"c{i}" for i in range(values.shape[0])),
                      seeds=np.arange(values.shape[1]), values=values, status=np.asarray(status, dtype=object),
                      max_steps=max_steps or int(steps[-1]))


def test_runs_logged_at_other_steps_are_interpolated_onto_the_grid(tmp_path):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2, log_optimizer=False))
    results = pd.read_parquet(root / "results.parquet")
    shifted = results["run_id"].str.startswith("digits/muphi[window=linear")
    results.loc[shifted, "step"] += 25  # logged half-way between the others' evaluations
    results.to_parquet(root / "results.parquet")
    tc = task_curves(load_store(root), "val/loss")["digits"]
    assert np.array_equal(tc.steps, np.sort(np.unique(results.loc[results["metric"] == "val/loss", "step"])))
    c = tc.index("muphi[window=linear]")
    raw = results[shifted & (results["run_id"].str.endswith("seed=0")) & (results["metric"] == "val/loss")]
    at = np.searchsorted(tc.steps, 100)  # between raw steps 75 and 125
    expected = np.interp(100, raw["step"], raw["value"])
    assert tc.values[c, 0, at] == pytest.approx(expected)
    assert np.isnan(tc.values[c, 0, 0])  # step 50 is before the run's first evaluation: no extrapolation


def test_pointwise_band_is_the_t_interval():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(1, 7, 4))
    v[0, 0, 3] = np.nan
    mean, lo, hi = pointwise_band(v, 0.9)
    for j in range(4):
        x = v[0, :, j][np.isfinite(v[0, :, j])]
        ci = stats.ttest_1samp(x, 0).confidence_interval(0.9)
        assert (lo[0, j], hi[0, j]) == pytest.approx((ci.low, ci.high))
        assert mean[0, j] == pytest.approx(x.mean())


def test_endpoints_final_auc_and_censored_time_to_target():
    v = [[[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 3.0, 3.0], [4.0, 1.0, np.nan, np.nan]]]
    tc = _curves(v, [["done", "done", "diverged"]], steps=[1, 10, 100, 1000])
    final = final_values(tc, last_k=2)
    assert final[0, 0] == pytest.approx(1.5) and final[0, 1] == pytest.approx(3.0) and np.isnan(final[0, 2])
    auc = normalised_auc(tc)  # equal spacing in log10: trapezoid average of the values
    assert auc[0, 0] == pytest.approx((4 / 2 + 3 + 2 + 1 / 2) / 3)
    reach = steps_to_target(tc, 2.0, 1.0)
    assert list(reach[0]) == [100.0, np.inf, 10.0]  # the diverged run reached it before diverging


def test_accuracy_targets_are_reached_from_below():
    tc = _curves([[[0.1, 0.5, 0.9]]], [["done"]], metric="val/acc")
    assert steps_to_target(tc, 0.5, -1.0)[0, 0] == 20.0  # higher is better


@pytest.mark.parametrize("kind, mean, smooth", [("linear", 0.5, 1.0), ("cosine", 0.5, np.pi ** 2 / 8)])
def test_diagnostics_recover_window_mean_and_smoothness_from_logged_radius(tmp_path, kind, mean, smooth):
    config = f"muphi[window={kind}]"
    spec = Synthetic(tasks=("digits",), effects=((config, 0.0),), n_seeds=2, max_steps=2000, eval_every=5)
    store = load_store(write_store(tmp_path / "s", spec))
    mu, rms = task_curves(store, "opt/mu_t")["digits"], task_curves(store, "opt/rms_step")["digits"]
    d = run_diagnostics(mu, rms)
    assert d["window_mean"].to_numpy() == pytest.approx(mean, abs=0.01)
    assert d["smoothness_L"].to_numpy() == pytest.approx(smooth, abs=0.02)
    assert d["rms_over_mu"].to_numpy() == pytest.approx(1.0, abs=0.02)
    assert (d["contraction_slope"] < 0).all()  # the step contracts in the vanishing part


def test_unknown_metric_lists_the_logged_ones(tmp_path):
    store = load_store(write_store(tmp_path / "s", Synthetic(n_seeds=2)))
    with pytest.raises(ValueError, match=r"metric 'val/bpc' is not in the store; metrics logged: \["):
        task_curves(store, "val/bpc")
    assert BASELINE in task_curves(store, "val/loss")["digits"].configs
