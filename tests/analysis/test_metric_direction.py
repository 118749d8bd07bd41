"""A metric's direction comes from the tasks' declarations (issue "The verdict never misleads",
case 1), and the theory's regression takes the μ[t]·Φ windows only (case 10)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from annealbench.analysis.load import load_store
from annealbench.analysis.analyse import Options, analyse
from annealbench.analysis.theory import THEORY_OPTIMIZERS, radius_relation
from annealbench.common.metrics import ACCURACY, Declarations, MetricError, loss
from tests.analysis.synthetic import BASELINE, Synthetic, write_store

BETTER, WORSE = "muphi[window=linear]", "muphi[window=constant]"
SPEC = Synthetic(effects=((BASELINE, 0.0), (BETTER, -0.3), (WORSE, 0.3)), n_seeds=12, test_shift=0.0)


def _store_with_accuracy(tmp_path, declare: bool):
    """The synthetic store plus `test/acc = 1 − 0.2·test/loss`: lower loss, higher accuracy."""
    root = write_store(tmp_path / "store", SPEC)
    results = pd.read_parquet(root / "results.parquet")
    acc = results[results["metric"] == "test/loss"].assign(metric="test/acc")
    acc["value"] = 1.0 - 0.2 * acc["value"]
    pd.concat([results, acc], ignore_index=True).to_parquet(root / "results.parquet", index=False)
    if declare:
        declared = Declarations.of({t: (loss("nats"), ACCURACY) for t in SPEC.tasks})
        (root / "metrics.json").write_text(json.dumps(declared.to_dict()))
    return load_store(root)


def _verdicts(a) -> dict[str, str]:
    rows = a.verdict[(a.verdict["scope"] == "digits") & (a.verdict["reference"] == BASELINE)]
    return dict(zip(rows["config"], rows["verdict"]))


@pytest.mark.parametrize("declare", [True, False])
def test_case1_higher_accuracy_is_better(tmp_path, declare):
    store = _store_with_accuracy(tmp_path, declare)
    by_loss, by_acc = analyse(store, Options(metric="test/loss")), analyse(store, Options(metric="test/acc"))
    assert _verdicts(by_loss) == {BETTER: "better", WORSE: "worse"}
    assert _verdicts(by_acc) == {BETTER: "better", WORSE: "worse"}  # the same runs, read as accuracy
    assert by_acc.declared.better == "higher" and by_loss.declared.better == "lower"
    noted = any("metrics.json" in n for n in by_acc.notes)
    assert noted == (not declare)  # a store without declarations says whose directions it used
    # steps-to-target reaches an accuracy target from below: the reference reaches its own median
    reach = by_acc.endpoints[by_acc.endpoints["config"] == BASELINE]["steps_to_target"]
    assert np.isfinite(reach).mean() >= 0.4


def test_case1_an_undeclared_metric_is_refused(tmp_path):
    store = _store_with_accuracy(tmp_path, declare=True)
    with pytest.raises(MetricError, match=r"does not log 'test/f1'.*test/acc"):
        analyse(store, Options(metric="test/f1"))
    with pytest.raises(MetricError, match="not an evaluation metric"):
        analyse(store, Options(metric="train/loss"))


def _diagnostics(rng) -> pd.DataFrame:
    """Four μ[t]·Φ windows on one line of log mean radius, and SGD far off it."""
    rows = []
    configs = [("muphi[window=linear]", 1e-3), ("muphi[window=cosine]", 3e-3), ("muphi[window=constant]", 1e-2),
               ("muphi[window=root]", 3e-2), ("sgd[window=cosine]", 1e-2)]
    for config, radius in configs:
        for seed in range(8):
            final = 1.0 - 0.05 * np.log(radius) + (0.5 if config.startswith("sgd") else 0.0) + rng.normal(0, 0.01)
            rows.append({"task": "t", "config": config, "seed": seed, "status": "done",
                         "mean_radius": radius, "final": final})
    return pd.DataFrame(rows)


def test_case10_the_radius_regression_fits_the_muphi_windows_only(tmp_path):
    diag = _diagnostics(np.random.default_rng(1))
    pooled = radius_relation(diag).iloc[0]
    windows = radius_relation(diag, optimizers=THEORY_OPTIMIZERS).iloc[0]
    assert pooled.p_shape < 1e-6  # SGD alone supplies the lack of fit
    assert windows.configs == 4 and windows.p_shape > 0.01  # the windows lie on the line
    a = analyse(load_store(write_store(tmp_path / "s", Synthetic(n_seeds=4))))
    assert set(a.radius_relation["configs"]) <= {2}  # of the 3 configurations, the 2 muphi windows
