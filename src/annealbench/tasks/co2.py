"""Forecasting the atmospheric CO₂ at Mauna Loa a quarter ahead (statsmodels' `co2`, weekly,
March 1958 – December 2001) with a small MLP.

The 2,284 weekly means (ppm) miss 59 values, filled by linear interpolation between their
observed neighbours (deterministic). The forecast is of the change over `horizon` weeks from
the last observed week, read from the `lags` weeks before it as differences to that week: the
level (a trend the training years never reach) drops out and what is learned is the seasonal
cycle and the trend's slope. The `lags` inputs are strongly correlated, an ill-conditioned
regression. The examples are cut chronologically (`tasks.series`): the earliest train, the
next validate, the latest (about 1993–2001) test, the same for every seed. Inputs and target
are standardised with the training part's statistics.
Endpoint: test mean squared error of the forecast change, in units of the training targets'
variance (a linear least-squares fit reaches about 0.05).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from torch import nn

from annealbench.common.metrics import loss
from annealbench.tasks import series
from annealbench.tasks.base import OptimizerFactory, Regressor
from annealbench.tasks.batches import supervised
from annealbench.tasks.config import HeldOutConfig, positive
from annealbench.tasks.mlp import mlp, mlp_label
from annealbench.tasks.task_spec import TaskSpec

WEEKS = 2284


@lru_cache(maxsize=1)
def weeks() -> np.ndarray:
    """The 2,284 weekly CO₂ means (ppm), missing weeks interpolated linearly."""
    from statsmodels.datasets import co2

    values = co2.load_pandas().data["co2"].to_numpy(dtype=np.float64, copy=True)
    missing = np.isnan(values)
    at = np.arange(len(values))
    values[missing] = np.interp(at[missing], at[~missing], values[~missing])
    return values


def examples(lags: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs: the `lags` weeks before each origin minus the last of them; target: the change
    from that last week to `horizon` weeks after it."""
    x, y = series.windows(weeks(), lags + 1, horizon)
    last = x[:, -1:]
    return x[:, :-1] - last, y - last[:, 0]


@dataclass(frozen=True)
class CO2Config(HeldOutConfig):
    lags: int = 52                   # weeks read before the last observed one (a year)
    horizon: int = 13                # weeks ahead of the last observed one (a quarter)
    hidden: int = 32                 # width of each hidden layer
    depth: int = 2                   # number of hidden layers
    max_steps: int = 200
    val_every: int = 10
    log_every: int = 10
    batch_size: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "lags", "horizon", "hidden", "depth")


def make_net(cfg: CO2Config) -> nn.Sequential:
    return mlp(cfg.lags, cfg.hidden, cfg.depth)


def build(cfg: CO2Config, factory: OptimizerFactory, seed: int):
    train, val, test = series.parts(*examples(cfg.lags, cfg.horizon), cfg)
    module = Regressor.create(cfg, lambda: make_net(cfg), factory, seed)
    return module, supervised(train, val, test, cfg.batch_size, seed)


SPEC = TaskSpec(
    name="co2",
    summary="MLP forecasts the Mauna Loa CO₂ a quarter ahead from the past year (chronological)",
    presets={
        "smoke": CO2Config(max_steps=40, val_every=20, log_every=10),
        "quick": CO2Config(),
        "paper": CO2Config(hidden=128, depth=3, max_steps=2000, val_every=100, log_every=50),
    },
    build=build,
    make_net=make_net,
    model=lambda c: mlp_label(c.lags, c.hidden, c.depth),
    data_source=lambda c: ("statsmodels `datasets.co2` (embedded, 2,284 weekly values, 59 "
                           "missing interpolated)"),
    splits=lambda c: series.sizes(WEEKS - c.lags - c.horizon, c),
    metrics=(loss("mean squared error in units of the training targets' variance"),),
)
