"""`annealbench status DIR [--verify]`: what a results directory holds, and whether it can be trusted."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from annealbench.runner.store.atomic import read_json, read_parquet
from annealbench.runner.errors import StoreError
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.store.results_store import FINISHED, RESULT_COLUMNS, RunFolder, stray_temporaries
from annealbench.common.store_schema import folder_name


@dataclass(frozen=True)
class RunState:
    key: str  # the folder name
    state: str  # done, diverged, failed, unfinished, unreadable
    detail: str = ""  # first line of the error of a failed run
    run_id: str = ""  # from spec.json; the folder name when that cannot be read


def run_states(root: Path) -> list[RunState]:
    runs_dir = Path(root) / "runs"
    states = []
    for path in sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []:
        folder = RunFolder(path)
        try:
            state = folder.state()
            detail = (read_json(folder.failed_file)["error"].splitlines()[0]
                      if state == "failed" else "")
        except (StoreError, KeyError, IndexError) as err:
            state, detail = "unreadable", str(err)
        states.append(RunState(path.name, state, detail, _run_id(folder)))
    return states


def _run_id(folder: RunFolder) -> str:
    try:
        return str(read_json(folder.spec_file)["run_id"])
    except (StoreError, KeyError, TypeError):
        return folder.path.name


def _verify_folder(folder: RunFolder) -> list[str]:
    problems = []
    try:
        doc = read_json(folder.spec_file)
        spec = RunSpec.from_json(doc)
    except (StoreError, KeyError, TypeError, ValueError, AttributeError) as err:
        return [f"{folder.spec_file}: missing or not a run spec ({err})"]
    if spec.key != folder.path.name or doc.get("run_id") != spec.run_id:
        problems.append(f"{folder.spec_file}: its configuration gives run id {spec.run_id!r}, "
                        f"which does not match the folder {folder.path.name!r}")
    if folder.done_file.exists():
        try:
            status = read_json(folder.done_file)["status"]
            if status not in FINISHED:
                problems.append(f"{folder.done_file}: unknown status {status!r}")
            metrics = read_parquet(folder.metrics_file)
            if list(metrics.columns) != ["step", "metric", "value"]:
                problems.append(f"{folder.metrics_file}: columns {list(metrics.columns)} are not "
                                "step, metric, value")
            read_json(folder.provenance_file)
        except (StoreError, KeyError) as err:
            problems.append(str(err))
    elif not folder.failed_file.exists():
        problems.append(f"{folder.path}: no DONE marker (an interrupted run; `annealbench run` "
                        "starts it again)")
    return problems


def verify(root: Path) -> list[str]:
    """Every problem found, each naming its file; empty when the directory can be trusted."""
    root = Path(root)
    if not root.is_dir():
        return [f"{root}: no such results directory"]
    problems = [f"{p}: left by an interrupted write" for p in stray_temporaries(root)]
    finished = set()
    runs_dir = root / "runs"
    for path in sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []:
        folder_problems = _verify_folder(RunFolder(path))
        problems += folder_problems
        if not folder_problems and (path / "DONE").exists():
            finished.add(RunSpec.from_json(read_json(path / "spec.json")).run_id)
    for name in ("runs.parquet", "results.parquet"):
        if not (root / name).exists():
            problems.append(f"{root / name}: missing (the sweep has not gathered its tables)")
    try:
        if (root / "runs.parquet").exists():
            runs = read_parquet(root / "runs.parquet")
            listed = set(runs.loc[runs["status"].isin(FINISHED), "run_id"])
            for run_id in sorted(listed - finished):
                problems.append(f"{root / 'runs.parquet'}: lists {run_id!r} as finished but its "
                                "run folder is not a complete, matching run")
        if (root / "results.parquet").exists():
            results = read_parquet(root / "results.parquet")
            if list(results.columns) != RESULT_COLUMNS:
                problems.append(f"{root / 'results.parquet'}: columns {list(results.columns)}")
            else:
                for run_id in sorted(set(results["run_id"]) - finished):
                    problems.append(f"{root / 'results.parquet'}: has rows of {run_id!r}, which "
                                    "is not a complete, matching run")
    except (StoreError, KeyError) as err:
        problems.append(str(err))
    return problems


def summarise(states: list[RunState]) -> Counter:
    return Counter(s.state for s in states)


def is_results_dir(root: Path) -> bool:
    """A folder `annealbench run` or `annealbench train` wrote: it has `runs/` or the gathered tables."""
    root = Path(root)
    return (root / "runs").is_dir() or (root / "runs.parquet").is_file()


def slurm_lines(root: Path) -> list[str]:
    """Per stage, the runs of the SLURM ledger (`annealbench.runner.store.ledger`) by where they stand: queued or
    running (squeue), done, diverged or failed (their folders), or `lost` (their task ended
    without an outcome: the next `annealbench run` submits them again); then the jobs still open."""
    from annealbench.runner.errors import MissingSystemError
    from annealbench.runner.store.ledger import Ledger
    from annealbench.runner.launch.slurm import queued_tasks

    ledger = Ledger(root)
    if not ledger.submissions:
        return []
    note = ""
    try:
        active = ledger.refresh(queued_tasks(), save=False) if ledger.open() else {}
    except MissingSystemError as err:
        active, note = {}, f" (squeue did not answer: {err})"
    latest: dict[str, str] = {}  # run id → its stage, from its latest submission
    for sub in ledger.submissions:
        for run_ids in sub.tasks:
            latest.update(dict.fromkeys(run_ids, sub.stage))
    counts: dict[str, Counter] = {}
    for run_id, stage in latest.items():
        if run_id in active:
            state = "queued" if active[run_id].state in ("PENDING", "REQUEUED") else "running"
        else:
            state = RunFolder(Path(root) / "runs" / folder_name(run_id)).state()
            state = {"unfinished": "lost", "missing": "lost"}.get(state, state)
        counts.setdefault(stage, Counter())[state] += 1
    order = ("queued", "running", "done", "diverged", "failed", "lost")
    from annealbench.runner.launch.slurm import FOLLOW_UP

    arrays = [s for s in ledger.submissions if s.stage != FOLLOW_UP]
    lines = [f"slurm ({len(arrays)} job arrays){note}:"]
    for stage in ("tune", "eval"):
        if stage in counts:
            lines.append(f"  {stage}: " + ", ".join(f"{counts[stage][s]} {s}" for s in order
                                                   if counts[stage][s]))
    jobs = sorted({s.job_id for s in active.values() if s.job_id}, key=int)
    if jobs:
        lines.append(f"  jobs queued or running: {', '.join(jobs)}")
    follow = [s for s in ledger.open() if s.stage == FOLLOW_UP and s.job_id]
    if follow:  # still queued or running (refreshed above)
        lines.append(f"  follow-up job {follow[-1].job_id}: runs this sweep's `annealbench run` again "
                     f"once jobs {', '.join(follow[-1].after)} have ended")
    return lines
