"""The noisy quadratic model (Zhang et al., 2019, "Which algorithmic choices matter at which
batch sizes?").

    f(w) = ½ Σ_i h_i (w_i - w*_i)²,     h_i log-spaced over [1/κ, 1]

The stochastic gradient is `g = h ⊙ (w - w*) + sqrt(h / B) ⊙ ξ` with `ξ ~ N(0, I)`: additive
noise whose variance is proportional to the curvature and shrinks with the batch size `B`. The
training loss `f(w) + Σ_i sqrt(h_i / B) ξ_i w_i` has exactly that gradient. The optimum is
known (f(w*) = 0), so evaluation reports the exact gap `val/gap = f(w) - f(w*)` (equal to
`val/loss`); there is no sampled evaluation data, so the test metrics (`test/gap`, `test/loss`)
are the same exact gap. `w*` is drawn from the seed's initialisation stream, `w` starts at 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from annealbench.common.metrics import Metric, loss
from annealbench.tasks import seeding
from annealbench.tasks.base import OptimizerFactory, TaskModule
from annealbench.tasks.batches import FixedBatches, InMemoryDataModule
from annealbench.tasks.config import TrainConfig, positive
from annealbench.tasks.task_spec import TaskSpec


@dataclass(frozen=True)
class QuadraticConfig(TrainConfig):
    dim: int = 2000                  # number of coordinates d
    condition: float = 1000.0        # κ = max h / min h
    max_steps: int = 1000
    val_every: int = 50
    log_every: int = 25
    batch_size: int = 16             # B: the gradient noise variance is h / B

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "dim")
        if not self.condition >= 1.0:
            raise ValueError(f"condition must be >= 1, got {self.condition}")


class NoisyQuadratic(nn.Module):
    """The iterate `w` with the curvatures `h` and the optimum `w*` as buffers."""

    def __init__(self, dim: int, condition: float, optimum: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(dim))
        self.register_buffer("h", torch.logspace(0.0, -torch.log10(torch.tensor(condition)), dim))
        self.register_buffer("w_star", optimum)

    def gap(self) -> torch.Tensor:
        """f(w) - f(w*) = ½ Σ h (w - w*)²."""
        return 0.5 * (self.h * (self.w - self.w_star) ** 2).sum()


def make_net(cfg: QuadraticConfig, seed: int = 0) -> NoisyQuadratic:
    optimum = torch.randn(cfg.dim, generator=seeding.generator(seed, seeding.INIT))
    return NoisyQuadratic(cfg.dim, cfg.condition, optimum)


class QuadraticModule(TaskModule):
    METRICS = (loss("optimality gap f(w) − f(w*)"), Metric("gap", "lower", "optimality gap f(w) − f(w*)"))

    def __init__(self, net: NoisyQuadratic, factory: OptimizerFactory, *, batch_size: int,
                 **kwargs: Any) -> None:
        super().__init__(net, factory, **kwargs)
        self.batch_size = batch_size

    def training_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        (xi,) = batch
        net = self.net
        return net.gap() + (torch.sqrt(net.h / self.batch_size) * xi * net.w).sum()

    def eval_sums(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        # The evaluation "set" is one placeholder row: the process that holds it reports the
        # gap, so the sum over DDP processes is the gap once.
        (placeholder,) = batch
        return {"gap": self.net.gap() * placeholder.shape[0]}

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        return {"val/loss": sums["gap"], "val/gap": sums["gap"]}


def build(cfg: QuadraticConfig, factory: OptimizerFactory, seed: int):
    def noise(step: int) -> tuple[torch.Tensor]:
        return (torch.randn(cfg.dim, generator=seeding.generator(seed, seeding.DATA, step)),)

    exact = FixedBatches([(torch.zeros(1),)])   # one placeholder batch: the gap needs no data
    module = QuadraticModule.create(cfg, lambda: make_net(cfg, seed), factory, seed,
                                    batch_size=cfg.batch_size)
    return module, InMemoryDataModule(noise, exact, exact)


_QUICK = QuadraticConfig()
SPEC = TaskSpec(
    name="quadratic",
    summary="noisy quadratic model (Zhang et al. 2019): known optimum, exact gap",
    presets={
        "smoke": QuadraticConfig(dim=200, max_steps=60, val_every=30, log_every=10),
        "quick": _QUICK,
        "paper": QuadraticConfig(dim=10000, condition=1e4, max_steps=5000, val_every=500,
                                 log_every=50),
    },
    build=build,
    make_net=make_net,
    model=lambda c: f"quadratic, d={c.dim}, κ={c.condition:g}, B={c.batch_size}",
    data_source=lambda c: "synthetic (Gaussian gradient noise, variance h/B)",
    splits=lambda c: {"train": "fresh gradient noise every step", "val": "exact gap",
                      "test": "exact gap"},
    metrics=QuadraticModule.METRICS,
)
