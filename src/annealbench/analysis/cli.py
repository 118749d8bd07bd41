"""`annealbench report | figures`: `annealbench report RESULTS_DIR [--reference CONFIG]... [--margin FRACTION |
--margin-abs VALUE] [--metric M] [--grid FACTOR] [--out DIR] [--refuse-mixed-commits]
[--no-wandb] [--wandb-report]`."""

from __future__ import annotations

import argparse
import sys

from annealbench.analysis.load import StoreError
from annealbench.analysis.analyse import Options
from annealbench.common.errorlog import error_line, save_traceback


COMMANDS = ("report", "figures")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """`report` (files, then W&B when logging is on) and `figures` (the files alone)."""
    _report_arguments(sub.add_parser("report", help="write figures, tables and report.html, and "
                                     "log the tables and figures to W&B (offline by default)"),
                      wandb=True)
    _report_arguments(sub.add_parser("figures", help="rebuild every figure, table and report.html "
                                     "from the results store alone (nothing goes to W&B)"),
                      wandb=False)


def _report_arguments(r: argparse.ArgumentParser, *, wandb: bool) -> None:
    r.add_argument("results_dir", help="the results directory of a sweep (holds runs.parquet)")
    r.add_argument("--reference", action="append", default=[], metavar="CONFIG",
                   help="configuration label (or optimizer name with one configuration) every configuration "
                        "is compared with; repeatable; replaces the references of the store's compare.json "
                        "(default there: adamw[window=cosine])")
    margin = r.add_mutually_exclusive_group()
    margin.add_argument("--margin", type=float, default=None, metavar="FRACTION",
                        help="equivalence margin as a fraction of the reference's median final value "
                             "(e.g. 0.02); replaces the declared margins")
    margin.add_argument("--margin-abs", type=float, default=None, metavar="VALUE",
                        help="equivalence margin in the metric's units; replaces the declared margins")
    r.add_argument("--out", default=None, help="output directory (default RESULTS_DIR/report)")
    r.add_argument("--metric", default=None,
                   help="endpoint metric (default test/loss, or val/loss when the store has no test split)")
    r.add_argument("--grid", default=None, metavar="FACTOR",
                   help="also draw the panel grid in the published layout: per task one panel per level of "
                        "this hyperparameter (window, gamma, numerator, ...; for gamma, beta = 0 is 'Base'), "
                        "the arms overlaid with seed bands and their paired verdict at the end and at the "
                        "best point (figures h_grid_FACTOR, h_grid_FACTOR_train; tables grid_FACTOR.csv, "
                        "verdict_best.csv)")
    r.add_argument("--refuse-mixed-commits", action="store_true",
                   help="stop instead of warning when the runs come from several git commits")
    if not wandb:
        r.set_defaults(no_wandb=True, wandb_report=False)
        return
    r.add_argument("--no-wandb", action="store_true", help="do not log the tables to W&B")
    r.add_argument("--wandb-report", action="store_true",
                   help="also save a W&B Report of the suite (verdict table, per-task curves grouped by "
                        "configuration, the gamma or window grid); needs wandb-workspaces, an API key and "
                        "the server: when it cannot be saved, one line says why and the exit status is 1 "
                        "(the report's files are written all the same)")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Write the report of a parsed `report` or `figures` command: 0, or 2 with one line."""
    from annealbench.analysis.report import write_report

    try:
        options = Options(metric=args.metric, references=tuple(args.reference), margin=args.margin,
                          margin_abs=args.margin_abs)
        paths = write_report(args.results_dir, args.out, options,
                             refuse_mixed_commits=args.refuse_mixed_commits, wandb=not args.no_wandb,
                             grid=args.grid)
    except (StoreError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the report's own files (a full disk): one line, traceback to the logs
        saved = save_traceback(err, argv, program="analysis")
        print(error_line(err, saved), file=sys.stderr)
        return 2
    print(paths.html)
    return save_wandb_report(args.results_dir, args.grid) if args.wandb_report else 0


def save_wandb_report(results_dir: str, grid: str | None) -> int:
    """Build the suite's W&B Report and save it: 0 and its URL, or 1 and one line saying why not."""
    from annealbench.analysis.load import load_store
    from annealbench.analysis.wandb_report import ReportNotSaved, build_report, save_report

    try:
        url = save_report(build_report(load_store(results_dir), grid=grid))
    except (ReportNotSaved, StoreError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(url)
    return 0
