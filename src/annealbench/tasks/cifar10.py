"""CIFAR-10 with a CIFAR-style ResNet-18 (`model="resnet18"`) or a small ViT (`model="vit"`).

Data: the verified python-version batches (`annealbench.tasks.cifar_data`) from the override `data_dir`,
else `$ANNEALBENCH_DATA/cifar10`, else `~/.cache/annealbench/cifar10`; with `download=True` the
published tarball is fetched there first when the files are missing. Images stay in memory as
uint8; each training batch is augmented as one tensor (random crop with 4 pixels of zero
padding, horizontal flip with probability ½, offsets and flips drawn from the seed's data
stream for that step), then normalised with the training set's channel statistics. Validation
uses `val_images` training images held out from training (drawn from the seed's split stream);
the test metrics use the first `test_images` images of the test batch.

Training batches are built where the model trains (`TrainingBatches`): the data module's
`setup` moves the training images, once, to the trainer's root device, and every batch is then
gathered, cropped, flipped and normalised there. Only the random draws stay on the host: the
rows, offsets and flips of step k (a few hundred integers) come from the seed's CPU generators
exactly as before and reach the device in one copy, so a batch is the same on every device,
bit for bit on the CPU, and a resumed run sees the batches an uninterrupted one would have.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from annealbench.tasks import cifar_data
from annealbench.tasks import seeding
from annealbench.tasks.base import Classifier, OptimizerFactory
from annealbench.tasks.batches import EpochPermutations, FixedBatches, InMemoryDataModule, chunks
from annealbench.tasks.config import VisionConfig, in_unit_interval, positive
from annealbench.tasks.errors import DatasetError
from annealbench.tasks.task_spec import TaskSpec
from annealbench.tasks.vision import ResNet18, ViT

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


def draw_augmentation(n: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """The random draws of `n` images' augmentation, on the CPU: crop offsets `dy`, `dx` in
    0..2·PAD and flips (a bool each, probability ½), in that order from `generator`."""
    dy, dx = torch.randint(0, 2 * PAD + 1, (2, n), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    return dy, dx, flip


def crop_and_flip(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
                  flip: torch.Tensor) -> torch.Tensor:
    """Image i cropped at rows dy[i].., columns dx[i].. of its `PAD`-pixel zero padding, then
    mirrored left-right where flip[i]: batched ops on the images' device (the draws live there
    too), a contiguous result of the images' shape and dtype."""
    n, _, h, w = images.shape
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # (n, C, 2·PAD+1, 2·PAD+1, h, w), a view
    crops = windows[torch.arange(n, device=images.device), :, dy, dx]
    return torch.where(flip[:, None, None, None], crops.flip(3), crops)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random `PAD`-pixel crop of the zero-padded images and a random horizontal flip."""
    return crop_and_flip(images, *draw_augmentation(len(images), generator))


@functools.lru_cache(maxsize=8)
def _constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """255 and the channel statistics as tensors on `device`, made once per device."""
    return (torch.tensor(255.0, device=device), torch.tensor(MEAN, device=device).view(1, 3, 1, 1),
            torch.tensor(STD, device=device).view(1, 3, 1, 1))


def normalise(images: torch.Tensor) -> torch.Tensor:
    """(images / 255 - MEAN) / STD in float32 on the images' device, in their memory layout.

    Every operation is a true division or subtraction by a tensor on that device: the same
    IEEE arithmetic on every device (a division by a Python number would be a multiplication by
    its reciprocal on a GPU, a different rounding).
    """
    scale, mean, std = _constants(images.device)
    return torch.div(images, scale).sub_(mean).div_(std)


class TrainingBatches:
    """The training stream of one seed: calling it with a step gives that step's (images,
    labels) batch.

    Rows come from the seed's epoch permutations, crop offsets and flips from its augmentation
    stream for that step, all drawn on the CPU as they always were. The images and labels live
    on `device` (the CPU until `to` moves them, which the data module's `setup` does with the
    trainer's root device); the draws reach it in one copy, and the gather, crop, flip and
    normalisation run there. An augmented batch is in channels-last memory format, as the
    crops have always been; an unaugmented one is contiguous.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, order: EpochPermutations,
                 seed: int, augment: bool) -> None:
        self.images, self.labels = images, labels
        self.order, self.seed, self.augment = order, seed, augment

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> TrainingBatches:
        """Keep the images and labels on `device` from now on (moved once; no-op if there)."""
        self.images = self.images.to(device)
        self.labels = self.labels.to(device)
        return self

    def draws(self, step: int) -> torch.Tensor:
        """Step's random draws as one int64 CPU tensor: rows; with augmentation also dy, dx
        and flip (0/1), one row each."""
        idx = self.order.indices(step)
        if not self.augment:
            return idx[None]
        dy, dx, flip = draw_augmentation(len(idx), seeding.generator(self.seed, seeding.AUGMENT, step))
        return torch.stack([idx, dy, dx, flip.long()])

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        # non_blocking: no wait for the device's queue (a blocking copy to a GPU synchronises)
        draws = self.draws(step).to(self.device, non_blocking=True)
        idx = draws[0]
        images = self.images[idx]
        if not self.augment:
            return normalise(images), self.labels[idx]
        images = crop_and_flip(images, draws[1], draws[2], draws[3].bool())
        return normalise(images).contiguous(memory_format=torch.channels_last), self.labels[idx]


