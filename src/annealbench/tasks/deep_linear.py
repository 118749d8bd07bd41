"""A deep linear network learns a known linear map from low-noise samples: non-convex, nearly
clean gradients, known optimum, exact excess loss.

    x ~ N(0, I_d),    y = W* x + σ ε,    ε ~ N(0, I_d)

The network x ↦ W_L ⋯ W_1 x (L ≥ 2 bias-free layers, hidden width ≥ d) trains on the mean
squared error of a fresh batch from the run seed's data stream each step. `W*` = U diag(s) Vᵀ
(random orthogonal U, V from `teacher_seed`, the same for every run seed) has singular values
log-spaced over `condition`, scaled so that ‖W*‖²_F / d = 1, and σ is small (signal-to-noise
100 at σ = 0.1): the gradient noise is low and shrinks with the error down to the floor σ
leaves. The product of L factors makes the loss non-convex, with saddles at small weights: the
network picks up the target's directions one after another, the strong ones first, so within a
budget the endpoint says how far into the weak directions an optimizer has got.

Evaluation needs no sample: E‖(W − W*)x‖² / d = ‖W − W*‖²_F / d exactly, with W the product of
the layers. `val/loss` = `val/gap` = that excess over the optimum W = W* (whose loss is σ²); the
test set is the same exact quantity (as the quadratic's gap).
Endpoint: the exact excess mean squared error ‖W − W*‖²_F / d after τ steps (initially ~1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from annealbench.common.metrics import Metric, loss
from annealbench.tasks import seeding
from annealbench.tasks.base import OptimizerFactory, TaskModule
from annealbench.tasks.batches import FixedBatches, InMemoryDataModule
from annealbench.tasks.config import TrainConfig, positive
from annealbench.tasks.task_spec import TaskSpec


@dataclass(frozen=True)
class DeepLinearConfig(TrainConfig):
    dim: int = 16                    # d: inputs and outputs
    width: int = 32                  # hidden width (≥ d: the optimum is reachable)
    depth: int = 3                   # L: weight matrices multiplied
    condition: float = 100.0         # largest / smallest singular value of W*
    noise: float = 0.1               # σ: label noise per output
    teacher_seed: int = 0            # fixes W*
    max_steps: int = 200
    val_every: int = 10
    log_every: int = 10
    batch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "dim", "width")
        if self.depth < 2:
            raise ValueError(f"depth must be >= 2 (one matrix is a convex problem), got "
                             f"{self.depth}")
        if self.width < self.dim:
            raise ValueError(f"width={self.width} must be >= dim={self.dim}: the optimum must "
                             "be reachable")
        if not self.condition >= 1.0:
            raise ValueError(f"condition must be >= 1, got {self.condition}")
        if not self.noise >= 0.0:
            raise ValueError(f"noise must be >= 0, got {self.noise!r}")
        if self.teacher_seed < 0:
            raise ValueError(f"teacher_seed must be >= 0, got {self.teacher_seed}")


def target(cfg: DeepLinearConfig) -> torch.Tensor:
    """W* = U diag(s) Vᵀ, s log-spaced over `condition`, ‖W*‖²_F = d."""
    g = seeding.generator(cfg.teacher_seed, seeding.INIT)
    u, _ = torch.linalg.qr(torch.randn(cfg.dim, cfg.dim, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cfg.dim, cfg.dim, generator=g, dtype=torch.float64))
    s = torch.logspace(0.0, -torch.log10(torch.tensor(cfg.condition)).item(), cfg.dim,
                       dtype=torch.float64)
    s *= (cfg.dim / (s * s).sum()).sqrt()
    return ((u * s) @ v.T).float()


class DeepLinear(nn.Sequential):
    """L bias-free linear layers d → width → … → width → d, and W* as a buffer."""

    def __init__(self, cfg: DeepLinearConfig, w_star: torch.Tensor) -> None:
        sizes = [cfg.dim] + [cfg.width] * (cfg.depth - 1) + [cfg.dim]
        super().__init__(*(nn.Linear(a, b, bias=False) for a, b in zip(sizes, sizes[1:])))
        self.register_buffer("w_star", w_star)

    def gap(self) -> torch.Tensor:
        """‖W_L ⋯ W_1 − W*‖²_F / d, in float64."""
        product = self[0].weight.double()
        for layer in list(self)[1:]:
            product = layer.weight.double() @ product
        return ((product - self.w_star.double()) ** 2).sum() / self.w_star.shape[0]


class DeepLinearModule(TaskModule):
    METRICS = (loss("exact excess mean squared error ‖W − W*‖²_F / d"),
               Metric("gap", "lower", "exact excess mean squared error ‖W − W*‖²_F / d"))

    def training_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def eval_sums(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        (placeholder,) = batch   # one row: the process holding it reports the exact gap
        return {"gap": self.net.gap() * placeholder.shape[0]}

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        return {"val/loss": sums["gap"], "val/gap": sums["gap"]}


def make_net(cfg: DeepLinearConfig) -> DeepLinear:
    return DeepLinear(cfg, target(cfg))


def build(cfg: DeepLinearConfig, factory: OptimizerFactory, seed: int):
    w_star = target(cfg)

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = seeding.generator(seed, seeding.DATA, step)
        x = torch.randn(cfg.batch_size, cfg.dim, generator=g)
        return x, x @ w_star.T + cfg.noise * torch.randn(cfg.batch_size, cfg.dim, generator=g)

    exact = FixedBatches([(torch.zeros(1),)])   # a placeholder: the gap needs no data
    module = DeepLinearModule.create(cfg, lambda: make_net(cfg), factory, seed)
    return module, InMemoryDataModule(batch, exact, exact, batch_size=cfg.batch_size, rows=True)


SPEC = TaskSpec(
    name="deep-linear",
    summary="deep linear network learns a known map from low-noise samples: non-convex, exact gap",
    presets={
        "smoke": DeepLinearConfig(max_steps=40, val_every=20, log_every=10),
        "quick": DeepLinearConfig(),
        "paper": DeepLinearConfig(dim=64, width=128, depth=4, condition=1e3, max_steps=5000,
                                  val_every=250, log_every=50, batch_size=128),
    },
    build=build,
    make_net=make_net,
    model=lambda c: (f"deep linear network {c.dim}→{'→'.join([str(c.width)] * (c.depth - 1))}"
                     f"→{c.dim}, no biases"),
    data_source=lambda c: (f"synthetic (teacher seed {c.teacher_seed}, singular values over "
                           f"κ={c.condition:g}, label noise σ={c.noise:g})"),
    splits=lambda c: {"train": "fresh samples every step", "val": "exact gap",
                      "test": "exact gap"},
    metrics=DeepLinearModule.METRICS,
)
