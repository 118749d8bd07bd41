"""The `annealbench` command (`python -m annealbench` is the same).

    annealbench run SUITE [--out DIR] ...      run a suite (resumes what DIR already holds)
    annealbench status DIR                     the runs of a results directory, by status
    annealbench list                           tasks, optimizers, windows and suites
    annealbench train TASK OPTIMIZER ...       one run outside any suite
    annealbench data NAME                      fetch a data set ahead of a sweep
    annealbench report DIR                     statistics, figures, tables and report.html
    annealbench figures DIR                    the same files, from the store alone (no W&B)
    annealbench perf [--quick]                 the speed benchmarks (docs/performance.md)

`-v` before the command shows third-party libraries' INFO messages too. The runner's commands
and their exit statuses are `annealbench.runner.cli`'s, the analysis's `annealbench.analysis.cli`'s.
"""

from __future__ import annotations

import argparse
import sys

from annealbench import __version__
from annealbench.analysis import cli as analysis_cli
from annealbench.common.logs import add_verbose, setup_logging
from annealbench.runner import cli as runner_cli


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="annealbench", description=__doc__.split("\n\n")[0],
                                   epilog="`annealbench COMMAND --help` describes a command.")
    root.add_argument("--version", action="version", version=f"annealbench {__version__}")
    add_verbose(root)
    sub = root.add_subparsers(dest="command", required=True,
                              metavar="{run,status,gather,list,train,data,report,figures,perf}")
    runner_cli.add_commands(sub)
    analysis_cli.add_commands(sub)
    perf = sub.add_parser("perf", add_help=False, help="run the speed benchmarks and write "
                          "docs/performance.md (`annealbench perf --help`)")
    perf.add_argument("perf_args", nargs=argparse.REMAINDER)
    return root


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.command == "perf":
        from annealbench.perf.__main__ import main as perf_main

        perf_main(args.perf_args)
        return 0
    if args.command in analysis_cli.COMMANDS:
        return analysis_cli.run(args, argv)
    return runner_cli.run(args, argv[argv.index(args.command):])
