"""A suite's `compare:` section: parsed into a frozen Comparison, every bad value names its key."""

from __future__ import annotations

import dataclasses
import json

import pytest

from annealbench.runner.errors import SuiteError
from annealbench.runner.suite.suite import load_suite, parse_suite
from annealbench.common.compare import Comparison, Margin, comparison_from_dict

SUITE = """
name: t
preset: smoke
tasks: [quadratic, {name: diabetes, overrides: {n_train: 200}}]
optimizers:
  - {name: muphi, hparams: {window: linear}, lr: [1e-2]}
  - {name: muphi, hparams: {window: cosine}, lr: [1e-2]}
  - {name: adamw, hparams: {window: cosine}, lr: [1e-2]}
seeds: {eval: [1, 2]}
"""
COMPARE = """
compare:
  references: ["adamw[window=cosine]", "muphi[window=cosine]"]
  margin: {relative: 0.02}
  per_task: {"diabetes[n_train=200]": {absolute: 0.01}}
"""


def test_compare_section_parses_into_a_frozen_comparison():
    suite = parse_suite(SUITE + COMPARE, source="s.yaml")
    c = suite.compare
    assert c.references == ("adamw[window=cosine]", "muphi[window=cosine]")
    assert c.margin == Margin("relative", 0.02)
    assert c.margin_for("diabetes[n_train=200]") == Margin("absolute", 0.01)
    assert c.margin_for("quadratic") == Margin("relative", 0.02)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.references = ()  # type: ignore[misc]
    # the record the runner writes reads back into the same question
    assert comparison_from_dict(json.loads(json.dumps(c.to_dict())), origin=c.origin) == c
    assert parse_suite(SUITE, source="s.yaml").compare is None


def test_per_task_margins_name_tasks_as_the_store_labels_them():
    """Overrides that cannot change the computation (`data_dir`) are not part of the label the
    store records, so a per-task margin names the task without them."""
    suite = SUITE.replace("{n_train: 200}", "{n_train: 200, data_dir: /tmp/x}")
    c = parse_suite(suite + COMPARE, source="s.yaml").compare
    assert c.margin_for("diabetes[n_train=200]") == Margin("absolute", 0.01)
    with pytest.raises(SuiteError, match="not tasks of the suite"):
        parse_suite(suite + COMPARE.replace("diabetes[n_train=200]", "diabetes[data_dir=/tmp/x,n_train=200]"),
                    source="s.yaml")


def test_every_configuration_meets_every_reference_once():
    c = Comparison(references=("adamw[window=cosine]", "muphi[window=cosine]"), margin=Margin("relative", 0.02))
    pairs = c.pairs(("adamw[window=cosine]", "muphi[window=cosine]", "muphi[window=linear]", "sgd"))
    assert sorted(pairs) == sorted([
        ("muphi[window=linear]", "adamw[window=cosine]"), ("sgd", "adamw[window=cosine]"),
        ("muphi[window=cosine]", "adamw[window=cosine]"),
        ("muphi[window=linear]", "muphi[window=cosine]"), ("sgd", "muphi[window=cosine]"),
    ])
    assert all(config != ref for config, ref in pairs)


@pytest.mark.parametrize("section, key, words", [
    ("compare: {references: ['adamw[window=cosine]'], margin: {relative: 0.02}, budget: 3}", "compare",
     "unknown key(s) ['budget']"),
    ("compare: {margin: {relative: 0.02}}", "compare", "give exactly one of 'references'"),
    ("compare: {references: ['adamw[window=cosine]'], pairs: [['muphi[window=linear]', 'adamw[window=cosine]']], "
     "margin: {relative: 0.02}}", "compare", "give exactly one of 'references'"),
    ("compare: {pairs: [['muphi[window=linear]', 'sgd']], margin: {relative: 0.02}}", "compare.pairs",
     "['sgd'] are not configurations of the suite"),
    ("compare: {pairs: [['muphi[window=linear]']], margin: {relative: 0.02}}", "compare.pairs[0]",
     "must be [configuration, reference]"),
    ("compare: {pairs: [['muphi[window=linear]', 'muphi[window=linear]']], margin: {relative: 0.02}}",
     "compare.pairs[0]", "with itself"),
    ("compare: {pairs: [['muphi[window=linear]', 'adamw[window=cosine]'], ['adamw[window=cosine]', "
     "'muphi[window=linear]']], margin: {relative: 0.02}}", "compare.pairs", "lists a pair twice"),
    ("compare: {references: ['sgd'], margin: {relative: 0.02}}", "compare.references",
     "not configurations of the suite"),
    ("compare: {references: [], margin: {relative: 0.02}}", "compare.references", "non-empty list"),
    ("compare: {references: ['adamw[window=cosine]'], margin: {relative: -0.02}}", "compare.margin.relative",
     "finite number > 0"),
    ("compare: {references: ['adamw[window=cosine]'], margin: {relative: 0.02, absolute: 0.1}}",
     "compare.margin", "exactly one of ['relative', 'absolute']"),
    ("compare: {references: ['adamw[window=cosine]'], margin: {percent: 2}}", "compare.margin",
     "unknown key(s) ['percent']"),
    ("compare: {references: ['adamw[window=cosine]'], margin: {absolute: abc}}", "compare.margin.absolute",
     "finite number > 0"),
    ("compare: {references: ['adamw[window=cosine]'], margin: {relative: 0.02}, per_task: {digits: {absolute: 1}}}",
     "compare.per_task", "not tasks of the suite"),
    ("compare: {references: ['adamw[window=cosine]', 'adamw[window=cosine]'], margin: {relative: 0.02}}",
     "references", "repeats a configuration"),
])
def test_bad_compare_sections_name_the_key(section, key, words):
    with pytest.raises(SuiteError) as err:
        parse_suite(SUITE + section + "\n", source="s.yaml")
    assert err.value.key == key and words in err.value.problem, str(err.value)


