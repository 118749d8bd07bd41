"""Fair time: profiles and time-to-target count steps unless wall-clock time compares optimizers.

On a CPU, torch's AdamW and SGD run a single-tensor Python loop unless `fused`/`foreach` is set,
while MuPhi runs a fused kernel; seconds would then rank implementations, not optimizers. Wall
clock is used only when every eval run records, in its provenance, that its optimizer ran its
fastest implementation on that device, and elapsed time was logged. Each run's provenance lists
the implementation every param group ran (`optimizer_impl`, written by the optimizer as
`group["impl"]`); which of them are an optimizer's fastest is said by its registry entry
(`OptimInfo.fastest_impls`: torch's fused kernels or a compiled step, and for an optimizer whose
library has no fused kernel the path it has). A run whose optimizer cannot be found where the
report is written (a plug-in not installed here) is not known to be fast, and counts in steps.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache

from annealbench.analysis.load import Store

log = logging.getLogger(__name__)

IMPLEMENTATION_KEY = "optimizer_impl"  # provenance key each run records: one path per param group
STEPS, SECONDS = "steps_to_target", "time_to_target_s"


@lru_cache(maxsize=None)
def fastest_impls(optimizer: str) -> frozenset[str]:
    """The implementation paths the registry entry of `optimizer` counts as its fastest (empty
    when the entry cannot be found here). The registry is the one description of an optimizer;
    it is imported only when a report asks about time."""
    from annealbench.optimizers import optimizer_info

    try:
        return optimizer_info(optimizer).fastest_impls
    except ValueError as err:
        log.warning("optimizer %s: %s; its runs count in steps", optimizer, err)
        return frozenset()


def _implementations(text) -> list | None:
    try:
        doc = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        return None
    value = doc.get(IMPLEMENTATION_KEY) if isinstance(doc, dict) else None
    return value if isinstance(value, list) and value else None


def ran_fastest(optimizer: str, provenance) -> bool:
    """Whether every param group of a run ran its optimizer's fastest implementation."""
    paths = _implementations(provenance)
    return paths is not None and all(p in fastest_impls(optimizer) for p in paths)


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
    fast = [ran_fastest(o, p) for o, p in zip(runs["optimizer"], runs["provenance"])]
    slow = runs[[not f for f in fast]]
    if len(slow):
        configs = sorted(slow["config"].unique())
        return STEPS, (f"Profiles and time-to-target count steps, not seconds: {len(slow)} of {len(runs)} "
                       f"eval runs do not record their optimizer's fastest implementation "
                       f"({IMPLEMENTATION_KEY!r} in its registry entry's fastest_impls), e.g. "
                       f"{', '.join(configs[:3])}; "
                       f"wall-clock time would rank implementations, not optimizers.")
    return SECONDS, (f"Profiles and time-to-target use wall-clock seconds: every eval run records its "
                     f"optimizer's fastest implementation ({IMPLEMENTATION_KEY!r} in its registry "
                     f"entry's fastest_impls).")