class Cifar10Data(InMemoryDataModule):
    """The in-memory data module whose training images move to the trainer's device at `setup`
    (stage `fit`): training batches are built there, without a copy per step."""

    def __init__(self, training: TrainingBatches, val_batches: FixedBatches,
                 test_batches: FixedBatches) -> None:
        super().__init__(training, val_batches, test_batches)
        self.training = training

    def setup(self, stage: str) -> None:
        super().setup(stage)
        trainer = getattr(self, "trainer", None)
        if stage == "fit" and trainer is not None:
            self.training.to(trainer.strategy.root_device)


def load_data(cfg: Cifar10Config) -> dict[str, torch.Tensor]:
    root = data_root(cfg)
    if cfg.download:
        try:
            cifar_data.find_batches(root)
        except DatasetError:
            cifar_data.download(root)
    return cifar_data.load(str(root))


def build(cfg: Cifar10Config, factory: OptimizerFactory, seed: int):
    return build_from(cfg, load_data(cfg), factory, seed)


def build_from(cfg: Cifar10Config, data: dict[str, torch.Tensor], factory: OptimizerFactory,
               seed: int) -> tuple[Classifier, Cifar10Data]:
    """The module and data module of `seed` over `data` (`cifar_data.load`'s tensors: uint8
    images `train_x`, `test_x` of shape (n, 3, 32, 32), int64 labels `train_y`, `test_y`)."""
    n_train = len(data["train_y"])
    if not cfg.val_images < n_train:
        raise ValueError(f"val_images={cfg.val_images} leaves none of the {n_train} training "
                         "images to train on")
    perm = torch.randperm(n_train, generator=seeding.generator(seed, seeding.SPLIT))
    held, kept = perm[:cfg.val_images], perm[cfg.val_images:]
    order = EpochPermutations(len(kept), cfg.batch_size, seed)
    training = TrainingBatches(data["train_x"][kept], data["train_y"][kept], order, seed,
                               cfg.augment)
    n_test = min(cfg.test_images, len(data["test_y"]))
    val = chunks((normalise(data["train_x"][held]), data["train_y"][held]), 500)
    test = chunks((normalise(data["test_x"][:n_test]), data["test_y"][:n_test]), 500)
    module = Classifier.create(cfg, lambda: make_net(cfg), factory, seed,
                               reseed_dropout=cfg.model == "vit" and cfg.dropout > 0)
    return module, Cifar10Data(training, val, test)


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
