"""The errors `bench` raises on purpose, each naming what was wrong and what is allowed."""

from __future__ import annotations


class SuiteError(ValueError):
    """A suite file that cannot be run: names the file, the key and what is allowed."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        super().__init__(f"{source}: {key}: {problem}")


class StoreError(OSError):
    """A results directory that cannot be written or read safely (names the path)."""


class LockedError(RuntimeError):
    """Another live `bench run` holds the results directory."""


class MissingSystemError(RuntimeError):
    """This machine lacks what the command asked for (SLURM, a GPU); says what to do instead."""
