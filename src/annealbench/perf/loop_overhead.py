"""How much the Lightning loop adds to a bare PyTorch loop doing the same work.

Both loops train the same task (same seed: same initial weights, same batches, same number of
steps, the same evaluations at the same steps) with the same optimizer. The Lightning run is
configured the way the runner configures a sweep run (no progress bar, no model summary, no
checkpointing, the runner's tidy logger); the bare loop calls the task module's own
`training_loss` and `eval_sums`, so the model's work is identical and only the framework differs.
Runs alternate (bare, Lightning, bare, ...) so drifts of the machine hit both alike; the figure
is the median over the `repeats` pairs of each pair's ratio (Lightning / bare, adjacent runs)
with its interquartile range, in wall time and in the process's CPU time (with one torch thread
the latter is less exposed to other processes competing for the cores). On a shared machine a
single run's time varies by ±15 %, so a ratio of medians drifts by several percent between
invocations; the paired ratio cancels the slow part of that drift. Targets (performance issue,
target 2): ≤ 1.1× on `shakespeare` quick and ≤ 2× on `diabetes` quick.

    python -m annealbench.perf.loop_overhead [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch

from annealbench.tasks import get_task
from annealbench.tasks.base import TaskModule, param_groups

log = logging.getLogger(__name__)

TARGETS = {"shakespeare": 1.1, "diabetes": 2.0}


@dataclass(frozen=True)
class OverheadRow:
    task: str
    preset: str
    steps: int
    repeats: int
    bare_median_s: float
    bare_min_s: float
    bare_max_s: float
    lightning_median_s: float
    lightning_min_s: float
    lightning_max_s: float
    ratio: float                 # median over pairs of lightning / bare wall time
    ratio_q1: float
    ratio_q3: float
    overhead_ms_per_step: float  # (lightning - bare) medians / steps
    bare_cpu_median_s: float     # process CPU time
    lightning_cpu_median_s: float
    cpu_ratio: float             # median over pairs of lightning / bare CPU time
    target: float


def _factory(groups: list[dict], total_steps: int) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=1e-3)


def bare_run(name: str, preset: str, seed: int = 0) -> tuple[float, float]:
    """Wall and CPU seconds of a plain PyTorch loop over the task's steps and evaluations."""
    task = get_task(name, preset)
    module, data = task.build(_factory, seed=seed)
    cfg = task.config
    start, cpu = time.perf_counter(), time.process_time()
    optimizer = _factory(param_groups(module.net), cfg.max_steps)
    module.train()
    for step in range(cfg.max_steps):
        loss = module.training_loss(data.make_batch(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % cfg.val_every == 0:
            for batches in data.val_dataloader():  # the validation set, then the test set
                _evaluate(module, batches)
    return time.perf_counter() - start, time.process_time() - cpu


def _evaluate(module: TaskModule, batches) -> None:
    module.eval()
    with torch.no_grad():
        sums: dict[str, torch.Tensor] = {}
        for batch in batches:
            for key, value in module.eval_sums(batch).items():
                sums[key] = sums.get(key, 0) + value.double()
        module.eval_metrics({k: float(v) for k, v in sums.items()})
    module.train()


def lightning_run(name: str, preset: str, seed: int = 0) -> tuple[float, float]:
    """Wall and CPU seconds of `Trainer.fit` configured as the runner configures a sweep run."""
    import pytorch_lightning as pl

    from annealbench.runner.run.metrics_logger import TidyLogger

    task = get_task(name, preset)
    module, data = task.build(_factory, seed=seed)
    start, cpu = time.perf_counter(), time.process_time()
    trainer = pl.Trainer(**task.trainer_kwargs(), logger=[TidyLogger()], accelerator="cpu",
                         devices=1, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(module, datamodule=data)
    return time.perf_counter() - start, time.process_time() - cpu


def measure(tasks: tuple[str, ...] = ("shakespeare", "diabetes"), preset: str = "quick",
            repeats: int = 5, threads: int = 1) -> list[OverheadRow]:
    """One row per task: medians and extremes of `repeats` alternating runs of each loop."""
    torch.set_num_threads(threads)
    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    rows = []
    for name in tasks:
        bare_run(name, preset)  # warm-up: data caches, kernels, imports
        lightning_run(name, preset)
        bare, light = [], []
        for _ in range(repeats):
            bare.append(bare_run(name, preset))
            light.append(lightning_run(name, preset))
        steps = get_task(name, preset).config.max_steps
        wall_b, wall_l = [w for w, _ in bare], [w for w, _ in light]
        b, lt = statistics.median(wall_b), statistics.median(wall_l)
        wall_ratios = np.array(wall_l) / np.array(wall_b)
        cpu_ratios = np.array([c for _, c in light]) / np.array([c for _, c in bare])
        rows.append(OverheadRow(
            task=name, preset=preset, steps=steps, repeats=repeats,
            bare_median_s=b, bare_min_s=min(wall_b), bare_max_s=max(wall_b),
            lightning_median_s=lt, lightning_min_s=min(wall_l), lightning_max_s=max(wall_l),
            ratio=float(np.median(wall_ratios)), ratio_q1=float(np.percentile(wall_ratios, 25)),
            ratio_q3=float(np.percentile(wall_ratios, 75)), overhead_ms_per_step=1e3 * (lt - b) / steps,
            bare_cpu_median_s=statistics.median(c for _, c in bare),
            lightning_cpu_median_s=statistics.median(c for _, c in light),
            cpu_ratio=float(np.median(cpu_ratios)), target=TARGETS.get(name, float("nan"))))
        log.info("%s %s: bare %.2f s, Lightning %.2f s, paired ratio %.3f [IQR %.3f-%.3f] "
                 "(CPU time %.3f)", name, preset, b, lt, rows[-1].ratio, rows[-1].ratio_q1,
                 rows[-1].ratio_q3, rows[-1].cpu_ratio)
    return rows


def markdown(rows: list[OverheadRow]) -> str:
    """The rows as a Markdown table."""
    lines = ["| task | preset | steps | n pairs | bare loop s (median, min–max) | Lightning s (median, "
             "min–max) | paired ratio [IQR] | paired CPU-time ratio | target | overhead ms/step |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.task} | {r.preset} | {r.steps} | {r.repeats} | {r.bare_median_s:.2f} "
                     f"({r.bare_min_s:.2f}–{r.bare_max_s:.2f}) | {r.lightning_median_s:.2f} "
                     f"({r.lightning_min_s:.2f}–{r.lightning_max_s:.2f}) | {r.ratio:.3f}× "
                     f"[{r.ratio_q1:.3f}–{r.ratio_q3:.3f}] | {r.cpu_ratio:.3f}× | ≤ {r.target:g}× | {r.overhead_ms_per_step:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of each loop per task")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--preset", default="quick", help="task preset to time")
    parser.add_argument("--tasks", nargs="+", default=list(TARGETS), help="tasks to time")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = measure(tuple(args.tasks), preset=args.preset, repeats=args.repeats,
                   threads=args.threads)
    print(markdown(rows))
    for row in rows:
        log.debug("%s", asdict(row))


if __name__ == "__main__":
    main()
