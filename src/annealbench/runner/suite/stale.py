"""Finished runs made by other code, or with another configuration: found before a sweep
starts, then refused, rerun or kept.

A sweep resumes by keeping the runs its results directory already holds. A run made by another
commit, or by a tree with other uncommitted changes (`annealbench.runner.run.provenance.code_version`), may give
other values under the same run id, so `annealbench run` looks at every run it would keep — the tuning
runs and the evaluation runs of every learning rate the selection could choose — before it
starts any. When some are stale it refuses, in one line naming how many, which code made them
and the two choices: `--rerun-stale` moves their folders to `DIR/stale/<time>/` (nothing is
deleted) and runs them again; `--accept-stale` keeps them, and the report names the commits it
mixes.

The code check does not see every change of values, nor is every change of code one: the same
code resolves a run id to other values when the suite asks for another preset of a task (the run
id does not hold the preset), and other code may change no value at all (a refactor). So each
run records its resolved configuration (`annealbench.runner.suite.run_spec.resolved_config`) and its SHA-256, and
`annealbench run` compares them with what the suite resolves to now. Runs that disagree are refused in
one line naming the changed keys, old → new, and how many runs each; `--rerun-changed` moves
them to `DIR/changed/<time>/` and runs them again. There is no keeping them: values of two
configurations under one run id would be one run's values in the report. A run written before
runs recorded their configuration is not compared and is kept, with a warning saying how many:
it was made by older code, which the code check above refuses unless told otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from annealbench.runner.store.atomic import read_json
from annealbench.runner.errors import StoreError
from annealbench.runner.run.provenance import code_version
from annealbench.runner.suite.run_spec import RunSpec, config_sha256, expand_eval, group_key, resolved_config
from annealbench.runner.store.results_store import FINISHED, ResultsStore
from annealbench.runner.suite.suite import Suite
from annealbench.common.store_schema import describe_code_version

log = logging.getLogger(__name__)
Version = tuple[str, str]
Change = tuple[str, str, str]  # (key, old value, new value) as the message shows them
ABSENT = object()  # a key one of two configurations lacks
SHOWN_CHANGES = 6  # changes named in the refusal; the rest are counted


def candidate_specs(suite: Suite, tune: list[RunSpec]) -> list[RunSpec]:
    """`tune` and every evaluation run that some choice of learning rates could ask for."""
    longest = max((len(opt.lr_grid) for opt in suite.optimizers), default=1)
    specs = {s.run_id: s for s in tune}
    for k in range(longest):  # the k-th lr of every grid (its last for shorter grids)
        chosen = {group_key(task, opt): opt.lr_grid[min(k, len(opt.lr_grid) - 1)]
                  for task in suite.tasks for opt in suite.optimizers}
        specs.update((s.run_id, s) for s in expand_eval(suite, chosen))
    return list(specs.values())


def _recorded_version(store: ResultsStore, spec: RunSpec) -> Version:
    path = store.folder(spec).provenance_file
    try:
        return code_version(read_json(path))
    except StoreError:  # no readable record: nothing says which code made it
        return "unknown", "unrecorded"


def stale_runs(specs: list[RunSpec], store: ResultsStore, current: Version) -> dict[Version, list[RunSpec]]:
    """The finished runs (done or diverged: outcomes with values) a sweep would keep whose code
    version is not `current`, by the version that made them. A run failed past its retries
    gives no value to reuse: it is reported as failed, not as a stale result."""
    stale: dict[Version, list[RunSpec]] = defaultdict(list)
    for spec in specs:
        if store.folder(spec).state() in FINISHED and (version := _recorded_version(store, spec)) != current:
            stale[version].append(spec)
    return dict(stale)


def describe(stale: dict[Version, list[RunSpec]]) -> str:
    """`abcdef012345 (10 runs), 0123456789ab+changes 1234abcd (2 runs)`, most runs first."""
    ordered = sorted(stale.items(), key=lambda item: (-len(item[1]), item[0]))
    return ", ".join(f"{describe_code_version(v)} ({len(specs)} run{'s' * (len(specs) != 1)})"
                     for v, specs in ordered)


def resolve(stale: dict[Version, list[RunSpec]], store: ResultsStore, current: Version, *,
            rerun: bool, accept: bool) -> None:
    """Refuse (`StoreError`), move the stale folders aside to run them again, or keep them."""
    if not stale:
        return
    n = sum(len(specs) for specs in stale.values())
    what = (f"{store.root}: {n} finished run(s) were made by other code than this checkout "
            f"({describe_code_version(current)}): {describe(stale)}")
    if accept:
        log.warning("%s; kept (--accept-stale)", what)
        return
    if not rerun:
        raise StoreError(f"{what}; pass --rerun-stale to run them again with this code (their "
                         f"folders move to {store.root / 'stale'}/) or --accept-stale to keep them")
    aside = move_aside(store, [spec for specs in stale.values() for spec in specs], "stale")
    log.warning("%s; moved to %s and run again (--rerun-stale)", what, aside)


def check_stale(suite: Suite, tune: list[RunSpec], store: ResultsStore, environment: dict, *,
                rerun: bool, accept: bool) -> None:
    """Find the stale runs a sweep of `suite` would keep and `resolve` them."""
    current = code_version(environment)
    stale = stale_runs(candidate_specs(suite, tune), store, current)
    resolve(stale, store, current, rerun=rerun, accept=accept)


def move_aside(store: ResultsStore, specs: list[RunSpec], why: str) -> Path:
    """Move the folders of `specs` to `DIR/<why>/<time>-<pid>/` (nothing is deleted)."""
    aside = store.root / why / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    aside.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        path = store.folder(spec).path
        os.replace(path, aside / path.name)
    return aside


def _shown(value: Any) -> str:
    return "(absent)" if value is ABSENT else json.dumps(value)


def config_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[Change]:
    """The keys whose values differ between two resolved configurations, old → new."""
    old = {k: json.loads(json.dumps(v)) for k, v in recorded.items()}  # as spec.json holds them
    new = {k: json.loads(json.dumps(v)) for k, v in current.items()}
    return [(key, _shown(old.get(key, ABSENT)), _shown(new.get(key, ABSENT)))
            for key in sorted(old.keys() | new.keys())
            if old.get(key, ABSENT) != new.get(key, ABSENT)]


def changed_runs(specs: list[RunSpec], store: ResultsStore) -> tuple[dict[RunSpec, list[Change]],
                                                                      list[RunSpec]]:
    """The finished runs a sweep would keep whose recorded configuration is not what `specs` now
    resolve to, with their changes; and the finished runs that record none (older stores)."""
    changed, unrecorded = {}, []
    for spec in specs:
        folder = store.folder(spec)
        if folder.state() not in FINISHED:
            continue
        record = folder.recorded_config()
        if record is None:
            unrecorded.append(spec)
            continue
        current = resolved_config(spec)
        if record[0] != (sha := config_sha256(current)):
            changed[spec] = config_changes(record[1], current) or [
                ("resolved_sha256", record[0][:12], sha[:12])]
    return changed, unrecorded


def describe_changes(changed: dict[RunSpec, list[Change]]) -> str:
    """`task.max_steps 40 → 60 (2 runs), derived_seed 1 → 2 and 1 other (2 runs)`: each changed
    key once, with its most frequent change, most runs first; the derived seed, which follows from
    the others, last."""
    by_key: dict[str, Counter] = defaultdict(Counter)
    for changes in changed.values():
        for key, old, new in changes:
            by_key[key][old, new] += 1
    ordered = sorted(by_key.items(),
                     key=lambda item: (item[0] == "derived_seed", -item[1].total(), item[0]))
    shown = []
    for key, counts in ordered[:SHOWN_CHANGES]:
        (old, new), _ = counts.most_common(1)[0]
        others = f" and {len(counts) - 1} other{'s' * (len(counts) > 2)}" if len(counts) > 1 else ""
        n = counts.total()
        shown.append(f"{key} {old} → {new}{others} ({n} run{'s' * (n != 1)})")
    more = len(ordered) - SHOWN_CHANGES
    return ", ".join(shown) + (f" and {more} more key(s)" if more > 0 else "")


def resolve_changed(changed: dict[RunSpec, list[Change]], unrecorded: list[RunSpec],
                    store: ResultsStore, *, rerun: bool) -> None:
    """Say what is kept unchecked; refuse (`StoreError`) or move the changed folders aside."""
    if unrecorded:
        log.warning("%s: %d finished run(s) record no resolved configuration (written before runs "
                    "recorded one): not compared with the suite's, kept; --rerun-stale runs "
                    "them again", store.root, len(unrecorded))
    if not changed:
        return
    what = (f"{store.root}: {len(changed)} finished run(s) were made with another configuration "
            f"than the suite now resolves to: {describe_changes(changed)}")
    if not rerun:
        raise StoreError(f"{what}; pass --rerun-changed to run them again with the current "
                         f"configuration (their folders move to {store.root / 'changed'}/)")
    aside = move_aside(store, list(changed), "changed")
    log.warning("%s; moved to %s and run again (--rerun-changed)", what, aside)


def check_changed(suite: Suite, tune: list[RunSpec], store: ResultsStore, *, rerun: bool) -> None:
    """Find the finished runs a sweep of `suite` would keep that another configuration made,
    and `resolve_changed` them."""
    changed, unrecorded = changed_runs(candidate_specs(suite, tune), store)
    resolve_changed(changed, unrecorded, store, rerun=rerun)
