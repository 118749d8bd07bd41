"""The runner's commands of `annealbench` (`annealbench.cli`): run, status, gather, list, train, data.

Exit status: 0 done; 1 some run failed, or some evaluation runs were not started because their
tuning did not complete; 2 refused before anything started (a bad suite or argument, a data set
that is absent or could not be fetched, a locked or unwritable directory); 3 this machine lacks
what was asked for (SLURM, a GPU), nothing started; 130 interrupted (Ctrl-C): the same command
resumes.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from annealbench.runner import data_cmd
from annealbench.common.errorlog import error_line, save_traceback
from annealbench.common.logs import VERBOSE_FLAGS
from annealbench.runner.errors import LockedError, MissingSystemError, StoreError, SuiteError
from annealbench.runner.launch.slurm import SUBMITIT_CLUSTERS, SlurmParams
from annealbench.runner.suite.suite import DEFAULT_MAX_RUNS, MAX_SEED, PRESET_NAMES
from annealbench.runner.sweep import LAUNCHERS, SweepOptions
from annealbench.runner.run.wandb_logger import WANDB_MODES

log = logging.getLogger("annealbench.runner")
MAX_PROCESSES = 1024  # --workers, --devices, --threads: a typo must not start a million processes
EXIT_MISSING_SYSTEM, EXIT_INTERRUPTED = 3, 130


def _int_in(minimum: int, maximum: int | None = None):
    """An argparse type: an integer from `minimum` to `maximum` (None: no upper bound)."""
    allowed = f"≥ {minimum}" if maximum is None else f"from {minimum} to {maximum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {allowed}, "
                                             f"got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be an integer {allowed}, got {text!r}")
        return value

    return parse


_positive_int = _int_in(1)
_count = _int_in(0)
_processes = _int_in(1, MAX_PROCESSES)
_seed = _int_in(0, MAX_SEED)


def _wait_seconds(text: str) -> float:
    """`--wait-lock`: seconds ≥ 0, or `inf` to wait for ever."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds ≥ 0, or inf to wait for "
                                         f"ever, got {text!r}")
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
    from annealbench.runner.suite.suite import parse_seed_batch

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
    p.add_argument("--devices", type=_processes, default=1, help="Lightning devices per run")
    p.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (default auto)")
    p.add_argument("--accelerator", choices=("auto", "cpu", "gpu"), default="auto",
                   help="Lightning accelerator (default auto: a GPU when there is one)")


