"""The report's tables as W&B Tables, when the runs themselves were logged to W&B."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from analysis.store import Store

log = logging.getLogger(__name__)


def logged_to_wandb(store: Store) -> bool:
    """True when some run folder holds a `wandb/` directory (the runner's W&B files)."""
    return any((store.root / "runs").glob("*/wandb")) or any((store.root / "runs").glob("*/*/*/wandb"))


def log_tables(store: Store, tables: dict[str, pd.DataFrame], out: Path) -> Path | None:
    """Log `tables` to one W&B run (offline unless WANDB_MODE says otherwise); None when skipped."""
    if not logged_to_wandb(store):
        log.info("no wandb/ folders under %s/runs: W&B tables skipped", store.root)
        return None
    import wandb

    mode = os.environ.get("WANDB_MODE", "offline")
    try:
        run = wandb.init(project=os.environ.get("WANDB_PROJECT", "annealbench"), job_type="analysis",
                         name="analysis-report", dir=str(out), mode=mode, reinit="finish_previous")
    except Exception as err:  # W&B is an extra output: the files on disk are the report
        log.warning("W&B tables not logged: wandb.init failed in %s mode (%s)", mode, err)
        return None
    try:
        for name, df in tables.items():
            frame = df.copy()
            for col in frame.columns:
                if frame[col].dtype == object:
                    frame[col] = frame[col].astype(str)
            run.log({f"analysis/{name}": wandb.Table(dataframe=frame)})
        run_dir = Path(run.dir).parent
    finally:
        run.finish()
    log.info("W&B tables logged (%s mode) in %s", mode, run_dir)
    return run_dir
