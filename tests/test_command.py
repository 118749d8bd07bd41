"""The package as a user installs it, and the `annealbench` command's output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from annealbench.runner.launch.progress import SweepProgress
from tests.analysis.synthetic import Synthetic, write_store

ROOT = Path(__file__).resolve().parents[1]
OLD_TOP_LEVEL = {"analysis", "bench", "common", "optimizers", "tasks"}


def command(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "annealbench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_pip_install_gives_the_command_and_one_package_only(tmp_path):
    """A wheel built from the tree and `pip install`ed: one top-level package, the console
    command, the shipped suites and the fused operator's source; none of the old generic names."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "wheel"), str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "wheel").glob("annealbench-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} \
        == {"annealbench"}
    assert "annealbench = annealbench.cli:main" in entry_points
    assert "annealbench/suites/quick.yaml" in names
    assert "annealbench/optimizers/_fused_step.cpp" in names

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    assert not OLD_TOP_LEVEL & {p.name for p in site.iterdir()}
    env = {**os.environ, "PYTHONPATH": str(site)}
    imported = subprocess.run([sys.executable, "-c", "import annealbench; print(annealbench.__file__)"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert Path(imported.stdout.strip()).is_relative_to(site)
    listed = subprocess.run([str(site / "bin" / "annealbench"), "list"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert "quick (" in listed.stdout and str(site) in listed.stdout  # suites from the install


def test_help_lists_every_command(tmp_path):
    out = command("--help", cwd=tmp_path)
    assert out.returncode == 0
    for name in ("run", "status", "list", "train", "data", "report", "figures", "perf"):
        assert f"    {name} " in out.stdout, name
    assert "run-one" not in out.stdout


TINY = """
name: tiny
preset: smoke
tasks: [quadratic]
optimizers:
  - {name: adamw, hparams: {window: cosine}, lr: [1.0e-2]}
seeds: {eval: [10, 11, 12, 13, 14]}
seed_batch: 1
"""


def test_a_sweep_logs_its_rate_and_eta_when_not_on_a_terminal(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    out = command("run", "tiny.yaml", "--out", "out", "--workers", "1", "--wandb", "disabled",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if "runs finished" in line]
    assert lines and all("runs/min · ETA " in line for line in lines), out.stderr
    assert "tiny: 5/5 runs finished (100%), 0 failed" in lines[-1]


def test_the_progress_line_counts_this_session_only():
    now = [0.0]
    progress = SweepProgress("s", 100, already={"done": 40}, clock=lambda: now[0])
    for _ in range(20):
        progress.event("started", None, None)
    now[0] = 120.0  # 20 runs in two minutes: 10 runs/min, 40 left
    line = progress.line()
    assert line.startswith("s: 40/100 runs finished (40%), 0 failed, 20 running")
    assert "ETA unknown" in line
    from annealbench.runner.store.results_store import Outcome

    for _ in range(20):
        progress.event("finished", None, Outcome("done"))
    assert progress.line().endswith("· 10.0 runs/min · ETA 4 min 00 s")


def test_the_report_shows_no_third_party_info_unless_verbose(tmp_path):
    store = write_store(tmp_path / "store", Synthetic())
    quiet = command("report", str(store), "--no-wandb", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.splitlines() == [line for line in quiet.stderr.splitlines()
                                         if line.startswith("INFO annealbench.")]
    assert "fontTools" not in quiet.stderr + quiet.stdout
    verbose = command("-v", "figures", str(store), "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    assert "INFO fontTools" in verbose.stderr  # the PDF backend's subsetting lines: back with -v
