"""Seconds per seed-run: the one-seed path against a run group, on each task of the quick suite.

Both paths go through the runner's own training functions (`annealbench.runner.run.execute.fit` for one seed,
the same `fit` for a group of S seeds) with the runner's settings (one torch
thread, no W&B, no checkpoints), so Lightning's set-up and loop are part of both. Each round
trains one seed alone and then S seeds as a group; the figure per task is the median over the
rounds of the paired speed-up (one-seed seconds) / (group seconds / S), with its range, and the
medians of both times. Tasks the suite keeps on the one-seed path (`annealbench.runner.launch.jobs.group_size`)
are listed with the reason.

    python -m annealbench.perf.seed_groups [--seeds 10] [--rounds 3] [--tasks diabetes digits]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from annealbench.runner.run.execute import RunOptions, fit, quiet_lightning
from annealbench.runner.launch.jobs import group_size
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.suite.suite import load_suite

log = logging.getLogger(__name__)
OPTIMIZER = ("muphi", (("window", "cosine"),), 1e-3)  # the suite's most common configuration


@dataclass(frozen=True)
class GroupRow:
    task: str
    seeds: int
    rounds: int
    one_seed_s: float          # median seconds of one run on the one-seed path
    group_per_seed_s: float    # median seconds of a group run over its seeds
    speedup: float             # median over rounds of one_seed_s / group_per_seed_s (paired)
    speedup_min: float
    speedup_max: float
    note: str = ""             # why the suite keeps this task on the one-seed path, if it does


def _spec(task: str, preset: str, overrides: tuple, seed: int) -> RunSpec:
    name, hparams, lr = OPTIMIZER
    return RunSpec(suite="perf", stage="eval", task=task, preset=preset, task_overrides=overrides,
                   optimizer=name, hparams=hparams, lr=lr, seed=seed)


def measure_task(task: str, preset: str, overrides: tuple, seeds: int, rounds: int,
                 options: RunOptions, root: Path) -> GroupRow:
    """Paired rounds of one seed alone, then `seeds` seeds as a group."""
    ones, groups, ratios = [], [], []
    for r in range(rounds):
        specs = [_spec(task, preset, overrides, 1000 * r + s) for s in range(seeds)]
        dirs = [root / f"{task}-{r}-{s}" for s in range(seeds)]
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        fit(specs[:1], dirs[:1], options)
        one = time.perf_counter() - started
        started = time.perf_counter()
        fit(specs, dirs, options)
        group = (time.perf_counter() - started) / seeds
        ones.append(one)
        groups.append(group)
        ratios.append(one / group)
        log.info("%s round %d: one seed %.2f s, group %.2f s per seed", task, r, one, group)
    return GroupRow(task=task, seeds=seeds, rounds=rounds, one_seed_s=statistics.median(ones),
                    group_per_seed_s=statistics.median(groups),
                    speedup=statistics.median(ratios), speedup_min=min(ratios),
                    speedup_max=max(ratios))


def measure(seeds: int = 10, rounds: int = 3, tasks: list[str] | None = None) -> list[GroupRow]:
    """One row per task of the quick suite (or of `tasks`)."""
    import torch

    torch.set_num_threads(1)
    quiet_lightning()
    options = RunOptions(wandb="disabled", threads=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for entry in load_suite("quick").tasks:
            if tasks and entry.name not in tasks:
                continue
            size, why = group_size(_spec(entry.name, entry.preset, entry.overrides, 0), "auto",
                                   options)
            if size <= 1:
                rows.append(GroupRow(entry.name, seeds, 0, *[float("nan")] * 5, note=why))
                continue
            rows.append(measure_task(entry.name, entry.preset, entry.overrides, seeds, rounds,
                                     options, Path(tmp)))
    return rows


def markdown(rows: list[GroupRow]) -> str:
    lines = [f"`muphi[window=cosine]` at the quick preset, one torch thread; a group of "
             f"{rows[0].seeds} seeds against one seed alone, {rows[0].rounds} paired rounds.", "",
             "| task | one seed s | group s per seed | speed-up (min–max) |", "|---|---|---|---|"]
    for r in rows:
        if r.note:
            lines.append(f"| {r.task} | — | — | one-seed path: {r.note} |")
            continue
        lines.append(f"| {r.task} | {r.one_seed_s:.2f} | {r.group_per_seed_s:.3f} | "
                     f"{r.speedup:.1f}× ({r.speedup_min:.1f}–{r.speedup_max:.1f}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per group (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (default 3)")
    parser.add_argument("--tasks", nargs="+", help="only these tasks of the quick suite")
    args = parser.parse_args(argv)
    if args.seeds < 2 or args.rounds < 1:
        parser.error("--seeds must be ≥ 2 and --rounds ≥ 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(markdown(measure(args.seeds, args.rounds, args.tasks)))


if __name__ == "__main__":
    main()
