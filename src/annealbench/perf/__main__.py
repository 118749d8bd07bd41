"""`make perf`: run every speed benchmark and write one Markdown page of figures.

Each benchmark lives in its own module of this folder and measures a ratio against a reference
timed side by side in the same process (medians over repeated runs, with their spread):

- `optim_step`     the `MuPhi` step against `torch.optim.AdamW(fused=True)`, logging cost,
                   scaling with parameter count, optimizer state per parameter;
- `loop_overhead`  a Lightning run against a bare PyTorch loop on the same steps and data;
- `analysis_speed` the statistics and the full report on a paper-sized results store;
- `seed_groups`    seconds per seed-run of each quick task, one-seed path against a run group.

`gpu_check` is not run here: it needs a CUDA device and prints its own table
(`scripts/gpu_check.sh`; docs/performance.md, section GPU).

    python -m annealbench perf [--out docs/performance.md] [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import platform
import statistics
import subprocess
from pathlib import Path

BENCHMARKS = ("optim_step", "loop_overhead", "analysis_speed", "seed_groups")
log = logging.getLogger(__name__)


def _header() -> str:
    import numpy
    import pytorch_lightning
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True,
                                    text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return "\n".join([
        "# Performance",
        "",
        "Written by `make perf` (`python -m annealbench perf`). Every figure is a median over repeated",
        "runs with its spread, and every ratio is taken against a reference measured in the same",
        "process, so the ratios hold even where absolute times drift with machine load.",
        "",
        f"- measured: {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC, code {commit}{' (dirty)' if dirty else ''}",
        f"- hardware: {cpu}, {os.cpu_count()} logical CPUs, GPU: {gpu}",
        f"- software: Python {platform.python_version()}, torch {torch.__version__}, "
        f"pytorch-lightning {pytorch_lightning.__version__}, numpy {numpy.__version__}",
        "",
    ])


def _optim_step(quick: bool) -> str:
    import torch

    from annealbench.perf import optim_step

    devices = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    parts = []
    for device in devices:  # on a GPU machine the CUDA step (the compiled path) is measured too
        if quick:
            result = optim_step.run(total=1_000_000, rounds=5, scaling=(1_000_000,),
                                    with_reference=False, device=device)
        else:
            result = optim_step.run(device=device)
        parts.append(f"### {device}\n\n" + optim_step.to_markdown(result))
    if len(devices) == 1:
        parts.append("### cuda\n\nunmeasured: no CUDA device on the machine that ran `make perf`.")
    return ("## Optimizer step (target: MuPhi ≤ 1.1× fused AdamW on 10M float32 parameters in 50 "
            "tensors; logging ≤ 5%)\n\n" + "\n\n".join(parts))


def _loop_overhead(quick: bool) -> str:
    from annealbench.perf import loop_overhead

    rows = loop_overhead.measure(repeats=2 if quick else 7)
    return ("## Training loop (target: Lightning ≤ 1.1× a bare loop on shakespeare quick, ≤ 2× on "
            "diabetes quick)\n\n" + loop_overhead.markdown(rows) + "\n")


def _analysis_speed(quick: bool) -> str:
    from annealbench.perf import analysis_speed

    rows = analysis_speed.measure(repeats=1 if quick else 5)
    lines = ["## Analysis (target: 8 configurations × 6 tasks × 10 seeds × 2,000 logged steps, "
             "bootstraps included, ≤ 10 s)", "",
             f"{rows[0]['runs']} runs × {rows[0]['steps']} steps, n = {len(rows)} repetitions.", "",
             "| stage | median wall s (min–max) | median CPU s |", "|---|---|---|"]
    for label, key in (("load + all statistics", "load_and_statistics"),
                       ("full report (figures, tables, HTML)", "full_report")):
        wall = [r[f"{key}_s"] for r in rows]
        cpu = [r[f"{key}_cpu_s"] for r in rows]
        lines.append(f"| {label} | {statistics.median(wall):.2f} ({min(wall):.2f}–{max(wall):.2f}) | "
                     f"{statistics.median(cpu):.2f} |")
    return "\n".join(lines) + "\n"


def _seed_groups(quick: bool) -> str:
    from annealbench.perf import seed_groups

    rows = seed_groups.measure(seeds=4 if quick else 10, rounds=1 if quick else 3)
    return ("## Run groups (seconds per seed-run, one-seed path against a group of seeds)\n\n"
            + seed_groups.markdown(rows))


RUNNERS = {"optim_step": _optim_step, "loop_overhead": _loop_overhead,
           "analysis_speed": _analysis_speed, "seed_groups": _seed_groups}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m annealbench perf", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/performance.md"),
                        help="Markdown file to write (default: docs/performance.md)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS),
                        help="run only these benchmarks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sections = [_header()]
    for name in args.only:
        log.info("running %s …", name)
        sections.append(RUNNERS[name](args.quick))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text("\n".join(sections))
    tmp.replace(args.out)
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
