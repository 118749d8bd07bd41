"""Logistic regression on generated data with a known optimum: convex, noisy gradients, exact
excess risk.

    x ~ N(0, diag(h)),  h_i log-spaced over [1/√κ, √κ],    P(y = 1 | x) = σ(x·w*)

The generating weights `w*` (from `teacher_seed`, the same for every run seed) are scaled so
that the logit x·w* has standard deviation `margin`: the labels are noisy (the Bayes error is
about 13% at margin 4), and `w*` (bias 0) minimises the population cross-entropy. Every
training step draws a fresh batch from the run seed's data stream, so the gradients are
unbiased and noisy and nothing can overfit. The student is a linear model x·w + b.

Evaluation needs no sample: the logits z = x·w*, z' = x·w + b are jointly Gaussian, and the
population cross-entropy is, with a = w*ᵀHw*, c = w*ᵀHw, e = wᵀHw (Stein's lemma for the
cross term),

    R(w, b) = E_g[softplus(b + √e·g)] − b/2 − c·E_g[σ'(√a·g)],    g ~ N(0, 1),

each expectation by Gauss–Hermite quadrature in float64. `val/loss` = `val/excess` = R − R(w*, 0)
≥ 0, the exact excess risk (as the quadratic's gap, val = test); `val/risk` is R itself.
Endpoint: the excess population cross-entropy over the generating weights, in nats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from annealbench.common.metrics import Metric, loss
from annealbench.tasks import seeding
from annealbench.tasks.base import OptimizerFactory, TaskModule
from annealbench.tasks.batches import FixedBatches, InMemoryDataModule
from annealbench.tasks.config import TrainConfig, positive
from annealbench.tasks.task_spec import TaskSpec

NODES = 161   # Gauss–Hermite nodes: exact to ~1e-10 for the margins used here


@dataclass(frozen=True)
class LogRegConfig(TrainConfig):
    inputs: int = 32                 # d: features
    condition: float = 100.0         # κ: largest / smallest feature variance
    margin: float = 4.0              # standard deviation of the generating logit x·w*
    teacher_seed: int = 0            # fixes w*
    max_steps: int = 200
    val_every: int = 10
    log_every: int = 10
    batch_size: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "inputs", "margin")
        if not self.condition >= 1.0:
            raise ValueError(f"condition must be >= 1, got {self.condition}")
        if self.teacher_seed < 0:
            raise ValueError(f"teacher_seed must be >= 0, got {self.teacher_seed}")


def problem(cfg: LogRegConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The feature variances `h` (geometric mean 1) and the generating weights `w*` (x·w* has
    sd `margin`)."""
    half = float(np.log10(cfg.condition)) / 2
    h = torch.logspace(half, -half, cfg.inputs, dtype=torch.float64)
    w = torch.randn(cfg.inputs, generator=seeding.generator(cfg.teacher_seed, seeding.INIT),
                    dtype=torch.float64)
    return h, w * cfg.margin / torch.sqrt((h * w * w).sum())


class LogRegModule(TaskModule):
    METRICS = (loss("excess population cross-entropy over the generating weights (nats)"),
               Metric("excess", "lower", "excess population cross-entropy (nats)"),
               Metric("risk", "lower", "population cross-entropy (nats)"))

    def __init__(self, net: nn.Module, factory: OptimizerFactory, *, h: torch.Tensor,
                 w_star: torch.Tensor, **kwargs: Any) -> None:
        super().__init__(net, factory, **kwargs)
        nodes, weights = np.polynomial.hermite_e.hermegauss(NODES)
        # plain float64 tensors, moved to the weights' device when used (a run group calls
        # this module's methods on its stacked weights)
        self.h, self.w_star = h, w_star
        self.g, self.p = torch.from_numpy(nodes), torch.from_numpy(weights / weights.sum())
        self.optimum = float(self.risk(w_star, torch.zeros((), dtype=torch.float64)))

    def risk(self, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """R(w, b) (module docstring), in float64."""
        h, w_star, g, p = (t.to(w.device) for t in (self.h, self.w_star, self.g, self.p))
        a, c, e = (h * w_star ** 2).sum(), (h * w_star * w).sum(), (h * w * w).sum()
        s = torch.sigmoid(a.sqrt() * g)
        softplus = nn.functional.softplus(b + e.sqrt() * g)
        return (p * softplus).sum() - b / 2 - c * (p * s * (1 - s)).sum()

    def training_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return nn.functional.binary_cross_entropy_with_logits(self.net(x).squeeze(-1), y)

    def eval_sums(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        (placeholder,) = batch   # one row: the process holding it reports the exact risk
        layer = self.net[0]
        r = self.risk(layer.weight[0].double(), layer.bias[0].double())
        return {"risk": r * placeholder.shape[0]}

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        excess = sums["risk"] - self.optimum
        return {"val/loss": excess, "val/excess": excess, "val/risk": sums["risk"]}


def make_net(cfg: LogRegConfig) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cfg.inputs, 1))


def build(cfg: LogRegConfig, factory: OptimizerFactory, seed: int):
    h, w_star = problem(cfg)
    scale, w32 = h.sqrt().float(), w_star.float()

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = seeding.generator(seed, seeding.DATA, step)
        x = torch.randn(cfg.batch_size, cfg.inputs, generator=g) * scale
        y = torch.rand(cfg.batch_size, generator=g) < torch.sigmoid(x @ w32)
        return x, y.float()

    exact = FixedBatches([(torch.zeros(1),)])
    module = LogRegModule.create(cfg, lambda: make_net(cfg), factory, seed, h=h, w_star=w_star)
    return module, InMemoryDataModule(batch, exact, exact, batch_size=cfg.batch_size, rows=True)


SPEC = TaskSpec(
    name="logreg",
    summary="logistic regression on fresh generated samples: convex, noisy, exact excess risk",
    presets={
        "smoke": LogRegConfig(max_steps=40, val_every=20, log_every=10),
        "quick": LogRegConfig(),
        "paper": LogRegConfig(inputs=256, condition=1e3, max_steps=5000, val_every=250,
                              log_every=50, batch_size=64),
    },
    build=build,
    make_net=make_net,
    model=lambda c: f"linear {c.inputs}→1 (logistic regression)",
    data_source=lambda c: (f"synthetic (teacher seed {c.teacher_seed}, κ={c.condition:g}, "
                           f"logit sd {c.margin:g})"),
    splits=lambda c: {"train": "fresh samples every step", "val": "exact excess risk",
                      "test": "exact excess risk"},
    metrics=LogRegModule.METRICS,
)
