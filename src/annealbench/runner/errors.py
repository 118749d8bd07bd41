"""The errors the runner raises on purpose, each naming what was wrong and what is allowed."""

from __future__ import annotations

from annealbench.common.errors import StoreError

__all__ = ["LockedError", "MissingSystemError", "StoreError", "SuiteError"]


class SuiteError(ValueError):
    """A suite file that cannot be run: names the file, the key and what is allowed."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        super().__init__(f"{source}: {key}: {problem}")


class LockedError(RuntimeError):
    """Another live `annealbench run` holds the results directory."""


class MissingSystemError(RuntimeError):
    """This machine lacks what the command asked for (SLURM, a GPU); says what to do instead."""
