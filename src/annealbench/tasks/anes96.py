"""An over-parameterised MLP predicts the 1996 US presidential vote from the American National
Election Studies survey (statsmodels' `anes96`: 944 voters, 9 features, Clinton or Dole).

The features are the respondent's party identification, left–right self-placement and
placements of the two candidates, age, education, income, hours of TV news a week and the log
of the home town's population; all are standardised with the training part's statistics, and
the disjoint train / validation / test parts are drawn from the seed's split stream. Voters with
the same answers vote differently, so no model classifies every held-out voter: with two hidden
layers of 64 units (4,930 weights for 566 training voters) the network can
memorise its training part, and the held-out cross-entropy rises again once it does. The
endpoint measures what an optimizer's trajectory generalises from a small, noisy real data set.
Endpoint: test cross-entropy in nats per voter (also accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from annealbench.tasks import sklearn_data
from annealbench.tasks.base import Classifier, OptimizerFactory
from annealbench.tasks.batches import supervised
from annealbench.tasks.config import HeldOutConfig, positive
from annealbench.tasks.mlp import mlp, mlp_label
from annealbench.tasks.task_spec import TaskSpec

FEATURES = ("PID", "selfLR", "ClinLR", "DoleLR", "age", "educ", "income", "TVnews", "logpopul")
VOTERS = 944


@lru_cache(maxsize=1)
def voters() -> tuple[np.ndarray, np.ndarray]:
    """The features `(944, 9)` in the order of `FEATURES` and the vote (0 Clinton, 1 Dole)."""
    from statsmodels.datasets import anes96

    frame = anes96.load_pandas().data
    return frame[list(FEATURES)].to_numpy(np.float32), frame["vote"].to_numpy(np.int64)


@dataclass(frozen=True)
class Anes96Config(HeldOutConfig):
    hidden: int = 64                 # width of each hidden layer
    depth: int = 2                   # number of hidden layers
    max_steps: int = 200
    val_every: int = 10
    log_every: int = 10
    batch_size: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "hidden", "depth")


def make_net(cfg: Anes96Config) -> nn.Sequential:
    return mlp(len(FEATURES), cfg.hidden, cfg.depth, outputs=2)


def build(cfg: Anes96Config, factory: OptimizerFactory, seed: int):
    x, y = (torch.from_numpy(a.copy()) for a in voters())
    parts = sklearn_data.split(len(y), cfg.val_fraction, cfg.test_fraction, seed)
    xs = sklearn_data.standardise(*(x[i] for i in parts))
    train, val, test = ((features, y[i]) for features, i in zip(xs, parts))
    module = Classifier.create(cfg, lambda: make_net(cfg), factory, seed)
    return module, supervised(train, val, test, cfg.batch_size, seed)


SPEC = TaskSpec(
    name="anes96",
    summary="over-parameterised MLP predicts the 1996 US vote from a survey (noisy, 2 classes)",
    presets={
        "smoke": Anes96Config(max_steps=40, val_every=20, log_every=10),
        "quick": Anes96Config(),
        "paper": Anes96Config(hidden=256, depth=3, max_steps=2000, val_every=100, log_every=50),
    },
    build=build,
    make_net=make_net,
    model=lambda c: mlp_label(len(FEATURES), c.hidden, c.depth, 2),
    data_source=lambda c: "statsmodels `datasets.anes96` (embedded, 944 voters)",
    splits=lambda c: sklearn_data.sizes(VOTERS, c),
    metrics=Classifier.METRICS,
)
