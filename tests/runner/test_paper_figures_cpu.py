"""The published figures' design at CPU scale, end to end: `annealbench run paper-figures --preset
smoke` on the char GPT (a slice of Shakespeare in Shakespeare-char's place), then `analysis
report --grid gamma` draws the 2×4 grid and decides each γ's pair at the end and at the best
point."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from annealbench.analysis.grid import level_order, panels
from annealbench.analysis.load import load_store
from annealbench.analysis.analyse import analyse
from annealbench.runner.suite.suite import resolve_suite_path
from annealbench.tasks import text
from tests.runner.helpers import ROOT, bench_env, run_bench

SEEDS = 3
LEVELS = ["0", "0.31", "0.473684", "0.552786", "0.64", "0.85", "0.9", "Base"]


@pytest.fixture(scope="module")
def design_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paper-figures")
    data = tmp / "data"
    (data / "shakespeare-char").mkdir(parents=True)
    (data / "shakespeare-char" / "input.txt").write_text(text.load_text()[:60_000], encoding="utf-8")
    doc = yaml.safe_load(resolve_suite_path("paper-figures").read_text(encoding="utf-8"))
    char_gpt = next(t for t in doc["tasks"] if t["overrides"].get("corpus") == "shakespeare-char")
    char_gpt["overrides"]["download"] = False  # the slice stands in for the published file
    char_gpt["seeds"] = {"eval": {"first": 100, "count": SEEDS}}
    doc["tasks"] = [char_gpt]
    suite = tmp / "paper-figures.yaml"
    suite.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    out = tmp / "results"
    env = bench_env() | {"ANNEALBENCH_DATA": str(data)}
    proc = run_bench("run", str(suite), "--preset", "smoke", "--out", str(out), "--workers", "2",
                     "--wandb", "disabled", timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = subprocess.run([sys.executable, "-m", "annealbench", "report", str(out), "--grid", "gamma"],
                            cwd=ROOT, env=env, text=True, capture_output=True, timeout=600)
    assert report.returncode == 0, report.stderr[-3000:]
    return out


def test_the_run_is_the_design_at_smoke_scale(design_run):
    runs = pd.read_parquet(design_run / "runs.parquet")
    assert set(runs["stage"]) == {"eval"} and len(runs) == 16 * SEEDS
    assert set(runs["status"]) <= {"done", "diverged"}
    assert (runs["task_label"] == "shakespeare[corpus=shakespeare-char]").all()
    assert set(runs["lr"]) == {1e-3}


def test_the_grid_has_eight_panels_in_the_published_order(design_run):
    a = analyse(load_store(design_run))
    (task_panels,) = panels(a, "gamma").values()
    assert [p.level for p in task_panels] == level_order(LEVELS) == LEVELS
    assert all(len(p.arms) == 2 and not p.shared for p in task_panels)
    figures = design_run / "report" / "figures"
    assert (figures / "h_grid_gamma.pdf").stat().st_size > 0
    assert (figures / "h_grid_gamma_train.pdf").stat().st_size > 0


def test_each_level_has_its_verdict_at_the_end_and_at_the_best_point(design_run):
    table = pd.read_csv(design_run / "report" / "tables" / "grid_gamma.csv")
    assert list(table["level"].astype(str)) == LEVELS
    assert table["config"].str.contains("numerator=parcor-c5b0935").all()
    assert table["reference"].str.contains("numerator=one").all()
    words = {"better", "worse", "equivalent", "inconclusive"}
    assert set(table["verdict_end"]) <= words and set(table["verdict_best"]) <= words
    assert (table["n"] == SEEDS).all()
    verdict = pd.read_csv(design_run / "report" / "tables" / "verdict.csv")
    per_task = verdict[verdict["scope"] != "all tasks"] if "scope" in verdict else verdict
    assert len(per_task) == 8  # Eq. 8 against Eq. 5 at each level, nothing else
