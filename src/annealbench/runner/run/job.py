"""What a worker is handed: a `Job` of one or more `Run`s that differ only in their seed.

A `Run` is one run of a sweep: its spec, its folder and the wall-clock limit of one attempt. A
`Job` is the unit every launcher hands to a worker and every worker trains in one Lightning
`Trainer` (`annealbench.runner.run.execute.execute_job`): a job of one run is the one-seed path,
a job of several is a run group, whose members' networks are stacked along a seed dimension
(`annealbench.tasks.stacking`). Which runs may share a job is decided by
`annealbench.runner.launch.jobs.make_jobs`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from annealbench.runner.suite.run_spec import RunSpec


@dataclass(frozen=True)
class Run:
    """One run: what it is, where it writes, how long one attempt may take (None: no limit)."""

    spec: RunSpec
    run_dir: Path
    timeout_s: float | None = None


@dataclass(frozen=True)
class Job:
    """Runs trained together in one Trainer; `members[0]` names the job (and holds a run
    group's checkpoint)."""

    members: tuple[Run, ...]

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a job has at least one run")
        first = replace(self.members[0].spec, seed=0)
        if any(replace(m.spec, seed=0) != first for m in self.members[1:]):
            raise ValueError(f"the runs of one job may differ only in their seed: "
                             f"{[m.spec.run_id for m in self.members]}")

    @classmethod
    def of(cls, spec: RunSpec, run_dir: Path, timeout_s: float | None = None) -> Job:
        """A job of one run."""
        return cls((Run(spec, Path(run_dir), timeout_s),))

    @property
    def spec(self) -> RunSpec:
        return self.members[0].spec

    @property
    def run_dir(self) -> Path:
        return self.members[0].run_dir

    @property
    def timeout_s(self) -> float | None:
        """The members train at once: their limits added up (None: one has none)."""
        limits = [m.timeout_s for m in self.members]
        return None if any(t is None for t in limits) else float(sum(limits))
