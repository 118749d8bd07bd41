"""Logistic regression on scikit-learn's breast-cancer data (569 tumours, 30 features, 2 classes).

A linear model, two logits (softmax over two classes: logistic regression), so the training loss
is convex in the weights. Features are standardised with the training part's statistics; the
disjoint train / validation / test parts are drawn from the seed's split stream. The classes
are almost linearly separable: a run that moves its weights too far grows them without bound
and turns overconfident on held-out tumours, one that moves too little underfits.
Endpoint: test cross-entropy in nats per tumour (also accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from annealbench.tasks import sklearn_data
from annealbench.tasks.base import Classifier, OptimizerFactory
from annealbench.tasks.batches import supervised
from annealbench.tasks.config import HeldOutConfig
from annealbench.tasks.task_spec import TaskSpec

FEATURES, EXAMPLES = 30, 569


@dataclass(frozen=True)
class BreastCancerConfig(HeldOutConfig):
    val_fraction: float = 0.25       # 142 tumours each for validation and test: the loss of a
    test_fraction: float = 0.25      # few confidently misclassified ones weighs less
    max_steps: int = 200
    val_every: int = 10
    log_every: int = 10
    batch_size: int = 16


def make_net(cfg: BreastCancerConfig) -> nn.Sequential:
    return nn.Sequential(nn.Linear(FEATURES, 2))   # the one layer is the output layer


def build(cfg: BreastCancerConfig, factory: OptimizerFactory, seed: int):
    train, val, test = sklearn_data.held_out("breast_cancer", cfg, seed)
    module = Classifier.create(cfg, lambda: make_net(cfg), factory, seed)
    return module, supervised(train, val, test, cfg.batch_size, seed)


SPEC = TaskSpec(
    name="breast-cancer",
    summary="logistic regression on the breast-cancer data (convex, 2 classes)",
    presets={
        "smoke": BreastCancerConfig(max_steps=40, val_every=20, log_every=10),
        "quick": BreastCancerConfig(),
        "paper": BreastCancerConfig(max_steps=2000, val_every=100, log_every=50),
    },
    build=build,
    make_net=make_net,
    model=lambda c: f"linear {FEATURES}→2 (logistic regression)",
    data_source=lambda c: "scikit-learn `load_breast_cancer` (embedded, 569 examples)",
    splits=lambda c: sklearn_data.sizes(EXAMPLES, c),
    metrics=Classifier.METRICS,
)
