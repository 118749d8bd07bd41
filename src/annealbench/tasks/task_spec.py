"""What a task is (`TaskSpec`) and one configured instance of it (`Task`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from annealbench.common.metrics import Metric
from annealbench.tasks.base import OptimizerFactory, TaskModule
from annealbench.tasks.config import PRESETS, TrainConfig, apply_overrides


@dataclass(frozen=True)
class TaskSpec:
    """A task: its presets and how to build its module, data module and network."""

    name: str
    summary: str                                   # one line for the README's task table
    presets: Mapping[str, TrainConfig]             # one frozen config per name in PRESETS
    build: Callable[[Any, OptimizerFactory, int], tuple[TaskModule, pl.LightningDataModule]]
    make_net: Callable[[Any], nn.Module]           # the network alone (for parameter counts)
    model: Callable[[Any], str]                    # a short description of the network
    data_source: Callable[[Any], str]              # where the data comes from
    # examples (or characters, or a sentence) per part: train, val and test
    splits: Callable[[Any], Mapping[str, Any]] = lambda c: {"train": "?", "val": "?", "test": "?"}
    # what each evaluation metric means and which way is better (e.g. `Classifier.METRICS`);
    # lr selection, verdicts and figures read a metric's direction from here
    metrics: tuple[Metric, ...] = ()

    def __post_init__(self) -> None:
        names = [m.name for m in self.metrics]
        if "loss" not in names or len(set(names)) != len(names):
            raise ValueError(f"task {self.name!r} must declare its metrics once each, `loss` among "
                             f"them (metrics=...; e.g. Classifier.METRICS), got {names}")
        if tuple(self.presets) != PRESETS:
            raise ValueError(f"task {self.name!r} defines presets {tuple(self.presets)}, "
                             f"expected {PRESETS}")


@dataclass(frozen=True)
class Task:
    """A task at one preset with its overrides applied (see `tasks.get_task`)."""

    spec: TaskSpec
    preset: str
    config: Any

    @classmethod
    def of(cls, spec: TaskSpec, preset: str = "quick", **overrides: Any) -> Task:
        """`spec` at `preset` (one of `PRESETS`) with typed `overrides` of its config."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        return cls(spec=spec, preset=preset,
                   config=apply_overrides(spec.presets[preset], spec.name, overrides))

    @property
    def name(self) -> str:
        return self.spec.name

    def build(self, optimizer_factory: OptimizerFactory,
              seed: int) -> tuple[TaskModule, pl.LightningDataModule]:
        """The module (initialised from `seed`) and its data module (order fixed by `seed`)."""
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        return self.spec.build(self.config, optimizer_factory, seed)

    def trainer_kwargs(self) -> dict[str, Any]:
        """The task's cadence and precision for `pl.Trainer`: nothing about devices or loggers.

        No sanity validation before training: the tasks' evaluation is tested, and in a sweep
        those batches would be evaluated once per run for nothing. On a GPU, float32 matrix
        products run on TF32 tensor cores (`torch.set_float32_matmul_precision("high")`), as
        every run of every optimizer does alike.
        """
        c = self.config
        if torch.cuda.is_available():  # TF32 tensor cores for float32 matmuls (cuDNN's convolutions use them by default)
            torch.set_float32_matmul_precision("high")
        return {"max_steps": c.max_steps, "val_check_interval": c.val_every,
                "check_val_every_n_epoch": None, "log_every_n_steps": c.log_every,
                "num_sanity_val_steps": 0, "precision": c.precision}

    def describe(self) -> dict[str, Any]:
        """What the task is, its model and size, its steps per preset, its data source and the
        sizes of its train / validation / test parts."""
        net = self.spec.make_net(self.config)
        return {
            "task": self.name,
            "preset": self.preset,
            "summary": self.spec.summary,
            "model": self.spec.model(self.config),
            "parameters": sum(p.numel() for p in net.parameters()),
            "batch_size": self.config.batch_size,
            "steps": {name: cfg.max_steps for name, cfg in self.spec.presets.items()},
            "data": self.spec.data_source(self.config),
            "splits": dict(self.spec.splits(self.config)),
        }
