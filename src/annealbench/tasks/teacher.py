"""Teacher–student regression: a student MLP learns a fixed random teacher MLP from fresh samples.

    x ~ N(0, I_d),    y = T(x) / s + σ ε,    ε ~ N(0, 1)

`T` is a one-hidden-layer tanh network with N(0, 1/fan_in) weights drawn from `teacher_seed`
(the same teacher for every run seed) and `s` the standard deviation of `T(x)`, so the target has
variance 1 + σ². Every training step draws a fresh batch from the run seed's data stream: there
is no finite training set to overfit, so the endpoint measures optimisation — how close the
student's mean squared error gets to the noise floor σ² within the budget. The validation and
test sets are two fixed, disjoint samples drawn from `teacher_seed`, the same for every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from annealbench.tasks import seeding
from annealbench.common.metrics import loss
from annealbench.tasks.base import OptimizerFactory, Regressor
from annealbench.tasks.batches import InMemoryDataModule, chunks
from annealbench.tasks.config import TrainConfig, positive
from annealbench.tasks.mlp import mlp
from annealbench.tasks.task_spec import TaskSpec

# The teacher seed's samples come from its split stream (training batches use the run seed's data
# stream, so no training batch can repeat an evaluation example); its weights use INIT.
VAL, TEST, SCALE = 0, 1, 2


@dataclass(frozen=True)
class TeacherConfig(TrainConfig):
    inputs: int = 16                 # d: input dimension
    teacher_width: int = 32          # hidden units of the teacher
    width: int = 64                  # hidden units of each student layer
    depth: int = 2                   # student hidden layers
    noise: float = 0.1               # σ: label noise; σ² is the best reachable loss
    eval_examples: int = 2048        # examples in each of the validation and test sets
    teacher_seed: int = 0            # fixes the teacher and the evaluation sets
    max_steps: int = 500
    val_every: int = 25
    log_every: int = 25
    batch_size: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "inputs", "teacher_width", "width", "depth", "eval_examples")
        if not self.noise >= 0.0:
            raise ValueError(f"noise must be >= 0, got {self.noise!r}")
        if self.teacher_seed < 0:
            raise ValueError(f"teacher_seed must be >= 0, got {self.teacher_seed}")


class Teacher:
    """The fixed target function x ↦ T(x) / s and the sampler of (x, y) pairs."""

    def __init__(self, cfg: TeacherConfig) -> None:
        g = seeding.generator(cfg.teacher_seed, seeding.INIT)
        self.w1 = torch.randn(cfg.inputs, cfg.teacher_width, generator=g) / cfg.inputs ** 0.5
        self.w2 = torch.randn(cfg.teacher_width, generator=g) / cfg.teacher_width ** 0.5
        self.noise, self.inputs, self.scale = cfg.noise, cfg.inputs, 1.0
        self.scale = float(self.clean(self._x(4096, seeding.generator(
            cfg.teacher_seed, seeding.SPLIT, SCALE))).std())

    def clean(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.w1) @ self.w2 / self.scale

    def _x(self, n: int, g: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.inputs, generator=g)

    def sample(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._x(n, g)
        return x, self.clean(x) + self.noise * torch.randn(n, generator=g)


def make_net(cfg: TeacherConfig) -> nn.Sequential:
    return mlp(cfg.inputs, cfg.width, cfg.depth)


def build(cfg: TeacherConfig, factory: OptimizerFactory, seed: int):
    teacher = Teacher(cfg)

    def fixed(index: int):
        g = seeding.generator(cfg.teacher_seed, seeding.SPLIT, index)
        return chunks(teacher.sample(cfg.eval_examples, g), 1024)

    data = InMemoryDataModule(
        lambda step: teacher.sample(cfg.batch_size, seeding.generator(seed, seeding.DATA, step)),
        fixed(VAL), fixed(TEST))
    return Regressor.create(cfg, lambda: make_net(cfg), factory, seed), data


SPEC = TaskSpec(
    name="teacher",
    summary="student MLP fits a random teacher MLP from fresh samples (optimisation, no overfit)",
    presets={
        "smoke": TeacherConfig(max_steps=60, val_every=30, log_every=10, eval_examples=256),
        "quick": TeacherConfig(),
        "paper": TeacherConfig(inputs=64, teacher_width=128, width=512, depth=3,
                               max_steps=5000, val_every=250, log_every=50, batch_size=128,
                               eval_examples=8192),
    },
    build=build,
    make_net=make_net,
    model=lambda c: (f"student MLP {c.inputs}→{'→'.join([str(c.width)] * c.depth)}→1, GELU; "
                     f"teacher {c.inputs}→{c.teacher_width}→1, tanh"),
    data_source=lambda c: f"synthetic (teacher seed {c.teacher_seed}, label noise σ={c.noise:g})",
    splits=lambda c: {"train": "fresh samples every step", "val": c.eval_examples,
                      "test": c.eval_examples},
    metrics=(loss("mean squared error; its floor is the label noise σ²"),),
)
