"""The results store `DIR/` of docs/architecture.md.

    DIR/runs/<key>/spec.json         the resolved run spec (written first), with its resolved
                                     configuration and that configuration's SHA-256
    DIR/runs/<key>/metrics.parquet   tidy rows: step, metric, value
    DIR/runs/<key>/provenance.json   git commit and dirty flag, versions, hardware, seed
    DIR/runs/<key>/DONE              the outcome (status, divergence step, wall time), written last
    DIR/runs/<key>/FAILED            error, traceback, reason and attempt count of a failed attempt
    DIR/runs.parquet, DIR/results.parquet, DIR/selection.json
    DIR/gathered.json                what the tables were gathered from (written last)

`<key>` is the run's folder name and the tables' columns are those of `annealbench.common.store_schema`.
A run is finished exactly when DONE exists; a folder with neither DONE nor FAILED is an
interrupted attempt and is started again from scratch (or its last checkpoint).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from annealbench.runner.store.atomic import (TMP_MARK, atomic_write_json, atomic_write_parquet, atomic_write_text,
                          read_json, read_parquet)
from annealbench.runner.errors import StoreError
from annealbench.runner.suite.run_spec import RunSpec, config_sha256, resolved_config
from annealbench.common import store_schema as schema

FINISHED = ("done", "diverged")
# spec.json's record of the resolved configuration (`annealbench.runner.suite.run_spec.resolved_config`) and its hash
RESOLVED_KEY, RESOLVED_SHA256_KEY = "resolved", "resolved_sha256"
RUN_COLUMNS = list(schema.RUN_COLUMNS)
RESULT_COLUMNS = list(schema.RESULT_COLUMNS)


@dataclass(frozen=True)
class Outcome:
    """How a finished attempt ended: `done` or `diverged` (an outcome), or `failed`."""

    status: str
    max_steps: int = 0
    diverged_step: float = math.nan
    wall_time_s: float = math.nan
    error: str = ""
    reason: str = ""  # of a failure: one of `schema.FAILURE_REASONS`


class RunFolder:
    """One run's folder; every write is atomic, DONE last."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    spec_file = property(lambda self: self.path / "spec.json")
    metrics_file = property(lambda self: self.path / "metrics.parquet")
    provenance_file = property(lambda self: self.path / "provenance.json")
    done_file = property(lambda self: self.path / "DONE")
    failed_file = property(lambda self: self.path / "FAILED")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")

    def state(self) -> str:
        """`done`, `diverged`, `failed`, `unfinished` (an interrupted attempt) or `missing`."""
        if self.done_file.exists():
            return read_json(self.done_file)["status"]
        if self.failed_file.exists():
            return "failed"
        return "unfinished" if self.path.exists() else "missing"

    def attempts(self) -> int:
        """How many attempts of this run have failed so far."""
        if not self.failed_file.exists():
            return 0
        return int(read_json(self.failed_file).get("attempts", 1))

    def start(self, spec: RunSpec, *, keep_checkpoints: bool) -> None:
        """Begin an attempt: clear what an earlier attempt left (not its failure count)."""
        failures = self.attempts()
        if self.path.exists():
            for child in self.path.iterdir():
                if child.name in ("checkpoints", "wandb") and keep_checkpoints:
                    continue  # a resumed attempt continues the W&B run its checkpoint belongs to
                if child.name == "FAILED":
                    continue
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.spec_file, {**spec.to_json(), **config_record(spec)})
        if failures:
            atomic_write_json(self.failed_file, {**read_json(self.failed_file),
                                                 "retrying": True})

    def recorded_config(self) -> tuple[str, dict[str, Any]] | None:
        """(SHA-256, values) of the resolved configuration spec.json records; None for a run
        written before runs recorded one."""
        doc = read_json(self.spec_file)
        if RESOLVED_SHA256_KEY not in doc:
            return None
        if not isinstance(doc.get(RESOLVED_KEY), dict):
            raise StoreError(f"{self.spec_file}: `{RESOLVED_KEY}` is not a mapping of resolved "
                             "values; `annealbench status DIR --verify` lists every damaged "
                             "run")
        return str(doc[RESOLVED_SHA256_KEY]), doc[RESOLVED_KEY]

    def finish(self, metrics: pd.DataFrame, provenance: dict[str, Any], outcome: Outcome) -> None:
        """Metrics, provenance, then the DONE marker; the FAILED record of earlier attempts goes."""
        atomic_write_parquet(self.metrics_file, metrics[["step", "metric", "value"]])
        atomic_write_json(self.provenance_file, provenance)
        atomic_write_json(self.done_file, {"status": outcome.status, "max_steps": outcome.max_steps,
                                           "diverged_step": _nan_to_none(outcome.diverged_step),
                                           "wall_time_s": outcome.wall_time_s,
                                           "failed_attempts": self.attempts()})
        self.failed_file.unlink(missing_ok=True)

    def fail(self, error: str, provenance: dict[str, Any], wall_time_s: float,
             reason: str = "error") -> int:
        """Record a failed attempt (`reason` one of `FAILURE_REASONS`); returns the attempts so far."""
        if reason not in schema.FAILURE_REASONS:
            raise ValueError(f"failure reason {reason!r} is not one of {schema.FAILURE_REASONS}")
        attempts = self.attempts() + 1
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.provenance_file, provenance)
        atomic_write_json(self.failed_file, {"error": error, "reason": reason,
                                             "attempts": attempts, "wall_time_s": wall_time_s})
        return attempts