def test_declared_pairs_are_the_only_comparisons():
    """A one-to-one design (Eq. 8 against Eq. 5 at each γ) compares its listed pairs, nothing else;
    the references are the pairs' second members, and compare.json round-trips them."""
    section = ("compare:\n  pairs: [['muphi[window=linear]', 'adamw[window=cosine]'], "
               "['adamw[window=cosine]', 'muphi[window=cosine]']]\n  margin: {relative: 0.02}\n")
    c = parse_suite(SUITE + section, source="s.yaml").compare
    assert c.references == ("adamw[window=cosine]", "muphi[window=cosine]")
    configs = ("adamw[window=cosine]", "muphi[window=cosine]", "muphi[window=linear]")
    assert c.pairs(configs) == [("muphi[window=linear]", "adamw[window=cosine]"),
                                ("adamw[window=cosine]", "muphi[window=cosine]")]
    assert c.pairs(configs[:2]) == [("adamw[window=cosine]", "muphi[window=cosine]")]  # a pair not run is left out
    again = comparison_from_dict(json.loads(json.dumps(c.to_dict())), origin=c.origin)
    assert again == c


def test_shipped_suites_declare_their_question():
    for name in ("smoke", "quick", "paper"):
        compare = load_suite(name).compare
        assert compare is not None and compare.references[0] == "adamw[window=cosine]"
        assert compare.margin == Margin("relative", 0.02)
    assert "muphi[window=cosine]" in load_suite("quick").compare.references


def test_a_per_task_margin_by_name_covers_every_variant_and_a_label_wins():
    """`per_task: {diabetes: ...}` applies to each budget of diabetes; a full label is more
    specific and wins; a name that is no task of the suite is refused with the allowed keys."""
    suite = SUITE.replace("tasks: [quadratic, {name: diabetes, overrides: {n_train: 200}}]",
                          "tasks: [quadratic, {name: diabetes, overrides: {n_train: 200}}, "
                          "{name: diabetes, overrides: {n_train: 300}}]")
    section = ("compare:\n  references: ['muphi[window=cosine]']\n  margin: {relative: 0.02}\n"
               "  per_task: {diabetes: {relative: 0.05}, 'diabetes[n_train=300]': {relative: 0.1}}\n")
    c = parse_suite(suite + section, source="s.yaml").compare
    assert c.margin_for("diabetes[n_train=200]") == Margin("relative", 0.05)
    assert c.margin_for("diabetes[n_train=300]") == Margin("relative", 0.1)
    assert c.margin_for("quadratic") == Margin("relative", 0.02)
    with pytest.raises(SuiteError) as err:
        parse_suite(suite + section.replace("{diabetes:", "{diabetis:"), source="s.yaml")
    assert err.value.key == "compare.per_task" and "['diabetis'] are not tasks" in err.value.problem
    assert "'diabetes'" in err.value.problem and "'diabetes[n_train=300]'" in err.value.problem


def test_a_wide_relative_margin_is_allowed_and_said_once(caplog):
    with caplog.at_level("WARNING", logger="annealbench.common.compare"):
        assert Margin("relative", 0.37) == Margin("relative", 0.37)
        Margin("relative", 0.2)
    warned = [r.getMessage() for r in caplog.records]
    assert warned == ["relative margin 0.37 allows a difference of 37 % of the reference's value to count "
                      "as equivalent"]
