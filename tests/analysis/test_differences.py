"""One analysis of each comparison: the per-task tables, the forest figure and the claims show the
verdict's paired differences, one labelled section per reference; the surviving-runs t-analysis
appears only under its own label, and its Holm family is the verdict's."""

from __future__ import annotations

import math
import re

import matplotlib
import numpy as np
import pandas as pd
import pytest

from annealbench.analysis import style
from annealbench.analysis.claims import verdict_claims
from annealbench.analysis.differences import SURVIVORS, verdict_differences
from annealbench.analysis.figures import forest
from annealbench.analysis.report import write_analysis
from annealbench.analysis.load import load_store
from annealbench.analysis.analyse import Options, analyse
from annealbench.analysis.verdict import ALL_TASKS, LOG_RATIO, NO_TEST, holm, survivor_differences
from tests.analysis.conftest import MIXED
from tests.analysis.synthetic import BASELINE, Synthetic, write_store

LINEAR = "muphi[window=linear]"
REFERENCES = (BASELINE, LINEAR)
LABEL = SURVIVORS.format(level=95)


@pytest.fixture(scope="module")
def two_references(tmp_path_factory):
    """A report against two references, with a diverged run (a sign-test row, unbounded interval)
    and a failed one (a seed left out)."""
    root = write_store(tmp_path_factory.mktemp("diff") / "store",
                       Synthetic(diverged=MIXED.diverged, failed=MIXED.failed))
    a = analyse(load_store(root), Options(references=REFERENCES))
    paths = write_analysis(a, root / "report", wandb=False)
    details = pd.read_csv(paths.out / "tables" / "verdict_details.csv")
    return a, paths.html.read_text(), details[details["scope"] != ALL_TASKS]


def _in_units(row) -> tuple[float, float, float]:
    """verdict.csv's estimate and interval as the page shows them: the ratio's change in % on
    log-ratio rows, % of the reference's median on difference rows."""
    values = (row["estimate"], row["ci_low"], row["ci_high"])
    if row["scale"] == LOG_RATIO:
        return tuple(100 * math.expm1(x) if math.isfinite(x) else x for x in values)
    return tuple(100 * x / abs(row["reference_median"]) for x in values)


def _task_sections(page: str) -> dict[str, str]:
    section = page[page.index("<section id='tasks'>"):page.index("</section>", page.index("<section id='tasks'>"))]
    chunks = re.split(r"<h3>([^<]+)</h3>", section)[1:]
    return dict(zip(chunks[::2], chunks[1::2]))


def _cells(table: str) -> list[list[str]]:
    return [re.findall(r"<td>([^<]*)</td>", row) for row in re.findall(r"<tr class='verdict-\w+'>(.*?)</tr>", table)]


def test_each_task_has_one_labelled_table_per_reference_with_the_verdicts_numbers(two_references):
    a, page, details = two_references
    sections = _task_sections(page)
    assert list(sections) == list(a.curves)
    for task, text in sections.items():
        found = re.findall(r"<h4 class='against'>Against ([^<]+): the verdict's paired differences</h4>"
                           r"<table class='differences'>(.*?)</table>", text, flags=re.S)
        expected = details[details["scope"] == task]
        assert [ref for ref, _ in found] == [r for r in REFERENCES if r in set(expected["reference"])]
        assert len(found) == 2  # both references are compared on every task
        for ref, table in found:
            rows = expected[expected["reference"] == ref].set_index("config")
            cells = _cells(table)
            configs = [c[0] for c in cells]
            assert sorted(configs) == sorted(rows.index) and len(set(configs)) == len(configs)  # once each
            for config, verdict, test, n, estimate, interval, *_ in cells:
                row = rows.loc[config]
                est, low, high = _in_units(row)
                assert (verdict, test, int(n)) == (row["verdict"], row["test"], row["n"])
                assert estimate == f"{est:+.3g}%"
                assert interval == f"[{low:+.3g}%, {high:+.3g}%]"


def test_the_survivors_numbers_appear_only_under_their_own_label(two_references):
    a, page, _ = two_references
    for task, text in _task_sections(page).items():
        blocks = re.findall(r"<details class='survivors'>(.*?)</details>", text, flags=re.S)
        assert len(blocks) == 1
        assert f"<summary>Secondary, not the verdict: {LABEL}</summary>" in blocks[0]
        assert re.findall(r"<h5>([^<]+)</h5>", blocks[0]) == [f"{LABEL}: against {r}" for r in REFERENCES]
        outside = re.sub(r"<details class='survivors'>.*?</details>", "", text, flags=re.S)
        assert "mean_diff" not in outside and "p_t" not in outside and "% of mean" not in outside
        for table in re.findall(r"<table class='differences'>.*?</table>", outside, flags=re.S):
            assert "<th>estimate</th>" in table and "<th>p_difference</th>" in table
        rows = a.paired[(a.paired["task"] == task) & (a.paired["n"] >= 2)]
        for value in rows["mean_diff"]:  # every survivors' number is inside its block, none outside
            shown = f"{value:.4g}"
            assert shown in blocks[0] and shown not in outside


