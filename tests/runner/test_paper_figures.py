"""The `paper-figures` suite: the seed paper's four γ × numerator figures as one design, per-task
evaluation seeds, the design at another preset, and its dry run."""

from __future__ import annotations

import json
import math
import re

import pytest

from annealbench.runner.suite.dryrun import dry_run
from annealbench.runner.errors import SuiteError
from annealbench.runner.suite.run_spec import expand_eval, expand_tune
from annealbench.runner.suite.suite import load_suite, parse_suite
from annealbench.common.store_schema import config_label

BETA = 0.9
PUBLISHED_GAMMAS = (0.0, 0.31, BETA / (1 + BETA), 1 - math.sqrt(2 * (1 - BETA)), 0.64, 0.85, 0.9)
ARMS = ("one", "parcor-c5b0935")  # "Eq. (5)" (Adam, red) and "Eq. (8)" (par-cor, blue)
# task → (model or corpus, eval seeds, steps, batch): the release README's settings
PUBLISHED = {"resnet18": (5, 78_200, 128), "vit": (5, 75_000, 100),
             "shakespeare-char": (10, 10_000, 64), "wikitext103-bpe": (3, 100_000, 64)}


def _level(hparams: dict) -> str:
    return "Base" if hparams.get("beta") == 0 else repr(float(hparams["gamma"]))


def test_the_suite_is_the_published_grid_at_the_published_settings():
    suite = load_suite("paper-figures")
    assert expand_tune(suite) == []  # one fixed μ per figure: nothing is tuned
    assert {o.lr_grid for o in suite.optimizers} == {(1e-3,)}
    cells = {(_level(dict(o.hparams)), dict(o.hparams)["numerator"]) for o in suite.optimizers}
    levels = [repr(g) for g in PUBLISHED_GAMMAS] + ["Base"]
    got_levels = sorted({lvl for lvl, _ in cells}, key=lambda v: math.inf if v == "Base" else float(v))
    assert len(got_levels) == 8 and got_levels[-1] == "Base"
    for got, want in zip(got_levels[:-1], PUBLISHED_GAMMAS):
        assert float(got) == pytest.approx(want, abs=5e-7)  # β/(1+β) and 1−√(2(1−β)) to 6 digits
    assert len(cells) == 16 == len(suite.optimizers) and {n for _, n in cells} == set(ARMS)
    assert len(levels) == 8
    for task in suite.tasks:
        o = dict(task.overrides)
        seeds, steps, batch = PUBLISHED[o.get("corpus", o.get("model"))]
        assert len(suite.eval_seeds_of(task)) == seeds
        assert (o["max_steps"], o["batch_size"]) == (steps, batch)
        assert o["max_steps"] // o["val_every"] >= 50  # dense enough to draw the curves
        assert o["download"] is True


def test_the_question_pairs_eq8_with_eq5_at_each_level():
    suite = load_suite("paper-figures")
    labels = {config_label(o.name, o.hparams): dict(o.hparams) for o in suite.optimizers}
    pairs = suite.compare.pairs(list(labels))
    assert len(pairs) == 8
    for config, ref in pairs:
        a, b = labels[config], labels[ref]
        assert (a["numerator"], b["numerator"]) == ("parcor-c5b0935", "one")
        assert {k: v for k, v in a.items() if k != "numerator"} == {k: v for k, v in b.items() if k != "numerator"}
    assert len({_level(labels[c]) for c, _ in pairs}) == 8


SUITE = """
name: t
preset: smoke
tasks:
  - {name: quadratic, overrides: {max_steps: 40}}
  - {name: diabetes, seeds: {eval: {first: 50, count: 3}}}
optimizers:
  - {name: muphi, hparams: {window: cosine}, lr: [1e-2]}
  - {name: adamw, hparams: {window: cosine}, lr: [1e-3, 1e-2]}
seeds: {tune: [1], eval: [7, 8]}
"""


