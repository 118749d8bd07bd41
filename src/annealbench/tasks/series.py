"""Forecasting from a window of past values of one real time series, split chronologically.

A series `v[0..n)` becomes one example per forecast origin `i`, in time order: the inputs are
the `lags` values `v[i - lags : i]`, the target is `v[i + horizon - 1]` (horizon 1: the next
value).
The examples are cut chronologically: the earliest train, the next validate, the latest test —
forecasts are judged on the future of what trained them, as a forecaster meets them, so the
split is the same for every seed (a seed fixes the initialisation and the batch order). A
random split would let the model interpolate between neighbouring years it was trained on.
"""

from __future__ import annotations

import numpy as np
import torch

from annealbench.tasks.config import HeldOutConfig

Part = tuple[torch.Tensor, torch.Tensor]   # (inputs, targets)


def windows(values: np.ndarray, lags: int, horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Inputs `values[i - lags : i]` and targets `values[i + horizon - 1]`, for every origin `i`
    with a full window and a target inside the series, in time order."""
    if lags < 1 or horizon < 1:
        raise ValueError(f"lags and horizon must be >= 1, got {lags} and {horizon}")
    origins = np.arange(lags, len(values) - horizon + 1)
    if len(origins) < 3:
        raise ValueError(f"a series of {len(values)} values has too few windows of {lags} lags "
                         f"and horizon {horizon}")
    x = np.stack([values[i - lags: i] for i in origins])
    return x, values[origins + horizon - 1]


def chronological(n: int, cfg: HeldOutConfig) -> tuple[slice, slice, slice]:
    """The earliest examples train, the next `val_fraction` validate, the last
    `test_fraction` test."""
    n_val, n_test = max(1, round(n * cfg.val_fraction)), max(1, round(n * cfg.test_fraction))
    if n_val + n_test >= n:
        raise ValueError(f"{n} examples leave none to train on after {n_val} validation and "
                         f"{n_test} test examples")
    cut = n - n_val - n_test
    return slice(0, cut), slice(cut, cut + n_val), slice(cut + n_val, n)


def sizes(n: int, cfg: HeldOutConfig) -> dict[str, int]:
    """Examples per part, as `chronological` cuts them."""
    parts = chronological(n, cfg)
    return dict(zip(("train", "val", "test"), (p.stop - p.start for p in parts)))


def parts(x: np.ndarray, y: np.ndarray, cfg: HeldOutConfig) -> tuple[Part, Part, Part]:
    """(train, val, test) float32 parts, inputs standardised per column and the target
    standardised, all with the training part's statistics (a test MSE of 1.0 is that of
    predicting the training mean, in units of the training targets' variance)."""
    cuts = chronological(len(y), cfg)
    mean, std = x[cuts[0]].mean(axis=0), x[cuts[0]].std(axis=0).clip(min=1e-6)
    y_mean, y_std = y[cuts[0]].mean(), max(float(y[cuts[0]].std()), 1e-6)
    out = []
    for part in cuts:
        xs = torch.from_numpy(((x[part] - mean) / std).astype(np.float32))
        ys = torch.from_numpy(((y[part] - y_mean) / y_std).astype(np.float32))
        out.append((xs, ys))
    return tuple(out)
