"""Fetch, resume, verify and extract a published data set into the data cache.

Two kinds of published data: an `Archive` (a tarball or zip, checked by MD5, unpacked into a
folder) and a `DataFile` (one file kept as it is, checked by SHA-256, e.g. a plain-text corpus
or a tokenizer's vocabulary). Both are fetched by the same `fetch`.

`ensure(archive)` makes `data_home()/archive.name/archive.folder` exist, complete:

1. **Fetch** `archive.url` into `<file>.part`. A `.part` left by an earlier, interrupted fetch
   is resumed with an HTTP `Range: bytes=N-` request (N = its size); a server that answers
   200 instead of 206 sends the whole file again, which replaces it. A response shorter than
   its `Content-Length` is a *truncated download*: the `.part` is kept and the error says to
   run again to resume.
2. **Verify** the whole file's MD5 against `archive.md5`. A mismatch removes the `.part` (it
   cannot be resumed into a good file) and names both digests.
3. **Extract** into a fresh temporary folder beside the target, check that the archive's top
   folder is there, and only then rename it into place (`os.replace`, atomic on one file
   system). An extraction killed half-way leaves only the temporary folder, which the next
   call removes and redoes; a damaged archive is an *interrupted extraction* error and leaves
   nothing at the target.

`ensure_file(data_file)` makes `data_home()/data_file.folder/data_file.filename` exist: steps 1
and 2 with SHA-256 in place of MD5, then the verified file is renamed into place (no extraction).
A file already there is hashed again (these files are small) and fetched anew if it is not the
expected one, so a replaced or stale copy is not used.

Concurrent callers (the workers of a sweep starting at once) take turns through an exclusive
`flock` (`exclusive`) on `root/.NAME.lock`: the first fetches, the others then find the data in
place.

The URL and digest default to the published ones and can be replaced per call or through the
environment (`ANNEALBENCH_<NAME>_URL` and `ANNEALBENCH_<NAME>_MD5` for an archive,
`ANNEALBENCH_<NAME>_SHA256` for a file; NAME upper-cased, `-` read as `_`), so a mirror or a
local test server can stand in. The cache is `$ANNEALBENCH_DATA`, else `~/.cache/annealbench/`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from annealbench.tasks.errors import DatasetError

log = logging.getLogger(__name__)

CHUNK = 1 << 16


@dataclass(frozen=True)
class Archive:
    """A published archive: where it lives, its digest, and the folder it unpacks to."""

    name: str         # the cache sub-folder and the environment prefix, e.g. "cifar10"
    url: str
    md5: str
    filename: str     # the archive's file name, e.g. "cifar-10-python.tar.gz"
    folder: str       # the top-level folder inside the archive, e.g. "cifar-10-batches-py"

    def with_environment(self) -> Archive:
        """This archive with `ANNEALBENCH_<NAME>_URL` / `_MD5` applied where they are set."""
        return replace(self, url=_environment(self.name, "URL") or self.url,
                       md5=(_environment(self.name, "MD5") or self.md5).lower())


@dataclass(frozen=True)
class DataFile:
    """A published single file, kept as it is (nothing to unpack): where it lives, its SHA-256,
    and where it goes in the data cache."""

    name: str         # the environment prefix, e.g. "shakespeare_char"
    url: str
    sha256: str
    folder: str       # the cache sub-folder, e.g. "shakespeare-char"
    filename: str     # the file's name there, e.g. "input.txt"

    def with_environment(self) -> DataFile:
        """This file with `ANNEALBENCH_<NAME>_URL` / `_SHA256` applied where they are set."""
        return replace(self, url=_environment(self.name, "URL") or self.url,
                       sha256=(_environment(self.name, "SHA256") or self.sha256).lower())


def environment_names(source: Archive | DataFile) -> tuple[str, str]:
    """The environment variables that override `source`: its URL and its digest (`_MD5` for an
    archive, `_SHA256` for a file)."""
    digest = "MD5" if isinstance(source, Archive) else "SHA256"
    return _variable(source.name, "URL"), _variable(source.name, digest)


def _variable(name: str, key: str) -> str:
    return "ANNEALBENCH_" + name.upper().replace("-", "_") + "_" + key


def _environment(name: str, key: str) -> str | None:
    return os.environ.get(_variable(name, key))


def data_home() -> Path:
    """`$ANNEALBENCH_DATA` when set, else `~/.cache/annealbench`."""
    base = os.environ.get("ANNEALBENCH_DATA")
    return Path(base).expanduser() if base else Path("~/.cache/annealbench").expanduser()


DIGESTS = {"md5": "MD5", "sha256": "SHA-256"}  # hashlib name -> the name in messages


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of the file at `path` (`algorithm` one of `DIGESTS`), read in chunks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def md5(path: Path) -> str:
    return file_digest(path, "md5")


def sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def _open(url: str, offset: int, timeout: float):
    """The response for `url` from byte `offset` on; None when nothing is left to fetch."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - the URL is data
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the range starts at the end: the .part is complete
            return None
        raise DatasetError(f"downloading {url} failed: HTTP {err.code} {err.reason}") from err
    except (OSError, http.client.HTTPException) as err:
        raise DatasetError(f"downloading {url} failed: {err}") from err


