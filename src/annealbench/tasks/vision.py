"""Image classifiers for 32×32 inputs: a CIFAR-style ResNet-18 and a small ViT."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from annealbench.tasks.transformer import Block, init_weights


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 conv-BN) shortcut (He et al., 2016)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for CIFAR: 3×3 stem, no max-pool, stages of width w, 2w, 4w, 8w (w=64)."""

    def __init__(self, width: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        stages, cin = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2 ** i
            stages += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(cin, classes)  # the output layer (annealbench.tasks.base.output_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ViT(nn.Module):
    """Vision transformer: `patch`×`patch` patch embedding, learned positions, mean pooling."""

    def __init__(self, *, width: int, depth: int, heads: int, patch: int = 4,
                 dropout: float = 0.0, classes: int = 10, image: int = 32) -> None:
        super().__init__()
        if image % patch:
            raise ValueError(f"patch={patch} must divide the image size {image}")
        self.patches = nn.Conv2d(3, width, patch, stride=patch)
        self.pos = nn.Parameter(torch.zeros(1, (image // patch) ** 2, width))
        self.blocks = nn.Sequential(*[Block(width, heads, dropout, causal=False)
                                      for _ in range(depth)])
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)  # the output layer (annealbench.tasks.base.output_layers)
        init_weights(self, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patches(x).flatten(2).transpose(1, 2) + self.pos
        return self.head(self.ln(self.blocks(x)).mean(dim=1))
