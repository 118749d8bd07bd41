"""Finished runs made by other code: found before a sweep starts, then refused, rerun or kept.

A sweep resumes by keeping the runs its results directory already holds. A run made by another
commit, or by a tree with other uncommitted changes (`bench.provenance.code_version`), may give
other values under the same run id, so `bench run` looks at every run it would keep — the tuning
runs and the evaluation runs of every learning rate the selection could choose — before it
starts any. When some are stale it refuses, in one line naming how many, which code made them
and the two choices: `--rerun-stale` moves their folders to `DIR/stale/<time>/` (nothing is
deleted) and runs them again; `--accept-stale` keeps them, and the report names the commits it
mixes.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict

from bench.atomic import read_json
from bench.errors import StoreError
from bench.provenance import code_version
from bench.spec import RunSpec, expand_eval, group_key
from bench.store import FINISHED, ResultsStore
from bench.suite import Suite
from common.store_schema import describe_code_version

log = logging.getLogger(__name__)
Version = tuple[str, str]


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
    aside = store.root / "stale" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    aside.mkdir(parents=True, exist_ok=True)
    for specs in stale.values():
        for spec in specs:
            path = store.folder(spec).path
            os.replace(path, aside / path.name)
    log.warning("%s; moved to %s and run again (--rerun-stale)", what, aside)


def check_stale(suite: Suite, tune: list[RunSpec], store: ResultsStore, environment: dict, *,
                rerun: bool, accept: bool) -> None:
    """Find the stale runs a sweep of `suite` would keep and `resolve` them."""
    current = code_version(environment)
    stale = stale_runs(candidate_specs(suite, tune), store, current)
    resolve(stale, store, current, rerun=rerun, accept=accept)
