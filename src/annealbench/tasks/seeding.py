"""Seeds derived from a run's seed: one independent stream per purpose, no hidden global state.

A run's `seed` fixes the model's initialisation and the data order completely and independently
of the optimizer (paired comparisons rely on it). Each purpose (initialisation, split, data
order, dropout) draws from its own stream, so changing one never shifts another, and the batch
of step `k` is a pure function of `(seed, k)`, so a run resumed from a checkpoint sees exactly
the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import numpy as np
import torch

# Stream identifiers: fixed forever, since changing one changes every run's data.
INIT, SPLIT, DATA, DROPOUT, AUGMENT = 1, 2, 3, 4, 5


def derive_seed(seed: int, stream: int, *index: int) -> int:
    """A 63-bit seed for `(seed, stream, *index)`, from numpy's `SeedSequence` hashing."""
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    state = np.random.SeedSequence([seed, stream, *index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def generator(seed: int, stream: int, *index: int) -> torch.Generator:
    """A CPU `torch.Generator` seeded with `derive_seed(seed, stream, *index)`."""
    return torch.Generator().manual_seed(derive_seed(seed, stream, *index))
