"""Where a run came from: code version, library versions, hardware.

The code version is the HEAD commit and, for a tree with uncommitted changes, the SHA-256 of
those changes to the code a run executes (`git_diff_sha256`, over `CODE_PATHS`: the diff
against HEAD, binary files included, then every untracked, non-ignored file's path and bytes;
empty when only other files, such as docs, tests or the analysis, changed). Two runs were made
by the same code exactly when their code versions (`annealbench.common.store_schema.code_version`) are
equal: the same commit and the same changes to the code, or none. A dirty tree without a
recorded hash (stores written before it was recorded) matches nothing. Outside a git checkout
the commit is `unknown`, and every such run counts as made by the same code (nothing can tell
them apart).
"""

from __future__ import annotations

import hashlib
import platform
import socket
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from annealbench.common import store_schema as schema

PACKAGE = Path(__file__).resolve().parents[2]  # src/annealbench
PROJECT_ROOT = PACKAGE.parent.parent  # the checkout, when the package runs from one
# what a run executes: the package but its analysis and benchmarks, and the dependencies' floors
CODE_PATHS = ("src/annealbench", ":(exclude)src/annealbench/analysis",
              ":(exclude)src/annealbench/perf", "pyproject.toml")
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


def diff_sha256() -> str | None:
    """SHA-256 of the uncommitted changes to `CODE_PATHS` (see the module docstring), `""` when
    there are none; None outside a checkout."""
    diff = _git_bytes("diff", "HEAD", "--binary", "--", *CODE_PATHS)
    untracked = _git_bytes("ls-files", "--others", "--exclude-standard", "-z", "--", *CODE_PATHS)
    if diff is None or untracked is None:
        return None
    if not diff and not untracked:
        return ""
    digest = hashlib.sha256(diff)
    for name in sorted(n for n in untracked.split(b"\0") if n):
        digest.update(b"\0" + name + b"\0")
        try:
            digest.update(hashlib.sha256((PROJECT_ROOT / name.decode()).read_bytes()).digest())
        except OSError:  # removed meanwhile, or not a file
            digest.update(b"-")
    return digest.hexdigest()


def _git_bytes(*args: str) -> bytes | None:
    try:
        return subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True,
                              timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def code_version(prov: dict[str, Any]) -> tuple[str, str]:
    """The code version (`annealbench.common.store_schema.code_version`) a provenance record names."""
    return schema.code_version(prov.get("git_commit"), prov.get("git_dirty"),
                               prov.get("git_diff_sha256"))


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
    changes = diff_sha256() if dirty else None
    gpus = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else [])
    return {"git_commit": commit, "git_dirty": dirty, "git_diff_sha256": changes,
            "python": sys.version.split()[0],
            "libraries": {name: _version(name) for name in _LIBRARIES},
            "cpu": platform.processor() or platform.machine(), "cpu_count": _cpu_count(),
            "gpus": gpus, "host": socket.gethostname(), "platform": platform.platform()}


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
