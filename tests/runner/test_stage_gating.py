"""No evaluation run of a (task, configuration) starts before its tuning is complete.

Complete: every tuning run finished (done or diverged) and not every one diverged. Otherwise its
evaluation is skipped — one log line, `"lr": null` and `"skipped"` in `selection.json`, a count in
the summary line, exit status 1 — unless `--allow-incomplete-tuning`, which evaluates it with
what finished and says so. Divergence is real (SGD at lr 1e3 on the quadratic, as in
`test_joints.py`); failures are recorded the way a dead worker records them (`test_faults.py`),
past `--max-retries 0`, so the sweep does not retry them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from annealbench import cli
from annealbench.runner.store.atomic import read_json
from annealbench.runner.suite.run_spec import expand_tune
from annealbench.runner.store.results_store import ResultsStore
from annealbench.runner.suite.suite import load_suite
from annealbench.runner.sweep import SweepOptions, run_sweep

SUITE = """
name: gating
preset: smoke
tasks: [quadratic]
optimizers:
  - {name: sgd, hparams: {window: cosine}, lr: [1.0e+3, 3.0e+3]}
  - {name: muphi, hparams: {window: linear}, lr: [1.0e-2, 3.0e-2]}
  - {name: adamw, hparams: {window: cosine}, lr: [1.0e-2]}