def test_the_forest_draws_the_verdicts_numbers_one_panel_per_reference_and_task(two_references):
    a, _, details = two_references
    data = verdict_differences(a)
    merged = data.merge(details, left_on=["task", "config", "reference"], right_on=["scope", "config", "reference"],
                        suffixes=("", "_csv"), validate="one_to_one")
    assert len(merged) == len(data) == len(details)
    for col in ("estimate", "ci_low", "ci_high", "ci_level", "p_difference", "p_equivalence"):
        np.testing.assert_allclose(merged[col], merged[f"{col}_csv"], rtol=1e-12)
    expected = np.array([_in_units(r) for _, r in merged.iterrows()])
    np.testing.assert_allclose(merged[["estimate_rel", "ci_low_rel", "ci_high_rel"]].to_numpy(float), expected,
                               rtol=1e-12)
    assert list(dict.fromkeys(data["reference"])) == list(REFERENCES)  # sections in the comparison's order

    fig = forest(a, style.looks(a.store.runs["config"]))
    tested = data[data["test"] != NO_TEST]
    panels = list(dict.fromkeys(zip(tested["reference"], tested["task"])))
    assert [ax.get_title(loc="left") for ax in fig.axes] == [f"{t}: against {r}" for r, t in panels]
    for ax, (ref, task) in zip(fig.axes, panels):
        g = tested[(tested["reference"] == ref) & (tested["task"] == task)]
        assert [t.get_text().split(" (n=")[0] for t in ax.get_yticklabels()] == g["config"].tolist()
        segments = ax.collections[0].get_segments()
        for (low, high), (_, row) in zip(segments, g.iterrows()):
            for drawn, value in ((low[0], row["ci_low_rel"]), (high[0], row["ci_high_rel"])):
                if math.isfinite(value):
                    assert drawn == pytest.approx(value)
                else:  # an unbounded end: at the panel's edge, on its side
                    assert math.copysign(1, drawn) == math.copysign(1, value) and abs(drawn) > 0
    assert "the verdict's estimate and interval" in fig.get_supxlabel()


def test_the_secondary_takes_its_differences_and_its_holm_family_from_the_verdict(two_references):
    a, _, details = two_references
    keys = a.paired[["task", "config", "reference"]].to_numpy().tolist()
    assert keys == details[["scope", "config", "reference"]].to_numpy().tolist()  # the verdict's rows
    np.testing.assert_allclose(a.paired["p_holm"], holm(a.paired["p_t"].to_numpy()), equal_nan=True)
    final = a.endpoints.pivot_table(index=["task", "config"], columns="seed", values="final", dropna=False)
    for row in a.paired.itertuples():
        d = survivor_differences(final.loc[(row.task, row.config)].to_numpy(float),
                                 final.loc[(row.task, row.reference)].to_numpy(float))
        assert row.n == d.size and row.mean_diff == pytest.approx(d.mean())


def test_every_task_verdict_claim_states_its_test_n_and_interval(two_references):
    a, _, _ = two_references
    claims = verdict_claims(a)[1:]
    rows = a.verdict[a.verdict["scope"] != ALL_TASKS]
    assert len(claims) == len(a.verdict)
    for claim, row in zip(claims, rows.itertuples()):
        assert f"against {row.reference}" in claim and f"n = {row.n} paired seeds" in claim
        assert ("paired t-test" if row.test == "paired t" else "sign test (intention to treat)") in claim
        assert f"{100 * row.ci_level:.4g}% interval" in claim
        if row.n_diverged or row.n_diverged_reference:  # the survivors' row, with its own n and interval
            assert f"Surviving runs only (secondary: paired t on the seeds where both runs completed, " \
                   f"n = {int(row.n_survivors)}" in claim
            assert f"{100 * row.ci_level_survivors:.4g}% interval {row.ci_low_survivors:+.4g}" in claim


def test_a_one_row_forest_has_room_for_its_labels(tmp_path):
    effects = ((BASELINE, 0.0), (LINEAR, 0.0))
    a = analyse(load_store(write_store(tmp_path / "s", Synthetic(tasks=("digits",), effects=effects, n_seeds=4))))
    with matplotlib.rc_context():  # the paper style the report draws in
        style.apply()
        fig = forest(a, style.looks(a.store.runs["config"]))
        assert [ax.get_title(loc="left") for ax in fig.axes] == [f"digits: against {BASELINE}"]
        assert style.clipped(fig) == []
