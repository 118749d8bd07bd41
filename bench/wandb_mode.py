"""Weights & Biases: one `WandbLogger` per run, offline unless online is asked for and possible."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any
from urllib.parse import urlparse

WANDB_MODES = ("offline", "online", "disabled")
log = logging.getLogger(__name__)


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import netrc

        host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _reachable(timeout_s: float = 3.0) -> bool:
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def resolve_wandb_mode(requested: str) -> str:
    """`online` falls back to `offline` with a warning when there is no key or no server."""
    if requested not in WANDB_MODES:
        raise ValueError(f"wandb mode {requested!r} is not one of {list(WANDB_MODES)}")
    if requested != "online":
        return requested
    reason = ("no API key (set WANDB_API_KEY or run `wandb login`)" if not _has_api_key()
              else None if _reachable() else "the W&B server cannot be reached")
    if reason is None:
        return "online"
    log.warning("W&B online mode unavailable: %s; logging offline instead — upload later with "
                "`wandb sync DIR/runs/*/wandb/offline-run-*`", reason)
    return "offline"


def make_wandb_logger(spec_json: dict[str, Any], save_dir: str, mode: str) -> Any:
    """project = suite, group = task, job_type = stage, config = the resolved run spec."""
    import wandb
    from pytorch_lightning.loggers import WandbLogger

    settings = wandb.Settings(silent=True, console="off", disable_git=True, disable_code=True,
                              x_disable_stats=True, x_save_requirements=False,
                              reinit="create_new")  # a run group logs its seeds' runs at once
    logger = WandbLogger(name=spec_json["run_id"], save_dir=save_dir, project=spec_json["suite"],
                         group=spec_json["task"], job_type=spec_json["stage"], config=spec_json,
                         offline=(mode == "offline"), mode=mode, settings=settings,
                         tags=[spec_json["optimizer"], spec_json["config"]])
    # Lightning always passes `anonymous` (None by default) to `wandb.init`, which then warns on
    # every run that the setting has no effect; not passing it changes nothing else.
    init = getattr(logger, "_wandb_init", {})
    if init.get("anonymous", False) is None:
        del init["anonymous"]
    return logger
