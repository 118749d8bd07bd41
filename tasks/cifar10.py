"""CIFAR-10 with a CIFAR-style ResNet-18 (`model="resnet18"`) or a small ViT (`model="vit"`).

Data: the verified python-version batches (`tasks.cifar_data`) from the override `data_dir`,
else `$ANNEALBENCH_DATA/cifar10`, else `~/.cache/annealbench/cifar10`; with `download=True` the
published tarball is fetched there first when the files are missing. Images stay in memory as
uint8; each training batch is augmented as one tensor (random crop with 4 pixels of zero
padding, horizontal flip with probability ½, offsets and flips drawn from the seed's data
stream for that step), then normalised with the training set's channel statistics. Validation
uses `val_images` training images held out from training (drawn from the seed's split stream);
the test metrics use the first `test_images` images of the test batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from tasks import cifar_data, seeding
from tasks.base import Classifier, OptimizerFactory
from tasks.batches import EpochPermutations, InMemoryDataModule, chunks
from tasks.config import VisionConfig, in_unit_interval, positive
from tasks.errors import DatasetError
from tasks.spec import TaskSpec
from tasks.vision import ResNet18, ViT

# Channel mean and standard deviation of the 50,000 training images (pixel values / 255).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
PAD = 4


@dataclass(frozen=True)
class Cifar10Config(VisionConfig):
    model: Literal["resnet18", "vit"] = "resnet18"
    width: int = 64                  # ResNet-18 base width (64 in He et al.)
    vit_width: int = 192             # ViT embedding width
    vit_depth: int = 6               # ViT blocks
    vit_heads: int = 3               # ViT attention heads
    patch: int = 4                   # ViT patch size in pixels
    dropout: float = 0.0             # ViT dropout
    augment: bool = True             # random crop + flip on training batches
    val_images: int = 5000           # training images held out for validation
    test_images: int = 10000         # test images used for the test metrics
    data_dir: str = ""               # empty: the default location (see `cifar_data.default_root`)
    download: bool = False           # fetch the published tarball when the files are missing
    max_steps: int = 2000
    val_every: int = 500
    log_every: int = 50
    batch_size: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "width", "vit_width", "vit_depth", "vit_heads", "patch", "val_images",
                 "test_images")
        if self.vit_width % self.vit_heads:
            raise ValueError(f"vit_width={self.vit_width} must be divisible by "
                             f"vit_heads={self.vit_heads}")
        in_unit_interval(self, "dropout")


def data_root(cfg: Cifar10Config) -> Path:
    return Path(cfg.data_dir).expanduser() if cfg.data_dir else cifar_data.default_root()


def make_net(cfg: Cifar10Config) -> nn.Module:
    if cfg.model == "resnet18":
        return ResNet18(width=cfg.width)
    return ViT(width=cfg.vit_width, depth=cfg.vit_depth, heads=cfg.vit_heads, patch=cfg.patch,
               dropout=cfg.dropout)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random `PAD`-pixel crop of the zero-padded images and a random horizontal flip."""
    n, _, h, w = images.shape
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    dy, dx = torch.randint(0, 2 * PAD + 1, (2, n), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    cols = dx[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    rows = dy[:, None] + torch.arange(h)
    batch = torch.arange(n)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def load_data(cfg: Cifar10Config) -> dict[str, torch.Tensor]:
    root = data_root(cfg)
    if cfg.download:
        try:
            cifar_data.find_batches(root)
        except DatasetError:
            cifar_data.download(root)
    return cifar_data.load(str(root))


def build(cfg: Cifar10Config, factory: OptimizerFactory, seed: int):
    data = load_data(cfg)
    n_train = len(data["train_y"])
    if not cfg.val_images < n_train:
        raise ValueError(f"val_images={cfg.val_images} leaves none of the {n_train} training "
                         "images to train on")
    perm = torch.randperm(n_train, generator=seeding.generator(seed, seeding.SPLIT))
    held, kept = perm[:cfg.val_images], perm[cfg.val_images:]
    train_x, train_y = data["train_x"][kept], data["train_y"][kept]
    order = EpochPermutations(len(train_y), cfg.batch_size, seed)

    def batch(step: int) -> tuple[torch.Tensor, ...]:
        idx = order.indices(step)
        images = train_x[idx]
        if cfg.augment:
            images = augment(images, seeding.generator(seed, seeding.AUGMENT, step))
        return normalise(images), train_y[idx]

    n_test = min(cfg.test_images, len(data["test_y"]))
    val = chunks((normalise(data["train_x"][held]), data["train_y"][held]), 500)
    test = chunks((normalise(data["test_x"][:n_test]), data["test_y"][:n_test]), 500)
    module = Classifier.create(cfg, lambda: make_net(cfg), factory, seed,
                               reseed_dropout=cfg.model == "vit" and cfg.dropout > 0)
    return module, InMemoryDataModule(batch, val, test)


def _model(cfg: Cifar10Config) -> str:
    if cfg.model == "resnet18":
        return f"ResNet-18 (CIFAR stem), base width {cfg.width}"
    return (f"ViT {cfg.vit_depth} blocks × {cfg.vit_heads} heads, width {cfg.vit_width}, "
            f"patch {cfg.patch}")


SPEC = TaskSpec(
    name="cifar10",
    summary="CIFAR-10 image classification, ResNet-18 or ViT (model=resnet18|vit)",
    presets={
        "smoke": Cifar10Config(width=8, vit_width=16, vit_depth=1, vit_heads=2, max_steps=40,
                               val_every=20, log_every=10, batch_size=16, val_images=40,
                               test_images=200),
        "quick": Cifar10Config(width=8, vit_width=64, vit_depth=2, vit_heads=2, max_steps=300,
                               val_every=15, log_every=15, batch_size=64, val_images=1000,
                               test_images=1000),
        "paper": Cifar10Config(width=64, max_steps=20000, val_every=1000, log_every=100,
                               batch_size=128),
    },
    build=build,
    make_net=make_net,
    model=_model,
    data_source=lambda c: f"CIFAR-10 python batches from {data_root(c)} (not embedded)",
    splits=lambda c: {"train": 50000 - c.val_images, "val": c.val_images,
                      "test": min(c.test_images, 10000)},
    metrics=Classifier.METRICS,
)
