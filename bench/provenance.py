"""Where a run came from: code version, library versions, hardware."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_LIBRARIES = ("torch", "pytorch-lightning", "numpy", "pandas", "pyarrow", "wandb",
              "schedulefree", "scikit-learn", "annealbench")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True,
                             text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_state() -> tuple[str, bool]:
    """(commit, dirty): the HEAD commit (`unknown` outside a checkout) and uncommitted changes."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return "unknown", False
    status = _git("status", "--porcelain")  # untracked, non-ignored files are code too
    return commit, bool(status)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Code version, library versions, CPU/GPU and host of this process (computed once)."""
    import torch

    commit, dirty = git_state()
    gpus = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else [])
    return {"git_commit": commit, "git_dirty": dirty, "python": sys.version.split()[0],
            "libraries": {name: _version(name) for name in _LIBRARIES},
            "cpu": platform.processor() or platform.machine(), "cpu_count": _cpu_count(),
            "gpus": gpus, "host": socket.gethostname(), "platform": platform.platform()}


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