seeds: {tune: [1], eval: [10, 11]}
"""
# Without the diverging configuration and with one evaluation seed: fewer runs to wait for.
FAILING = (SUITE.replace("  - {name: sgd, hparams: {window: cosine}, lr: [1.0e+3, 3.0e+3]}\n", "")
           .replace("eval: [10, 11]", "eval: [10]"))
SGD, MUPHI, ADAMW = "sgd[window=cosine]", "muphi[window=linear]", "adamw[window=cosine]"


def suite_file(tmp_path: Path, text: str = SUITE) -> Path:
    path = tmp_path / "gating.yaml"
    path.write_text(text)
    return path


def run(path: Path, out: Path, *flags: str) -> int:
    return cli.main(["run", str(path), "--out", str(out), "--workers", "2", "--wandb", "disabled",
                     *flags])


def eval_configs_on_disk(out: Path) -> list[str]:
    """The configuration of every evaluation run folder, whatever its state."""
    specs = [read_json(p) for p in sorted((out / "runs").glob("*/spec.json"))]
    return sorted(s["config"] for s in specs if s["stage"] == "eval")


def choices(out: Path) -> dict[str, dict]:
    return {c["config"]: c for c in json.loads((out / "selection.json").read_text())["choices"]}


def test_every_tuning_run_diverged_so_its_evaluation_is_skipped_then_allowed(tmp_path, capsys,
                                                                             caplog):
    path, out = suite_file(tmp_path), tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="annealbench.runner.suite.selection"):
        assert run(path, out) == 1  # something was not done
    stdout = capsys.readouterr().out
    assert eval_configs_on_disk(out) == sorted([MUPHI] * 2 + [ADAMW] * 2)  # no sgd evaluation
    runs = pd.read_parquet(out / "runs.parquet")
    assert set(runs.loc[runs.config == SGD, "status"]) == {"diverged"}
    assert set(runs.loc[runs.config == SGD, "stage"]) == {"tune"}
    sgd = choices(out)[SGD]
    assert sgd["lr"] is None and "every one of its 2 tuning runs diverged" in sgd["skipped"]
    assert "skipped" not in choices(out)[MUPHI] and choices(out)[MUPHI]["lr"] in (1e-2, 3e-2)
    assert choices(out)[ADAMW]["lr"] == 1e-2 and not choices(out)[ADAMW]["tuned"]
    lines = [r.getMessage() for r in caplog.records if "evaluation skipped" in r.getMessage()]
    assert lines == [f"quadratic {SGD}: evaluation skipped: {sgd['skipped']}; "
                     "--allow-incomplete-tuning evaluates it with what finished"]
    assert "2 evaluation runs not started" in stdout and f"quadratic {SGD}" in stdout
    assert "10 runs — 6 done, 2 diverged, 0 failed" in stdout

    assert run(path, out, "--allow-incomplete-tuning") == 0  # the old behaviour: smallest lr
    stdout = capsys.readouterr().out
    assert "not started" not in stdout and "(8 finished earlier)" in stdout
    sgd = choices(out)[SGD]
    assert sgd["lr"] == 1e3 and "every one of its 2 tuning runs diverged" in sgd["allowed_incomplete"]
    assert json.loads((out / "selection.json").read_text())["allow_incomplete_tuning"] is True
    assert eval_configs_on_disk(out).count(SGD) == 2
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 10
    assert set(runs.loc[(runs.config == SGD) & (runs.stage == "eval"), "lr"]) == {1e3}


def fail_for_good(out: Path, specs) -> None:
    """Record one failed attempt of each run, as the pool records a worker that died."""
    store = ResultsStore(out)
    store.ensure_writable()
    for spec in specs:
        store.folder(spec).fail("WorkerDied: exit code -9", {}, 1.0)


def test_failed_tuning_runs_hold_back_the_evaluation_of_their_configuration(tmp_path):
    path, out = suite_file(tmp_path, FAILING), tmp_path / "out"
    suite = load_suite(path)
    assert "sgd" not in {o.name for o in suite.optimizers} and suite.eval_seeds == (10,)
    tune = expand_tune(suite)
    failed_muphi = [s for s in tune if s.config == MUPHI and s.lr == 3e-2]  # one of its 2 lrs
    fail_for_good(out, failed_muphi)
    summary = run_sweep(suite, SweepOptions(out=out, workers=1, wandb="disabled", max_retries=0))
    assert summary.not_started == 1 and summary.gated == (("quadratic", MUPHI),)
    assert summary.counts.get("failed") == 1 and summary.total == 2 + 1
    assert eval_configs_on_disk(out) == [ADAMW]
    muphi = choices(out)[MUPHI]
    assert muphi["lr"] is None and muphi["incomplete"] == [failed_muphi[0].run_id]
    assert muphi["skipped"].startswith("1 of its 2 tuning runs did not finish (1 failed)")
    assert muphi["scores"][repr(1e-2)] is not None and muphi["scores"][repr(3e-2)] is None
    assert f"1 evaluation runs not started, their tuning incomplete or every tuning run " \
           f"diverged: quadratic {MUPHI}" in summary.line

    # --allow-incomplete-tuning: evaluated at the lr that finished, and the record says why
    summary = run_sweep(suite, SweepOptions(out=out, workers=1, wandb="disabled", max_retries=0,
                                            allow_incomplete_tuning=True))
    assert summary.not_started == 0 and summary.gated == ()
    muphi = choices(out)[MUPHI]
    assert muphi["lr"] == 1e-2 and muphi["incomplete"] == [failed_muphi[0].run_id]
    assert muphi["allowed_incomplete"].startswith("1 of its 2 tuning runs did not finish")
    assert eval_configs_on_disk(out) == sorted([ADAMW, MUPHI])

    # without the flag again, once the failed run is retried and done: complete, evaluated
    summary = run_sweep(suite, SweepOptions(out=out, workers=1, wandb="disabled", max_retries=1))
    muphi = choices(out)[MUPHI]
    assert "skipped" not in muphi and "allowed_incomplete" not in muphi and muphi["incomplete"] == []
    assert summary.gated == () and summary.not_started == 0 and not summary.counts.get("failed")


def test_every_tuning_run_failed(tmp_path):
    path, out = suite_file(tmp_path, FAILING), tmp_path / "out"
    suite = load_suite(path)
    fail_for_good(out, [s for s in expand_tune(suite) if s.config == MUPHI])
    summary = run_sweep(suite, SweepOptions(out=out, workers=1, wandb="disabled", max_retries=0))
    muphi = choices(out)[MUPHI]
    assert muphi["lr"] is None and muphi["skipped"].startswith(
        "2 of its 2 tuning runs did not finish (2 failed)")
    assert eval_configs_on_disk(out) == [ADAMW] and summary.counts.get("failed") == 2
    summary = run_sweep(suite, SweepOptions(out=out, workers=1, wandb="disabled", max_retries=0,
                                            allow_incomplete_tuning=True))
    assert choices(out)[MUPHI]["lr"] == 1e-2  # nothing finished: the smallest lr, as before
    assert eval_configs_on_disk(out) == sorted([ADAMW, MUPHI])
