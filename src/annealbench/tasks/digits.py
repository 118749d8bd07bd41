"""A small CNN on scikit-learn's 8×8 handwritten digits (1,797 images, 10 classes).

Pixels (0..16) are standardised with the training part's mean and standard deviation; the
disjoint train / validation / test parts are drawn from the seed's split stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from annealbench.tasks import sklearn_data
from annealbench.tasks.base import Classifier, OptimizerFactory
from annealbench.tasks.batches import supervised
from annealbench.tasks.config import HeldOutConfig, VisionConfig, positive
from annealbench.tasks.task_spec import TaskSpec


@dataclass(frozen=True)
class DigitsConfig(HeldOutConfig, VisionConfig):
    channels: int = 8                # channels of the first convolution (the second has 2×)
    hidden: int = 32                 # width of the dense layer
    max_steps: int = 300
    val_every: int = 15
    log_every: int = 15
    batch_size: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "channels", "hidden")


def make_net(cfg: DigitsConfig) -> nn.Sequential:
    c = cfg.channels
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),                         # 64 pixels → one 8×8 channel
        nn.Conv2d(1, c, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),                                    # 8×8 → 4×4
        nn.Flatten(),
        nn.Linear(2 * c * 16, cfg.hidden), nn.ReLU(),
        nn.Linear(cfg.hidden, 10),
    )


def build(cfg: DigitsConfig, factory: OptimizerFactory, seed: int):
    train, val, test = sklearn_data.held_out("digits", cfg, seed, per_column=False)
    module = Classifier.create(cfg, lambda: make_net(cfg), factory, seed)
    return module, supervised(train, val, test, cfg.batch_size, seed)


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
    splits=lambda c: sklearn_data.sizes(1797, c),
    metrics=Classifier.METRICS,
)