COMMANDS = ("run", "status", "gather", "list", "train", "data", "run-one")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """`run`, `status`, `gather`, `list`, `train`, `data` (and the unlisted `run-one`)."""
    run = sub.add_parser("run", help="run a suite (resumes what is already in --out)")
    run.add_argument("suite", help="a shipped suite's name (see `list`) or a path to a YAML file")
    run.add_argument("--out", type=Path, help="results directory (default results/SUITE)")
    run.add_argument("--workers", type=_int_in(0, MAX_PROCESSES), default=0,
                     help="local worker processes (default: one per CPU core)")
    run.add_argument("--launcher", choices=LAUNCHERS, default="local")
    run.add_argument("--max-retries", type=_count, default=2,
                     help="how often a failed run is retried on later runs (default 2)")
    run.add_argument("--run-timeout", type=_seconds, default=None, metavar="SECONDS",
                     help="kill an attempt running longer and record it failed (reason timeout); "
                          "default per preset: smoke 15 min, quick 4 h, paper 72 h")
    run.add_argument("--wait-lock", type=_wait_seconds, default=0.0, metavar="SECONDS",
                     help="wait this long for another `annealbench run` on --out, saying whom for "
                          "(inf: for ever; default: refuse)")
    run.add_argument("--preset", choices=PRESET_NAMES, default=None,
                     help="run the suite's design at this preset's scale (numeric task overrides and "
                          "precision/compile_model/channels_last dropped; the results go to "
                          "results/SUITE-PRESET)")
    run.add_argument("--max-runs", type=_positive_int, default=DEFAULT_MAX_RUNS, metavar="N",
                     help=f"refuse a suite planning more runs (default {DEFAULT_MAX_RUNS:,})")
    run.add_argument("--seed-batch", type=_seed_batch, default=None, metavar="auto|N",
                     help="seeds trained together as one run group; 1: one seed per run "
                          "(default: the suite's `seed_batch`, else auto)")
    run.add_argument("--allow-incomplete-tuning", action="store_true",
                     help="evaluate a (task, configuration) whose tuning runs did not all finish, "
                          "or all diverged, with what finished (default: its evaluation is not "
                          "started; selection.json says why)")
    run.add_argument("--keep-checkpoints", action="store_true",
                     help="keep the checkpoints of finished runs (default: deleted once the "
                          "run's DONE is written; a failed run always keeps its own)")
    _add_execution(run)
    stale = run.add_mutually_exclusive_group()  # finished runs in --out made by other code
    stale.add_argument("--rerun-stale", action="store_true",
                       help="run again the finished runs that another commit or another set of "
                            "uncommitted changes made (their folders move to OUT/stale/)")
    stale.add_argument("--accept-stale", action="store_true",
                       help="keep the finished runs that other code made (the report names the "
                            "commits it mixes); default: refuse to start while there are any")
    run.add_argument("--rerun-changed", action="store_true",
                     help="run again the finished runs whose recorded configuration differs from "
                          "what the suite now resolves to (a preset's values, an optimizer's "
                          "defaults; their folders move to OUT/changed/); default: refuse to "
                          "start while there are any")
    dry = run.add_argument_group("dry run")
    dry.add_argument("--dry-run", action="store_true",
                     help="print the runs per stage and an estimate of device-hours; run nothing")
    dry.add_argument("--step-time", dest="step_times", type=_step_time, action="append",
                     default=[], metavar="TASK=SECONDS",
                     help="seconds per step of TASK instead of measuring it here; repeatable")
    dry.add_argument("--measure-steps", type=_int_in(1, 1000), default=3,
                     help="training steps measured per task (default 3)")
    slurm = run.add_argument_group("slurm launcher")
    slurm.add_argument("--submitit-cluster", choices=SUBMITIT_CLUSTERS, default="slurm",
                       help="`local` runs the job arrays on this machine")
    slurm.add_argument("--detach", action="store_true",
                       help="submit what is missing and return; the same command again reattaches "
                            "(never resubmits a queued or running run) and submits stage eval of "
                            "each (task, configuration) whose tuning is complete")
    slurm.add_argument("--no-follow-up", action="store_true",
                       help="with --detach: submit no follow-up job (by default one small job, "
                            "after the sweep's arrays, runs the same command again, so the sweep "
                            "advances without you); then rerun the command by hand or from cron")
    slurm.add_argument("--partition")
    slurm.add_argument("--account")
    slurm.add_argument("--qos")
    slurm.add_argument("--mem", help="memory per array task, as sbatch takes it (16G, 4000M); "
                                     "default: the cluster's")
    slurm.add_argument("--constraint")
    slurm.add_argument("--gres", help="e.g. gpu:a100:1 (then no --gpus-per-node is added)")
    slurm.add_argument("--sbatch", dest="sbatch_lines", action="append", default=[],
                       metavar="LINE", help="an extra #SBATCH line, e.g. '--mail-type=END'; "
                                            "repeatable")
    slurm.add_argument("--timeout-min", type=_positive_int, default=None,
                       help="time limit of each array task (default: 1.5 × the --step-time "
                            "estimate of its runs + 5 min; without step times, its runs' "
                            "--run-timeout added up)")
    slurm.add_argument("--runs-per-task", type=_int_in(1, 1000), default=None, metavar="N",
                       help="runs one after another in each array task (default: 1, or as many "
                            "as fit in 30 min where --step-time makes a run shorter than 10 min)")
    slurm.add_argument("--max-array-size", type=_positive_int, default=None, metavar="N",
                       help="tasks per job array (default: the cluster's MaxArraySize)")
    slurm.add_argument("--max-requeues", type=_count, default=10, metavar="N",
                       help="requeues of a task after its time limit or a preemption (default 10)")
    slurm.add_argument("--cpus-per-task", type=_positive_int, default=1,
                       help="cores per array task; its torch threads follow (default 1)")
    slurm.add_argument("--gpus-per-node", type=_count, default=0,
                       help="GPUs per array task (default: --devices with --accelerator gpu, "
                            "else none)")

    status = sub.add_parser("status", help="list the runs of a results directory by status")
    status.add_argument("dir", type=Path)
    status.add_argument("--verify", action="store_true",
                        help="also check every file (truncated tables, missing markers, "
                             "configs that no longer match their run id)")

    gather = sub.add_parser("gather", help="rebuild runs.parquet and results.parquet from every "
                                           "finished or failed run folder of a results directory")
    gather.add_argument("dir", type=Path)

    sub.add_parser("list", help="tasks, optimizers, windows and suites")

    train = sub.add_parser("train", help="train one run and print its final metrics as JSON")
    train.add_argument("task")
    train.add_argument("optimizer")
    train.add_argument("--preset", choices=PRESET_NAMES, default="smoke")
    train.add_argument("--seed", type=_seed, default=0, help=f"0 … {MAX_SEED} (default 0)")
    train.add_argument("--set", dest="assignments", type=_assignment, action="append",
                       default=[], metavar="KEY=VALUE",
                       help="an optimizer hyperparameter (lr=3e-3, window=linear) or a task "
                            "override (task.data_dir=...); repeatable; lr defaults to 1e-3")
    train.add_argument("--out", type=Path, default=Path("results/train"))
    train.add_argument("--threads", type=_processes, default=None,
                       help="torch threads (default: $OMP_NUM_THREADS, else the cores per device)")
    _add_execution(train)

    data_cmd.add_parser(sub)

    one = sub.add_parser("run-one")  # a pool worker's multi-device run; no help: not listed
    one.add_argument("run_dir", type=Path)
    _add_execution(one)


