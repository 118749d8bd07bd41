"""annealbench: a reproducible benchmark suite for deep-learning optimizers.

    from annealbench import MuPhi
    opt = MuPhi(model.parameters(), lr=1e-3, window="cosine", total_steps=10_000)

Sub-packages, in the order data flows through them (docs/architecture.md):

- `annealbench.common`: what every layer shares, dependency-free (the window formulas, the
  results store's schema, the `compare:` question, metric declarations, plug-in lookup);
- `annealbench.optimizers`: MuPhi (reference, fused and compiled paths), its peers and the
  registry that says everything about each optimizer;
- `annealbench.tasks`: Lightning tasks on real data, and their registry;
- `annealbench.runner`: suites → run specs → runs → the results store (`suite`, `store`,
  `launch`, `run`);
- `annealbench.analysis`: statistics, figures, tables and the report, from the store alone;
- `annealbench.perf`: the speed benchmarks.

The `annealbench` command (`annealbench.cli`) runs all of it. Names below are imported on first
use, so `import annealbench` costs nothing until one is asked for (torch takes seconds).
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import Any

try:
    __version__ = metadata.version("annealbench")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_LAZY = {
    "MuPhi": "annealbench.optimizers", "build_optimizer": "annealbench.optimizers",
    "make_window": "annealbench.optimizers", "optimizer_info": "annealbench.optimizers",
    "get_task": "annealbench.tasks", "analyse": "annealbench.analysis",
    "load_store": "annealbench.analysis", "write_report": "annealbench.analysis",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'annealbench' has no attribute {name!r}")
