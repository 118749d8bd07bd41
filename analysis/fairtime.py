"""Fair time: profiles and time-to-target count steps unless wall-clock time compares optimizers.

On a CPU, torch's AdamW and SGD run a single-tensor Python loop unless `fused`/`foreach` is set,
while MuPhi runs a fused kernel; seconds would then rank implementations, not optimizers. Wall
clock is used only when every eval run records, in its provenance, that its optimizer ran its
fastest implementation on that device, and elapsed time was logged. Each run's provenance lists
the implementation every param group ran (`optimizer_impl`, written by the optimizer as
`group["impl"]`): torch's fused kernels (`fused`) or a compiled step (`compiled`) are the fastest
paths; optimizers for which no fused kernel exists count with the only path their library has.
"""

from __future__ import annotations

import json

from analysis.store import Store

IMPLEMENTATION_KEY = "optimizer_impl"  # provenance key each run records: one path per param group
FASTEST = frozenset({"fused", "compiled"})  # implementation paths that count as the fastest one
ONLY_PATH = {"sf-adamw": frozenset({"foreach"}),  # schedulefree has no fused kernel
             "muon": frozenset({"for-loop", "foreach"}),  # torch's Muon loops over its matrices
             "prodigy": frozenset({"for-loop"})}  # prodigyopt is a per-tensor loop
STEPS, SECONDS = "steps_to_target", "time_to_target_s"


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
    allowed = FASTEST | ONLY_PATH.get(optimizer, frozenset())
    return paths is not None and all(p in allowed for p in paths)


def in_run_group(provenance) -> bool:
    """Whether a run was trained as a member of a run group (its clock was shared)."""
    try:
        doc = json.loads(provenance) if isinstance(provenance, str) else None
    except json.JSONDecodeError:
        return False
    return isinstance(doc, dict) and bool(doc.get("run_group"))


def time_measure(store: Store) -> tuple[str, str]:
    """(measure, sentence saying why): SECONDS only when every eval run ran a FASTEST path, alone."""
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
                       f"({IMPLEMENTATION_KEY!r} in {sorted(FASTEST)}), e.g. {', '.join(configs[:3])}; "
                       f"wall-clock time would rank implementations, not optimizers.")
    return SECONDS, (f"Profiles and time-to-target use wall-clock seconds: every eval run records its "
                     f"optimizer's fastest implementation ({IMPLEMENTATION_KEY!r} in {sorted(FASTEST)}).")
