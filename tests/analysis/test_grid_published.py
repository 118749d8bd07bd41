"""The published γ figure: per task a 2 × 4 block of panels, γ in ascending order then "Base"
(β = 0), the Eq. (5) and Eq. (8) arms overlaid in each, and each panel's paired verdict at the
end of training and at the best point of the curve.

The designed store: on two tasks, at each γ the Eq. (8) arm (parcor) against the Eq. (5) arm
(moment). Eq. (8) ends 14 % lower at γ = 0, β/(1+β) and 1 − √(2(1−β)); at γ = 0.31 and 0.9 its
curve is U-shaped — 14 % below Eq. (5) at its best, 4 % above at the end; at γ = 0.64 the arms
are one curve; at γ = 0.85 Eq. (8) is better but one of its runs diverges; at Base (β = 0) Eq. (8)
ends 9 % higher.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from annealbench.analysis import grid
from annealbench.analysis import style
from annealbench.analysis.curves import TaskCurves
from annealbench.analysis.figures import build_figures
from annealbench.analysis.report import write_analysis
from annealbench.analysis.load import load_store
from annealbench.analysis.analyse import analyse
from annealbench.analysis.verdict import SIGN_TEST
from tests.analysis.synthetic import Arm, write_arms_store

BETA = 0.9
GAMMAS = (0.0, 0.31, BETA / (1 + BETA), 1 - math.sqrt(2 * (1 - BETA)), 0.64, 0.85, 0.9)
EQ5, EQ8 = "moment-c5b0935", "parcor-c5b0935"
TASKS = ("charlm", "digits")
TITLES = ["γ = 0", "γ = 0.31", "γ = 0.474", "γ = 0.553", "γ = 0.64", "γ = 0.85", "γ = 0.9", "Base"]
MARGIN = {"relative": 0.02}


def _plain(r):
    return 1 + 1.5 * np.exp(-5 * r)


def _shifted(d):
    return lambda r: _plain(r) + d * r


def _u_shaped(r):  # below the plain curve mid-training, above it at the end
    return _plain(r) - r * (1 - r) + 0.1 * r ** 2


EQ8_CURVES = {0.31: _u_shaped, 0.9: _u_shaped, 0.64: _plain}


def arms() -> tuple[Arm, ...]:
    """(Eq. 5, Eq. 8) at each γ, then at Base."""
    out = []
    for g in GAMMAS:
        out.append(Arm("muphi", (("window", "cosine"), ("numerator", EQ5), ("gamma", g)), _plain))
        out.append(Arm("muphi", (("window", "cosine"), ("numerator", EQ8), ("gamma", g)),
                       EQ8_CURVES.get(g, _shifted(-0.15)), diverged=((0, 600),) if g == 0.85 else ()))
    out.append(Arm("muphi", (("window", "cosine"), ("numerator", EQ5), ("beta", 0)), _plain))
    out.append(Arm("muphi", (("window", "cosine"), ("numerator", EQ8), ("beta", 0)), _shifted(0.1)))
    return tuple(out)


ARMS = arms()
PAIRS = [(ARMS[k + 1].config, ARMS[k].config) for k in range(0, len(ARMS), 2)]  # (Eq. 8, Eq. 5) per level


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    """The designed store analysed with the per-γ pairs its compare.json declares."""
    root = write_arms_store(tmp_path_factory.mktemp("gamma") / "store", TASKS, ARMS,
                            compare={"pairs": [[c, r] for c, r in PAIRS], "margin": MARGIN})
    return analyse(load_store(root))


@pytest.fixture(scope="module")
def best(analysis):
    return grid.best_verdict(analysis)


@pytest.fixture(scope="module")
def figures(analysis, best):
    style.apply()
    return build_figures(analysis, grid="gamma", grid_best=best)


@pytest.fixture(scope="module")
def table(analysis, best):
    return grid.grid_table(analysis, "gamma", best)


def _blocks(fig) -> dict[str, list]:
    """Task (its block's title) → the block's visible panels, in drawing order."""
    out: dict[str, list] = {}
    for ax in fig.axes:
        if ax.get_visible():
            out.setdefault(ax.figure.get_suptitle(), []).append(ax)
    return out


def test_numeric_levels_sort_by_value_and_base_comes_last():
    assert grid.level_order(["0.9", "Base", "0.31", "0.47", "0", "0.64", "0.85", "0.55"]) == \
        ["0", "0.31", "0.47", "0.55", "0.64", "0.85", "0.9", "Base"]
    assert sorted(["0.31", "0.9", "0.47"]) == ["0.31", "0.47", "0.9"]  # text order happens to agree here …
    assert grid.level_order(["10", "9", "0.9"]) == ["0.9", "9", "10"]  # … but not here
    assert grid.level_order(["linear", "0.5", "cosine"]) == ["0.5", "cosine", "linear"]
    assert [grid.level_title("gamma", v) for v in ("0", "0.31", repr(BETA / (1 + BETA)), "Base")] == \
        ["γ = 0", "γ = 0.31", "γ = 0.474", "Base"]


def test_beta_zero_is_base_whatever_its_gamma(analysis):
    levels = grid.factor_levels(analysis, "gamma")
    assert levels[ARMS[-1].config] == levels[ARMS[-2].config] == grid.BASE
    assert grid._level({"gamma": 0.31, "beta": 0.0}, "gamma") == grid.BASE  # an explicit γ too
    assert grid._level({"gamma": 0.31, "beta": 0.9}, "gamma") == "0.31"
    assert grid._level({"gamma": "0.0"}, "gamma") == grid._level({"gamma": 0}, "gamma") == "0"  # one level
    assert grid._level({"window": "cosine"}, "gamma") is None  # drawn in every panel
    assert grid.level_order(levels.values()) == ["0", "0.31", repr(GAMMAS[2]), repr(GAMMAS[3]), "0.64", "0.85",
                                                 "0.9", "Base"]


def test_each_task_is_a_two_by_four_block_in_the_published_order(figures):
    blocks = _blocks(figures["h_grid_gamma"])
    assert list(blocks) == list(TASKS)  # stacked, one block per task, named by its title
    for panels in blocks.values():
        assert [ax.get_title() for ax in panels] == TITLES
        spans = [(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start) for ax in panels]
        assert spans == [(r, c) for r in range(2) for c in range(4)]
        assert all(ax.get_xlabel() == "step" for ax in panels[4:])
    assert style.clipped(figures["h_grid_gamma"]) == []


def test_each_panel_overlays_the_two_arms_named_by_their_numerator(figures):
    colours = {}
    for panels in _blocks(figures["h_grid_gamma"]).values():
        for ax in panels:
            lines = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
            assert [line.get_label() for line in lines] == [f"numerator={EQ5}", f"numerator={EQ8}"]
            assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"numerator={EQ5}", f"numerator={EQ8}"]
            assert len(ax.collections) == 2  # a seed band per arm
            for line in lines:
                colours.setdefault(line.get_label(), set()).add(line.get_color())
    assert all(len(c) == 1 for c in colours.values())  # an arm keeps its colour from panel to panel


def test_each_panel_states_its_end_and_best_verdicts(figures, table):
    for task, panels in _blocks(figures["h_grid_gamma"]).items():
        rows = table[table["task"] == task]
        for ax, (_, row) in zip(panels, rows.iterrows()):
            text = "\n".join(t.get_text() for t in ax.texts)
            assert f"end: {row['verdict_end']} (" in text and f"best: {row['verdict_best']} (" in text
    charlm_u = _blocks(figures["h_grid_gamma"])["charlm"][1]  # γ = 0.31
    assert any(t.get_text().startswith("end: worse (+") and "%" in t.get_text() for t in charlm_u.texts)


def test_the_grid_table_has_one_row_per_gamma_and_task_with_both_verdicts(table):
    assert list(table.columns[:11]) == ["task", "level", "config", "reference", "verdict_end", "estimate_end",
                                        "ci_end", "verdict_best", "estimate_best", "ci_best", "n"]
    assert len(table) == 8 * len(TASKS)
    assert list(table.groupby("task", sort=False).size()) == [8] * len(TASKS)
    assert set(zip(table["config"], table["reference"])) == set(PAIRS)
    assert table["verdict_end"].notna().all() and table["verdict_best"].notna().all()
    assert (table["unit"] == "%").all() and (table["n"] == 5).all()
    by_level = table.groupby("level")
    for level, (end, best_) in {"0": ("better", "better"), "0.64": ("equivalent", "equivalent"),
                                "Base": ("worse", "worse")}.items():
        assert set(by_level.get_group(level)["verdict_end"]) == {end}
        assert set(by_level.get_group(level)["verdict_best"]) == {best_}


def test_best_point_and_end_disagree_where_the_curves_are_u_shaped(table):
    u = table[table["level"].isin(["0.31", "0.9"])]
    assert len(u) == 4
    assert set(u["verdict_end"]) == {"worse"} and set(u["verdict_best"]) == {"better"}
    assert (u["estimate_end"] > 2).all() and (u["estimate_best"] < -10).all()
    rest = table[~table["level"].isin(["0.31", "0.9"])]
    assert (rest["verdict_end"] == rest["verdict_best"]).all()


def test_the_best_point_verdict_is_the_verdict_on_best_values(analysis, best):
    assert list(best.columns) == list(analysis.verdict.columns)
    assert list(zip(best["scope"], best["config"], best["reference"])) == \
        list(zip(analysis.verdict["scope"], analysis.verdict["config"], analysis.verdict["reference"]))
    assert (best["margin"] == analysis.verdict["margin"]).all()  # the same margins, fixed before the runs


def test_a_diverged_run_stays_diverged_at_the_best_point(analysis, best, table):
    rows = table[table["level"] == "0.85"]
    assert set(rows["test_end"]) == set(rows["test_best"]) == {SIGN_TEST}
    diverged = best[(best["n_diverged"] > 0) & (best["scope"] != "all tasks")]
    assert list(diverged["config"]) == [PAIRS[5][0]] * len(TASKS)
    assert set(rows["verdict_best"]) == {"inconclusive"}


def test_best_values_are_the_minimum_or_maximum_of_completed_runs():
    values = np.array([[[3.0, 1.0, 2.0], [2.0, 4.0, np.nan]]])
    tc = TaskCurves(task="t", metric="m", steps=np.arange(3), configs=("c",), seeds=np.arange(2), values=values,
                    status=np.array([["done", "diverged"]], dtype=object), max_steps=3)
    assert grid.best_values(tc, 1.0)[0, 0] == 1.0  # lower is better: the minimum
    assert grid.best_values(tc, -1.0)[0, 0] == 3.0  # higher is better: the maximum
    assert np.isnan(grid.best_values(tc, -1.0)[0, 1])  # a diverged run has no best value: it diverged


def test_the_train_loss_companion_has_the_same_layout(analysis, figures):
    blocks = _blocks(figures["h_grid_gamma_train"])
    assert list(blocks) == list(TASKS)
    assert all([ax.get_title() for ax in panels] == TITLES for panels in blocks.values())
    assert all(ax.get_ylabel() == "train/loss" for panels in blocks.values() for ax in panels[::4])
    assert all(not ax.texts for panels in blocks.values() for ax in panels)  # verdicts are the test metric's
    assert style.clipped(figures["h_grid_gamma_train"]) == []


def test_no_train_loss_no_companion(analysis, best):
    figures = build_figures(analysis, grid="gamma", train={}, grid_best=best)
    assert "h_grid_gamma" in figures and "h_grid_gamma_train" not in figures


def test_the_report_writes_the_grid_figures_and_tables(analysis, tmp_path):
    paths = write_analysis(analysis, tmp_path / "report", grid="gamma", wandb=False)
    out = paths.out
    for name in ("h_grid_gamma", "h_grid_gamma_train"):
        assert (out / "figures" / f"{name}.pdf").is_file() and (out / "figures" / f"{name}.png").is_file()
    written = pd.read_csv(out / "tables" / "grid_gamma.csv")
    assert len(written) == 8 * len(TASKS) and {"verdict_end", "verdict_best"} <= set(written.columns)
    verdict = pd.read_csv(out / "tables" / "verdict.csv")
    best = pd.read_csv(out / "tables" / "verdict_best.csv")
    assert list(best.columns) == list(verdict.columns) + ["endpoint"] and set(best["endpoint"]) == {"best"}
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "tables/grid_gamma.csv" in page and "best point" in page and 'id="table-grid_gamma"' in page
    assert page.index("id='fig-h_grid_gamma'") < page.index("id='grid-gamma'") < page.index("<section id='across'>")


def test_declared_pairs_in_compare_json_give_the_per_gamma_rows(tmp_path):
    root = write_arms_store(tmp_path / "store", TASKS[:1], ARMS, compare={
        "pairs": [[c, r] for c, r in PAIRS], "margin": MARGIN})
    a = analyse(load_store(root))
    rows = a.verdict[a.verdict["scope"] == TASKS[0]]
    assert sorted(zip(rows["config"], rows["reference"])) == sorted(PAIRS)
    table = grid.grid_table(a, "gamma", grid.best_verdict(a))
    assert len(table) == 8 and table["verdict_best"].notna().all()
