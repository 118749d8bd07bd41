"""Weights & Biases: one `WandbLogger` per run, offline unless online is asked for and possible.

Names (project, id, tags, summary keys) come from `annealbench.common.wandb_names`. Every attempt of a run
writes to one W&B run (its id is a hash of what the run is, with `resume="allow"`); the W&B files
of an attempt resumed from a checkpoint are kept beside it, those of an attempt started from
scratch are removed (`discard_stale_wandb`). At the end the run's summary holds the final and best
value of each metric, its status and its diverged step (`finish_wandb_run`).
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from annealbench.common.wandb_names import (DIVERGED_STEP_KEY, STATUS_KEY, summary_key, wandb_project,
                                wandb_run_id, wandb_tags)
from annealbench.common.wandb_server import server_unavailable

WANDB_MODES = ("offline", "online", "disabled")
log = logging.getLogger(__name__)


def resolve_wandb_mode(requested: str) -> str:
    """`online` falls back to `offline` with a warning when there is no key or no server."""
    if requested not in WANDB_MODES:
        raise ValueError(f"wandb mode {requested!r} is not one of {list(WANDB_MODES)}")
    if requested != "online":
        return requested
    reason = server_unavailable()
    if reason is None:
        return "online"
    log.warning("W&B online mode unavailable: %s; logging offline instead — upload later with "
                "`wandb sync DIR/runs/*/wandb/offline-run-*`", reason)
    return "offline"


def discard_stale_wandb(run_dir: Path) -> None:
    """Remove an earlier attempt's W&B files from a run that starts from scratch: its history
    would otherwise precede the new one in the same W&B run when the folder is synced."""
    stale = run_dir / "wandb"
    if stale.is_dir():
        log.info("%s: no checkpoint to resume from; removing the earlier attempt's W&B files", run_dir)
        shutil.rmtree(stale)


def make_wandb_logger(spec_json: dict[str, Any], save_dir: str, mode: str) -> Any:
    """One W&B run per run: project `wandb_project`, id `wandb_run_id` (resumed by a later
    attempt), group = task label, job_type = stage, short tags, config = the resolved run spec."""
    import wandb
    from pytorch_lightning.loggers import WandbLogger

    settings = wandb.Settings(silent=True, console="off", disable_git=True, disable_code=True,
                              x_disable_stats=True, x_save_requirements=False,
                              reinit="create_new")  # a run group logs its seeds' runs at once
    preset = spec_json.get("preset", "")  # a spec written before presets were recorded has none
    run_id = wandb_run_id(spec_json["suite"], spec_json["stage"], preset, spec_json["run_id"])
    logger = WandbLogger(name=spec_json["run_id"], save_dir=save_dir,
                         project=wandb_project(spec_json["suite"]), id=run_id, resume="allow",
                         group=spec_json.get("task_label", spec_json["task"]),
                         job_type=spec_json["stage"], config=spec_json,
                         offline=(mode == "offline"), mode=mode, settings=settings,
                         tags=wandb_tags(spec_json["optimizer"], spec_json["stage"], preset,
                                         spec_json["task"]))
    # Lightning always passes `anonymous` (None by default) to `wandb.init`, which then warns on
    # every run that the setting has no effect; not passing it changes nothing else.
    init = getattr(logger, "_wandb_init", {})
    if init.get("anonymous", False) is None:
        del init["anonymous"]
    return logger


def metric_directions(metrics: Any) -> dict[str, str]:
    """Logged name → "lower" or "higher" for the metrics whose direction the project knows:
    a task's declared evaluation metrics (`annealbench.common.metrics`, e.g. val/acc) and `train/loss`."""
    from annealbench.common.metrics import SPLITS

    directions = {f"{split}/{m.name}": m.better for m in metrics for split in SPLITS}
    return {"train/loss": "lower", **directions}


def run_summary(rows: Any, directions: Mapping[str, str], status: str,
                diverged_step: float | None) -> dict[str, Any]:
    """The summary of a run from its tidy rows (step, metric, value): `final/M` for every
    metric, `best/M` for those with a known direction (over finite values), the status and the
    diverged step. A non-finite value is None (W&B's summary is JSON)."""
    def number(value: float) -> float | None:
        return float(value) if math.isfinite(value) else None

    summary: dict[str, Any] = {STATUS_KEY: status}
    if diverged_step is not None and math.isfinite(diverged_step):
        summary[DIVERGED_STEP_KEY] = int(diverged_step)
    for metric, values in rows.sort_values("step", kind="stable").groupby("metric", sort=True)["value"]:
        summary[summary_key("final", metric)] = number(values.iloc[-1])
        finite = values[values.map(math.isfinite)]
        if metric in directions and not finite.empty:
            summary[summary_key("best", metric)] = float(finite.min() if directions[metric] == "lower"
                                                         else finite.max())
    return summary


def finish_wandb_run(logger: Any, rows: Any, directions: Mapping[str, str], status: str,
                     diverged_step: float | None = None) -> None:
    """Write the run's summary (`run_summary`) and close its W&B run (state failed for a
    failed run). A run that never started its W&B run (it failed before logging) is skipped."""
    experiment = getattr(logger, "_experiment", None)
    if experiment is None:
        return
    experiment.summary.update(run_summary(rows, directions, status, diverged_step))
    experiment.finish(exit_code=1 if status == "failed" else 0)
