"""Evaluate a task's freshly initialised model with Lightning on N CPU processes (gloo DDP).

    python -m tests.tasks.validate_on_cpus TASK N OUT.json

Every process builds the same weights from seed 0; rank 0 writes the logged metrics to OUT.
"""

from __future__ import annotations

import json
import sys

import pytorch_lightning as pl
import torch

from annealbench.tasks import get_task


def main(task_name: str, devices: int, out: str) -> None:
    torch.set_num_threads(1)
    task = get_task(task_name, "smoke")
    module, data = task.build(lambda g, n: torch.optim.SGD(g, lr=0.1), seed=0)
    strategy = "ddp" if devices > 1 else "auto"
    trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy=strategy, logger=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.validate(module, datamodule=data, verbose=False)
    if trainer.global_rank == 0:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k != "step"}
        with open(out, "w", encoding="utf-8") as f:
            json.dump(metrics, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
