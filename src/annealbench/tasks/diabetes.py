"""MLP regression on scikit-learn's diabetes data (442 patients, 10 features).

Features and target are standardised with the training part's statistics, so `val/loss` and
`test/loss` are mean squared errors in units of the target's variance (1.0 = predicting the
mean). The disjoint train / validation / test parts are drawn from the seed's split stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from annealbench.tasks import sklearn_data
from annealbench.common.metrics import loss
from annealbench.tasks.base import OptimizerFactory, Regressor
from annealbench.tasks.batches import supervised
from annealbench.tasks.config import HeldOutConfig, positive
from annealbench.tasks.mlp import mlp, mlp_label
from annealbench.tasks.task_spec import TaskSpec


@dataclass(frozen=True)
class DiabetesConfig(HeldOutConfig):
    hidden: int = 64                 # width of each hidden layer
    depth: int = 2                   # number of hidden layers
    max_steps: int = 200             # ~24 epochs: more overfits the 266 training examples
    val_every: int = 10
    log_every: int = 10
    batch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "hidden", "depth")


def make_net(cfg: DiabetesConfig) -> nn.Sequential:
    return mlp(10, cfg.hidden, cfg.depth)


def build(cfg: DiabetesConfig, factory: OptimizerFactory, seed: int):
    train, val, test = sklearn_data.held_out("diabetes", cfg, seed, regression=True)
    module = Regressor.create(cfg, lambda: make_net(cfg), factory, seed)
    return module, supervised(train, val, test, cfg.batch_size, seed)


SPEC = TaskSpec(
    name="diabetes",
    summary="MLP regression on the diabetes data (standardised, split by seed)",
    presets={
        "smoke": DiabetesConfig(max_steps=60, val_every=30, log_every=10),
        "quick": DiabetesConfig(),
        "paper": DiabetesConfig(hidden=256, depth=3, max_steps=5000, val_every=500,
                                log_every=50),
    },
    build=build,
    make_net=make_net,
    model=lambda c: mlp_label(10, c.hidden, c.depth),
    data_source=lambda c: "scikit-learn `load_diabetes` (embedded, 442 examples)",
    splits=lambda c: sklearn_data.sizes(442, c),
    metrics=(loss("mean squared error in units of the target's variance"),),
)
