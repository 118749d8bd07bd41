"""The static figures: nothing clipped, paper-ready files, one look per configuration, log axes
where a metric spans decades, the theory's bounds, and the factor grid."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font

from annealbench.analysis import style
from annealbench.analysis.figures import build_figures
from annealbench.analysis.figures_theory import noise_bound
from annealbench.analysis.grid import factor_levels
from annealbench.analysis.report import write_report
from annealbench.analysis.sensitivity import lr_sensitivity
from annealbench.analysis.load import load_store
from annealbench.analysis.analyse import analyse
from annealbench.common.store_schema import task_label
from tests.analysis.conftest import MIXED
from tests.analysis.synthetic import BASELINE, Synthetic, write_store

REPO = Path(__file__).resolve().parents[2]


def add_train_loss(root: Path) -> Path:
    """Log a `train/loss` curve for every run of a synthetic store (its val/loss plus 0.05)."""
    results = pd.read_parquet(root / "results.parquet")
    train = results[results["metric"] == "val/loss"].assign(metric="train/loss")
    train["value"] = train["value"] + 0.05
    pd.concat([results, train], ignore_index=True).to_parquet(root / "results.parquet", index=False)
    return root


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    spec = Synthetic(diverged=MIXED.diverged, failed=MIXED.failed, tune_lrs=(1e-2, 1e-4))
    store = load_store(add_train_loss(write_store(tmp_path_factory.mktemp("fig") / "store", spec)))
    return analyse(store)


@pytest.fixture(scope="module")
def figures(analysis):
    return build_figures(analysis, lr_sensitivity(analysis.store, "val/loss"), grid="window")


def test_every_figure_is_built_with_nothing_clipped(figures):
    assert set(figures) == {"a_windows", "b_curves", "b_train_curves", "c_forest", "d_critical_difference",
                            "e_profiles", "f_diagnostics", "g_lr_sensitivity", "h_grid_window",
                            "h_grid_window_train"}
    for name, fig in figures.items():
        assert style.clipped(fig) == [], name


NINE = ((BASELINE, 0.0), ("adamw[window=linear]", -0.02), ("adamw[window=constant]", 0.3),
        ("muphi[window=cosine]", 0.0), ("muphi[window=linear]", -0.03), ("muphi[window=constant]", 0.25),
        ("muphi[window=sqrt]", 0.05), ("sgd[window=cosine]", 3.0), ("schedulefree_adamw[window=constant]", 0.02))


def test_nine_configurations_on_three_tasks_draw_with_nothing_clipped(tmp_path):
    """The quick suite's size: long labels in the legends, the forest and the CD diagram."""
    five_windows = (*NINE, ("muphi[window=cosine1]", 0.01))  # the quick suite's five window levels
    spec = Synthetic(tasks=("digits", "diabetes", "quadratic"), effects=five_windows, n_seeds=4,
                     eval_every=100)
    a = analyse(load_store(write_store(tmp_path / "s", spec)))
    figures = build_figures(a, grid="window")
    assert "h_grid_window" in figures
    for name, fig in figures.items():
        assert style.clipped(fig) == [], name


LONG_OVERRIDES = {"text_path": "/home/researcher/data/corpora/the_complete_works_of_william_shakespeare_v2.txt",
                  "block_size": 128, "layers": 6}


def with_long_task_label(root: Path) -> str:
    """Give the quadratic runs of a synthetic store overrides whose label is 130 characters long."""
    runs, results = pd.read_parquet(root / "runs.parquet"), pd.read_parquet(root / "results.parquet")
    quad = runs["task"] == "quadratic"
    label = task_label("quadratic", LONG_OVERRIDES)
    renamed = {rid: rid.replace("quadratic/", f"{label}/", 1) for rid in runs.loc[quad, "run_id"]}
    runs["run_id"], results["run_id"] = runs["run_id"].replace(renamed), results["run_id"].replace(renamed)
    runs["task_overrides"] = "{}"
    runs.loc[quad, "task_overrides"] = json.dumps(LONG_OVERRIDES)
    runs.to_parquet(root / "runs.parquet", index=False)
    results.to_parquet(root / "results.parquet", index=False)
    return label


