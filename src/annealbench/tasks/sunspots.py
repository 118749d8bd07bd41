"""One-step-ahead forecasting of the yearly sunspot numbers (statsmodels' `sunspots`, 1700–2008)
with a small MLP.

The series (309 yearly means) is taken on its square root, the usual variance-stabilising
transform for counts; the next year's value is forecast from the `lags` years before it. The
examples are cut chronologically (`tasks.series`): the earliest forecasts train, the next
validate and the latest (the last ~60 years) test, the same for every seed — a random split
would let the model interpolate between neighbouring years it trained on. Inputs and target are
standardised with the training part's statistics.
Endpoint: test mean squared error of the forecast, in units of the training targets' variance.
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

YEARS = 309


@lru_cache(maxsize=1)
def years() -> np.ndarray:
    """The square roots of the 309 yearly sunspot numbers, 1700 to 2008."""
    from statsmodels.datasets import sunspots

    return np.sqrt(sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64))


@dataclass(frozen=True)
class SunspotsConfig(HeldOutConfig):
    lags: int = 12                   # past years the forecast reads (about one solar cycle)
    hidden: int = 32                 # width of each hidden layer
    depth: int = 2                   # number of hidden layers
    max_steps: int = 200
    val_every: int = 10
    log_every: int = 10
    batch_size: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "lags", "hidden", "depth")


def make_net(cfg: SunspotsConfig) -> nn.Sequential:
    return mlp(cfg.lags, cfg.hidden, cfg.depth)


def build(cfg: SunspotsConfig, factory: OptimizerFactory, seed: int):
    train, val, test = series.parts(*series.windows(years(), cfg.lags), cfg)
    module = Regressor.create(cfg, lambda: make_net(cfg), factory, seed)
    return module, supervised(train, val, test, cfg.batch_size, seed)


SPEC = TaskSpec(
    name="sunspots",
    summary="MLP forecasts next year's sunspots from the past years (chronological split)",
    presets={
        "smoke": SunspotsConfig(max_steps=40, val_every=20, log_every=10),
        "quick": SunspotsConfig(),
        "paper": SunspotsConfig(hidden=128, depth=3, max_steps=2000, val_every=100,
                                log_every=50),
    },
    build=build,
    make_net=make_net,
    model=lambda c: mlp_label(c.lags, c.hidden, c.depth),
    data_source=lambda c: ("statsmodels `datasets.sunspots` (embedded, 309 yearly values, "
                           "square root)"),
    splits=lambda c: series.sizes(YEARS - c.lags, c),
    metrics=(loss("mean squared error in units of the training targets' variance"),),
)
