"""A relative margin is a fraction: 1 or more is refused, a wide one is logged (issue "Nothing
silently wrong", case 3: `--margin 2` used to call a −60 % difference "equivalent")."""

from __future__ import annotations

import logging

import pytest

from annealbench.cli import main
from annealbench.common.compare import CompareError, Margin, comparison_from_dict
from tests.analysis.synthetic import Synthetic, write_store
from tests.runner.helpers import run_bench


@pytest.mark.parametrize("value", [1, 1.0, 2, 60])
def test_case3_a_relative_margin_of_one_or_more_is_refused(value):
    with pytest.raises(CompareError, match=r"must be < 1.*write"):
        Margin("relative", value)
    with pytest.raises(CompareError, match=r"compare.margin.relative: .*must be < 1"):
        comparison_from_dict({"references": ["a"], "margin": {"relative": value}}, origin="suite")
    Margin("absolute", value)  # metric units: any positive size is meaningful


def test_case3_a_wide_relative_margin_is_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="annealbench.common.compare"):
        Margin("relative", 0.5)
    assert "50 %" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="annealbench.common.compare"):
        Margin("relative", 0.02)
    assert caplog.text == ""


def test_case3_the_report_refuses_margin_2_in_one_line(tmp_path, capsys):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2))
    assert main(["report", str(root), "--no-wandb", "--out", str(tmp_path / "r"), "--margin", "2"]) == 2
    err = capsys.readouterr().err
    assert "--margin" in err and "must be < 1" in err and "0.02" in err
    assert not (tmp_path / "r").exists()


def test_case3_a_suite_with_margin_2_is_refused_before_any_run(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("""
name: wide
preset: smoke
tasks: [quadratic]
optimizers:
  - {name: adamw, hparams: {window: cosine}, lr: [1.0e-2]}
seeds: {eval: [1, 2]}
compare: {references: ["adamw[window=cosine]"], margin: {relative: 2}}
""")
    refused = run_bench("run", str(suite), "--out", str(tmp_path / "out"), "--dry-run")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "compare.margin.relative" in refused.stderr and "must be < 1" in refused.stderr
