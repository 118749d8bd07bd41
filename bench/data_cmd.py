"""`python -m bench data NAME`: fetch a data set into the data cache ahead of a sweep.

Every worker of a sweep would otherwise race to download the same archive; fetching once,
before `bench run`, leaves each run only the verified files to read. `--url` and `--md5`
replace the published archive (a mirror); `--root` replaces `$ANNEALBENCH_DATA/NAME`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DATASETS = ("cifar10", "wikitext103")


def add_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="download, verify and extract a data set into the cache")
    data.add_argument("name", choices=DATASETS)
    data.add_argument("--root", type=Path,
                      help="folder to extract into (default $ANNEALBENCH_DATA/NAME, else "
                           "~/.cache/annealbench/NAME)")
    data.add_argument("--url", help="fetch from this URL instead of the published one")
    data.add_argument("--md5", help="expected MD5 of the archive at --url")


def run(args: argparse.Namespace) -> int:
    """Fetch `args.name`, check it loads, and print where it is."""
    from tasks import DatasetError

    try:
        folder, what = _fetch(args)
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.name}: {what} in {folder}")
    return 0


def _fetch(args: argparse.Namespace) -> tuple[Path, str]:
    from tasks import cifar_data, download, text

    archive = cifar_data.ARCHIVE if args.name == "cifar10" else text.WIKITEXT103
    folder = download.ensure(archive, args.root, url=args.url, md5_hex=args.md5)
    if args.name == "cifar10":
        data = cifar_data.load(str(folder))
        return folder, f"{len(data['train_y'])} training and {len(data['test_y'])} test images"
    corpus = text.load_corpus(str(folder), corpus="wikitext103")
    return folder, f"{len(corpus.train)} training and {len(corpus.val)} validation bytes"