def test_a_long_task_label_wraps_with_nothing_clipped(tmp_path):
    """A task run with a long text_path: every figure that names the task keeps it inside."""
    spec = Synthetic(diverged=MIXED.diverged, failed=MIXED.failed, tune_lrs=(1e-2, 1e-4))
    root = add_train_loss(write_store(tmp_path / "s", spec))
    label = with_long_task_label(root)
    assert len(label) > 120
    store = load_store(root)
    figures = build_figures(analyse(store), lr_sensitivity(store, "val/loss"), grid="window")
    for name, fig in figures.items():
        assert style.clipped(fig) == [], name
    titles = [ax.get_title() for ax in figures["b_curves"].axes]
    assert any(t.startswith("quadratic[block_size=128,") and "_v2.txt]" in t for t in titles)


def test_wrap_label_breaks_between_items_and_keeps_both_ends():
    label = task_label("quadratic", LONG_OVERRIDES)
    lines = style.wrap_label(label, 30).splitlines()
    assert lines[0] == "quadratic[block_size=128," and lines[1] == "layers=6,"
    assert lines[2].startswith("text_path=") and lines[2].endswith("_v2.txt]") and "…" in lines[2]
    assert all(len(line) <= 30 for line in lines)
    assert style.wrap_label("digits", 30) == "digits"
    many = style.wrap_label(task_label("t", {f"k{i}": i for i in range(40)}), 20, max_lines=2).splitlines()
    assert len(many) == 2 and re.search(r"\+\d+ more$", many[1]) and all(len(line) <= 20 for line in many)


def test_clipped_finds_a_title_or_label_past_the_edge():
    fig = Figure(figsize=(2, 2), layout="none")
    ax = fig.subplots()
    ax.set_ylabel("a label that will not fit")
    fig.subplots_adjust(left=0.0)
    fig.text(0.9, 0.5, "runs past the right edge")
    problems = style.clipped(fig)
    assert any("a label that will not fit" in p for p in problems)
    assert any("runs past the right edge" in p for p in problems)


def test_a_configuration_has_one_colour_and_line_style_everywhere():
    configs = [f"c{k}" for k in range(14)]
    looks = style.looks(configs)
    assert len({(look.colour, look.line) for look in looks.values()}) == 14
    assert style.looks(reversed(configs)) == looks  # by label, not by order of appearance


def _lines_of(fig, label):
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_label() == label]


def test_curves_and_forest_use_each_configurations_look(figures, analysis):
    looks = style.looks(analysis.store.runs["config"])
    for config, look in looks.items():
        lines = _lines_of(figures["b_curves"], config)
        assert lines, config
        for line in lines:
            assert line.get_color() == look.colour and line.get_linestyle() == look.line


def test_curves_use_a_log_axis_when_a_positive_metric_spans_decades(tmp_path):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=3))
    results = pd.read_parquet(root / "results.parquet")
    loss = results["metric"] == "val/loss"
    results.loc[loss, "value"] = np.exp(-5 * results.loc[loss, "step"] / 1000)  # 1 → 0.007
    results.to_parquet(root / "results.parquet", index=False)
    fig = build_figures(analyse(load_store(root)))["b_curves"]
    assert [ax.get_yscale() for ax in fig.axes if ax.get_title() in ("digits", "quadratic")] == ["log", "log"]


def test_forest_puts_each_task_in_its_own_panel_in_percent(figures, analysis):
    fig = figures["c_forest"]
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == [f"{t}: against {analysis.baseline}" for t in analysis.curves]
    assert [ax.get_xscale() for ax in fig.axes] == ["linear", "linear"]
    assert "the verdict's estimate and interval" in fig.get_supxlabel()
    assert "% of the reference's mean" not in fig.get_supxlabel()  # the survivors' unit is not the verdict's


