"""Fair time: profiles and time-to-target count steps unless wall-clock time compares optimizers.

On a CPU, torch's AdamW and SGD run a single-tensor Python loop unless `fused`/`foreach` is set,
while MuPhi runs a fused kernel; seconds would then rank implementations, not optimizers. Wall
clock is used only when every eval run records, in its provenance, that its optimizer ran its
fastest implementation on that device (`"implementation": "fused"`), and elapsed time was logged.
"""

from __future__ import annotations

import json

from analysis.store import Store

IMPLEMENTATION_KEY = "implementation"  # provenance key each run records
FASTEST = frozenset({"fused"})  # implementation paths that count as the fastest one
STEPS, SECONDS = "steps_to_target", "time_to_target_s"


def _implementation(text) -> str | None:
    try:
        doc = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        return None
    value = doc.get(IMPLEMENTATION_KEY) if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


def time_measure(store: Store) -> tuple[str, str]:
    """(measure, sentence saying why): SECONDS only when every eval run ran a FASTEST path."""
    runs = store.runs[store.runs["stage"] == "eval"]
    if "time/elapsed_s" not in set(store.results["metric"].unique()):
        return STEPS, "Profiles and time-to-target count steps (no wall-clock time was logged)."
    paths = runs["provenance"].map(_implementation) if "provenance" in runs else None
    slow = runs if paths is None else runs[~paths.isin(FASTEST)]
    if len(slow):
        configs = sorted(slow["config"].unique())
        return STEPS, (f"Profiles and time-to-target count steps, not seconds: {len(slow)} of {len(runs)} "
                       f"eval runs do not record their optimizer's fastest implementation "
                       f"({IMPLEMENTATION_KEY!r} in {sorted(FASTEST)}), e.g. {', '.join(configs[:3])}; "
                       f"wall-clock time would rank implementations, not optimizers.")
    return SECONDS, (f"Profiles and time-to-target use wall-clock seconds: every eval run records its "
                     f"optimizer's fastest implementation ({IMPLEMENTATION_KEY!r} in {sorted(FASTEST)}).")
