"""`last.ckpt` after every validation, replaced atomically.

Lightning's `ModelCheckpoint(save_top_k=0, save_last=True)` writes `last.ckpt` only at the end
of training (it saves "last" only in a step where a top-k checkpoint was saved), so a run killed
mid-way had nothing to resume from. This callback saves the full training state (weights,
optimizer, loops, callback states such as the tidy rows) after each validation to a temporary
sibling and renames it over `last.ckpt`: a kill mid-write leaves the previous checkpoint whole.
"""

from __future__ import annotations

import os
from pathlib import Path

from pytorch_lightning import Callback, LightningModule, Trainer

from bench.atomic import TMP_MARK

LAST = "last.ckpt"


class LastCheckpoint(Callback):
    """Keep `dirpath/last.ckpt` at the state after the latest validation."""

    def __init__(self, dirpath: Path) -> None:
        self.path = Path(dirpath) / LAST
        self._saved_step = -1

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.global_step == self._saved_step:
            return
        self._saved_step = trainer.global_step
        tmp = self.path.with_name(f".{LAST}{TMP_MARK}{os.getpid()}")
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(tmp)  # a collective call: every rank, rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        trainer.strategy.barrier("last_checkpoint")