def test_forest_switches_to_a_symlog_axis_for_a_far_configuration(tmp_path):
    effects = (("adamw[window=cosine]", 0.0), ("muphi[window=linear]", 0.01), ("muphi[window=constant]", 0.02),
               ("sgd[window=cosine]", 30.0))
    root = write_store(tmp_path / "s", Synthetic(tasks=("digits",), effects=effects, n_seeds=4))
    fig = build_figures(analyse(load_store(root)))["c_forest"]
    assert fig.axes[0].get_xscale() == "symlog" and "log beyond ±" in fig.axes[0].get_title(loc="left")
    assert style.clipped(fig) == []


def test_windows_label_is_digamma_and_renders_as_a_glyph(tmp_path, figures):
    ylabels = {ax.get_ylabel() for ax in figures["a_windows"].axes if ax.get_ylabel()}
    assert ylabels == {"Ϝ(r)"}
    font = FT2Font(font_manager.findfont(style.PAPER_RC["font.family"], fallback_to_default=False))
    assert ord("Ϝ") in font.get_charmap()  # DejaVu Sans draws its own digamma (F-shaped by design)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)"
        figures["a_windows"].savefig(tmp_path / "w.png")


def test_windows_figure_ramps_the_constant_window_during_warm_up(figures):
    constant = next(ax for ax in figures["a_windows"].axes if ax.get_title() == "constant")
    warm = next(line for line in constant.get_lines() if line.get_label().startswith("warm-up"))
    r, phi = warm.get_xdata(), warm.get_ydata()
    assert phi[0] == pytest.approx(0.0) and phi[r >= 0.1][0] == pytest.approx(1.0)


def test_diagnostics_draw_both_bounds_of_the_theory(figures):
    ax = next(ax for ax in figures["f_diagnostics"].axes if "RMS(Δ[t]) / μ[t]" in ax.get_title(loc="left"))
    levels = sorted(line.get_ydata()[0] for line in ax.get_lines() if "bound" in line.get_label())
    assert levels == pytest.approx([np.sqrt(0.1 / 1.9), 1.0])


@pytest.mark.parametrize(("hparams", "bound", "recorded"), [
    (None, np.sqrt(0.1 / 1.9), False),  # β = 0.9 assumed, η = 1 − β: sqrt((1−β)/(1+β)) ≈ 0.23
    ('{"betas": [0.5, 0.999]}', np.sqrt(0.25 / 0.75), True),
    ('{"betas": [0.9, 0.999], "eta": 1.0}', np.sqrt(1 / 0.19), True),
    ('{"betas": [0.0, 0.999]}', 1.0, True),  # no smoothing: η = 1, both bounds at 1
])
def test_noise_bound_follows_the_recorded_hyperparameters(hparams, bound, recorded):
    assert noise_bound(hparams) == (pytest.approx(bound), recorded)


def test_grid_has_one_panel_per_task_and_level(figures, analysis):
    axes = figures["h_grid_window"].axes
    levels = ("constant", "cosine", "linear")
    assert len(axes) == len(analysis.curves) * len(levels)
    assert [ax.get_title() for ax in axes[:len(levels)]] == [f"window = {w}" for w in levels]  # first block
    blocks = [ax.figure.get_suptitle() for ax in axes[::len(levels)]]
    assert blocks == list(analysis.curves)  # one block per task, named by its title


def test_grid_levels_come_from_hparams_before_the_label(analysis):
    assert factor_levels(analysis, "window") == {"adamw[window=cosine]": "cosine", "muphi[window=constant]":
                                                 "constant", "muphi[window=linear]": "linear"}
    with pytest.raises(ValueError, match=r"grid factor 'gamma' .* factors that vary: \['window'\]"):
        factor_levels(analysis, "gamma")


