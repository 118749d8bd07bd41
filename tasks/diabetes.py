"""MLP regression on scikit-learn's diabetes data (442 patients, 10 features).

Features and target are standardised with the training split's statistics, so `val/loss` is the
mean squared error in units of the target's variance (1.0 = predicting the mean). The split is
drawn from the seed's split stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tasks import seeding, sklearn_data
from tasks.base import OptimizerFactory, TaskModule
from tasks.batches import EpochPermutations, InMemoryDataModule, chunks, sample_batch
from tasks.config import TrainConfig, in_unit_interval, positive
from tasks.spec import TaskSpec


@dataclass(frozen=True)
class DiabetesConfig(TrainConfig):
    hidden: int = 64                 # width of each hidden layer
    depth: int = 2                   # number of hidden layers
    val_fraction: float = 0.2        # share of the 442 examples held out
    max_steps: int = 1000
    val_every: int = 250
    log_every: int = 50
    batch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "hidden", "depth")
        in_unit_interval(self, "val_fraction")


def make_net(cfg: DiabetesConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = 10
    for _ in range(cfg.depth):
        layers += [nn.Linear(width, cfg.hidden), nn.GELU()]
        width = cfg.hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class DiabetesModule(TaskModule):
    def training_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.net(x).squeeze(-1), y)

    def eval_sums(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x, y = batch
        se = ((self.net(x).squeeze(-1) - y) ** 2).sum()
        return {"se": se, "count": torch.tensor(y.numel())}

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        return {"val/loss": sums["se"] / sums["count"]}


def build(cfg: DiabetesConfig, factory: OptimizerFactory, seed: int):
    x, y = sklearn_data.load("diabetes")
    train, val = sklearn_data.split(len(y), cfg.val_fraction, seed)
    x_train, x_val = sklearn_data.standardise(x[train], x[val])
    y_std = y.float().unsqueeze(-1)
    y_train, y_val = (t.squeeze(-1) for t in sklearn_data.standardise(y_std[train], y_std[val]))
    order = EpochPermutations(len(train), cfg.batch_size, seed)
    data = InMemoryDataModule(lambda k: sample_batch((x_train, y_train), order, k),
                              chunks((x_val, y_val), 512))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeding.derive_seed(seed, seeding.INIT))
        net = make_net(cfg)
    module = DiabetesModule(net, factory, total_steps=cfg.max_steps, log_every=cfg.log_every,
                            seed=seed)
    return module, data


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
    model=lambda c: f"MLP 10→{'→'.join([str(c.hidden)] * c.depth)}→1, GELU",
    data_source=lambda c: "scikit-learn `load_diabetes` (embedded, 442 examples)",
)
