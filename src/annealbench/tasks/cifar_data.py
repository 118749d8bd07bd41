"""CIFAR-10 "python version" batches: locate, verify, load, download.

The directory `cifar-10-batches-py/` holds `data_batch_1..5`, `test_batch` and `batches.meta`,
each a pickled dict with bytes keys (Krizhevsky, 2009). Every file is checked before use:

1. its MD5 against an `MD5SUMS` manifest in the same directory (`<md5>  <name>` lines) when one
   is present, else against the published CIFAR-10 checksums;
2. its structure: the keys, `data` a uint8 array of shape (n, 3072), `labels` n ints in 0..9,
   and n equal to `num_cases_per_batch` from `batches.meta`.

Any failure raises `DatasetError` naming the file, where it looked and how to get the data.

Batches are data, not programs: they are read with `BatchUnpickler`, which resolves only the
globals a batch holds (numpy's array reconstruction, `numpy.ndarray`, `numpy.dtype`, and the
`_codecs.encode` that protocol-2 pickles use for bytes). Anything else — a crafted file whose
`__reduce__` names `os.system`, say — is refused before it is called.
"""

from __future__ import annotations

import logging
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from annealbench.tasks import download as fetching
from annealbench.tasks.errors import DatasetError

log = logging.getLogger(__name__)

FOLDER = "cifar-10-batches-py"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TARBALL_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE = fetching.Archive(name="cifar10", url=URL, md5=TARBALL_MD5,
                           filename="cifar-10-python.tar.gz", folder=FOLDER)
PUBLISHED_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
MANIFEST = "MD5SUMS"
HOW_TO_GET = (f"run `annealbench data cifar10` (fetches {URL}, MD5 {TARBALL_MD5}), set "
              "ANNEALBENCH_DATA or the override data_dir to where it is, or pass download=True")
# (module, name) of every global a CIFAR-10 batch pickle refers to (numpy 1 and 2 spellings).
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


def default_root() -> Path:
    """`$ANNEALBENCH_DATA/cifar10` when the variable is set, else `~/.cache/annealbench/cifar10`."""
    return fetching.data_home() / ARCHIVE.name


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only `ALLOWED_GLOBALS`; any other global is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"it refers to {module}.{name}, which a CIFAR-10 batch never holds (allowed: "
                f"{', '.join(sorted(f'{m}.{n}' for m, n in ALLOWED_GLOBALS))}); refused "
                "without running it")
        return super().find_class(module, name)


def find_batches(root: Path) -> Path:
    """The folder holding the batch files: `root/cifar-10-batches-py` or `root` itself."""
    candidates = [root / FOLDER, root]
    for folder in candidates:
        if (folder / META_FILE).is_file():
            return folder
    looked = " and ".join(str(c) for c in candidates)
    raise DatasetError(f"CIFAR-10 not found: no {META_FILE} in {looked}; {HOW_TO_GET}")



def expected_checksums(folder: Path) -> dict[str, str]:
    """MD5s from the folder's `MD5SUMS` manifest if present, else the published ones."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return dict(PUBLISHED_MD5)
    sums = {}
    for line in manifest.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*")] = digest.lower()
    return sums


def _fail(path: Path, problem: str) -> DatasetError:
    return DatasetError(f"CIFAR-10 file {path} {problem}; {HOW_TO_GET}")


def _unpickle(path: Path, checksums: dict[str, str]) -> dict:
    if not path.is_file():
        raise _fail(path, "is missing")
    want = checksums.get(path.name)
    if want is None:
        raise _fail(path, f"has no checksum in {path.parent / MANIFEST}")
    got = fetching.md5(path)
    if got != want:
        raise _fail(path, f"fails its checksum (MD5 {got}, expected {want}): truncated or altered")
    try:
        with path.open("rb") as f:
            content = BatchUnpickler(f, encoding="bytes").load()
    except Exception as err:  # noqa: BLE001 - any unreadable pickle is the same data error
        raise _fail(path, f"cannot be read as a pickled batch ({type(err).__name__}: {err})") \
            from err
    if not isinstance(content, dict):
        raise _fail(path, f"holds a {type(content).__name__}, expected a dict")
    return content


def _check_meta(path: Path, meta: dict) -> int:
    names, per_batch = meta.get(b"label_names"), meta.get(b"num_cases_per_batch")
    if not isinstance(names, list) or len(names) != 10:
        raise _fail(path, "lacks the 10 entries of b'label_names'")
    if not isinstance(per_batch, int) or per_batch < 1:
        raise _fail(path, f"has num_cases_per_batch={per_batch!r}, expected a positive int")
    return per_batch


def _check_batch(path: Path, batch: dict, count: int) -> tuple[np.ndarray, np.ndarray]:
    for key in (b"data", b"labels"):
        if key not in batch:
            raise _fail(path, f"lacks the key {key!r} (keys: {sorted(batch)})")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape != (count, 3072):
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise _fail(path, f"has data of dtype {dtype} and shape {shape}, expected uint8 of "
                          f"shape ({count}, 3072)")
    labels = np.asarray(labels)
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise _fail(path, f"has labels of shape {labels.shape} and dtype {labels.dtype}, "
                          f"expected {count} integers")
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if len(bad):
        raise _fail(path, f"has label {labels[bad[0]]} at index {bad[0]}, expected 0..9")
    return data, labels


@lru_cache(maxsize=2)
def load(root: str) -> dict[str, torch.Tensor]:
    """Verified tensors: `train_x` (50000·k, 3, 32, 32) uint8, `train_y`, `test_x`, `test_y`."""
    folder = find_batches(Path(root))
    checksums = expected_checksums(folder)
    count = _check_meta(folder / META_FILE, _unpickle(folder / META_FILE, checksums))
    parts = {}
    for name in (*TRAIN_FILES, TEST_FILE):
        path = folder / name
        parts[name] = _check_batch(path, _unpickle(path, checksums), count)

    def tensors(names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        x = np.concatenate([parts[n][0] for n in names]).reshape(-1, 3, 32, 32)
        y = np.concatenate([parts[n][1] for n in names]).astype(np.int64)
        return torch.from_numpy(x), torch.from_numpy(y)

    train_x, train_y = tensors(TRAIN_FILES)
    test_x, test_y = tensors((TEST_FILE,))
    log.info("CIFAR-10 from %s: %d training and %d test images", folder, len(train_y),
             len(test_y))
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def download(root: Path, *, url: str | None = None, md5_hex: str | None = None) -> Path:
    """Fetch, verify and extract the published tarball into `root` (see `annealbench.tasks.download`)."""
    return fetching.ensure(ARCHIVE, root, url=url, md5_hex=md5_hex)
