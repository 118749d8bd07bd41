"""`last.ckpt` after every validation, replaced atomically.

Lightning's `ModelCheckpoint(save_top_k=0, save_last=True)` writes `last.ckpt` only at the end
of training (it saves "last" only in a step where a top-k checkpoint was saved), so a run killed
mid-way had nothing to resume from. This callback saves the full training state (weights,
optimizer, loops, callback states such as the tidy rows) after each validation to a temporary
sibling and renames it over `last.ckpt`: a kill mid-write leaves the previous checkpoint whole.

A run that finished (done or diverged) needs its checkpoints no more: `remove_checkpoints`
deletes them once its DONE is on disk (`annealbench run --keep-checkpoints` keeps them). A failed or
interrupted run keeps them: its next attempt resumes from them.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from pytorch_lightning import Callback, LightningModule, Trainer

from annealbench.runner.store.atomic import TMP_MARK
from annealbench.runner.store.results_store import RunFolder

log = logging.getLogger(__name__)
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


def remove_checkpoints(run_dir: Path) -> None:
    """Delete the checkpoints of the finished run in `run_dir`: only when its DONE exists, and
    only after the folder's entries are flushed to disk (DONE is renamed into place; the rename
    is durable once the directory is synced), so a crash never leaves a run with neither its
    DONE nor its checkpoints. A failure to delete is logged: the run is finished all the same."""
    folder = RunFolder(run_dir)
    if not folder.checkpoint_dir.exists() or not folder.done_file.exists():
        return
    try:
        fd = os.open(folder.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        shutil.rmtree(folder.checkpoint_dir)
    except OSError as err:
        log.warning("%s: could not delete the checkpoints of a finished run: %s",
                    folder.checkpoint_dir, err)
