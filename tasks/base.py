"""The Lightning module every task shares: optimizer wiring, logging cadence, divergence.

A task supplies a network and three small functions (training loss, evaluation sums, evaluation
metrics); everything else lives here once:

- `configure_optimizers` calls the runner's factory with two parameter groups (weight decay off,
  `weight_decay=0.0`, for tensors with fewer than two dimensions: biases, norm weights, the
  quadratic's iterate) and the budget τ = `max_steps`.
- Training metrics are logged every `log_every` steps and only then read on the host:
  `train/loss` (mean over the steps since the last log), `opt/mu_t` (the radius μ[t] the
  optimizer wrote into `group["mu_t"]`, else the group's `lr`), `opt/rms_step` (the optimizer's
  `group["rms_step"]` when it writes one, else measured on that step alone as
  sqrt(mean_i Δ²[t+1,i]) over all coordinates from a snapshot of the weights) and
  `time/elapsed_s` (wall time since training started).
- A non-finite mean training loss at a log step stops the fit and sets `diverged_at_step`.
- Optimizers with `.train()`/`.eval()` (schedule-free AdamW) are switched to evaluation weights
  for every evaluation and back afterwards; checkpoints are always written in training mode.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from tasks import seeding

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[list[dict], int], torch.optim.Optimizer]


def param_groups(net: nn.Module) -> list[dict]:
    """Parameters with ≥ 2 dimensions (decayed), then the rest with `weight_decay=0.0`."""
    decay, no_decay = [], []
    for _, p in net.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def _as_float(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


class TaskModule(pl.LightningModule):
    """Base module; subclasses implement `training_loss`, `eval_sums` and `eval_metrics`."""

    def __init__(self, net: nn.Module, optimizer_factory: OptimizerFactory, *, total_steps: int,
                 log_every: int, seed: int, reseed_dropout: bool = False) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer_factory
        self.total_steps = total_steps
        self.log_every = log_every
        self.seed = seed
        self.reseed_dropout = reseed_dropout
        self.diverged_at_step: int | None = None
        self._loss_sum: torch.Tensor | None = None
        self._loss_count = 0
        self._snapshot: list[torch.Tensor] | None = None
        self._started = 0.0
        self._val_sums: dict[str, torch.Tensor] = {}

    # --- what a task defines -------------------------------------------------------------
    def training_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        raise NotImplementedError

    def eval_sums(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Sums over the batch, including `count`; added up over the evaluation set."""
        raise NotImplementedError

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """`val/...` metrics from the evaluation set's sums."""
        raise NotImplementedError

    # --- optimizer -----------------------------------------------------------------------
    def configure_optimizers(self) -> torch.optim.Optimizer:
        optimizer = self.optimizer_factory(param_groups(self.net), self.total_steps)
        if hasattr(optimizer, "rms_every"):  # MuPhi: reduce Σ Δ² on the logged steps only
            optimizer.rms_every = self.log_every
        return optimizer

    def _optimizer(self) -> torch.optim.Optimizer:
        return self.trainer.optimizers[0]

    def _set_optimizer_mode(self, mode: str) -> None:
        switch = getattr(self._optimizer(), mode, None) if self.trainer.optimizers else None
        if callable(switch):
            switch()

    # --- training ------------------------------------------------------------------------
    def on_train_start(self) -> None:
        self._started = time.perf_counter()
        self._set_optimizer_mode("train")

    def on_train_end(self) -> None:
        self._set_optimizer_mode("eval")  # the final weights are the evaluation weights

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self.reseed_dropout:  # dropout masks are a function of (seed, step): resumable
            torch.manual_seed(seeding.derive_seed(self.seed, seeding.DROPOUT, self.global_step))

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch)
        detached = loss.detach().float()
        self._loss_sum = detached if self._loss_sum is None else self._loss_sum + detached
        self._loss_count += 1
        return loss

    def _is_log_step(self, step: int) -> bool:
        return step % self.log_every == 0

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self._is_log_step(self.global_step + 1) and not getattr(optimizer, "track_rms", False):
            self._snapshot = [p.detach().clone() for g in optimizer.param_groups
                              for p in g["params"]]

    def _rms_step(self, optimizer: torch.optim.Optimizer) -> float:
        groups = optimizer.param_groups
        if all(g.get("rms_step") is not None for g in groups):
            self._snapshot = None
            sizes = [sum(p.numel() for p in g["params"]) for g in groups]
            total = sum(_as_float(g["rms_step"]) ** 2 * n for g, n in zip(groups, sizes))
            return math.sqrt(total / sum(sizes))
        if self._snapshot is None:
            return math.nan
        params = [p for g in groups for p in g["params"]]
        with torch.no_grad():
            sq = sum(((p.detach() - old) ** 2).sum() for p, old in zip(params, self._snapshot))
            n = sum(p.numel() for p in params)
        self._snapshot = None
        return math.sqrt(_as_float(sq) / n)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = self.global_step
        if not self._is_log_step(step) or self._loss_sum is None:
            return
        loss = _as_float(self._loss_sum) / self._loss_count
        self._loss_sum, self._loss_count = None, 0
        optimizer = self._optimizer()
        group = optimizer.param_groups[0]
        metrics = {
            "train/loss": loss,
            "opt/mu_t": _as_float(group.get("mu_t", group["lr"])),
            "opt/rms_step": self._rms_step(optimizer),
            "time/elapsed_s": time.perf_counter() - self._started,
        }
        # Straight to the loggers, at the number of optimizer steps taken: `self.log` costs
        # 1-2 ms per metric on a CPU (it moves a torchmetrics object on every call), as much as a
        # whole step of the small models, and nothing here needs its aggregation.
        for logger in self.loggers:
            logger.log_metrics(metrics, step=step)
        if not math.isfinite(loss):
            log.warning("training loss %s at step %d: stopping (diverged)", loss, step)
            self.diverged_at_step = step
            self.trainer.should_stop = True

    # --- evaluation ----------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_sums = {}
        self._set_optimizer_mode("eval")

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        for key, value in self.eval_sums(batch).items():
            value = value.detach().double()
            previous = self._val_sums.get(key)
            self._val_sums[key] = value if previous is None else previous + value

    def on_validation_epoch_end(self) -> None:
        sums = {k: _as_float(v) for k, v in self._val_sums.items()}
        if sums:
            metrics = {"step": float(self.global_step), **self.eval_metrics(sums)}
            self.log_dict(metrics, on_step=False, on_epoch=True)
        self._set_optimizer_mode("train")

    # --- checkpoints ---------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Checkpoint callbacks run before this module's `on_train_batch_end`: at a log step the
        # pending window is about to be logged and emptied, so the checkpoint holds it empty.
        pending = self._loss_sum is not None and not self._is_log_step(self.global_step)
        checkpoint["annealbench"] = {
            "loss_sum": _as_float(self._loss_sum) if pending else None,
            "loss_count": self._loss_count if pending else 0,
            "diverged_at_step": self.diverged_at_step}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("annealbench", {})
        loss_sum = state.get("loss_sum")
        self._loss_sum = None if loss_sum is None else torch.tensor(loss_sum)
        self._loss_count = state.get("loss_count", 0)
        self.diverged_at_step = state.get("diverged_at_step")


def classification_sums(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Summed cross-entropy, number correct and count for a batch of class logits."""
    loss = nn.functional.cross_entropy(logits.float(), y, reduction="sum")
    correct = (logits.argmax(dim=-1) == y).sum()
    return {"loss": loss, "correct": correct, "count": torch.tensor(y.numel())}


def classification_metrics(sums: dict[str, float]) -> dict[str, float]:
    """`val/loss` (mean cross-entropy, nats) and `val/acc` (fraction correct)."""
    return {"val/loss": sums["loss"] / sums["count"], "val/acc": sums["correct"] / sums["count"]}
