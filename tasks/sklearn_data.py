"""The small data sets that ship inside scikit-learn, as standardised in-memory tensors."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from tasks import seeding


@lru_cache(maxsize=None)
def _load(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loader = {"diabetes": datasets.load_diabetes, "digits": datasets.load_digits}[name]
    bunch = loader()
    return np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target)


def split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation indices: a permutation from the seed's split stream, cut once."""
    perm = torch.randperm(n, generator=seeding.generator(seed, seeding.SPLIT))
    n_val = max(1, round(n * val_fraction))
    return perm[n_val:], perm[:n_val]


def standardise(train: torch.Tensor, val: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x - mean) / std with the training split's statistics per column."""
    mean, std = train.mean(dim=0), train.std(dim=0).clamp_min(1e-6)
    return (train - mean) / std, (val - mean) / std


def load(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (float32) and targets of `name` ∈ {"diabetes", "digits"}."""
    x, y = _load(name)
    return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
