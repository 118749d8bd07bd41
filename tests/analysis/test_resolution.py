"""The resolution table: whether a task's seeds can decide at its margin, from the verdict's own
intervals (each at its Holm-adjusted level), and the claim that names the tasks where they cannot."""

from __future__ import annotations

import numpy as np
import pytest

from annealbench.analysis.analyse import Options, analyse
from annealbench.analysis.claims import resolution_claims
from annealbench.analysis.load import load_store
from annealbench.analysis.tables import report_tables, resolution_table
from annealbench.analysis.verdict import is_task_scope
from tests.analysis.conftest import BASELINE, Synthetic
from tests.analysis.synthetic import write_store

SPREAD = Synthetic(tasks=("digits", "quadratic"), n_seeds=10, run_sd=0.05)


@pytest.fixture(scope="module")
def analyses(tmp_path_factory):
    """Runs with a 5% spread of the whole curve, read at a 0.5% margin and at a 40% one."""
    store = load_store(write_store(tmp_path_factory.mktemp("resolution") / "store", SPREAD))
    return {margin: analyse(store, Options(margin=margin)) for margin in (0.005, 0.4)}


@pytest.mark.parametrize("margin", [0.005, 0.4])
def test_the_half_widths_are_the_verdict_intervals_against_the_margin(analyses, margin):
    a = analyses[margin]
    res = resolution_table(a)
    cells = a.verdict[a.verdict["scope"].map(is_task_scope)]
    assert len(res) == cells.groupby(["scope", "reference"]).ngroups == 2  # two tasks, one reference
    for row in res.itertuples():
        own = cells[(cells["scope"] == row.task) & (cells["reference"] == row.reference)]
        half = ((own["ci_high"] - own["ci_low"]) / 2).to_numpy(float)
        assert row.comparisons == len(own) == 2 and row.n == 10 and row.reference == BASELINE
        assert row.half_width == pytest.approx(np.median(half))
        assert row.half_width_max == pytest.approx(half.max())
        assert row.half_width_in_margins == pytest.approx(np.median(half / own["margin"].to_numpy(float)))
        assert row.decides_at_margin == (row.half_width_in_margins < 1)
    assert report_tables(a)["resolution"].equals(res)


def test_a_margin_finer_than_the_spread_is_named_and_a_wide_one_decides(analyses):
    """10 seeds cannot resolve 0.5% of a loss that spreads 5% from run to run, and do resolve 40%."""
    fine, wide = resolution_table(analyses[0.005]), resolution_table(analyses[0.4])
    assert not fine["decides_at_margin"].any() and (fine["half_width_in_margins"] > 2).all()
    assert wide["decides_at_margin"].all() and (wide["half_width_in_margins"] < 0.5).all()
    claim, = resolution_claims(analyses[0.005])
    assert claim.startswith("Resolution: on 0 of 2 (task, reference) pairs") and "at 10 seeds" in claim
    assert "digits (" in claim and "quadratic (" in claim and "equivalence at the margin is out of reach" in claim
    claim, = resolution_claims(analyses[0.4])
    assert claim.startswith("Resolution: on 2 of 2") and "not on" not in claim
