"""The paper suites (published budgets, the factors they cross) and `annealbench run --dry-run`."""

from __future__ import annotations

import itertools

import pytest
import torch

from annealbench.cli import main
from annealbench.runner.suite.dryrun import StepTime, dry_run, measure_step_time, run_table
from annealbench.common.store_schema import task_label
from annealbench.runner.suite.suite import load_suite, shipped_suites
from annealbench.runner.suite.validate import validate_suite
from annealbench.tasks import get_task

GAMMAS = (0, 0.31, 0.47, 0.55, 0.64, 0.85, 0.9)
NUMERATORS = ("one", "moment", "parcor", "moment-c5b0935", "parcor-c5b0935")
TINY = """
name: tiny
preset: smoke
tasks: [quadratic, digits]
optimizers:
  - {name: adamw, hparams: {window: cosine}, lr: [1.0e-3, 1.0e-2, 1.0e-1]}
  - {name: sgd, hparams: {window: linear}, lr: [1.0e-2, 1.0e-1]}
  - {name: sf-adamw, lr: [1.0e-3]}
seeds:
  tune: [1, 2]
  eval: {first: 10, count: 3}
"""


def _missing(names, known) -> list[str]:
    return sorted(set(names) - set(known))


def _entries(suite) -> dict[str, object]:
    """The paper suite's tasks by what they are: resnet18, vit, char, wikitext."""
    out = {}
    for t in suite.tasks:
        o = dict(t.overrides)
        out[o.get("model") or ("wikitext" if o.get("corpus") == "wikitext103-bpe" else "char")] = t
    return out


def _config(entry):
    return get_task(entry.name, preset=entry.preset, **dict(entry.overrides)).config


def _parameters(entry) -> int:
    task = get_task(entry.name, preset=entry.preset, **dict(entry.overrides))
    with torch.device("meta"):
        net = task.spec.make_net(task.config)
    return sum(p.numel() for p in net.parameters())


def test_bench_list_shows_the_paper_suites(capsys):
    assert {"paper", "paper-filter"} <= set(shipped_suites())
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "paper (" in out and "paper-filter (" in out


def test_paper_suite_runs_the_published_budgets():
    tasks = _entries(load_suite("paper"))
    assert set(tasks) == {"resnet18", "vit", "char", "wikitext"}
    resnet, vit = _config(tasks["resnet18"]), _config(tasks["vit"])
    assert (resnet.batch_size, resnet.max_steps) == (128, 391 * 200)
    assert (vit.batch_size, vit.max_steps, vit.vit_width) == (100, 500 * 150, 192)
    char, wiki = _config(tasks["char"]), _config(tasks["wikitext"])
    assert (char.block_size, char.batch_size, char.max_steps) == (128, 64, 10_000)
    assert 28e6 < _parameters(tasks["char"]) < 32e6  # "~30M parameters"
    assert (wiki.corpus, wiki.layers, wiki.heads, wiki.width) == ("wikitext103-bpe", 12, 12, 768)
    assert (wiki.block_size, wiki.batch_size, wiki.val_tokens) == (128, 64, 0)
    # GPT-2 small: 124M with its 50,257 × 768 token embedding (tied to the output head)
    assert _parameters(tasks["wikitext"]) == pytest.approx(124.4e6, rel=0.01)


def test_paper_suite_compares_the_window_family_with_the_peers():
    from annealbench.optimizers import WINDOW_KINDS

    suite = load_suite("paper")
    names = {o.name for o in suite.optimizers}
    assert names == {"muphi", "adamw", "sgd", "sf-adamw", "muon", "prodigy"}
    windows = {dict(o.hparams)["window"] for o in suite.optimizers if o.name == "muphi"}
    assert windows == set(WINDOW_KINDS)
    assert {dict(o.hparams).get("window") for o in suite.optimizers if o.name == "adamw"} == \
        {"cosine"}


def test_paper_filter_crosses_gamma_and_the_numerators():
    suite = load_suite("paper-filter")
    assert {o.name for o in suite.optimizers} == {"muphi"}
    crossed = sorted((dict(o.hparams)["gamma"], dict(o.hparams)["numerator"])
                     for o in suite.optimizers)
    assert crossed == sorted(itertools.product(GAMMAS, NUMERATORS))
    assert set(_entries(suite)) == {"resnet18", "char"}


@pytest.mark.parametrize("name, needed", [("paper", ("muon", "prodigy")),
                                          ("paper-filter", ("moment-c5b0935", "parcor-c5b0935"))])
def test_the_paper_suites_validate(name, needed):
    """Every task builds and every (configuration, lr) passes the registry's checks."""
    from annealbench.optimizers import OPTIMIZERS
    from annealbench.optimizers.reference import NUMERATORS as registered_numerators

    known = set(OPTIMIZERS) | set(registered_numerators)
    missing = _missing(needed, known)
    if missing:
        pytest.skip(f"not registered yet: {', '.join(missing)}")
    validate_suite(load_suite(name))


