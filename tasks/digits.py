"""A small CNN on scikit-learn's 8×8 handwritten digits (1,797 images, 10 classes).

Pixels (0..16) are standardised with the training split's mean and standard deviation; the split
is drawn from the seed's split stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tasks import seeding, sklearn_data
from tasks.base import (OptimizerFactory, TaskModule, classification_metrics,
                        classification_sums)
from tasks.batches import EpochPermutations, InMemoryDataModule, chunks, sample_batch
from tasks.config import TrainConfig, in_unit_interval, positive
from tasks.spec import TaskSpec


@dataclass(frozen=True)
class DigitsConfig(TrainConfig):
    channels: int = 16               # channels of the first convolution (the second has 2×)
    hidden: int = 64                 # width of the dense layer
    val_fraction: float = 0.2        # share of the 1,797 images held out
    max_steps: int = 400
    val_every: int = 100
    log_every: int = 20
    batch_size: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "channels", "hidden")
        in_unit_interval(self, "val_fraction")


def make_net(cfg: DigitsConfig) -> nn.Sequential:
    c = cfg.channels
    return nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),                                    # 8×8 → 4×4
        nn.Flatten(),
        nn.Linear(2 * c * 16, cfg.hidden), nn.ReLU(),
        nn.Linear(cfg.hidden, 10),
    )


class DigitsModule(TaskModule):
    def training_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def eval_sums(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x, y = batch
        return classification_sums(self.net(x), y)

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        return classification_metrics(sums)


def build(cfg: DigitsConfig, factory: OptimizerFactory, seed: int):
    x, y = sklearn_data.load("digits")
    y = y.long()
    train, val = sklearn_data.split(len(y), cfg.val_fraction, seed)
    mean, std = x[train].mean(), x[train].std()
    images = ((x - mean) / std).reshape(-1, 1, 8, 8)
    order = EpochPermutations(len(train), cfg.batch_size, seed)
    x_train, y_train = images[train], y[train]
    data = InMemoryDataModule(lambda k: sample_batch((x_train, y_train), order, k),
                              chunks((images[val], y[val]), 512))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeding.derive_seed(seed, seeding.INIT))
        net = make_net(cfg)
    module = DigitsModule(net, factory, total_steps=cfg.max_steps, log_every=cfg.log_every,
                          seed=seed)
    return module, data


SPEC = TaskSpec(
    name="digits",
    summary="small CNN on the 8×8 handwritten digits (10 classes)",
    presets={
        "smoke": DigitsConfig(max_steps=60, val_every=30, log_every=10),
        "quick": DigitsConfig(),
        "paper": DigitsConfig(channels=32, hidden=128, max_steps=5000, val_every=500,
                              log_every=50),
    },
    build=build,
    make_net=make_net,
    model=lambda c: f"CNN conv{c.channels}-conv{2 * c.channels}-pool-fc{c.hidden}-fc10",
    data_source=lambda c: "scikit-learn `load_digits` (embedded, 1,797 images)",
)
