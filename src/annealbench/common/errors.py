"""The one error about a results store, shared by the runner that writes it and the analysis that
reads it."""

from __future__ import annotations


class StoreError(OSError, ValueError):
    """A results store that cannot be written, read or analysed as it is; the message names the
    path and what to do. An `OSError` where the runner writes (a full disk, an unwritable
    folder), a `ValueError` where a file's contents are refused (truncated, foreign, stale)."""
