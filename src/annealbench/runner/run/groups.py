"""What a run group adds to the one training loop (`annealbench.runner.run.execute.fit`).

A group's members are stacked into one model (`annealbench.tasks.stacking.build_group`); each
member logs to its own sinks (`Fanout`), every member's rows travel inside the group's checkpoint
(`GroupRowsInCheckpoint`), and that checkpoint lives in its first member's folder, under
`checkpoints/group/` (a one-seed attempt of that run never reads it). A checkpoint of a group with
other seeds is discarded, as the group then starts from scratch (`group_resume_from`). Each
member's folder is written as its one-seed run writes it; `wall_time_s` is the member's share of
the group's wall time, and `provenance.json` also records the group: its run ids and wall time.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
GROUP_CHECKPOINTS = ("checkpoints", "group")  # under the first member's folder


class Fanout:
    """One seed's metric sink: every logger of that seed's run."""

    def __init__(self, loggers: list[Any]) -> None:
        self.loggers = loggers

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for logger in self.loggers:
            logger.log_metrics(metrics, step=step)


def group_rows_callback(tidies: list[Any]) -> Any:
    """A callback that keeps every member's rows inside the group's checkpoints."""
    from pytorch_lightning import Callback

    class GroupRowsInCheckpoint(Callback):
        def state_dict(self) -> dict[str, Any]:
            return {"rows": [list(t.rows) for t in tidies]}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            for tidy, rows in zip(tidies, state_dict["rows"]):
                tidy.rows = [tuple(r) for r in rows]

    return GroupRowsInCheckpoint()


def group_resume_from(ckpt_dir: Path, seeds: list[int]) -> str | None:
    """The group's last checkpoint if it belongs to exactly these seeds; else none (removed)."""
    import torch

    last = ckpt_dir / "last.ckpt"
    if not last.exists():
        return None
    try:
        held = torch.load(last, map_location="cpu", weights_only=False)["annealbench_group"]["seeds"]
    except (OSError, RuntimeError, KeyError, EOFError) as err:
        held = f"unreadable ({err})"
    if held == seeds:
        return str(last)
    log.info("%s holds seeds %s, not %s: starting the group from scratch", last, held, seeds)
    shutil.rmtree(ckpt_dir)
    return None
