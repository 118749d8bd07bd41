"""The small data sets that ship inside scikit-learn, split and standardised in memory.

Each seed cuts the examples into disjoint train / validation / test parts with one permutation
from its split stream (so the split is a pure function of the seed), and every feature (and, for
regression, the target) is standardised with the training part's mean and standard deviation.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from annealbench.tasks import seeding
from annealbench.tasks.config import HeldOutConfig

Part = tuple[torch.Tensor, torch.Tensor]   # (features, targets)
LOADERS = ("diabetes", "digits", "breast_cancer", "wine", "iris")


@lru_cache(maxsize=None)
def _load(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    if name not in LOADERS:
        raise ValueError(f"unknown scikit-learn data set {name!r}; allowed: {', '.join(LOADERS)}")
    bunch = getattr(datasets, f"load_{name}")()
    return np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target)


def load(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (float32) and targets of the bundled data set `name` (one of `LOADERS`)."""
    x, y = _load(name)
    return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())


def split(n: int, val_fraction: float, test_fraction: float,
          seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Disjoint train, validation and test indices: one permutation of the split stream, cut."""
    perm = torch.randperm(n, generator=seeding.generator(seed, seeding.SPLIT))
    n_val, n_test = max(1, round(n * val_fraction)), max(1, round(n * test_fraction))
    if n_val + n_test >= n:
        raise ValueError(f"{n} examples leave none to train on after {n_val} validation and "
                         f"{n_test} test examples")
    return perm[n_val + n_test:], perm[:n_val], perm[n_val: n_val + n_test]


def sizes(n: int, cfg: HeldOutConfig) -> dict[str, int]:
    """Examples per part, as `split` cuts them."""
    train, val, test = split(n, cfg.val_fraction, cfg.test_fraction, 0)
    return {"train": len(train), "val": len(val), "test": len(test)}


def standardise(train: torch.Tensor, *others: torch.Tensor,
                per_column: bool = True) -> tuple[torch.Tensor, ...]:
    """(x - mean) / std with the statistics of `train` (per column, or of all its values)."""
    if per_column:
        mean, std = train.mean(dim=0), train.std(dim=0).clamp_min(1e-6)
    else:
        mean, std = train.mean(), train.std()
    return tuple((t - mean) / std for t in (train, *others))


def held_out(name: str, cfg: HeldOutConfig, seed: int, regression: bool = False,
             per_column: bool = True) -> tuple[Part, Part, Part]:
    """Standardised (train, val, test) parts of `name`; integer class labels unless `regression`.

    Features are standardised per column, or with one mean and deviation when not `per_column`
    (pixels, some of which are always 0 in the training part). For regression the target is
    standardised too, so a mean squared error of 1.0 is that of predicting the training mean.
    """
    x, y = load(name)
    parts = split(len(y), cfg.val_fraction, cfg.test_fraction, seed)
    xs = standardise(*(x[i] for i in parts), per_column=per_column)
    if regression:
        ys = tuple(t.squeeze(-1) for t in standardise(*(y.float()[i].unsqueeze(-1)
                                                         for i in parts)))
    else:
        ys = tuple(y.long()[i] for i in parts)
    return tuple(zip(xs, ys))
