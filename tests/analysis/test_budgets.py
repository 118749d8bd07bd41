"""Tasks run at two budgets: every (task, budget) is a cell of the all-tasks rows, and one row per
(configuration, reference) says whether the difference changes with the budget."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from annealbench.analysis.analyse import Options, analyse
from annealbench.analysis.comparisons import budget_pairs
from annealbench.analysis.differences import verdict_differences
from annealbench.analysis.load import load_store
from annealbench.analysis.verdict import ALL_TASKS, BUDGET_SCOPE, is_task_scope
from tests.analysis.synthetic import Arm, write_arms_store

REF, SAME, LOSES_LATE = "adamw[window=cosine]", "muphi[window=linear]", "muphi[window=constant]"
ARMS = (Arm("adamw", (("window", "cosine"),), lambda r: 2.0 - r),
        Arm("muphi", (("window", "linear"),), lambda r: 2.0 - r),
        Arm("muphi", (("window", "constant"),), lambda r: 2.0 - r))


def loses_at_long_budget(config: str) -> float:
    return 1.10 if config == LOSES_LATE else 1.0  # 10% worse than its reference, five margins


def tasks() -> tuple:
    out = []
    for name in ("alpha", "beta", "gamma", "delta"):
        out.append((name, {"max_steps": 100}, None))
        out.append((name, {"max_steps": 400}, loses_at_long_budget))
    return tuple(out)


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    root = write_arms_store(tmp_path_factory.mktemp("budgets") / "store", tasks(), ARMS, n_seeds=10,
                            compare={"references": [REF], "margin": {"relative": 0.02}})
    return analyse(load_store(root), Options())


def test_labels_that_differ_only_in_their_budget_are_paired():
    pairs = budget_pairs(["a[max_steps=100]", "a[max_steps=400]", "a[max_steps=400,width=8]",
                          "b[max_steps=50,val_every=10]", "b[max_steps=5,val_every=1]", "c", "d[max_steps=9]"])
    assert pairs == {"a": ("a[max_steps=100]", "a[max_steps=400]"),
                     "b": ("b[max_steps=5,val_every=1]", "b[max_steps=50,val_every=10]")}


def test_each_task_and_budget_is_a_cell_of_the_all_tasks_rows(analysis):
    verdict = analysis.verdict
    cells = verdict[verdict["scope"].map(is_task_scope)]
    assert cells["scope"].nunique() == 8
    everywhere = verdict[(verdict["scope"] == ALL_TASKS) & (verdict["config"] == SAME)].iloc[0]
    assert everywhere["tasks_total"] == 8 and everywhere["tasks_equivalent"] == 8


def test_a_difference_that_grows_with_the_budget_is_found_and_a_constant_one_is_not(analysis):
    verdict = analysis.verdict.set_index(["scope", "config"])
    grows = verdict.loc[(BUDGET_SCOPE, LOSES_LATE)]
    assert grows["verdict"] == "worse" and grows["n"] == 4 and grows["tasks_total"] == 4
    assert grows["ci_low"] > 1  # more than a margin worse at the long budget
    assert verdict.loc[(BUDGET_SCOPE, SAME), "verdict"] == "equivalent"
    # the known answer: the mean over tasks of (long − short), each in its task's margins
    per_task = []
    for name in ("alpha", "beta", "gamma", "delta"):
        short, long = (verdict.loc[(f"{name}[max_steps={n}]", LOSES_LATE)] for n in (100, 400))
        per_task.append(long["estimate"] / long["margin"] - short["estimate"] / short["margin"])
    assert grows["estimate"] == pytest.approx(np.mean(per_task), rel=1e-12)
    assert grows["estimate"] == pytest.approx(math.log(1.10) / math.log(1.02), rel=0.05)
    assert verdict.loc[(BUDGET_SCOPE, LOSES_LATE), "test"].startswith("t over tasks")


def test_budget_rows_stay_out_of_the_per_task_tables_and_claims_name_them(analysis):
    tasks_shown = set(verdict_differences(analysis)["task"])
    assert BUDGET_SCOPE not in tasks_shown and ALL_TASKS not in tasks_shown
    from annealbench.analysis.claims import verdict_claims

    sentences = [s for s in verdict_claims(analysis) if s.startswith("With the budget")]
    assert len(sentences) == 2 and all("t over tasks" in s and "n = 4 tasks" in s for s in sentences)


def test_a_store_without_budgets_has_no_budget_rows(tmp_path):
    root = write_arms_store(tmp_path / "store", ("alpha", "beta", "gamma"), ARMS, n_seeds=6,
                            compare={"references": [REF], "margin": {"relative": 0.02}})
    verdict = analyse(load_store(root), Options()).verdict
    assert BUDGET_SCOPE not in set(verdict["scope"])
    assert isinstance(verdict, pd.DataFrame)


def test_a_cell_lost_to_divergence_enters_the_budget_row_as_the_worst_cell(tmp_path):
    """A configuration that diverges on every seed of one task's long budget (+∞) enters that
    task's change at the most extreme finite cell, as in the all-tasks row, not at a fixed 2."""
    def diverges_late_on_alpha(name):
        return lambda config: math.inf if name == "alpha" and config == LOSES_LATE else loses_at_long_budget(config)

    tasks_ = tuple((name, {"max_steps": steps}, None if steps == 100 else diverges_late_on_alpha(name))
                   for name in ("alpha", "beta", "gamma", "delta") for steps in (100, 400))
    root = write_arms_store(tmp_path / "store", tasks_, ARMS, n_seeds=10,
                            compare={"references": [REF], "margin": {"relative": 0.02}})
    verdict = analyse(load_store(root), Options()).verdict.set_index(["scope", "config"])
    assert math.isinf(verdict.loc[("alpha[max_steps=400]", LOSES_LATE), "estimate"])
    cells = verdict[verdict.index.get_level_values("config") == LOSES_LATE]
    cells = cells[[is_task_scope(s) for s in cells.index.get_level_values("scope")]]
    in_margins = (cells["estimate"] / cells["margin"]).to_numpy(float)
    worst = np.max(in_margins[np.isfinite(in_margins)])
    assert worst > 4  # the other long budgets: 10 % worse, about 4.8 margins
    changes = [worst - verdict.loc[("alpha[max_steps=100]", LOSES_LATE), "estimate"] / verdict.loc[
        ("alpha[max_steps=100]", LOSES_LATE), "margin"]]
    for name in ("beta", "gamma", "delta"):
        short, long = (verdict.loc[(f"{name}[max_steps={n}]", LOSES_LATE)] for n in (100, 400))
        changes.append(long["estimate"] / long["margin"] - short["estimate"] / short["margin"])
    row = verdict.loc[(BUDGET_SCOPE, LOSES_LATE)]
    assert row["estimate"] == pytest.approx(np.mean(changes), rel=1e-12)
    assert row["verdict"] == "worse" and "diverged" in row["note"]
