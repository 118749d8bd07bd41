"""`annealbench run SUITE --dry-run`: the runs a suite would start, and what they would cost.

Per stage and task, the table counts configurations, (configuration, lr) points, seeds and
runs: stage `tune` runs every lr of every grid with more than one value on every tuning seed;
stage `eval` runs one lr per configuration on every evaluation seed. The cost of a task's run
is its step budget τ (`max_steps`) times a step time t, so a stage costs

    hours = Σ_tasks runs(task) · τ(task) · t(task) / 3600.

t is measured here: `measure_steps` real training steps (data, forward, backward, AdamW step)
of each task as configured in the suite, on this machine's device, after one warm-up step;
the median step is kept. Nothing is downloaded: a task whose data is not in the cache yet is
reported as not measured. A step time measured on a CPU says nothing about a GPU, so the
report names the device it was measured on; `--step-time TASK=SECONDS` replaces a measurement
(TASK is a task name, or a task label such as `cifar10[model=vit]` for one entry).
Validation and checkpoints are not counted, so the estimate is a lower bound.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass

from annealbench.runner.suite.run_spec import expand_tune
from annealbench.common.store_schema import config_label, task_label
from annealbench.runner.suite.suite import Suite, TaskEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepTime:
    """Seconds per training step of one task entry, and where that number came from."""

    seconds: float | None   # None: not measured (see `source`)
    source: str             # "measured on cpu", "given", or why it could not be measured


@dataclass(frozen=True)
class Row:
    """One (stage, task) line of the run table."""

    stage: str
    task: str               # the task label, with its overrides
    configs: int
    points: int             # (configuration, lr) pairs
    seeds: int
    runs: int
    steps: int              # τ of each run
    step_time: StepTime

    @property
    def hours(self) -> float | None:
        if self.step_time.seconds is None:
            return None
        return self.runs * self.steps * self.step_time.seconds / 3600.0


def device_name() -> str:
    """`cuda (NVIDIA H200)` on a GPU machine, else `cpu (N threads)`."""
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def measure_step_time(task: TaskEntry, steps: int = 3) -> StepTime:
    """The median seconds of `steps` real training steps of `task`, after one warm-up step."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import Callback

    from annealbench.runner.run.execute import quiet_lightning
    from annealbench.tasks import DatasetError, get_task

    class Clock(Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_train_batch_end(self, *args) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())

    quiet_lightning()
    overrides = dict(task.overrides)
    if "download" in overrides:  # a dry run reads what is there and fetches nothing
        overrides["download"] = False
    try:
        built = get_task(task.name, preset=task.preset, **overrides)
        module, datamodule = built.build(lambda groups, total: torch.optim.AdamW(groups), seed=0)
    except DatasetError as err:
        return StepTime(None, f"not measured: {err}")
    clock = Clock()
    kwargs = {**built.trainer_kwargs(), "max_steps": steps + 1, "limit_val_batches": 0}
    trainer = pl.Trainer(**kwargs, logger=False, callbacks=[clock], enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, devices=1)
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    gaps = [b - a for a, b in zip(clock.ends, clock.ends[1:])] or [clock.ends[0] - started]
    return StepTime(statistics.median(gaps), f"measured on {device_name()}")


def step_times(suite: Suite, given: Mapping[str, float], steps: int) -> dict[TaskEntry, StepTime]:
    """A step time per task entry: `given[label]`, else `given[name]`, else measured."""
    times = {}
    for task in suite.tasks:
        label = task_label(task.name, task.overrides)
        seconds = given.get(label, given.get(task.name))
        if seconds is not None:
            times[task] = StepTime(seconds, "given")
        else:
            log.info("measuring %d steps of %s", steps, label)
            times[task] = measure_step_time(task, steps)
    return times


def check_given(suite: Suite, given: Mapping[str, float]) -> None:
    """Every `--step-time` key names a task of the suite, and every value is a time > 0."""
    known = {t.name for t in suite.tasks} | {task_label(t.name, t.overrides) for t in suite.tasks}
    for key, seconds in given.items():
        if key not in known:
            raise ValueError(f"--step-time {key}=…: the suite has no task {key!r}; its tasks: "
                             f"{', '.join(sorted(known))}")
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"--step-time {key}={seconds}: must be a number of seconds > 0")


