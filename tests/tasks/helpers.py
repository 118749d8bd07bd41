"""Shared pieces of the task tests: a recording logger, a trainer, and the CIFAR-10 fixture."""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers.logger import Logger

logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
logging.getLogger("lightning_fabric").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*LeafSpec.*")


class RecordingLogger(Logger):
    """Keeps every (step, metric, value) row Lightning hands to a logger."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, str, float]] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, *args, **kwargs) -> None:
        return None

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.rows += [(int(step), k, float(v)) for k, v in metrics.items() if k != "epoch"]

    def series(self, metric: str) -> list[tuple[int, float]]:
        return [(s, v) for s, k, v in self.rows if k == metric]


def adamw(lr: float):
    return lambda groups, total_steps: torch.optim.AdamW(groups, lr=lr)


def fit(task, factory, seed: int = 0, ckpt_path: str | None = None, **trainer_kwargs):
    """Train `task` on CPU the way the runner does; returns (module, logger, trainer)."""
    module, datamodule = task.build(factory, seed=seed)
    logger = RecordingLogger()
    kwargs = {**task.trainer_kwargs(), "logger": logger, "accelerator": "cpu", "devices": 1,
              "enable_progress_bar": False, "enable_model_summary": False,
              "enable_checkpointing": False, "num_sanity_val_steps": 0, **trainer_kwargs}
    trainer = pl.Trainer(**kwargs)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return module, logger, trainer


LABEL_NAMES = [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                    "frog", "horse", "ship", "truck")]


def write_cifar_fixture(root: Path, per_batch: int = 40, seed: int = 0) -> Path:
    """Tiny random CIFAR-10 in the exact python-batch format, with an MD5SUMS manifest.

    Images are class-dependent (a per-class mean colour plus noise) so a model can learn them.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 216, size=(10, 3))
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        base = np.repeat(colours[labels], 1024, axis=1)  # (n, 3072) channel-major like CIFAR
        data = np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8)
        batch = {b"batch_label": f"{name} of fixture".encode(), b"labels": labels,
                 b"data": data, b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"num_cases_per_batch": per_batch, b"label_names": LABEL_NAMES, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    write_manifest(folder)
    return folder


def write_manifest(folder: Path) -> None:
    lines = [f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.name}"
             for p in sorted(folder.iterdir()) if p.name != "MD5SUMS"]
    (folder / "MD5SUMS").write_text("\n".join(lines) + "\n")


def gpt2_byte_characters() -> dict[int, str]:
    """GPT-2's table from each byte to the printable character standing for it in `vocab.bpe` and
    `encoder.json` (`bytes_to_unicode` of GPT-2's `encoder.py`): printable Latin-1 bytes stand for
    themselves, the other 68 for the characters from U+0100 on, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    for n, b in enumerate(b for b in range(256) if b not in table):
        table[b] = chr(256 + n)
    return table


def gpt2_tokenizer_files(merges: list[tuple[str, str]]) -> tuple[bytes, bytes]:
    """A small tokenizer in GPT-2's published format: (`vocab.bpe`, `encoder.json`).

    `merges` are pairs of tokens written with GPT-2's byte characters ("Ġ" for a space, "Ċ" for
    a newline); ids are GPT-2's: the 256 byte tokens in the order of `gpt2_byte_characters`,
    then one per merge in rank order, then `<|endoftext|>`.
    """
    table = gpt2_byte_characters()
    encoder = {table[b]: i for i, b in enumerate(table)}  # insertion order: printable first
    for first, second in merges:
        encoder[first + second] = len(encoder)
    encoder["<|endoftext|>"] = len(encoder)
    vocab = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    return vocab.encode("utf-8"), json.dumps(encoder, ensure_ascii=False).encode("utf-8")
