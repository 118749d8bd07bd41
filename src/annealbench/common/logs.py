"""One logging set-up for the `annealbench` command.

The project's own loggers (`annealbench.*`) say what a command is doing at INFO; third-party
libraries speak only at WARNING and above, so their INFO chatter (fontTools' font subsetting
for every PDF figure, Lightning's banner lines, W&B's sync notes) stays out of normal output.
`-v` brings every INFO line back.
"""

from __future__ import annotations

import argparse
import logging

PROJECT_LOGGER = "annealbench"
VERBOSE_FLAGS = ("-v", "--verbose")
FORMAT = "%(levelname)s %(name)s: %(message)s"


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(*VERBOSE_FLAGS, action="store_true",
                        help="also show third-party libraries' INFO messages")


def setup_logging(verbose: bool = False) -> None:
    """The project's INFO on stderr; everyone else's INFO only with `verbose`."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=FORMAT)
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger(PROJECT_LOGGER).setLevel(logging.INFO)