def test_a_task_may_run_its_own_evaluation_seeds():
    suite = parse_suite(SUITE, source="s.yaml")
    quadratic, diabetes = suite.tasks
    assert suite.eval_seeds_of(quadratic) == (7, 8) and suite.eval_seeds_of(diabetes) == (50, 51, 52)
    chosen = {(s.task_label, s.config): 1e-2 for s in expand_tune(suite)}
    runs = expand_eval(suite, chosen)
    assert sorted({r.seed for r in runs if r.task == "diabetes"}) == [50, 51, 52]
    assert sorted({r.seed for r in runs if r.task == "quadratic"}) == [7, 8]
    assert len(runs) == 2 * 2 + 2 * 3


@pytest.mark.parametrize("seeds, key, words", [
    ("{eval: {first: 1, count: 2}}", "tasks[1].seeds", "disjoint from the tuning seeds"),
    ("{eval: []}", "tasks[1].seeds.eval", "is empty"),
    ("{tune: [3]}", "tasks[1].seeds", "unknown key"),
])
def test_bad_task_seeds_name_the_key(seeds, key, words):
    text = SUITE.replace("{eval: {first: 50, count: 3}}", seeds)
    with pytest.raises(SuiteError) as err:
        parse_suite(text, source="s.yaml")
    assert err.value.key == key and words in err.value.problem, str(err.value)


def test_a_huge_task_seed_count_is_refused_before_anything_is_built():
    text = SUITE.replace("count: 3", "count: 1000000000")
    with pytest.raises(SuiteError, match="more than the 100,000 runs"):
        parse_suite(text, source="s.yaml")


def test_the_design_at_another_preset_keeps_what_is_trained_and_drops_the_scale():
    suite = load_suite("paper-figures").at_preset("smoke")
    assert suite.name == "paper-figures-smoke"
    assert all(t.preset == "smoke" for t in suite.tasks)
    kept = [dict(t.overrides) for t in suite.tasks]
    assert kept == [{"download": True, "model": "resnet18"}, {"download": True, "model": "vit"},
                    {"corpus": "shakespeare-char", "download": True},
                    {"corpus": "wikitext103-bpe", "download": True}]
    assert [len(suite.eval_seeds_of(t)) for t in suite.tasks] == [5, 5, 10, 3]
    assert suite.optimizers == load_suite("paper-figures").optimizers
    with pytest.raises(SuiteError, match="preset: must be one of"):
        suite.at_preset("huge")


def test_the_dry_run_lists_tasks_levels_arms_seeds_and_device_hours():
    suite = load_suite("paper-figures")
    text = dry_run(suite, {"cifar10": 0.05, "shakespeare": 0.02})
    assert "stage tune" not in text
    eval_rows = [line for line in text.splitlines() if re.match(r"^\[\d\] ", line)]
    assert [int(line.split()[-5]) for line in eval_rows] == [5, 5, 10, 3]  # seeds per task
    assert [int(line.split()[-4]) for line in eval_rows] == [80, 80, 160, 48]  # 16 configurations each
    # hours = runs × steps × s/step: ResNet 80 × 78,200 × 0.05 s = 86.9 h
    assert "86.9" in eval_rows[0] and "83.3" in eval_rows[1]
    total = 80 * 78_200 * 0.05 + 80 * 75_000 * 0.05 + 160 * 10_000 * 0.02 + 48 * 100_000 * 0.02
    assert f"total: 368 runs, {total / 3600:,.1f} device-hours" in text
    listed = text.split("configurations and their lr (μ) grids:")[1].split("evaluation seeds:")[0]
    assert listed.count("numerator=parcor-c5b0935") == 8 and listed.count("numerator=one") == 8
    assert listed.count(": 0.001\n") == 16  # one fixed μ each
    assert "8 comparison(s) per task" in text
    for seeds in ("100–104 (5 seeds)", "100–109 (10 seeds)", "100–102 (3 seeds)"):
        assert seeds in text
    json.dumps(text)  # plain text, printable as is
