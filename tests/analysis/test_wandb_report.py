"""The analysis on W&B: the suite's W&B Report built offline (its panels and run filters), the
analysis run's tables, figures and artifacts read back from its offline files, and the
`--wandb-report` flag without a server."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from annealbench.cli import main
from annealbench.analysis.load import load_store
from annealbench.analysis.wandb_report import build_report
from annealbench.common.wandb_names import STEP_METRIC
from tests.analysis.conftest import MIXED
from tests.analysis.synthetic import write_store

pytest.importorskip("wandb_workspaces")


@pytest.fixture(autouse=True)
def no_server(monkeypatch, tmp_path):
    for name in ("WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("wbrep") / "store", MIXED)


def grids(report):
    """(heading above, panel grid) for every panel grid of the report."""
    heading, found = None, []
    for block in report.blocks:
        if type(block).__name__ in ("H2", "H3"):
            heading = block.text
        elif type(block).__name__ == "PanelGrid":
            found.append((heading, block))
    return found


def test_report_definition_is_built_without_a_server(store_root, monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "team-benchmarks")
    report = build_report(load_store(store_root))
    assert report.project == "team-benchmarks" and report.entity == ""
    found = grids(report)
    heading, verdict = found[0]
    assert heading == "Verdict"
    (panel,) = verdict.panels
    assert type(panel).__name__ == "WeavePanelSummaryTable" and panel.table_name == "analysis/verdict"
    (runset,) = verdict.runsets
    assert runset.filters == "Config(\"suite\") in ['synthetic'] and Metric(\"JobType\") == 'analysis'"
    assert runset.project == "team-benchmarks"

    per_task = {h: g for h, g in found if h in MIXED.tasks}
    assert sorted(per_task) == sorted(MIXED.tasks)
    for task, grid in per_task.items():
        (runset,) = grid.runsets
        assert runset.filters == (f"Config(\"suite\") in ['synthetic'] and Metric(\"JobType\") == 'eval' "
                                  f"and Metric(\"Group\") == '{task}'")
        assert runset.groupby == ["config.config"]  # curves grouped by configuration
        assert [p.y for p in grid.panels] == [["val/loss"]]  # not opt/*, not time/*: curves only
        assert all(p.x == STEP_METRIC and p.groupby_aggfunc == "mean" for p in grid.panels)

    window = {h: g for h, g in found if h and ": window = " in h}  # the suite's window grid
    assert len(window) == len(MIXED.tasks) * 3
    (runset,) = window["digits: window = linear"].runsets
    assert runset.filters.endswith("Metric(\"Group\") == 'digits' and Config(\"config\") in "
                                   "['muphi[window=linear]']")
    json.loads(report._to_model().spec.model_dump_json(by_alias=True, exclude_none=True))  # serialisable


def test_a_grid_factor_no_configuration_sets_is_refused(store_root):
    with pytest.raises(ValueError, match="'gamma' is not a hyperparameter"):
        build_report(load_store(store_root), grid="gamma")


def test_wandb_report_flag_without_a_key_says_so_and_exits_1(store_root, tmp_path, capsys):
    assert main(["report", str(store_root), "--no-wandb", "--out", str(tmp_path / "r"),
                 "--wandb-report"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith(("INFO", "WARNING"))]
    assert err == ["error: W&B report not saved: no API key (set WANDB_API_KEY or run `wandb login`)"]
    assert (tmp_path / "r" / "report.html").is_file()  # the report's files are written all the same


def test_analysis_run_holds_tables_figures_and_artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "team-benchmarks")
    root = write_store(tmp_path / "store", MIXED)
    (root / "runs" / "digits-adamw-0" / "wandb").mkdir(parents=True)  # the runs were logged to W&B
    assert main(["report", str(root), "--out", str(tmp_path / "r")]) == 0
    (folder,) = (tmp_path / "r" / "wandb").glob("offline-run-*")
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(folder)],
                         capture_output=True, text=True, timeout=120, check=True)
    records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    assert run["project"] == "team-benchmarks" and run["job_type"] == "analysis"
    logged = {k: v for r in records if r["type"] == "history" for k, v in r["history"]["item"].items()}
    assert logged["analysis/verdict._type"] == "table-file"  # the reader flattens nested keys
    assert logged["analysis/verdict.nrows"] == len(pd.read_csv(tmp_path / "r" / "tables" / "verdict.csv"))
    figures = sorted((tmp_path / "r" / "figures").glob("*.png"))
    assert figures and all(logged[f"figures/{p.stem}._type"] == "image-file" for p in figures)
    artifacts = {r["artifact"]["name"]: r["artifact"] for r in records
                 if r["type"] == "artifact" and r["artifact"]["type"] in ("results-store", "report")}
    assert set(artifacts) == {"synthetic-results", "synthetic-report"}
    stored = {e["path"] for e in artifacts["synthetic-results"]["manifest"]["contents"]}
    assert {"runs.parquet", "results.parquet"} <= stored
    report = {e["path"] for e in artifacts["synthetic-report"]["manifest"]["contents"]}
    assert "report.html" in report and "tables/verdict.csv" in report
    assert not any(p.startswith("wandb/") for p in report)
