"""`python -m bench run | status | list | train | data`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from bench import data_cmd
from bench.errorlog import error_line, save_traceback
from bench.errors import LockedError, StoreError, SuiteError
from bench.slurm import SUBMITIT_CLUSTERS, SlurmParams
from bench.sweep import LAUNCHERS, SweepOptions
from bench.wandb_mode import WANDB_MODES

log = logging.getLogger("bench")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 1, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 0, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def _seed_batch(text: str) -> int | str:
    from bench.suite import parse_seed_batch

    try:
        return parse_seed_batch(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"must look like key=value, got {text!r}")
    return key, value


def _step_time(text: str) -> tuple[str, float]:
    """`TASK=SECONDS`; TASK may be a task label, which holds '=' itself (the last one splits)."""
    key, sep, value = text.rpartition("=")
    try:
        if not (sep and key):
            raise ValueError(text)
        return key, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like TASK=SECONDS, got {text!r}") from None


def _add_execution(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wandb", choices=WANDB_MODES, default="offline",
                   help="W&B logging (default offline; online falls back to offline if unavailable)")
    p.add_argument("--devices", type=_positive_int, default=1, help="Lightning devices per run")
    p.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (default auto)")
    p.add_argument("--accelerator", choices=("auto", "cpu", "gpu"), default="auto",
                   help="Lightning accelerator (default auto: a GPU when there is one)")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True, metavar="{run,status,list,train,data}")

    run = sub.add_parser("run", help="run a suite (resumes what is already in --out)")
    run.add_argument("suite", help="a shipped suite's name (see `list`) or a path to a YAML file")
    run.add_argument("--out", type=Path, help="results directory (default results/SUITE)")
    run.add_argument("--workers", type=_count, default=0, help="local worker processes "
                     "(default: one per CPU core)")
    run.add_argument("--launcher", choices=LAUNCHERS, default="local")
    run.add_argument("--max-retries", type=_count, default=2,
                     help="how often a failed run is retried on later runs (default 2)")
    run.add_argument("--run-timeout", type=_seconds, default=None, metavar="SECONDS",
                     help="kill an attempt running longer and record it failed (reason timeout); "
                          "default per preset: smoke 15 min, quick 4 h, paper 72 h")
    run.add_argument("--wait-lock", type=float, default=0.0, metavar="SECONDS",
                     help="wait this long for another `bench run` on --out (default: refuse)")
    run.add_argument("--seed-batch", type=_seed_batch, default=None, metavar="auto|N",
                     help="seeds trained together as one run group; 1: one seed per run "
                          "(default: the suite's `seed_batch`, else auto)")
    _add_execution(run)
    dry = run.add_argument_group("dry run")
    dry.add_argument("--dry-run", action="store_true",
                     help="print the runs per stage and an estimate of device-hours; run nothing")
    dry.add_argument("--step-time", dest="step_times", type=_step_time, action="append",
                     default=[], metavar="TASK=SECONDS",
                     help="seconds per step of TASK instead of measuring it here; repeatable")
    dry.add_argument("--measure-steps", type=_positive_int, default=3,
                     help="training steps measured per task (default 3)")
    slurm = run.add_argument_group("slurm launcher")
    slurm.add_argument("--submitit-cluster", choices=SUBMITIT_CLUSTERS, default="slurm",
                       help="`local` runs the job arrays on this machine")
    slurm.add_argument("--partition")
    slurm.add_argument("--timeout-min", type=_positive_int, default=60)
    slurm.add_argument("--cpus-per-task", type=_positive_int, default=1)
    slurm.add_argument("--gpus-per-node", type=_count, default=0)

    status = sub.add_parser("status", help="list the runs of a results directory by status")
    status.add_argument("dir", type=Path)
    status.add_argument("--verify", action="store_true",
                        help="also check every file (truncated tables, missing markers, "
                             "configs that no longer match their run id)")

    sub.add_parser("list", help="tasks, optimizers, windows and suites")

    train = sub.add_parser("train", help="train one run and print its final metrics as JSON")
    train.add_argument("task")
    train.add_argument("optimizer")
    train.add_argument("--preset", choices=("smoke", "quick", "paper"), default="smoke")
    train.add_argument("--seed", type=_count, default=0)
    train.add_argument("--set", dest="assignments", type=_assignment, action="append",
                       default=[], metavar="KEY=VALUE",
                       help="an optimizer hyperparameter (lr=3e-3, window=linear) or a task "
                            "override (task.data_dir=...); repeatable; lr defaults to 1e-3")
    train.add_argument("--out", type=Path, default=Path("results/train"))
    _add_execution(train)

    data_cmd.add_parser(sub)

    one = sub.add_parser("run-one", help=argparse.SUPPRESS)  # a pool worker's multi-device run
    one.add_argument("run_dir", type=Path)
    _add_execution(one)
    return root


def _dataset_errors() -> tuple[type, ...]:
    """`DatasetError` if `tasks` was imported (else no error can be one): keeps `status` light."""
    errors = sys.modules.get("tasks.errors")
    return (errors.DatasetError,) if errors is not None else ()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bench").setLevel(logging.INFO)
    try:
        return _COMMANDS[args.command](args)
    except (SuiteError, StoreError, LockedError) as err:  # ours: the message says it all
        print(error_line(err, None), file=sys.stderr)
        return 2
    except (ValueError, *_dataset_errors()) as err:  # may come from anywhere: keep the traceback
        print(error_line(err, save_traceback(err, argv)), file=sys.stderr)
        return 2


def _cmd_run(args: argparse.Namespace) -> int:
    from bench.suite import load_suite
    from bench.sweep import run_sweep

    suite = load_suite(args.suite)
    if args.dry_run:
        from bench.dryrun import dry_run
        from bench.validate import validate_suite

        validate_suite(suite)
        print(dry_run(suite, dict(args.step_times), steps=args.measure_steps))
        return 0
    options = SweepOptions(out=args.out or Path("results") / suite.name, workers=args.workers,
                           launcher=args.launcher, wandb=args.wandb, devices=args.devices,
                           strategy=args.strategy, accelerator=args.accelerator,
                           max_retries=args.max_retries,
                           lock_timeout_s=args.wait_lock, run_timeout_s=args.run_timeout,
                           seed_batch=args.seed_batch,
                           slurm=SlurmParams(cluster=args.submitit_cluster,
                                             partition=args.partition,
                                             timeout_min=args.timeout_min,
                                             cpus_per_task=args.cpus_per_task,
                                             gpus_per_node=args.gpus_per_node))
    summary = run_sweep(suite, options)
    print(summary.line)
    return 1 if summary.counts.get("failed") else 0


def _cmd_status(args: argparse.Namespace) -> int:
    from bench.status import run_states, summarise, verify

    if not args.dir.is_dir():
        print(f"error: {args.dir} is not a results directory", file=sys.stderr)
        return 2
    states = run_states(args.dir)
    counts = summarise(states)
    print(f"{args.dir}: {len(states)} runs — " + ", ".join(f"{n} {s}" for s, n in
                                                          sorted(counts.items())))
    for state in states:
        if state.state not in ("done", "diverged"):
            print(f"  {state.state:<10} {state.run_id}"
                  + (f"  {state.detail}" if state.detail else ""))
    if args.verify:
        problems = verify(args.dir)
        for problem in problems:
            print(f"  problem: {problem}")
        print(f"verify: {len(problems)} problem(s)")
        return 1 if problems else 0
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from optimizers import OPTIMIZERS, WINDOW_KINDS
    from tasks import PRESETS, TASK_NAMES

    from bench.suite import shipped_suites

    print("tasks:      " + ", ".join(sorted(TASK_NAMES)))
    print("presets:    " + ", ".join(PRESETS))
    print("optimizers: " + ", ".join(sorted(OPTIMIZERS)))
    print("windows:    " + ", ".join(WINDOW_KINDS))
    print("suites:     " + ", ".join(f"{n} ({p})" for n, p in shipped_suites().items()))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from bench.train import train_one

    line = train_one(args.task, args.optimizer, preset=args.preset, seed=args.seed,
                     assignments=args.assignments, out=args.out, wandb=args.wandb,
                     devices=args.devices, strategy=args.strategy,
                     accelerator=args.accelerator)
    if line is not None:
        print(json.dumps(line, sort_keys=True))
        return 0 if line["status"] != "failed" else 1
    return 0


def _cmd_run_one(args: argparse.Namespace) -> int:
    from bench.train import run_one_dir

    return run_one_dir(args.run_dir, wandb=args.wandb, devices=args.devices,
                       strategy=args.strategy, accelerator=args.accelerator)


_COMMANDS = {"run": _cmd_run, "status": _cmd_status, "list": _cmd_list, "train": _cmd_train,
             "data": data_cmd.run, "run-one": _cmd_run_one}
