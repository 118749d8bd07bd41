"""The multilayer perceptron of the regression and tabular tasks, and how a task names it."""

from __future__ import annotations

from torch import nn


def mlp(inputs: int, width: int, depth: int, outputs: int = 1) -> nn.Sequential:
    """`depth` hidden layers of `width` GELU units between `inputs` and `outputs` features; the
    last `Linear` is the output layer (`annealbench.tasks.base.output_layers`)."""
    layers: list[nn.Module] = []
    fan_in = inputs
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), nn.GELU()]
        fan_in = width
    return nn.Sequential(*layers, nn.Linear(fan_in, outputs))


def mlp_label(inputs: int, width: int, depth: int, outputs: int = 1) -> str:
    """`MLP 10→64→64→1, GELU`: the network `mlp` builds with these sizes, as a task describes it."""
    return f"MLP {inputs}→{'→'.join([str(width)] * depth)}→{outputs}, GELU"
