"""The analysis on W&B, when the runs themselves were logged to W&B: one run (job type
`analysis`) holding every report table as a `wandb.Table` (the verdict first), the figures as
images, and two artifacts: the results store's tables and the report folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from annealbench.analysis.load import Store
from annealbench.common.wandb_names import (ANALYSIS_JOB_TYPE, ANALYSIS_RUN_NAME, artifact_name, figure_key,
                                table_key, wandb_project)

log = logging.getLogger(__name__)
# The results store's files an artifact keeps: its tables and what the runner wrote beside them.
STORE_FILES = ("runs.parquet", "results.parquet", "selection.json", "metrics.json", "compare.json",
               "gathered.json")


def logged_to_wandb(store: Store) -> bool:
    """True when some run folder holds a `wandb/` directory (the runner's W&B files)."""
    return any((store.root / "runs").glob("*/wandb")) or any((store.root / "runs").glob("*/*/*/wandb"))


def store_suite(store: Store) -> str:
    """The suite the store's runs belong to (several: their names joined with `+`, sorted)."""
    return "+".join(sorted(store.runs["suite"].astype(str).unique())) or "annealbench"


def log_tables(store: Store, tables: dict[str, pd.DataFrame], out: Path) -> Path | None:
    """Log the analysis written into `out` to one W&B run (offline unless WANDB_MODE says
    otherwise; project `annealbench.common.wandb_names.wandb_project`); None when skipped or it failed."""
    if not logged_to_wandb(store):
        log.info("no wandb/ folders under %s/runs: W&B tables skipped", store.root)
        return None
    import wandb

    mode = os.environ.get("WANDB_MODE", "offline")
    suite = store_suite(store)
    try:
        run = wandb.init(project=wandb_project(suite), job_type=ANALYSIS_JOB_TYPE,
                         name=ANALYSIS_RUN_NAME, dir=str(out), mode=mode, reinit="finish_previous",
                         config={"suite": suite, "results_dir": str(store.root)},
                         settings=wandb.Settings(silent=True, console="off", x_disable_stats=True))
    except Exception as err:  # W&B is an extra output: the files on disk are the report
        log.warning("W&B tables not logged: wandb.init failed in %s mode (%s)", mode, err)
        return None
    try:
        run.log({table_key(name): wandb.Table(dataframe=_as_text_columns(df))
                 for name, df in tables.items()}
                | {figure_key(png.stem): wandb.Image(str(png))
                   for png in sorted((out / "figures").glob("*.png"))})
        run.log_artifact(_artifact(wandb, artifact_name(suite, "results"), "results-store",
                                   [store.root / name for name in STORE_FILES], store.root))
        report_files = [p for p in sorted(out.rglob("*"))
                        if p.is_file() and p.relative_to(out).parts[0] != "wandb"]
        run.log_artifact(_artifact(wandb, artifact_name(suite, "report"), "report", report_files, out))
        run_dir = Path(run.dir).parent
    finally:
        run.finish()
    log.info("W&B tables, figures and artifacts logged (%s mode) in %s", mode, run_dir)
    return run_dir


def _as_text_columns(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with its object columns as text: a `wandb.Table` column holds one type."""
    frame = df.copy()
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].astype(str)
    return frame


def _artifact(wandb, name: str, kind: str, files: list[Path], root: Path):
    """An artifact of the existing `files`, each under its path relative to `root`."""
    artifact = wandb.Artifact(name, type=kind)
    for path in files:
        if path.is_file():
            artifact.add_file(str(path), name=path.relative_to(root).as_posix())
    return artifact
