"""Run ids, folder keys and derived seeds."""

from __future__ import annotations

import pytest

from annealbench.runner.suite.run_spec import (RunSpec, config_label, derive_seed, expand_eval, expand_tune, format_lr,
                        group_key)
from annealbench.runner.suite.suite import parse_suite

SUITE = """
name: s
preset: smoke
tasks: [quadratic, diabetes]
optimizers:
  - {name: muphi, hparams: {window: root, p: 2}, lr: [1.0e-2, 3.0e-3]}
  - {name: adamw, hparams: {window: cosine}, lr: [1.0e-3]}
seeds: {tune: [1, 2], eval: [5, 6, 7]}
"""


def spec(**kw):
    base = dict(suite="s", stage="eval", task="shakespeare", preset="quick", task_overrides=(),
                optimizer="muphi", hparams=(("window", "linear"),), lr=3e-3, seed=2)
    return RunSpec(**{**base, **kw})


def test_run_id_is_readable_and_ordered():
    s = spec(hparams=(("window", "root"), ("p", 2.0)))
    assert s.run_id == "shakespeare/muphi[p=2,window=root,lr=3e-3]/seed=2"
    assert spec().run_id == "shakespeare/muphi[window=linear,lr=3e-3]/seed=2"
    assert spec().config == "muphi[window=linear]"
    assert config_label("sf-adamw", ()) == "sf-adamw"
    assert "/" not in spec().key
    assert spec(task_overrides=(("width", 64),)).run_id.startswith("shakespeare[width=64]/")


@pytest.mark.parametrize("lr, text", [(3e-3, "3e-3"), (1.0, "1e0"), (0.0125, "1.25e-2"),
                                      (1e-4, "1e-4")])
def test_format_lr(lr, text):
    assert format_lr(lr) == text


def test_derived_seed_ignores_optimizer_and_order_but_not_data():
    a = spec()
    assert a.derived_seed == spec(optimizer="adamw", hparams=(), lr=1e-1).derived_seed
    assert a.derived_seed == spec(stage="tune").derived_seed
    assert a.derived_seed != spec(seed=3).derived_seed
    assert a.derived_seed != spec(preset="smoke").derived_seed
    assert a.derived_seed != spec(task_overrides=(("width", 64),)).derived_seed
    assert a.derived_seed == derive_seed("shakespeare", "quick", (), 2)  # a pure function
    assert 0 <= a.derived_seed < 2**31


def test_json_round_trip():
    s = spec(hparams=(("p", 2.0), ("window", "root")), task_overrides=(("width", 64),))
    assert RunSpec.from_json(s.to_json()) == s


def test_expansion_counts_and_independence():
    suite = parse_suite(SUITE, source="s.yaml")
    tune = expand_tune(suite)
    assert len(tune) == 2 * 2 * 2  # tasks × lr × tuning seeds; the single-lr adamw is not tuned
    assert {s.seed for s in tune} == {1, 2}
    chosen = {group_key(t, suite.optimizers[0]): 3e-3 for t in suite.tasks}
    evals = expand_eval(suite, chosen)
    assert len(evals) == 2 * 2 * 3
    assert {s.lr for s in evals if s.optimizer == "muphi"} == {3e-3}
    # Adding a task changes no other run's id or seed.
    bigger = parse_suite(SUITE.replace("[quadratic, diabetes]", "[digits, quadratic, diabetes]"),
                         source="s.yaml")
    old = {s.run_id: s.derived_seed for s in tune}
    new = {s.run_id: s.derived_seed for s in expand_tune(bigger)}
    assert all(new[k] == v for k, v in old.items())