def _dataset_errors() -> tuple[type, ...]:
    """`DatasetError` if `tasks` was imported (else no error can be one): keeps `status` light."""
    errors = sys.modules.get("annealbench.tasks.errors")
    return (errors.DatasetError,) if errors is not None else ()


class _Interrupted(Exception):
    """Ctrl-C stopped a command; the message says what was left and how to go on."""


_SIGINT_SEEN = threading.Event()


def _on_sigint(signum: int, frame: object) -> None:
    _SIGINT_SEEN.set()
    raise KeyboardInterrupt


@contextmanager
def _noting_sigint() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual and is also noted: Lightning turns it into
    `exit(1)`, and the note tells that exit from any other."""
    _SIGINT_SEEN.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT,
                      signal.default_int_handler if previous is None else previous)


def _is_interrupt(err: BaseException) -> bool:
    return isinstance(err, KeyboardInterrupt) or (isinstance(err, SystemExit)
                                                  and _SIGINT_SEEN.is_set())


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Run a parsed runner command; the exit status of the module docstring."""
    args.argv = tuple(a for a in argv if a not in VERBOSE_FLAGS)  # a follow-up job reruns it
    with _noting_sigint():
        try:
            return _COMMANDS[args.command](args)
        except _Interrupted as err:
            print(f"interrupted: {err}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except (KeyboardInterrupt, SystemExit) as err:
            if not _is_interrupt(err):
                raise
            print("interrupted: stopped before the end; run the same command again to go on",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
        except MissingSystemError as err:
            print(error_line(err, None), file=sys.stderr)
            return EXIT_MISSING_SYSTEM
        except (SuiteError, StoreError, LockedError) as err:  # ours: the message says it all
            print(error_line(err, None), file=sys.stderr)
            return 2
        except (ValueError, *_dataset_errors()) as err:  # from anywhere: keep the traceback
            print(error_line(err, save_traceback(err, argv)), file=sys.stderr)
            return 2


def _check_machine(args: argparse.Namespace) -> None:
    """SLURM for `--launcher slurm`, GPUs for `--accelerator gpu` where the runs will train
    (not on a login node that submits to SLURM); before anything is written."""
    from annealbench.runner.launch.devices import check_gpus
    from annealbench.runner.launch.slurm import check_slurm

    if args.detach and args.launcher != "slurm":
        raise ValueError("--detach is for --launcher slurm")
    if args.no_follow_up and not args.detach:
        raise ValueError("--no-follow-up is for --detach (without it, `annealbench run` waits for "
                         "its job arrays itself)")
    if args.launcher == "slurm":
        check_slurm(SlurmParams(cluster=args.submitit_cluster))
    if args.accelerator == "gpu" and not (args.launcher == "slurm"
                                          and args.submitit_cluster == "slurm"):
        check_gpus(args.devices)


def _cmd_run(args: argparse.Namespace) -> int:
    from annealbench.runner.suite.suite import load_suite
    from annealbench.runner.sweep import run_sweep

    suite = load_suite(args.suite, max_runs=args.max_runs)
    if args.preset is not None:
        suite = suite.at_preset(args.preset)
    if args.dry_run:
        from annealbench.runner.suite.dryrun import dry_run
        from annealbench.runner.suite.validate import validate_suite

        validate_suite(suite)
        print(dry_run(suite, dict(args.step_times), steps=args.measure_steps))
        return 0
    options = SweepOptions(out=args.out or Path("results") / suite.name, workers=args.workers,
                           launcher=args.launcher, wandb=args.wandb, devices=args.devices,
                           strategy=args.strategy, accelerator=args.accelerator,
                           max_retries=args.max_retries,
                           lock_timeout_s=args.wait_lock, run_timeout_s=args.run_timeout,
                           seed_batch=args.seed_batch,
                           rerun_stale=args.rerun_stale, accept_stale=args.accept_stale,
                           rerun_changed=args.rerun_changed,
                           allow_incomplete_tuning=args.allow_incomplete_tuning,
                           keep_checkpoints=args.keep_checkpoints,
                           slurm=SlurmParams(cluster=args.submitit_cluster,
                                             partition=args.partition,
                                             timeout_min=args.timeout_min,
                                             cpus_per_task=args.cpus_per_task,
                                             gpus_per_node=args.gpus_per_node,
                                             account=args.account, qos=args.qos, mem=args.mem,
                                             constraint=args.constraint, gres=args.gres,
                                             sbatch=tuple(args.sbatch_lines),
                                             max_array_size=args.max_array_size,
                                             runs_per_task=args.runs_per_task,
                                             step_times=tuple(args.step_times),
                                             max_requeues=args.max_requeues,
                                             detach=args.detach,
                                             follow_up=args.argv if args.detach
                                             and not args.no_follow_up else ()))
    _check_machine(args)
    try:
        summary = run_sweep(suite, options)
    except BaseException as err:
        if not _is_interrupt(err):
            raise
        raise _Interrupted(f"the workers were stopped; the finished runs are kept in "
                           f"{options.out}, and the same `annealbench run` resumes there (the runs "
                           f"that were cut short start again)") from None
    print(summary.line)
    if args.detach:  # the sweep goes on in SLURM's hands while any run is queued or running
        from annealbench.runner.launch.slurm import detach_note

        note, in_flight = detach_note(options.out)
        print(note)
        if in_flight:
            return 0
    return 1 if summary.counts.get("failed") or summary.not_started else 0


def _cmd_status(args: argparse.Namespace) -> int:
    from annealbench.runner.store.status import is_results_dir, run_states, slurm_lines, summarise, verify

    if not is_results_dir(args.dir):
        print(f"error: {args.dir} is not a results directory (it has neither runs/ nor "
              f"runs.parquet); give the --out of an `annealbench run` or `annealbench train`", file=sys.stderr)
        return 2
    states = run_states(args.dir)
    counts = summarise(states)
    print(f"{args.dir}: {len(states)} runs — " + ", ".join(f"{n} {s}" for s, n in
                                                          sorted(counts.items())))
    for state in states:
        if state.state not in ("done", "diverged"):
            print(f"  {state.state:<10} {state.run_id}"
                  + (f"  {state.detail}" if state.detail else ""))
    for line in slurm_lines(args.dir):  # a sweep submitted with --launcher slurm
        print(line)
    if args.verify:
        problems = verify(args.dir)
        for problem in problems:
            print(f"  problem: {problem}")
        print(f"verify: {len(problems)} problem(s)")
        return 1 if problems else 0
    return 0


def _cmd_gather(args: argparse.Namespace) -> int:
    from annealbench.runner.store.lock import results_lock
    from annealbench.runner.store.results_store import ResultsStore

    if not (args.dir / "runs").is_dir():
        print(f"error: {args.dir} is not a results directory (it has no runs/)", file=sys.stderr)
        return 2
    store = ResultsStore(args.dir)
    with results_lock(store.root, timeout_s=0.0):  # never beside an `annealbench run` writing into it
        runs = store.gather(store.specs_on_disk())
    print(f"{args.dir}: gathered {len(runs)} runs into runs.parquet and results.parquet")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from annealbench.optimizers import WINDOW_KINDS, optimizer_names
    from annealbench.tasks import PRESETS, task_names

    from annealbench.runner.suite.suite import shipped_suites

    print("tasks:      " + ", ".join(sorted(task_names())))  # built-ins and installed plug-ins
    print("presets:    " + ", ".join(PRESETS))
    print("optimizers: " + ", ".join(sorted(optimizer_names())))
    print("windows:    " + ", ".join(WINDOW_KINDS))
    print("suites:     " + ", ".join(f"{n} ({p})" for n, p in shipped_suites().items()))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from annealbench.runner.train_cmd import prepare_train, train

    job = prepare_train(args.task, args.optimizer, preset=args.preset, seed=args.seed,
                        assignments=args.assignments, out=args.out, wandb=args.wandb,
                        devices=args.devices, strategy=args.strategy,
                        accelerator=args.accelerator, threads=args.threads)
    try:
        line = train(job)
    except BaseException as err:
        if not _is_interrupt(err):
            raise
        raise _Interrupted(f"the run in {job.run_dir} did not finish (it is not recorded); the "
                           f"same `annealbench train` starts it again") from None
    if line is not None:
        print(json.dumps(line, sort_keys=True))
        return 0 if line["status"] != "failed" else 1
    return 0


def _cmd_run_one(args: argparse.Namespace) -> int:
    from annealbench.runner.train_cmd import run_one_dir

    return run_one_dir(args.run_dir, wandb=args.wandb, devices=args.devices,
                       strategy=args.strategy, accelerator=args.accelerator)


def _cmd_data(args: argparse.Namespace) -> int:
    """`annealbench data NAME`: fetch it, then one line saying what it made and where."""
    from annealbench.tasks import DatasetError

    try:
        print(data_cmd.fetch_named(args))
    except (data_cmd.FlagsRefused, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


_COMMANDS = {"run": _cmd_run, "status": _cmd_status, "gather": _cmd_gather, "list": _cmd_list,
             "train": _cmd_train,
             "data": _cmd_data, "run-one": _cmd_run_one}