def _pdf_facts(pdf: Path) -> tuple[int, int, str, str]:
    data = pdf.read_bytes()
    subject = re.search(rb"/Subject \((.*?)\)", data)
    keywords = re.search(rb"/Keywords \((.*?)\)", data)
    return (data.count(b"/FontFile2"), data.count(b"/Subtype /Type3"),
            subject.group(1).decode() if subject else "", keywords.group(1).decode() if keywords else "")


@pytest.mark.slow
def test_smoke_suite_report_figures_are_unclipped_paper_files(tmp_path):
    """Every figure `analysis report --grid window` writes for the smoke suite: nothing clipped,
    PDFs with TrueType fonts and the store's hash and commit, PNGs at 200 dpi."""
    out = tmp_path / "smoke"
    subprocess.run([sys.executable, "-m", "annealbench", "run", "smoke", "--out", str(out), "--workers", "1"],
                   cwd=REPO, check=True, capture_output=True, timeout=600)
    paths = write_report(out, wandb=False, grid="window")
    store = load_store(out)
    built = build_figures(analyse(store), lr_sensitivity(store, "val/loss"), grid="window")
    assert set(built) == set(paths.figures) and "h_grid_window" in built and "b_train_curves" in built
    for name, fig in built.items():
        assert style.clipped(fig) == [], name
    prov = style.store_provenance(out, store.runs["git_commit"])
    for name, png in paths.figures.items():
        fonts, type3, subject, keywords = _pdf_facts(png.with_suffix(".pdf"))
        assert fonts >= 1 and type3 == 0, name
        assert subject == f"results store sha256 {prov.store_sha256}" and prov.git_commits[0] in keywords
        from PIL import Image
        with Image.open(png) as image:
            assert round(image.info["dpi"][0]) == style.PNG_DPI


def test_task_titles_drop_the_measuring_cadence_only_where_labels_stay_distinct():
    budgets = ["digits[log_every=15,max_steps=300,val_every=15]", "digits[log_every=60,max_steps=1200,val_every=60]",
               "quadratic"]
    assert style.task_titles(budgets) == {budgets[0]: "digits[max_steps=300]", budgets[1]: "digits[max_steps=1200]",
                                          "quadratic": "quadratic"}
    cadences = ["digits[val_every=5]", "digits[val_every=10]"]
    assert style.task_titles(cadences) == {c: c for c in cadences}
    assert style.titled("digits", ": against adamw", 48) == "digits: against adamw"
    assert style.titled("a" * 40, ": against adamw[window=cosine]", 48) == "a" * 40 + "\nagainst adamw[window=cosine]"


def test_a_suite_at_two_budgets_draws_every_title_inside_its_figure(tmp_path):
    """Three tasks at two budgets each, labelled as the broad suite labels them (max_steps and the
    measuring cadence): three panels a row, the right-hand titles inside the page."""
    from tests.analysis.synthetic import Arm, write_arms_store

    arms = (Arm("muphi", (("window", "cosine"),), lambda r: 2.0 - r),
            Arm("muphi", (("plateau", 0.6), ("warmup", 0.05), ("window", "linear")), lambda r: 2.0 - r))
    tasks = tuple((name, {"max_steps": steps, "val_every": steps // 20, "log_every": steps // 20}, None)
                  for name in ("breast-cancer", "sparse-parity", "digits") for steps in (300, 1200))
    root = write_arms_store(tmp_path / "store", tasks, arms, n_seeds=4,
                            compare={"references": ["muphi[window=cosine]"], "margin": {"relative": 0.02}})
    store = load_store(root)
    figures = build_figures(analyse(store), None, grid=None)
    for name, fig in figures.items():
        assert style.clipped(fig) == [], name
    titles = [ax.get_title() for ax in figures["b_curves"].axes if ax.get_title()]
    assert "sparse-parity[\nmax_steps=1200]" in titles and not any("val_every" in t for t in titles)
