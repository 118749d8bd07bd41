"""Sparse parity with label noise: an over-parameterised MLP finds the k relevant bits among n.

    x uniform on {−1, +1}ⁿ,    y = parity of x_1 … x_k, flipped with probability ε

An algorithmic task with a phase transition: the loss stays at chance until the network has
found the k relevant bits (a search among C(n, k) subsets that no single bit's correlation with
the label guides), then drops to the floor that the label noise leaves. Every training step
draws a fresh batch from the run seed's data stream. The MLP has more weights than there are
distinct inputs (2ⁿ), so it could represent any labelling of them.

Evaluation is exact: over all 2ⁿ inputs, the population cross-entropy is, per input,
−(1 − ε) log p(parity) − ε log p(flipped parity), and its floor is the entropy H(ε) of the label
noise, reached by predicting the parity with probability 1 − ε. `val/loss` = `val/excess` = the
mean over the inputs less H(ε) (≥ 0); `val/acc` is the fraction of inputs whose parity is
predicted; `val/xent` the cross-entropy itself. The test set is the same exact quantity.
Endpoint: the excess population cross-entropy over the noise floor, in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from annealbench.common.metrics import ACCURACY, Metric, loss
from annealbench.tasks import seeding
from annealbench.tasks.base import OptimizerFactory, TaskModule
from annealbench.tasks.batches import InMemoryDataModule, chunks
from annealbench.tasks.config import TrainConfig, in_unit_interval, positive
from annealbench.tasks.mlp import mlp, mlp_label
from annealbench.tasks.task_spec import TaskSpec


@dataclass(frozen=True)
class SparseParityConfig(TrainConfig):
    bits: int = 10                   # n: input bits; 2ⁿ distinct inputs
    relevant: int = 3                # k: the bits whose parity is the label
    flip: float = 0.1                # ε: probability that a training label is flipped
    hidden: int = 64                 # width of each hidden layer
    depth: int = 2                   # number of hidden layers
    max_steps: int = 200
    val_every: int = 10
    log_every: int = 10
    batch_size: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "bits", "relevant", "hidden", "depth")
        if not self.relevant <= self.bits <= 20:
            raise ValueError(f"need relevant <= bits <= 20 (every input is evaluated), got "
                             f"relevant={self.relevant}, bits={self.bits}")
        in_unit_interval(self, "flip")
        if not self.flip < 0.5:
            raise ValueError(f"flip must be < 0.5, got {self.flip!r}")


def parity(x: torch.Tensor, k: int) -> torch.Tensor:
    """The parity (0 or 1) of the first `k` of the ±1 bits in each row of `x`."""
    return (x[:, :k] < 0).sum(dim=1) % 2


def every_input(n: int) -> torch.Tensor:
    """All 2ⁿ inputs as rows of ±1."""
    codes = torch.arange(2 ** n).unsqueeze(1) >> torch.arange(n)
    return 1.0 - 2.0 * (codes & 1).float()


class SparseParityModule(TaskModule):
    METRICS = (loss("excess population cross-entropy over the noise floor H(ε) (nats)"),
               Metric("excess", "lower", "excess population cross-entropy over H(ε) (nats)"),
               ACCURACY,
               Metric("xent", "lower", "population cross-entropy against the noisy labels (nats)"))

    def __init__(self, net: nn.Module, factory: OptimizerFactory, *, flip: float,
                 **kwargs: Any) -> None:
        super().__init__(net, factory, **kwargs)
        self.flip = flip
        self.floor = 0.0 if flip == 0 else -(flip * math.log(flip)
                                             + (1 - flip) * math.log(1 - flip))

    def training_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def eval_sums(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x, y = batch   # every input with its clean parity
        logp = self.net(x).float().log_softmax(dim=-1)
        right, wrong = logp.gather(1, y[:, None])[:, 0], logp.gather(1, 1 - y[:, None])[:, 0]
        xent = -((1 - self.flip) * right + self.flip * wrong).sum()
        correct = (logp.argmax(dim=-1) == y).sum()
        return {"xent": xent, "correct": correct, "count": torch.tensor(y.numel())}

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        xent = sums["xent"] / sums["count"]
        return {"val/loss": xent - self.floor, "val/excess": xent - self.floor,
                "val/acc": sums["correct"] / sums["count"], "val/xent": xent}


def make_net(cfg: SparseParityConfig) -> nn.Sequential:
    return mlp(cfg.bits, cfg.hidden, cfg.depth, outputs=2)


def build(cfg: SparseParityConfig, factory: OptimizerFactory, seed: int):
    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = seeding.generator(seed, seeding.DATA, step)
        x = 1.0 - 2.0 * (torch.rand(cfg.batch_size, cfg.bits, generator=g) < 0.5).float()
        flipped = (torch.rand(cfg.batch_size, generator=g) < cfg.flip).long()
        return x, parity(x, cfg.relevant) ^ flipped

    x = every_input(cfg.bits)
    exact = chunks((x, parity(x, cfg.relevant)), 4096)
    module = SparseParityModule.create(cfg, lambda: make_net(cfg), factory, seed, flip=cfg.flip)
    return module, InMemoryDataModule(batch, exact, exact, batch_size=cfg.batch_size, rows=True)


SPEC = TaskSpec(
    name="sparse-parity",
    summary="MLP finds a noisy k-sparse parity among n bits (exact excess over the noise floor)",
    presets={
        "smoke": SparseParityConfig(bits=6, relevant=2, max_steps=40, val_every=20,
                                    log_every=10),
        "quick": SparseParityConfig(),
        "paper": SparseParityConfig(bits=20, relevant=4, hidden=512, max_steps=5000,
                                    val_every=250, log_every=50, batch_size=128),
    },
    build=build,
    make_net=make_net,
    model=lambda c: mlp_label(c.bits, c.hidden, c.depth, 2),
    data_source=lambda c: (f"generated: parity of {c.relevant} of {c.bits} random bits, labels "
                           f"flipped with probability {c.flip:g}"),
    splits=lambda c: {"train": "fresh samples every step", "val": f"all {2 ** c.bits} inputs",
                      "test": f"all {2 ** c.bits} inputs (the same: exact)"},
    metrics=SparseParityModule.METRICS,
)
