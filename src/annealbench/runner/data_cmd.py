"""`annealbench data NAME`: fetch a data set into the data cache ahead of a sweep.

Every worker of a sweep would otherwise race to download the same data; fetching once, before
`annealbench run`, leaves each run only the verified files to read. The data sets:

- `cifar10`, `wikitext103`: a published archive, checked by MD5 and extracted. `--url` and
  `--md5` replace the archive (a mirror).
- `shakespeare-char`: Tiny Shakespeare's `input.txt`, one file checked by SHA-256 and kept as it
  is. `--url` and `--sha256` replace it.
- `gpt2-bpe`: GPT-2's tokenizer files `vocab.bpe` and `encoder.json`, each checked by SHA-256.
- `wikitext103-bpe`: the `wikitext103` archive and the `gpt2-bpe` files (fetched into the data
  cache where missing), tokenised once into uint16 token files.

The last two name several files, so `--url`, `--md5` and `--sha256` are refused for them; each
file has its own environment overrides instead: `ANNEALBENCH_GPT2_VOCAB_BPE_URL` / `_SHA256`,
`ANNEALBENCH_GPT2_ENCODER_JSON_URL` / `_SHA256` and `ANNEALBENCH_WIKITEXT103_URL` / `_MD5`.
`--root` replaces the folder the data set is made in (default: its place in `$ANNEALBENCH_DATA`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

ARCHIVES = ("cifar10", "wikitext103")        # --url and --md5 apply
FILES = ("shakespeare-char",)                # --url and --sha256 apply
SEVERAL = ("gpt2-bpe", "wikitext103-bpe")    # per-file environment overrides only
DATASETS = (*ARCHIVES, *FILES, *SEVERAL)


def add_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser(
        "data", help="download, verify and extract (or tokenise) a data set into the cache",
        epilog="gpt2-bpe and wikitext103-bpe are made of several files and take no --url, --md5 "
               "or --sha256; set ANNEALBENCH_GPT2_VOCAB_BPE_URL / _SHA256, "
               "ANNEALBENCH_GPT2_ENCODER_JSON_URL / _SHA256 and ANNEALBENCH_WIKITEXT103_URL / "
               "_MD5 instead")
    data.add_argument("name", choices=DATASETS)
    data.add_argument("--root", type=Path,
                      help="folder to make the data set in (default: its folder under "
                           "$ANNEALBENCH_DATA, else under ~/.cache/annealbench)")
    data.add_argument("--url", help=f"fetch from this URL instead of the published one "
                                    f"({', '.join(ARCHIVES + FILES)})")
    data.add_argument("--md5", help=f"expected MD5 of the archive at --url ({', '.join(ARCHIVES)})")
    data.add_argument("--sha256", help=f"expected SHA-256 of the file at --url "
                                       f"({', '.join(FILES)})")


class FlagsRefused(ValueError):
    """Flags that do not apply to the data set named (the message says which and why)."""


def fetch_named(args: argparse.Namespace) -> str:
    """Fetch `args.name` and check it loads; the line saying what it made and where.
    `FlagsRefused` or `DatasetError` (the message says what to do) otherwise."""
    refused = _refused_flags(args)
    if refused:
        raise FlagsRefused(refused)
    folder, what = _fetch(args)
    return f"{args.name}: {what} in {folder}"


def _refused_flags(args: argparse.Namespace) -> str | None:
    """Why the override flags given do not apply to `args.name`; None when they do."""
    from annealbench.tasks import text
    from annealbench.tasks.download import environment_names

    given = [flag for flag in ("url", "md5", "sha256") if getattr(args, flag, None)]
    if args.name in SEVERAL and given:
        sources = text.GPT2_TOKENIZER
        if args.name == "wikitext103-bpe":
            sources = (text.WIKITEXT103, *sources)
        names = ", ".join(n for source in sources for n in environment_names(source))
        return (f"{args.name} is made of several files, so --{' --'.join(given)} would be "
                f"ambiguous; override each file through the environment instead: {names}")
    wrong = "sha256" if args.name in ARCHIVES else "md5" if args.name in FILES else None
    if wrong in given:
        right = "md5" if wrong == "sha256" else "sha256"
        return (f"{args.name} is checked by {'MD5' if right == 'md5' else 'SHA-256'}: "
                f"use --{right}, not --{wrong}")
    return None


def _fetch(args: argparse.Namespace) -> tuple[Path, str]:
    from annealbench.tasks import cifar_data
    from annealbench.tasks import download
    from annealbench.tasks import text

    if args.name == "shakespeare-char":
        path = download.ensure_file(text.SHAKESPEARE_CHAR, args.root, url=args.url,
                                    sha256_hex=args.sha256)
        corpus = text.load_corpus(str(path.parent), corpus="shakespeare-char")
        return path.parent, (f"{len(corpus.train)} training and {len(corpus.test)} held-out "
                             "characters")
    if args.name == "gpt2-bpe":
        folder = text.ensure_gpt2_tokenizer(args.root)
        n_vocab = text.gpt2_encoding(str(folder)).n_vocab
        return folder, f"GPT-2's BPE (vocab.bpe, encoder.json), vocabulary {n_vocab},"
    if args.name == "wikitext103-bpe":
        folder = text.prepare_wikitext_bpe(args.root)
        corpus = text.load_corpus(str(folder), corpus="wikitext103-bpe")
        return folder, (f"{len(corpus.train)} training, {len(corpus.val)} validation, "
                        f"{len(corpus.test)} test tokens")
    archive = cifar_data.ARCHIVE if args.name == "cifar10" else text.WIKITEXT103
    folder = download.ensure(archive, args.root, url=args.url, md5_hex=args.md5)
    if args.name == "cifar10":
        data = cifar_data.load(str(folder))
        return folder, f"{len(data['train_y'])} training and {len(data['test_y'])} test images"
    corpus = text.load_corpus(str(folder), corpus="wikitext103")
    return folder, f"{len(corpus.train)} training and {len(corpus.val)} validation bytes"
