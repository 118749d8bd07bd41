"""The loop-overhead benchmark runs both loops on the same task and reports consistent rows."""

from __future__ import annotations

import pytest

from annealbench.perf import loop_overhead


def test_bare_and_lightning_loops_time_the_same_task():
    (row,) = loop_overhead.measure(("diabetes",), preset="smoke", repeats=1)
    assert row.task == "diabetes" and row.steps == 60 and row.repeats == 1 and row.target == 2.0
    assert row.bare_median_s > 0 and row.lightning_median_s > 0
    # One pair: the paired ratio is that pair's ratio, and its quartiles collapse onto it.
    assert row.ratio == pytest.approx(row.lightning_median_s / row.bare_median_s)
    assert row.ratio_q1 == row.ratio_q3 == row.ratio
    assert row.cpu_ratio == pytest.approx(row.lightning_cpu_median_s / row.bare_cpu_median_s)
    table = loop_overhead.markdown([row])
    assert table.count("\n") == 2 and "| diabetes | smoke | 60 | 1 |" in table
