"""How runs are named on Weights & Biases: project, run id, tags, the step axis, summary keys.

The runner (which logs every run) and the analysis (which logs the report's tables and builds
the W&B Report whose panels filter those runs) both import this module, so their names agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

STEP_METRIC = "trainer/global_step"  # the x-axis of every metric: Lightning's optimizer step
MAX_TAG_CHARS = 64  # W&B rejects a longer tag (offline too)
RUN_ID_HEX = 16  # 64 bits of SHA-256: short, URL-safe, no collision within any one project
SUMMARY_KINDS = ("final", "best")  # summary keys `final/<metric>`, `best/<metric>`
STATUS_KEY = "status"  # done, diverged or failed (annealbench.common.store_schema.STATUSES)
DIVERGED_STEP_KEY = "diverged_step"  # the first non-finite step of a diverged run, else absent
ANALYSIS_JOB_TYPE = "analysis"  # the job type of the run holding the report's tables
ANALYSIS_RUN_NAME = "analysis-report"


def wandb_project(suite: str) -> str:
    """`WANDB_PROJECT` when set (the variable W&B users set), else the suite's name."""
    return os.environ.get("WANDB_PROJECT") or suite


def wandb_run_id(suite: str, stage: str, preset: str, run_id: str) -> str:
    """The W&B id of a run: 16 hex digits of SHA-256 of what the run is, so every attempt of
    the run (a resume after a kill, a retry) writes to the same W&B run."""
    key = json.dumps([suite, stage, preset, run_id])
    return hashlib.sha256(key.encode()).hexdigest()[:RUN_ID_HEX]


def wandb_tags(*values: str) -> list[str]:
    """Short facts to filter by, each cut to W&B's 64 characters; empty values dropped."""
    return [value[:MAX_TAG_CHARS] for value in dict.fromkeys(values) if value]


def summary_key(kind: str, metric: str) -> str:
    """`final/val/loss`, `best/val/loss`: a run's last and best value of a metric."""
    if kind not in SUMMARY_KINDS:
        raise ValueError(f"summary kind {kind!r} is not one of {list(SUMMARY_KINDS)}")
    return f"{kind}/{metric}"


def table_key(name: str) -> str:
    """The key under which the analysis logs its table `name` (a `wandb.Table`)."""
    return f"analysis/{name}"


def figure_key(name: str) -> str:
    """The key under which the analysis logs its figure `name` (a `wandb.Image`)."""
    return f"figures/{name}"


def artifact_name(suite: str, what: str) -> str:
    """`<suite>-<what>` in the characters W&B allows in an artifact's name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{suite}-{what}")
