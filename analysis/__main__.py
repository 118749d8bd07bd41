"""Command line: `python -m analysis report RESULTS_DIR [--baseline NAME] [--out DIR] [--metric M]
[--refuse-mixed-commits]`."""

from __future__ import annotations

import argparse
import logging
import sys

from analysis.store import StoreError
from analysis.summary import DEFAULT_BASELINE, Options


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis", description="Statistics, figures and report "
                                "from a results store.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="write figures, tables and report.html")
    r.add_argument("results_dir", help="the results directory of a sweep (holds runs.parquet)")
    r.add_argument("--baseline", default=DEFAULT_BASELINE,
                   help=f"configuration label or optimizer name to compare against (default {DEFAULT_BASELINE})")
    r.add_argument("--out", default=None, help="output directory (default RESULTS_DIR/report)")
    r.add_argument("--metric", default="val/loss", help="endpoint metric (default val/loss)")
    r.add_argument("--refuse-mixed-commits", action="store_true",
                   help="stop instead of warning when the runs come from several git commits")
    r.add_argument("--no-wandb", action="store_true", help="do not log the tables to W&B")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from analysis.report import write_report

    try:
        paths = write_report(args.results_dir, args.out, Options(metric=args.metric, baseline=args.baseline),
                             refuse_mixed_commits=args.refuse_mixed_commits, wandb=not args.no_wandb)
    except (StoreError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(paths.html)
    return 0


if __name__ == "__main__":
    sys.exit(main())