def config_record(spec: RunSpec) -> dict[str, Any]:
    """spec.json's record of the resolved configuration; empty for one the task or optimizer
    registry refuses (such a run fails when it builds them, and a failed run keeps no values)."""
    try:
        resolved = resolved_config(spec)
    except (ValueError, TypeError, KeyError):
        return {}
    return {RESOLVED_KEY: resolved, RESOLVED_SHA256_KEY: config_sha256(resolved)}


def _nan_to_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


class ResultsStore:
    """A results directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"

    def ensure_writable(self) -> None:
        """Create DIR and DIR/runs; an unwritable location is a `StoreError` naming it."""
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.root / ".writable", "ok\n")
            (self.root / ".writable").unlink()
        except OSError as err:
            raise StoreError(f"results directory {self.root} is not writable: "
                             f"{getattr(err, 'strerror', None) or err}") from err

    def folder(self, spec: RunSpec) -> RunFolder:
        return RunFolder(self.runs_dir / spec.key)

    def write_selection(self, doc: dict[str, Any]) -> None:
        atomic_write_json(self.root / "selection.json", doc)

    def gather(self, specs: list[RunSpec]) -> pd.DataFrame:
        """Write runs.parquet (every run of `specs` with a folder), results.parquet, then
        gathered.json: the state of every run folder the tables were built from (taken before
        they are read, so a folder that changes meanwhile reads as changed)."""
        fingerprints = schema.run_fingerprints(self.runs_dir)
        rows, frames = [], []
        for spec in specs:
            folder = self.folder(spec)
            state = folder.state()
            if state in ("missing", "unfinished"):
                continue
            rows.append(_run_row(spec, folder, state))
            if state in FINISHED:
                metrics = read_parquet(folder.metrics_file)
                metrics.insert(0, "run_id", spec.run_id)
                frames.append(metrics)
        runs = pd.DataFrame(rows, columns=RUN_COLUMNS).astype(_dtypes(schema.RUN_COLUMNS))
        results = (pd.concat(frames, ignore_index=True) if frames
                   else pd.DataFrame(columns=RESULT_COLUMNS))
        results = results[RESULT_COLUMNS].astype(_dtypes(schema.RESULT_COLUMNS))
        atomic_write_parquet(self.root / "results.parquet", results)
        atomic_write_parquet(self.root / "runs.parquet", runs)
        atomic_write_json(self.root / schema.GATHERED_FILE,
                          {"tables": schema.table_stats(self.root), "runs": fingerprints})
        return runs

    def specs_on_disk(self) -> list[RunSpec]:
        """The spec of every run folder that holds a DONE or FAILED marker, by run id."""
        specs = []
        for path in sorted(p for p in self.runs_dir.iterdir() if p.is_dir()) \
                if self.runs_dir.is_dir() else []:
            folder = RunFolder(path)
            if folder.state() in ("missing", "unfinished"):
                continue
            try:
                specs.append(RunSpec.from_json(read_json(folder.spec_file)))
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise StoreError(f"{folder.spec_file}: not a run spec ({err}); "
                                 "`annealbench status DIR --verify` lists every damaged run") \
                    from err
        return sorted(specs, key=lambda s: (s.stage != "tune", s.run_id))


def _dtypes(columns: dict[str, str]) -> dict[str, str]:
    return {name: schema.PANDAS_DTYPES[kind] for name, kind in columns.items()}


def _run_row(spec: RunSpec, folder: RunFolder, state: str) -> dict[str, Any]:
    prov = read_json(folder.provenance_file) if folder.provenance_file.exists() else {}
    if state == "failed":
        failed = read_json(folder.failed_file)
        done = {"max_steps": prov.get("max_steps", 0), "diverged_step": None,
                "wall_time_s": failed.get("wall_time_s")}
        error, reason = failed["error"], failed.get("reason", "error")
    else:
        done, error, reason = read_json(folder.done_file), "", ""
    return {"run_id": spec.run_id, "suite": spec.suite, "stage": spec.stage, "task": spec.task,
            "preset": spec.preset, "optimizer": spec.optimizer, "config": spec.config,
            "lr": spec.lr, "seed": spec.seed, "derived_seed": spec.derived_seed,
            "hparams": json.dumps(dict(spec.hparams), sort_keys=True), "status": state,
            "diverged_step": _float(done.get("diverged_step")),
            "max_steps": int(done.get("max_steps") or 0),
            "wall_time_s": _float(done.get("wall_time_s")),
            "git_commit": str(prov.get("git_commit", "")),
            "git_dirty": bool(prov.get("git_dirty", False)),
            "provenance": json.dumps(prov, sort_keys=True), "error": error,
            "task_label": spec.task_label,
            "task_overrides": json.dumps(dict(spec.task_overrides), sort_keys=True),
            "failure_reason": reason}


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def stray_temporaries(root: Path) -> list[Path]:
    """Temporary files an interrupted atomic write left behind."""
    return sorted(p for p in Path(root).rglob(f"*{TMP_MARK}*") if p.is_file()
                  and "wandb" not in p.parts)
