"""The record of a results directory's SLURM submissions: `DIR/slurm/ledger.json`.

One entry per job array, written (atomically, under the results directory's lock) before
`sbatch` is called and completed with the job id once it returns:

    {"name": "bench-tune-3f2a9c1d",    a unique job name: finds a job whose id was never recorded
     "job_id": "4211",                 null until sbatch has answered
     "stage": "tune",
     "tasks": [["run id", ...], ...],  the run ids of each array index
     "submitted": "2025-…",            when
     "timeout_min": 12,
     "ended": false,                   true once no task of it is queued or running
     "final": {"0": "COMPLETED", …}}   each task's last state (sacct), once ended

`annealbench run` reads it to tell which runs are in a job that is still queued or running (those
are never submitted again, and never touched), and `annealbench status` to show each stage's runs as
queued, running, done or failed. An entry whose job is no longer queued or running is marked
`ended` and never asked about again; an entry without a job id that no queued or running job
bears the name of was never submitted, or has ended: either way none of its runs is running.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from annealbench.runner.store.atomic import atomic_write_json, read_json

LEDGER = Path("slurm") / "ledger.json"
# squeue lists jobs in these states by default; a COMPLETING task may still be writing
ACTIVE_STATES = frozenset({"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED",
                           "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING",
                           "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"})


@dataclass
class Submission:
    name: str
    stage: str
    tasks: list[list[str]]
    timeout_min: int
    job_id: str | None = None
    submitted: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    ended: bool = False
    final: dict[str, str] = field(default_factory=dict)
    after: list[str] = field(default_factory=list)  # a follow-up job's dependencies (job ids)

    @staticmethod
    def new(stage: str, tasks: list[list[str]], timeout_min: int) -> "Submission":
        return Submission(f"bench-{stage}-{secrets.token_hex(4)}", stage, tasks, timeout_min)


@dataclass(frozen=True)
class TaskState:
    """Where a run's latest array task stands: its job, index and SLURM state."""

    job_id: str | None
    index: int
    state: str  # a SLURM state, or UNKNOWN

    @property
    def task_id(self) -> str:
        return f"{self.job_id}_{self.index}"


class Ledger:
    """`DIR/slurm/ledger.json`; the caller holds the results directory's lock while writing."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / LEDGER
        self.submissions: list[Submission] = []
        if self.path.exists():
            doc = read_json(self.path)
            self.submissions = [Submission(**entry) for entry in doc.get("submissions", [])]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"submissions": [asdict(s) for s in self.submissions]})

    def add(self, submission: Submission) -> None:
        self.submissions.append(submission)
        self.save()

    def remove(self, submission: Submission) -> None:
        self.submissions.remove(submission)
        self.save()

    def open(self) -> list[Submission]:
        return [s for s in self.submissions if not s.ended]

    def refresh(self, queue: dict[str, tuple[str, str]], final_states: Any = None, *,
                save: bool = True) -> dict[str, TaskState]:
        """Match the open entries with `queue` (squeue: task id → (job name, state)), mark those
        with no task left `ended` (with `final_states(job_ids)` → {task id: state}, if given),
        save (only under the results directory's lock: a reader passes `save=False`), and return
        the runs whose task is queued or running: run id → its `TaskState`."""
        by_job: dict[str, dict[int, str]] = {}
        names: dict[str, str] = {}
        for task_id, (name, state) in queue.items():
            job, _, index = task_id.partition("_")
            if state.split()[0] in ACTIVE_STATES:
                by_job.setdefault(job, {})[int(index) if index.isdigit() else 0] = state
            names.setdefault(name, job)
        active: dict[str, TaskState] = {}
        ended: list[Submission] = []
        changed = False
        for sub in self.open():
            if sub.job_id is None and sub.name in names:
                sub.job_id, changed = names[sub.name], True
            tasks = by_job.get(sub.job_id or "", {})
            if not tasks:
                ended.append(sub)
                continue
            for index, state in tasks.items():
                for run_id in sub.tasks[index] if index < len(sub.tasks) else []:
                    active[run_id] = TaskState(sub.job_id, index, state.split()[0])
        if ended:
            finals = {}
            if final_states is not None:
                finals = final_states([s.job_id for s in ended if s.job_id])
            for sub in ended:
                sub.ended = True
                sub.final = {str(i): finals.get(f"{sub.job_id}_{i}", "UNKNOWN")
                             for i in range(len(sub.tasks))} if sub.job_id else {}
            changed = True
        if changed and save:
            self.save()
        return active

    def last_task(self, run_id: str) -> TaskState | None:
        """The latest array task that held `run_id`, with its final state once ended."""
        for sub in reversed(self.submissions):
            for index, run_ids in enumerate(sub.tasks):
                if run_id in run_ids:
                    state = sub.final.get(str(index), "UNKNOWN") if sub.ended else "ACTIVE"
                    return TaskState(sub.job_id, index, state)
        return None

    def submissions_of(self, run_id: str) -> int:
        return sum(run_id in ids for sub in self.submissions for ids in sub.tasks)