@pytest.fixture()
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_run_table_counts_runs_per_stage_and_scales_the_step_time(tiny):
    suite = load_suite(tiny)
    times = {t: StepTime(0.25, "given") for t in suite.tasks}
    rows = {(r.stage, r.task): r for r in run_table(suite, times)}
    steps = get_task("digits", "smoke").config.max_steps
    tune, evals = rows["tune", "digits"], rows["eval", "digits"]
    assert (tune.configs, tune.points, tune.seeds, tune.runs) == (2, 5, 2, 10)
    assert (evals.configs, evals.seeds, evals.runs) == (3, 3, 9)
    assert tune.steps == steps and tune.hours == pytest.approx(10 * steps * 0.25 / 3600)


def test_a_measured_step_time_is_real_and_names_its_device(tiny):
    suite = load_suite(tiny)
    measured = measure_step_time(suite.tasks[1], steps=2)
    assert measured.source.startswith("measured on cpu") or "cuda" in measured.source
    assert 0 < measured.seconds < 30


def test_dry_run_prints_the_table_and_says_a_gpu_needs_its_own_measurement(tiny):
    text = dry_run(load_suite(tiny), {"quadratic": 0.5}, steps=2)
    assert "stage tune: 20 runs" in text and "stage eval: 18 runs" in text
    assert "total: 38 runs" in text
    assert "quadratic: given" in text and "digits: measured on" in text
    if not torch.cuda.is_available():
        assert "a GPU estimate needs a GPU measurement" in text and "--step-time" in text


def test_cli_dry_run_of_paper_with_given_step_times(capsys):
    from annealbench.optimizers import OPTIMIZERS

    missing = _missing(("muon", "prodigy"), OPTIMIZERS)
    if missing:
        pytest.skip(f"not registered yet: {', '.join(missing)}")
    assert main(["run", "paper", "--dry-run", "--step-time", "cifar10=0.05",
                 "--step-time", "shakespeare=0.1"]) == 0
    out = capsys.readouterr().out
    suite = load_suite("paper")
    tuned = sum(len(o.lr_grid) for o in suite.optimizers if len(o.lr_grid) > 1)
    runs_per_task = tuned * len(suite.tune_seeds) + len(suite.optimizers) * len(suite.eval_seeds)
    steps = {task_label(t.name, t.overrides): _config(t).max_steps for t in suite.tasks}
    hours = sum(runs_per_task * s * (0.05 if label.startswith("cifar10") else 0.1) / 3600
                for label, s in steps.items())
    assert f"total: {4 * runs_per_task} runs, {hours:,.1f} device-hours" in out


def test_cli_step_time_may_name_one_entry_by_its_label(tmp_path, capsys):
    suite_file = tmp_path / "two.yaml"
    suite_file.write_text(TINY.replace("tasks: [quadratic, digits]", "tasks:\n  - digits\n"
                                       "  - {name: digits, overrides: {batch_size: 8}}"))
    assert main(["run", str(suite_file), "--dry-run", "--step-time", "digits=2",
                 "--step-time", "digits[batch_size=8]=1"]) == 0
    out = capsys.readouterr().out
    steps = get_task("digits", "smoke").config.max_steps
    tune_total = next(line for line in out.splitlines() if line.startswith("stage tune total"))
    assert tune_total.split()[-1] == f"{10 * steps * (1 + 2) / 3600:,.1f}"
    assert "[2] digits[batch_size=8]: given" in out and "measured" not in out


def test_cli_dry_run_refuses_a_step_time_for_a_task_not_in_the_suite(tiny, capsys):
    assert main(["run", str(tiny), "--dry-run", "--step-time", "cifar10=0.1"]) == 2
    err = capsys.readouterr().err
    assert "no task 'cifar10'" in err and "digits" in err and "quadratic" in err


def test_cli_dry_run_refuses_a_step_time_that_is_not_a_time(tiny, capsys):
    with pytest.raises(SystemExit):
        main(["run", str(tiny), "--dry-run", "--step-time", "digits=fast"])
    assert "TASK=SECONDS" in capsys.readouterr().err
    assert main(["run", str(tiny), "--dry-run", "--step-time", "digits=-1"]) == 2
    assert "must be a number of seconds > 0" in capsys.readouterr().err


def test_a_task_without_its_data_is_not_measured_and_nothing_is_fetched(tmp_path, monkeypatch):
    from tests.tasks.range_server import Behaviour, RangeServer

    suite_file = tmp_path / "cifar.yaml"
    suite_file.write_text(TINY.replace("tasks: [quadratic, digits]", "tasks:\n  - {name: cifar10, "
                                       "overrides: {download: true}}"))
    monkeypatch.setenv("ANNEALBENCH_DATA", str(tmp_path / "empty"))
    server = Behaviour({})
    with RangeServer(server) as url:
        monkeypatch.setenv("ANNEALBENCH_CIFAR10_URL", url + "/cifar-10-python.tar.gz")
        text = dry_run(load_suite(suite_file), steps=2)
    assert server.requests == []
    assert "not measured: CIFAR-10 not found" in text and "annealbench data cifar10" in text
    assert "total: 19 runs, ? device-hours" in text