def run_table(suite: Suite, times: Mapping[TaskEntry, StepTime]) -> list[Row]:
    """The (stage, task) rows: configurations, lr points, seeds, runs, τ and step time."""
    from annealbench.runner.suite.validate import task_budget

    tune = expand_tune(suite)
    rows = []
    for task in suite.tasks:
        steps = task_budget(task.name, task.preset, dict(task.overrides))
        label = task_label(task.name, task.overrides)
        specs = [s for s in tune if s.task_label == label]
        if specs:
            points = len({(s.config, s.lr) for s in specs})
            configs = len({s.config for s in specs})
            rows.append(Row("tune", label, configs, points, len(suite.tune_seeds), len(specs),
                            steps, times[task]))
        configs = len(suite.optimizers)
        seeds = len(suite.eval_seeds_of(task))
        rows.append(Row("eval", label, configs, configs, seeds, configs * seeds, steps, times[task]))
    return rows


def _hours(value: float | None) -> str:
    return "?" if value is None else f"{value:,.1f}"


def _seconds(t: StepTime) -> str:
    return "?" if t.seconds is None else f"{t.seconds:.4g}"


def render(suite: Suite, rows: list[Row]) -> str:
    """The run table per stage (tasks numbered, labels listed below), totals, step sources."""
    numbers = {label: i for i, label in enumerate(dict.fromkeys(r.task for r in rows), 1)}
    head = (f"{'task':<24} {'configs':>7} {'lr pts':>6} {'seeds':>5} {'runs':>6} "
            f"{'steps':>7} {'s/step':>8} {'hours':>9}")
    lines = [f"suite {suite.name} ({suite.source}): {len(suite.tasks)} task(s) × "
             f"{len(suite.optimizers)} optimizer configuration(s)"]
    for stage in ("tune", "eval"):
        staged = [r for r in rows if r.stage == stage]
        if not staged:
            continue
        runs = sum(r.runs for r in staged)
        lines += ["", f"stage {stage}: {runs} runs", head]
        lines += [f"{f'[{numbers[r.task]}] {r.task}'[:24]:<24} {r.configs:>7} {r.points:>6} "
                  f"{r.seeds:>5} {r.runs:>6} {r.steps:>7} {_seconds(r.step_time):>8} "
                  f"{_hours(r.hours):>9}" for r in staged]
        lines.append(f"{'stage ' + stage + ' total':<24} {'':>7} {'':>6} {'':>5} {runs:>6} "
                     f"{'':>7} {'':>8} {_hours(_total(staged)):>9}")
    lines += ["", f"total: {sum(r.runs for r in rows)} runs, {_hours(_total(rows))} "
                  "device-hours (training steps only: validation and checkpoints not counted)",
              "tasks and where their step times come from:"]
    sources = {r.task: r.step_time.source for r in rows}
    lines += [f"  [{numbers[task]}] {task}: {source}" for task, source in sources.items()]
    if any(s.startswith("measured on cpu") for s in sources.values()):
        lines.append("these hours are CPU hours: a GPU estimate needs a GPU measurement (run "
                     "this on the GPU node) or --step-time TASK=SECONDS")
    return "\n".join(lines + _design(suite))


def _design(suite: Suite) -> list[str]:
    """The configurations (numbered, with their lr grids), each task's evaluation seeds, and the
    declared question's pairs: what the runs above are made of."""
    labels = [config_label(o.name, o.hparams) for o in suite.optimizers]
    lines = ["", "configurations and their lr (μ) grids:"]
    lines += [f"  ({j}) {label}: {', '.join(f'{lr:g}' for lr in o.lr_grid)}"
              for j, (label, o) in enumerate(zip(labels, suite.optimizers), 1)]
    lines += ["evaluation seeds:"]
    lines += [f"  {task_label(t.name, t.overrides)}: {_seed_range(suite.eval_seeds_of(t))}" for t in suite.tasks]
    if suite.compare is not None:
        number = {label: j for j, label in enumerate(labels, 1)}
        pairs = suite.compare.pairs(labels)
        lines += [f"question: {suite.compare.describe()}; {len(pairs)} comparison(s) per task:"]
        lines += ["  " + ", ".join(f"({number[c]}) vs ({number[r]})" for c, r in pairs)]
    return lines


def _seed_range(seeds: tuple[int, ...]) -> str:
    """`100–104 (5 seeds)` for consecutive seeds, else the list."""
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}–{seeds[-1]} ({len(seeds)} seeds)"
    return f"{', '.join(map(str, seeds))} ({len(seeds)} seed{'s' * (len(seeds) != 1)})"


def _total(rows: list[Row]) -> float | None:
    hours = [r.hours for r in rows]
    return None if None in hours else sum(hours)


def dry_run(suite: Suite, given: Mapping[str, float] | None = None, steps: int = 3) -> str:
    """Check `given`, measure the other step times, and render the run table."""
    given = dict(given or {})
    check_given(suite, given)
    return render(suite, run_table(suite, step_times(suite, given, steps)))
