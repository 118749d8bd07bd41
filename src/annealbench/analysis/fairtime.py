"""Fair time: profiles and time-to-target count steps unless wall-clock time compares optimizers.

On a CPU, torch's AdamW and SGD run a single-tensor Python loop unless `fused`/`foreach` is set,
while MuPhi runs a fused kernel; seconds would then rank implementations, not optimizers. Wall
clock is used only when every eval run records, in its provenance, that its optimizer ran its
fastest implementation on that device, and elapsed time was logged. Each run's provenance lists
the implementation every param group ran (`optimizer_impl`, written by the optimizer as
`group["impl"]`) and whether all of them are its optimizer's fastest (`optimizer_fastest`),
which the runner asks the optimizer's registry entry when the run finishes
(`OptimInfo.fastest_impls`: torch's fused kernels or a compiled step, and for an optimizer whose
library has no fused kernel the path it has). The analysis never imports the registry: a run
that records no such flag (written by older code) is not known to be fast, and counts in steps.
"""

from __future__ import annotations

import json
import logging

from annealbench.analysis.load import Store

log = logging.getLogger(__name__)

IMPLEMENTATION_KEY = "optimizer_impl"  # provenance key each run records: one path per param group
FASTEST_KEY = "optimizer_fastest"  # ... and whether every path is one its registry entry calls fastest
STEPS, SECONDS = "steps_to_target", "time_to_target_s"


def ran_fastest(provenance) -> bool:
    """Whether a run recorded that every param group ran its optimizer's fastest implementation
    (`FASTEST_KEY`, decided by the runner from the optimizer's registry entry); a run that
    records nothing is not known to be fast."""
    try:
        doc = json.loads(provenance) if isinstance(provenance, str) else None
    except json.JSONDecodeError:
        return False
    return isinstance(doc, dict) and doc.get(FASTEST_KEY) is True


def in_run_group(provenance) -> bool:
    """Whether a run was trained as a member of a run group (its clock was shared)."""
    try:
        doc = json.loads(provenance) if isinstance(provenance, str) else None
    except json.JSONDecodeError:
        return False
    return isinstance(doc, dict) and bool(doc.get("run_group"))


def time_measure(store: Store) -> tuple[str, str]:
    """(measure, sentence saying why): SECONDS only when every eval run ran its optimizer's
    fastest path, alone."""
    runs = store.runs[store.runs["stage"] == "eval"]
    if "time/elapsed_s" not in set(store.results["metric"].unique()):
        return STEPS, "Profiles and time-to-target count steps (no wall-clock time was logged)."
    grouped = int(sum(in_run_group(p) for p in runs["provenance"]))
    if grouped:
        return STEPS, (f"Profiles and time-to-target count steps, not seconds: {grouped} of {len(runs)} eval "
                       "runs trained as members of run groups, whose clock their seeds share.")
    fast = [ran_fastest(p) for p in runs["provenance"]]
    slow = runs[[not f for f in fast]]
    if len(slow):
        configs = sorted(slow["config"].unique())
        return STEPS, (f"Profiles and time-to-target count steps, not seconds: {len(slow)} of {len(runs)} "
                       f"eval runs do not record their optimizer's fastest implementation "
                       f"({FASTEST_KEY!r} in their provenance), e.g. "
                       f"{', '.join(configs[:3])}; "
                       f"wall-clock time would rank implementations, not optimizers.")
    return SECONDS, (f"Profiles and time-to-target use wall-clock seconds: every eval run records its "
                     f"optimizer's fastest implementation ({FASTEST_KEY!r}, from the paths in "
                     f"{IMPLEMENTATION_KEY!r}).")