def _copy(response, out, expected: int | None, url: str, part: Path) -> None:
    """Stream the body into `out`; a short body is a truncated download (the .part is kept)."""
    from tqdm import tqdm

    received = 0
    with tqdm(total=expected, unit="B", unit_scale=True, desc=part.name, disable=None) as bar:
        try:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                out.write(chunk)
                out.flush()
                received += len(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as err:
            raise DatasetError(f"the download of {url} was truncated after {received} of "
                               f"{expected} bytes ({type(err).__name__}); {part} is kept: "
                               "run again to resume it") from err
    if expected is not None and received < expected:
        raise DatasetError(f"the download of {url} was truncated after {received} of {expected} "
                           f"bytes; {part} is kept: run again to resume it")


def fetch(url: str, dest: Path, *, md5_hex: str | None = None, sha256_hex: str | None = None,
          timeout: float = 60.0) -> Path:
    """Download `url` to `dest` (resuming `dest.part`), check its MD5 or SHA-256 (exactly one of
    `md5_hex`, `sha256_hex`), and rename it into place."""
    if (md5_hex is None) == (sha256_hex is None):
        raise ValueError("fetch needs exactly one of md5_hex and sha256_hex")
    algorithm, wanted = ("md5", md5_hex) if md5_hex is not None else ("sha256", sha256_hex)
    wanted = wanted.lower()
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.is_file() else 0
    response = _open(url, offset, timeout)
    if response is not None:
        with response:
            resumed = offset > 0 and response.status == 206
            if offset and not resumed:
                log.info("%s ignored the range request: fetching the whole file again", url)
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None else None
            log.info("%s %s to %s", "resuming" if resumed else "downloading", url, part)
            with part.open("ab" if resumed else "wb") as out:
                _copy(response, out, expected, url, part)
    got = file_digest(part, algorithm)
    if got != wanted:
        part.unlink()
        label = DIGESTS[algorithm]
        raise DatasetError(f"the download of {url} has {label} {got}, expected {wanted}: it "
                           f"was altered or is another file; it was removed (check the URL and "
                           f"{label})")
    os.replace(part, dest)
    return dest


def _unpack(archive_file: Path, into: Path) -> None:
    if zipfile.is_zipfile(archive_file):
        with zipfile.ZipFile(archive_file) as z:
            z.extractall(into)
    else:
        with tarfile.open(archive_file, "r:*") as t:
            t.extractall(into, filter="data")


def extract(archive_file: Path, root: Path, folder: str) -> Path:
    """Unpack `archive_file` and move its top `folder` to `root/folder` in one rename."""
    target = root / folder
    staging = root / f".{folder}.extracting"
    if staging.exists():
        log.warning("an earlier extraction into %s was interrupted; starting it again", staging)
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        _unpack(archive_file, staging)
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise DatasetError(f"extracting {archive_file} into {root} was interrupted by "
                           f"{type(err).__name__}: {err}; nothing was left at {target}; delete "
                           f"{archive_file} and download it again") from err
    if not (staging / folder).is_dir():
        found = sorted(p.name for p in staging.iterdir())
        shutil.rmtree(staging)
        raise DatasetError(f"{archive_file} holds {found}, not the folder {folder!r} expected")
    os.replace(staging / folder, target)
    shutil.rmtree(staging)
    return target


def ensure(archive: Archive, root: Path | None = None, *, url: str | None = None,
           md5_hex: str | None = None) -> Path:
    """`root/archive.folder`, fetched and extracted first if missing (see the module docstring).

    `root` defaults to `data_home()/archive.name`; `url` and `md5_hex` replace the archive's
    (after the environment's) when given.
    """
    archive = archive.with_environment()
    archive = replace(archive, url=url or archive.url, md5=(md5_hex or archive.md5).lower())
    root = root if root is not None else data_home() / archive.name
    target = root / archive.folder
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with exclusive(root / f".{archive.name}.lock"):
        if target.is_dir():  # another process finished it while this one waited
            return target
        archive_file = root / archive.filename
        if not (archive_file.is_file() and md5(archive_file) == archive.md5):
            fetch(archive.url, archive_file, md5_hex=archive.md5)
        extract(archive_file, root, archive.folder)
        archive_file.unlink()
    log.info("%s is ready in %s", archive.name, target)
    return target


def ensure_file(data_file: DataFile, root: Path | None = None, *, url: str | None = None,
                sha256_hex: str | None = None) -> Path:
    """`root/data_file.filename`, fetched and verified first unless it is there with the expected
    SHA-256 (see the module docstring).

    `root` defaults to `data_home()/data_file.folder`; `url` and `sha256_hex` replace the file's
    (after the environment's) when given.
    """
    data_file = data_file.with_environment()
    data_file = replace(data_file, url=url or data_file.url,
                        sha256=(sha256_hex or data_file.sha256).lower())
    root = root if root is not None else data_home() / data_file.folder
    target = root / data_file.filename
    if target.is_file() and sha256(target) == data_file.sha256:
        return target
    root.mkdir(parents=True, exist_ok=True)
    with exclusive(root / f".{data_file.filename}.lock"):
        if target.is_file():
            got = sha256(target)
            if got == data_file.sha256:  # another process fetched it while this one waited
                return target
            log.warning("%s has SHA-256 %s, expected %s: fetching it again", target, got,
                        data_file.sha256)
        fetch(data_file.url, target, sha256_hex=data_file.sha256)
    log.info("%s is ready in %s", data_file.filename, target)
    return target


@contextlib.contextmanager
def exclusive(lock_file: Path):
    """Hold an exclusive `flock` on `lock_file` (released by the OS if the process dies)."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
