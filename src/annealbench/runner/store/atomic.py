"""Atomic files: write to a temporary sibling, fsync, then rename over the target.

A reader sees either the old file or the complete new one, never a prefix; a failed write (a
full disk, a kill) leaves at most a `.tmp-` sibling that `annealbench status --verify` reports.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from annealbench.runner.errors import StoreError

TMP_MARK = ".tmp-"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically; raises `StoreError` naming the path on failure."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    fd = None
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        _write_all(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.replace(tmp, path)
    except OSError as err:
        if fd is not None:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise StoreError(err.errno, f"cannot write {path}: {err.strerror or err}") from err


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, doc: Any) -> None:
    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Serialise `frame` in memory first, so nothing reaches disk unless all of it can."""
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    atomic_write_bytes(path, sink.getvalue())


def read_parquet(path: Path) -> pd.DataFrame:
    """Read a Parquet file; a truncated or foreign file raises `StoreError` naming it."""
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as err:
        raise StoreError(f"{path} is not a readable Parquet file: {err}") from err


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise StoreError(f"{path} is not a readable JSON file: {err}") from err
