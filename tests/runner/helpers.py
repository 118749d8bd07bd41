"""Shared helpers of the bench tests: run the CLI as a real subprocess, compare stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
TIMING = ("time/elapsed_s",)  # wall-clock metrics: the only values allowed to differ

# The smallest sweep that starts a worker: one task, one configuration, two evaluation seeds.
TINY_SUITE = """
name: tiny
preset: smoke
tasks: [diabetes]
optimizers:
  - {name: adamw, hparams: {window: cosine}, lr: [1.0e-2]}
seeds: {eval: [10, 11]}
"""


def bench_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="offline", WANDB_SILENT="true",
               PYTHONUNBUFFERED="1")
    env.pop("WANDB_API_KEY", None)
    # A command started here is a job of its own: it does not join a W&B service this test
    # process started (the workers drop it anyway; `annealbench train` runs W&B in-process).
    env.pop("WANDB_SERVICE", None)
    return env


def bench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "annealbench", *args]


def run_bench(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(bench_cmd(*args), cwd=ROOT, env=env or bench_env(), text=True,
                          capture_output=True, timeout=timeout)


def comparable_results(out: Path) -> pd.DataFrame:
    """results.parquet without wall-clock metrics, in a canonical order."""
    results = pd.read_parquet(out / "results.parquet")
    results = results[~results["metric"].isin(TIMING)]
    return results.sort_values(["run_id", "metric", "step"], kind="stable").reset_index(drop=True)


def wandb_records(run_dir: Path) -> list[dict]:
    """The records of a run's offline W&B transaction log, read by wandb's own reader."""
    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, offline
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json",
                          str(offline[0])], capture_output=True, text=True, timeout=120,
                         check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
