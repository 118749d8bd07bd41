"""Speed of the analysis on a paper-sized store: 8 configurations × 6 tasks × 10 seeds × 2,000
logged steps (val/loss, opt/mu_t, opt/rms_step, time/elapsed_s at every step), bootstraps included.

`measure()` returns one row per repetition (wall-clock and process CPU seconds, the latter less
sensitive to other load on the machine); `python -m annealbench.perf.analysis_speed`
prints the medians. The store is simulated (tests/analysis/synthetic.py), written once, untimed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

WINDOWS = ("cosine", "linear", "constant", "sqrt", "cosine1")


def paper_sized_spec():
    from tests.analysis.synthetic import BASELINE, Synthetic

    configs = [BASELINE, "sgd[window=cosine]", "sf-adamw"] + [f"muphi[window={w}]" for w in WINDOWS]
    effects = tuple((c, 0.02 * i) for i, c in enumerate(configs))
    return Synthetic(tasks=("digits", "diabetes", "quadratic", "rosenbrock", "shakespeare", "mlp"),
                     effects=effects, n_seeds=10, max_steps=2000, eval_every=1)


def measure(repeats: int = 3, root: Path | None = None) -> list[dict]:
    """Time load + statistics and the full report `repeats` times on the paper-sized store."""
    from annealbench.analysis.report import write_report
    from annealbench.analysis.load import load_store
    from annealbench.analysis.analyse import analyse
    from tests.analysis.synthetic import write_store

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_store(Path(root or tmp) / "store", paper_sized_spec())
        for i in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            a = analyse(load_store(root))
            statistics_s, statistics_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
            wall, cpu = time.perf_counter(), time.process_time()
            write_report(root, Path(tmp) / f"report{i}", wandb=False)
            report_s, report_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
            rows.append({"benchmark": "analysis", "repeat": i, "runs": len(a.endpoints),
                         "steps": int(a.curves["digits"].steps.size),
                         "load_and_statistics_s": statistics_s, "load_and_statistics_cpu_s": statistics_cpu_s,
                         "full_report_s": report_s, "full_report_cpu_s": report_cpu_s})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = measure(args.repeats)
    for key in ("load_and_statistics_s", "load_and_statistics_cpu_s", "full_report_s", "full_report_cpu_s"):
        values = [r[key] for r in rows]
        print(f"{key}: median {statistics.median(values):.2f} s over n = {len(values)} "
              f"(min {min(values):.2f}, max {max(values):.2f}); {rows[0]['runs']} runs × {rows[0]['steps']} steps")


if __name__ == "__main__":
    main()
