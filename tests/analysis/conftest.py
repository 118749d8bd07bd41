"""Synthetic stores for the analysis tests."""

from __future__ import annotations

import pytest

from annealbench.analysis.load import load_store
from tests.analysis.synthetic import BASELINE, Synthetic, write_store

MIXED = Synthetic(  # four tasks: enough for the across-task tests, whose unit is the task
    tasks=("digits", "quadratic", "t2", "t3"),
    diverged=(("digits", "muphi[window=constant]", 2, 300),),
    failed=(("digits", "muphi[window=linear]", 1),),
)


@pytest.fixture
def make_store(tmp_path):
    """Write a synthetic store and load it: make_store(Synthetic(...)) -> Store."""
    count = iter(range(1000))

    def make(spec: Synthetic = Synthetic(), **load_kwargs):
        root = write_store(tmp_path / f"store{next(count)}", spec)
        return load_store(root, **load_kwargs)

    return make


__all__ = ["BASELINE", "MIXED", "Synthetic"]
