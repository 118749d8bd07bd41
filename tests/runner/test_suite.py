"""Suite files: the shipped ones load, bad ones fail with `SuiteError` naming file and key."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from annealbench.runner.errors import SuiteError
from annealbench.runner.suite.suite import load_suite, parse_suite, shipped_suites

GOOD = """
name: t
preset: smoke
tasks: [quadratic, {name: diabetes, preset: smoke}]
optimizers:
  - {name: muphi, hparams: {window: linear, p: 2}, lr: [1e-2, 3.0e-2]}
  - {name: adamw, hparams: {window: cosine}, lr: {low: 1e-3, high: 1e-1, num: 3}}
seeds: {tune: [1, 2], eval: {first: 10, count: 3}}
"""


def test_shipped_suites_load():
    names = set(shipped_suites())
    assert {"smoke", "quick", "paper"} <= names
    for name in names:
        suite = load_suite(name)
        assert suite.name == name
        assert not set(suite.tune_seeds) & set(suite.eval_seeds)


def test_good_suite_parses_into_typed_values():
    suite = parse_suite(GOOD, source="good.yaml")
    assert [t.name for t in suite.tasks] == ["quadratic", "diabetes"]
    muphi, adamw = suite.optimizers
    assert muphi.lr_grid == (0.01, 0.03)  # YAML's `1e-2` is a string; it is read as a number
    assert muphi.hparams == (("p", 2), ("window", "linear"))
    assert adamw.lr_grid == pytest.approx((1e-3, 1e-2, 1e-1))
    assert suite.eval_seeds == (10, 11, 12)
    assert suite.selection.metric == "val/loss"
    with pytest.raises(AttributeError):
        suite.name = "other"  # frozen


@pytest.mark.parametrize("mutate, key, words", [
    (lambda d: d.update(colour="red"), "file", "unknown key"),
    (lambda d: d.pop("seeds"), "file", "missing"),
    (lambda d: d["optimizers"][0].update(lr=[-1e-3]), "optimizers[0].lr[0]", "> 0"),
    (lambda d: d["optimizers"][0].update(lr=[]), "optimizers[0].lr", "empty grid"),
    (lambda d: d["optimizers"][0].update(lr=[1e-3, 1e-3]), "optimizers[0].lr", "repeats"),
    (lambda d: d["optimizers"][0]["hparams"].update(lr=1.0), "optimizers[0].hparams.lr", "lr"),
    (lambda d: d["optimizers"][0].update(lr=[float("nan")]), "optimizers[0].lr[0]", "finite"),
    (lambda d: d.update(tasks=[]), "tasks", "non-empty"),
    (lambda d: d["tasks"].append("quadratic"), "tasks", "twice"),
    (lambda d: d["tasks"].append({"name": "x", "preset": "huge"}), "tasks[2].preset", "smoke"),
    (lambda d: d.update(seeds={"tune": [1], "eval": [1, 2]}), "seeds", "disjoint"),
    (lambda d: d.update(seeds={"tune": [1], "eval": []}), "seeds.eval", "empty"),
    (lambda d: d.update(seeds={"eval": [3]}), "seeds.tune", "tuning seed"),
    (lambda d: d.update(seeds={"tune": [1.5], "eval": [3]}), "seeds.tune[0]", "integer"),
    (lambda d: d.update(selection={"statistic": "max"}), "selection.statistic", "median"),
    (lambda d: d.update(name="a b"), "name", "letters"),
])
def test_bad_suites_name_the_key(mutate, key, words):
    doc = yaml.safe_load(GOOD)
    mutate(doc)
    with pytest.raises(SuiteError) as err:
        parse_suite(yaml.safe_dump(doc), source="bad.yaml")
    assert err.value.source == "bad.yaml" and err.value.key == key
    assert words in err.value.problem
    assert str(err.value).startswith("bad.yaml: ")


def test_yaml_syntax_error_and_unknown_suite():
    with pytest.raises(SuiteError, match="not valid YAML"):
        parse_suite("name: [unclosed", source="x.yaml")
    with pytest.raises(SuiteError, match="shipped suites"):
        load_suite("no-such-suite")


def test_log_grid_is_geometric():
    suite = parse_suite(GOOD.replace("num: 3", "num: 5"), source="g.yaml")
    grid = suite.optimizers[1].lr_grid
    ratios = [b / a for a, b in zip(grid, grid[1:])]
    assert all(math.isclose(r, 10 ** 0.5, rel_tol=1e-5) for r in ratios)


# The `paper` suite's power claim, as its YAML comment states it: the sd of the paired log-ratios
# up to which its evaluation seeds keep 80% TOST power at the worst-case Holm level.
PAPER_POWER_SD, PAPER_POWER_TARGET = 0.016, 0.8


def test_paper_eval_seeds_keep_the_power_its_comment_states():
    from annealbench.analysis.analyse import Options
    from annealbench.analysis.verdict import holm_levels, seeds_for_equivalence, tost_power
    from annealbench.common.store_schema import config_label

    suite = load_suite("paper")
    labels = [config_label(o.name, o.hparams) for o in suite.optimizers]
    m = len(suite.compare.pairs(labels)) * len(suite.tasks)
    alpha = Options().alpha
    level = float(holm_levels(np.full(m, 0.5), alpha).min())  # worst case: α/m
    assert level == pytest.approx(alpha / m)
    assert suite.compare.margin.kind == "relative" and not suite.compare.per_task
    theta = math.log1p(suite.compare.margin.value)  # decided on log-ratios against log(1 + δ)
    counts = {len(suite.eval_seeds_of(t)) for t in suite.tasks}
    assert len(counts) == 1
    n = counts.pop()
    power = tost_power(n, PAPER_POWER_SD, theta, level)
    assert power >= PAPER_POWER_TARGET
    assert n == seeds_for_equivalence(PAPER_POWER_SD, theta, level, PAPER_POWER_TARGET)  # no seed to spare
    with open(suite.source, encoding="utf-8") as f:  # the comment states the same numbers
        text = f.read()
    stated = (f"The {n} evaluation seeds", f"{m} comparisons", f"n = {n}, sd = {PAPER_POWER_SD:g}",
              f"level = {alpha:g}/{m} = {level:.3g}", f"power {power:.2f}")
    missing = [s for s in stated if s not in " ".join(text.replace("#", " ").split())]
    assert not missing, missing
