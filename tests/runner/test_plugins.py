"""Optimizers and tasks from outside the project: entry points, `module:Name`, and their errors.

The plug-ins are the examples of docs/adding-an-optimizer.md and docs/adding-a-task.md, read
from the docs themselves. The fast tests make them visible to `importlib.metadata` as
distributions on `sys.path`; the sweep installs them with pip as separate packages and runs
them through `annealbench run` and `annealbench report`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from annealbench.runner.errors import SuiteError
from annealbench.runner.run.execute import RunOptions
from annealbench.runner.launch.jobs import group_size
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.suite.suite import parse_suite
from annealbench.runner.suite.validate import validate_suite
from annealbench.common.plugins import entry_points
from annealbench.optimizers import OptimInfo, build_optimizer, check_optimizer, optimizer_info, optimizer_names
from annealbench.optimizers.registry import WINDOW_HPARAMS, state_bytes_per_param
from annealbench.tasks import get_task, task_names, task_spec
from tests.runner.helpers import ROOT, bench_env, run_bench

DOCS = ROOT / "docs"
MODULES = ("annealbench_lion", "annealbench_wine", "loose_plugins")


def doc_block(doc: str, language: str) -> str:
    (code,) = re.findall(rf"```{language}\n(.*?)```", (DOCS / doc).read_text(encoding="utf-8"), flags=re.S)
    return code


def write_package(folder: Path, module: str, code: str, pyproject: str) -> Path:
    folder.mkdir(parents=True)
    (folder / f"{module}.py").write_text(code, encoding="utf-8")
    (folder / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    return folder


def fake_distribution(site: Path, name: str, entry_points_txt: str) -> None:
    """What pip leaves in site-packages for a distribution, as far as `importlib.metadata` reads."""
    info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(entry_points_txt, encoding="utf-8")


@pytest.fixture()
def site(tmp_path, monkeypatch):
    """A folder on sys.path holding the docs' two plug-in modules, declared by no distribution yet."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "annealbench_lion.py").write_text(doc_block("adding-an-optimizer.md", "python"), encoding="utf-8")
    (folder / "annealbench_wine.py").write_text(doc_block("adding-a-task.md", "python"), encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    entry_points.cache_clear()
    yield folder
    entry_points.cache_clear()
    for module in MODULES:
        sys.modules.pop(module, None)


def test_entry_points_and_references_name_the_same_kind_of_entry(site):
    fake_distribution(site, "annealbench-lion", "[annealbench.optimizers]\nlion = annealbench_lion:LION\n")
    fake_distribution(site, "annealbench-wine", "[annealbench.tasks]\nwine = annealbench_wine:SPEC\n")
    import annealbench_lion
    import annealbench_wine

    assert optimizer_info("lion") is annealbench_lion.LION
    assert optimizer_info("annealbench_lion:LION") is annealbench_lion.LION
    assert "lion" in optimizer_names() and "wine" in task_names()
    assert task_spec("wine") is task_spec("annealbench_wine:SPEC") is annealbench_wine.SPEC
    assert get_task("annealbench_wine:SPEC", "smoke").trainer_kwargs()["max_steps"] == 40

    # the doc's Lion: the first step moves each coordinate by lr·Ϝ(0)·sign(g), then Ϝ decays
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    opt = build_optimizer("lion", [x], total_steps=4, lr=0.1, window="linear")
    x.grad = torch.tensor([0.5, -0.1, 0.0])
    opt.step()
    assert x.detach().tolist() == pytest.approx([0.9, -1.9, 3.0])
    assert opt.param_groups[0]["mu_t"] == pytest.approx(0.1) and opt.param_groups[0]["impl"] == "for-loop"
    opt.step()
    assert opt.param_groups[0]["mu_t"] == pytest.approx(0.075)
    assert state_bytes_per_param("lion") == 4.0  # one momentum per coordinate
    with pytest.raises(ValueError, match=r"weight_decay=-1 is not allowed: expected a number in \[0, inf\)"):
        check_optimizer("lion", total_steps=10, lr=0.1, weight_decay=-1)

    # the runner and the analysis read the entry, whatever its name
    lion = RunSpec(suite="s", stage="eval", task="annealbench_wine:SPEC", preset="smoke",
                   task_overrides=(), optimizer="lion", hparams=(), lr=1e-3, seed=0)
    assert group_size(lion, 3, RunOptions()) == (3, "")
    assert optimizer_info("lion").ran_fastest(["for-loop"])
    assert not optimizer_info("adamw").ran_fastest(["for-loop"])


def test_a_plugin_that_is_not_elementwise_stays_on_the_one_seed_path(site):
    (site / "loose_plugins.py").write_text(
        "import dataclasses\nfrom annealbench_lion import LION\n"
        "GLOBAL = dataclasses.replace(LION, name='lion-global', elementwise=False)\n"
        "SHARED = dataclasses.replace(LION, name='lion-shared', whole_tensor={'weight_decay': [0.5]})\n",
        encoding="utf-8")
    spec = RunSpec(suite="s", stage="eval", task="diabetes", preset="smoke", task_overrides=(),
                   optimizer="loose_plugins:GLOBAL", hparams=(), lr=1e-3, seed=0)
    assert group_size(spec, "auto", RunOptions()) == (1, "optimizer lion-global is not elementwise")
    shared = RunSpec(suite="s", stage="eval", task="diabetes", preset="smoke", task_overrides=(),
                     optimizer="loose_plugins:SHARED", hparams=(("weight_decay", 0.5),), lr=1e-3, seed=0)
    assert group_size(shared, "auto", RunOptions())[1] == \
        "weight_decay 0.5 averages over whole tensors, which a group would share across seeds"


@pytest.mark.parametrize("name, message", [
    ("no_such_module:LION", r"module 'no_such_module' cannot be imported"),
    ("annealbench_lion:LOIN", r"module 'annealbench_lion' has no attribute 'LOIN' \(its OptimInfo objects: LION\)"),
    ("annealbench_lion:WindowedLion", r"is the class annealbench_lion.WindowedLion, not a registry entry of "
                                      r"kind OptimInfo \(annealbench.optimizers.registry.OptimInfo"),
    ("annealbench_wine:SPEC", r"is a annealbench.tasks.task_spec.TaskSpec, not a registry entry of kind OptimInfo"),
    ("lion", r"unknown optimizer 'lion'; allowed: muphi, adamw.*or a reference module:Name"),
])
def test_a_bad_optimizer_reference_says_what_is_wrong(site, name, message):
    with pytest.raises(ValueError, match=message):
        optimizer_info(name)


def test_a_bad_task_reference_says_what_is_wrong(site):
    with pytest.raises(ValueError, match=r"task 'annealbench_lion:LION' is a annealbench.optimizers.registry.OptimInfo, "
                                         r"not a registry entry of kind TaskSpec"):
        task_spec("annealbench_lion:LION")
    (site / "loose_plugins.py").write_text("raise RuntimeError('needs a GPU')\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"importing module 'loose_plugins' raised RuntimeError: needs a GPU"):
        task_spec("loose_plugins:SPEC")


def test_plugins_may_not_share_a_name_nor_take_a_builtin_one(site):
    fake_distribution(site, "annealbench-lion", "[annealbench.optimizers]\nlion = annealbench_lion:LION\n"
                                                "adamw = annealbench_lion:LION\n")
    fake_distribution(site, "other-lion", "[annealbench.optimizers]\nlion = other_lion:LION\n")
    fake_distribution(site, "renamed-wine", "[annealbench.tasks]\nclaret = annealbench_wine:SPEC\n"
                                            "quadratic = annealbench_wine:SPEC\n")
    with pytest.raises(ValueError, match=r"two plug-ins claim the optimizer name 'lion': entry point lion = "
                                         r"'annealbench_lion:LION' of distribution annealbench-lion; "
                                         r"entry point lion = 'other_lion:LION' of distribution other-lion"):
        optimizer_info("lion")
    with pytest.raises(ValueError, match=r"of distribution annealbench-lion reuses the name of the built-in "
                                         r"optimizer 'adamw'"):
        optimizer_info("adamw")
    with pytest.raises(ValueError, match=r"reuses the name of the built-in task 'quadratic'"):
        get_task("quadratic", "smoke")
    with pytest.raises(ValueError, match=r"loads a TaskSpec named 'wine': the two names must agree"):
        task_spec("claret")
    assert optimizer_info("sgd").name == "sgd"  # names no plug-in claims are untouched


def test_a_suite_names_plugins_and_refuses_bad_ones_before_running(site):
    fake_distribution(site, "annealbench-wine", "[annealbench.tasks]\nwine = annealbench_wine:SPEC\n")
    text = """
name: p
preset: smoke
tasks: [wine, "annealbench_wine:SPEC"]
optimizers:
  - {name: "annealbench_lion:LION", hparams: {window: linear}, lr: [1.0e-3]}
seeds: {eval: [1]}
"""
    validate_suite(parse_suite(text, source="p.yaml"))
    with pytest.raises(SuiteError, match=r"optimizers\[0\]\.name.*has no attribute 'LOIN'"):
        validate_suite(parse_suite(text.replace(":LION", ":LOIN"), source="p.yaml"))
    with pytest.raises(SuiteError, match=r"tasks\[1\]\.name.*cannot be imported"):
        validate_suite(parse_suite(text.replace("annealbench_wine:SPEC", "wines:SPEC"), source="p.yaml"))
    with pytest.raises(SuiteError, match=r"optimizers\[0\]\.name.*is not a reference `module:Name`"):
        parse_suite(text.replace("annealbench_lion:LION", "annealbench_lion::LION"), source="p.yaml")
    with pytest.raises(SuiteError, match=r"hyperparameter\(s\) gamma not allowed for optimizer 'annealbench_lion:LION'"):
        validate_suite(parse_suite(text.replace("window: linear", "gamma: 0.5"), source="p.yaml"))


def test_a_registry_entry_checks_itself():
    build = lambda params, total_steps, h: torch.optim.SGD(params, lr=h["lr"])  # noqa: E731
    with pytest.raises(TypeError, match=r"'x': hparams must map each key to \(default, checker\), `lr` among them"):
        OptimInfo("x", "", {}, windowed=False, has_eval_mode=False, build=build)
    with pytest.raises(TypeError, match=r"'x' is windowed but lacks the window keys \['window', 'p'"):
        OptimInfo("x", "", {"lr": (0.1, lambda k, v: v)}, windowed=True, has_eval_mode=False, build=build)
    with pytest.raises(TypeError, match=r"name keys it does not take: \['numerator'\]"):
        OptimInfo("x", "", {"lr": (0.1, lambda k, v: v), **WINDOW_HPARAMS}, windowed=True,
                  has_eval_mode=False, build=build, whole_tensor={"numerator": ("moment",)})


# ---------------------------------------------------------------- installed for real, in a sweep
SUITE = """
name: plugins
preset: smoke
tasks: [wine, "loose_plugins:WINE_SHORT"]
optimizers:
  - {name: lion, hparams: {window: linear}, lr: [1.0e-3, 1.0e-2]}
  - {name: "loose_plugins:LION_B95", hparams: {window: linear}, lr: [1.0e-2]}
  - {name: adamw, hparams: {window: linear}, lr: [1.0e-2]}
seeds: {tune: [0], eval: [1, 2]}
"""
LOOSE = '''"""Entries given to the suite as module:Name, built from the installed plug-ins."""
import dataclasses

from annealbench_lion import LION
from annealbench_wine import SPEC, WineConfig

LION_B95 = dataclasses.replace(LION, name="lion-b95", hparams={**LION.hparams, "betas": ((0.95, 0.98), LION.hparams["betas"][1])})
WINE_SHORT = dataclasses.replace(SPEC, name="wine-short", presets={**SPEC.presets, "smoke": WineConfig(max_steps=20, val_every=5, log_every=5)})
'''


def test_installed_plugins_and_references_run_in_a_sweep_and_reach_the_report(tmp_path):
    lion = write_package(tmp_path / "annealbench-lion", "annealbench_lion", doc_block("adding-an-optimizer.md", "python"),
                         doc_block("adding-an-optimizer.md", "toml"))
    wine = write_package(tmp_path / "annealbench-wine", "annealbench_wine", doc_block("adding-a-task.md", "python"),
                         doc_block("adding-a-task.md", "toml"))
    site, loose = tmp_path / "site", tmp_path / "loose"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
                          "--target", str(site), str(lion), str(wine)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr[-3000:]
    assert sorted(p.name.split("-")[0] for p in site.glob("*.dist-info")) == ["annealbench_lion", "annealbench_wine"]
    loose.mkdir()
    (loose / "loose_plugins.py").write_text(LOOSE, encoding="utf-8")
    env = bench_env() | {"PYTHONPATH": os.pathsep.join([str(site), str(loose)])}
    listed = run_bench("list", env=env)
    assert listed.returncode == 0 and "lion" in listed.stdout and "wine" in listed.stdout, listed.stderr

    suite, out = tmp_path / "plugins.yaml", tmp_path / "results"
    suite.write_text(SUITE, encoding="utf-8")
    proc = run_bench("run", str(suite), "--out", str(out), "--wandb", "disabled", "--workers", "2",
                     timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = pd.read_parquet(out / "runs.parquet")
    assert set(runs["status"]) == {"done"} and len(runs) == 2 * 2 + 2 * 3 * 2
    assert set(runs["task_label"]) == {"wine", "loose_plugins:WINE_SHORT"}
    assert set(runs["config"]) == {"lion[window=linear]", "loose_plugins:LION_B95[window=linear]",
                                   "adamw[window=linear]"}
    assert {"wine/lion[window=linear,lr=1e-3]/seed=0", "wine/lion[window=linear,lr=1e-2]/seed=0",
            "loose_plugins:WINE_SHORT/loose_plugins:LION_B95[window=linear,lr=1e-2]/seed=2"} <= set(runs["run_id"])
    plugin_impls = {impl for p in runs.loc[runs["config"] != "adamw[window=linear]", "provenance"]
                    for impl in json.loads(p)["optimizer_impl"]}
    assert plugin_impls == {"for-loop"}  # the doc's Lion ran, in every param group
    results = pd.read_parquet(out / "results.parquet")
    steps = results[results["metric"] == "val/loss"].groupby("run_id")["step"].max()
    assert set(steps[steps.index.str.startswith("loose_plugins:WINE_SHORT/")]) == {20}
    assert set(steps[steps.index.str.startswith("wine/")]) == {40}

    report = subprocess.run([sys.executable, "-m", "annealbench", "report", str(out), "--reference", "adamw[window=linear]",
                             "--no-wandb"], cwd=ROOT, env=env, text=True, capture_output=True, timeout=600)
    assert report.returncode == 0, report.stderr[-3000:]
    tables = {p.name: p.read_text(encoding="utf-8") for p in (out / "report" / "tables").glob("*.csv")}
    verdict = pd.read_csv(out / "report" / "tables" / "verdict.csv")
    assert {"lion[window=linear]", "loose_plugins:LION_B95[window=linear]"} <= set(verdict["config"])
    assert any("loose_plugins:WINE_SHORT" in text for text in tables.values()), sorted(tables)
