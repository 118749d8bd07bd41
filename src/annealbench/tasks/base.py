"""The Lightning module every task shares: optimizer wiring, logging cadence, divergence, evaluation.

A task supplies a network and three small functions (training loss, evaluation sums, evaluation
metrics); everything else lives here once:

- `TaskModule.create` builds the network from the seed's initialisation stream (so a seed fixes
  the weights whatever the optimizer), puts it in channels-last format and compiles it when the
  configuration asks, and wires the cadence.
- `configure_optimizers` calls the runner's factory with two parameter groups (weight decay off,
  `weight_decay=0.0`, for tensors with fewer than two dimensions: biases, norm weights, the
  quadratic's iterate) and the budget τ = `max_steps`. Each group's `muon` says, per tensor,
  whether it is a hidden weight matrix (`hidden_matrices`): Muon takes those and AdamW the rest;
  every other optimizer ignores the key.
- Training metrics are logged every `log_every` steps and only then read on the host:
  `train/loss` (the global batch's loss, in float32 at least, averaged over the steps since the
  last log), `opt/mu_t` (the radius μ[t] the optimizer wrote into `group["mu_t"]`, else the
  group's `lr`), `opt/rms_step` (the optimizer's `group["rms_step"]` when it writes one, else
  measured on that step alone as sqrt(mean_i Δ²[t+1,i]) over all coordinates from a snapshot
  of the weights) and `time/elapsed_s` (wall time since training started).
- Divergence: every step folds "is this step's training loss finite?" into a device-side
  first-bad-step tensor (no host synchronisation); the logged steps read it, and the first
  non-finite loss stops the fit with `diverged_at_step` = that step's 1-based index, exactly.
- Several DDP processes (W > 1) each train on their block of the global batch
  (`annealbench.tasks.batches`) and DDP averages their gradients. Each step's loss is averaged over the
  processes (one all-reduce of a scalar, no host synchronisation on an accelerator) before it
  is added to the logging window and checked for divergence, so `train/loss`, the first bad
  step and the checkpointed window are those of the global batch and the same on every
  process. In `setup`, before DDP wraps the network, its batch-norm layers become
  `torch.nn.SyncBatchNorm` (`torch.nn.SyncBatchNorm.convert_sync_batchnorm`, as Lightning's
  `sync_batchnorm=True` does), or `CpuSyncBatchNorm` for processes on CPU, where torch refuses
  SyncBatchNorm: the statistics are those of the global batch, as with one process. This
  happens under DDP only; one process keeps the plain layers.
- Evaluation runs over two fixed sets, validation then test; the task's `eval_metrics` names its
  metrics `val/...`, and the same metrics of the test set are logged as `test/...`. The sums are
  added over every process before the metrics are formed, so several DDP processes (each taking
  every W-th example) report the metric of the whole set.
- Optimizers with `.train()`/`.eval()` (schedule-free AdamW) are switched to evaluation weights
  for every evaluation and back afterwards; checkpoints are always written in training mode.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, ClassVar, Self

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch import nn

from annealbench.common.metrics import ACCURACY, Metric, loss
from annealbench.tasks import seeding

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[list[dict], int], torch.optim.Optimizer]
SPLITS: tuple[str, ...] = ("val", "test")   # the evaluation sets, in dataloader order


def init_net(make_net: Callable[[], nn.Module], seed: int) -> nn.Module:
    """`make_net()` with torch's global generator seeded from `seed`'s initialisation stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeding.derive_seed(seed, seeding.INIT))
        return make_net()


def split_metrics(metrics: dict[str, float], split: str) -> dict[str, float]:
    """`val/...` metric names renamed to `split/...`."""
    for name in metrics:
        if not name.startswith("val/"):
            raise ValueError(f"eval_metrics must name its metrics 'val/...', got {name!r}")
    return {f"{split}/{name[4:]}": value for name, value in metrics.items()}


HIDDEN_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
EMBEDDINGS: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)
_UNDECLARED = object()


def output_layers(net: nn.Module) -> tuple[nn.Module, ...]:
    """The layers that produce the network's output (its head): `net.head` where the network
    names one (a module, or a tuple or list of modules; None: no head); else, for an
    `nn.Sequential`, its last top-level `Linear`/`Conv` layer; else none. A network whose output
    is read through its token embedding (the character GPT's tied head) needs none: embedding
    weights are never hidden matrices."""
    head = getattr(net, "head", _UNDECLARED)
    if head is _UNDECLARED:
        if isinstance(net, nn.Sequential):
            return tuple([m for m in net if isinstance(m, HIDDEN_LAYERS)][-1:])
        return ()
    if head is None:
        return ()
    return tuple(head) if isinstance(head, (tuple, list)) else (head,)


def hidden_matrices(net: nn.Module) -> list[nn.Parameter]:
    """The hidden weight matrices, in `net.parameters()` order: the weights of the `Linear` and
    `Conv1d/2d/3d` layers outside the head (`output_layers`), less any tensor that is also an
    embedding's weight (tied to it). Everything else — token and position embeddings, the head,
    biases, norms' gains, any tensor below two dimensions — is not one. Muon takes these
    (a convolution kernel as the matrix out_channels × in_channels·kh·kw) and AdamW the rest,
    as Muon is run in practice (Jordan et al. 2024; Liu et al. 2025, Moonlight)."""
    head = {id(p) for layer in output_layers(net) for p in layer.parameters()}
    embedded = {id(m.weight) for m in net.modules() if isinstance(m, EMBEDDINGS)}
    weights = {id(m.weight) for m in net.modules()
               if isinstance(m, HIDDEN_LAYERS) and isinstance(m.weight, nn.Parameter)}
    return [p for p in net.parameters() if id(p) in weights - head - embedded]


def param_groups(net: nn.Module) -> list[dict]:
    """Parameters with ≥ 2 dimensions (decayed), then the rest with `weight_decay=0.0`.

    Each group's `muon` marks which tensors Muon takes: a tuple with one flag per tensor of the
    first group (True for a hidden matrix, `hidden_matrices`), False for the second. Only
    `muon` reads it (`annealbench.optimizers.peers.muon_flags`); the groups, their tensors and their order
    are what every optimizer sees either way."""
    hidden = {id(p) for p in hidden_matrices(net)}
    decay, no_decay = [], []
    for _, p in net.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "muon": tuple(id(p) in hidden for p in decay)})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "muon": False})
    return groups


class _SumOverProcesses(torch.autograd.Function):
    """The sum of a tensor over every process (all-reduce); its gradient is the sum of the
    processes' gradients, so each process's backward pass carries every process's share."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return _SumOverProcesses.apply(grad)


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """`torch.nn.SyncBatchNorm` for DDP processes on CPU (gloo), which torch refuses there: in
    training, batch norm with the statistics of the global batch of every process.

    The per-channel mean and (biased) variance are formed in two passes over the processes'
    rows, each an autograd-aware all-reduce of the processes' sums (so the backward pass adds
    every process's share, as SyncBatchNorm's does), in float32 at least; the running
    statistics are updated as `BatchNorm` updates them (the unbiased variance, momentum or a
    cumulative average). Evaluation, and training without a process group, are plain batch
    norm. Inputs of any number of dimensions ≥ 2 (N, C, ...).
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(input)
        self._check_input_dim(input)
        x = input.to(torch.promote_types(input.dtype, torch.float32))
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        rows = torch.tensor([x.numel() // x.shape[1]], dtype=torch.long)
        dist.all_reduce(rows)
        count = float(rows)
        mean = _SumOverProcesses.apply(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = _SumOverProcesses.apply((centred * centred).sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                      else self.momentum)
            with torch.no_grad():
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                unbiased = var.detach() * (count / max(count - 1.0, 1.0))
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        return out.to(input.dtype)


def _cpu_sync_batch_norm(net: nn.Module) -> nn.Module:
    """`net` with every batch-norm layer replaced by a `CpuSyncBatchNorm` holding the same
    parameters and running statistics (as `torch.nn.SyncBatchNorm.convert_sync_batchnorm`)."""
    if isinstance(net, nn.modules.batchnorm._BatchNorm) and not isinstance(net, SYNC_NORMS):
        sync = CpuSyncBatchNorm(net.num_features, net.eps, net.momentum, net.affine,
                                net.track_running_stats)
        if net.affine:
            sync.weight, sync.bias = net.weight, net.bias
        sync.running_mean, sync.running_var = net.running_mean, net.running_var
        sync.num_batches_tracked = net.num_batches_tracked
        sync.train(net.training)
        if hasattr(net, "qconfig"):
            sync.qconfig = net.qconfig
        return sync
    for name, child in net.named_children():
        converted = _cpu_sync_batch_norm(child)
        if converted is not child:
            net.add_module(name, converted)
    return net


SYNC_NORMS: tuple[type[nn.Module], ...] = (nn.SyncBatchNorm, CpuSyncBatchNorm)


def sync_batch_norm(net: nn.Module, device: torch.device | str) -> nn.Module:
    """`net` with its batch norm synchronised over the DDP processes, the same parameters and
    running statistics kept: `torch.nn.SyncBatchNorm` on an accelerator, `CpuSyncBatchNorm`
    for processes on CPU (`device`: where the processes train)."""
    if torch.device(device).type == "cpu":
        return _cpu_sync_batch_norm(net)
    return nn.SyncBatchNorm.convert_sync_batchnorm(net)


def has_batch_norm(net: nn.Module) -> bool:
    """Whether `net` holds batch norm that is not yet synchronised over processes."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, SYNC_NORMS)
               for m in net.modules())


def _as_float(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


class TaskModule(pl.LightningModule):
    """Base module; subclasses implement `training_loss`, `eval_sums` and `eval_metrics`, and
    declare in `METRICS` what each metric `eval_metrics` returns means (annealbench.common.metrics).

    `global_batch_size` is the configuration's `batch_size` (set by `create`; None when
    unknown): the rows of one step's batch over all processes, which `annealbench.tasks.batches` splits
    between DDP processes. `setup` synchronises batch norm over the processes when the trainer
    runs more than one (module docstring).
    """

    METRICS: ClassVar[tuple[Metric, ...]] = ()

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
        self._first_bad: torch.Tensor | None = None   # 1-based step of the first non-finite loss
        self._eval_sums: list[dict[str, torch.Tensor]] = [{} for _ in SPLITS]
        self.global_batch_size: int | None = None

    @classmethod
    def create(cls, cfg: Any, make_net: Callable[[], nn.Module], optimizer_factory:
               OptimizerFactory, seed: int, **kwargs: Any) -> Self:
        """The module for config `cfg` (a `TrainConfig`) with the network `make_net()` builds.

        The network is initialised from `seed`'s initialisation stream, converted to
        channels-last when `cfg.channels_last`, and compiled in place when `cfg.compile_model`.
        """
        net = init_net(make_net, seed)
        if getattr(cfg, "channels_last", False):
            net = net.to(memory_format=torch.channels_last)
        if cfg.compile_model:
            net.compile()
        module = cls(net, optimizer_factory, total_steps=cfg.max_steps, log_every=cfg.log_every,
                     seed=seed, **kwargs)
        module.global_batch_size = getattr(cfg, "batch_size", None)
        return module

    def setup(self, stage: str) -> None:
        """Under DDP (more than one process), batch norm becomes SyncBatchNorm (`CpuSyncBatchNorm`
        on CPU) before the strategy wraps the network and the optimizer is built."""
        if self._world_size() > 1 and has_batch_norm(self.net):
            self.net = sync_batch_norm(self.net, self.trainer.strategy.root_device)

    def _world_size(self) -> int:
        trainer = self._trainer
        return trainer.world_size if trainer is not None else 1

    # --- what a task defines -------------------------------------------------------------
    def training_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        raise NotImplementedError

    def eval_sums(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Sums over the batch, including `count`; added up over the evaluation set."""
        raise NotImplementedError

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """Metrics named `val/...` from an evaluation set's sums (logged again as `test/...`)."""
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
        detached = self._global_mean(loss.detach().to(torch.promote_types(loss.dtype,
                                                                          torch.float32)))
        self._loss_sum = detached if self._loss_sum is None else self._loss_sum + detached
        self._loss_count += 1
        self._note_if_bad(detached)
        return loss

    def _global_mean(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss of the global batch: the mean of the processes' losses (each the mean over
        an equal block of rows), by one all-reduce; `loss` itself on one process. Not
        `strategy.reduce`, which puts a barrier (a host synchronisation) before it."""
        world = self._world_size()
        if world == 1 or not (dist.is_available() and dist.is_initialized()):
            return loss
        total = loss.clone()
        dist.all_reduce(total)
        return total / world

    def _note_if_bad(self, loss: torch.Tensor) -> None:
        """Record this step (1-based) as the first bad one where `loss` is the first non-finite.

        Elementwise: a loss of shape `(S,)` (a run group's seeds) keeps one first bad step each.
        """
        if self._first_bad is None:  # first step
            self._first_bad = torch.zeros(loss.shape, dtype=torch.long, device=loss.device)
        elif self._first_bad.device != loss.device:  # resumed: loaded on the host
            self._first_bad = self._first_bad.to(loss.device)
        fresh = ~torch.isfinite(loss) & (self._first_bad == 0)
        self._first_bad.masked_fill_(fresh, self.global_step + 1)

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
        first_bad = 0 if self._first_bad is None else int(self._first_bad)
        if first_bad:
            log.warning("non-finite training loss at step %d: stopping (diverged)", first_bad)
            self.diverged_at_step = first_bad
            self.trainer.should_stop = True

    # --- evaluation ----------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._eval_sums = [{} for _ in SPLITS]
        self._set_optimizer_mode("eval")

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int,
                        dataloader_idx: int = 0) -> None:
        sums = self._eval_sums[dataloader_idx]
        for key, value in self.eval_sums(batch).items():
            value = value.detach().double()
            previous = sums.get(key)
            sums[key] = value if previous is None else previous + value

    def _global_sums(self, sums: dict[str, torch.Tensor]) -> dict[str, list[float]]:
        """The sums added over every process (one all-reduce), read on the host: one value per
        model (one model here, S in a run group, whose sums have a leading seed dimension)."""
        keys = sorted(sums)
        stacked = torch.stack([sums[k].reshape(-1) for k in keys])
        if self.trainer.world_size > 1:
            stacked = self.trainer.strategy.reduce(stacked, reduce_op="sum")
        return dict(zip(keys, stacked.tolist()))

    def _split_sums(self) -> list[dict[str, list[float]]]:
        """Each evaluation set's global sums (`SPLITS` order; empty where it was not run)."""
        return [self._global_sums(sums) if sums else {} for sums in self._eval_sums]

    def _evaluation_metrics(self, split_sums: list[dict[str, list[float]]],
                            model: int = 0) -> dict[str, float]:
        """Model `model`'s metrics of every evaluation set, named `val/...`, `test/...`."""
        metrics: dict[str, float] = {}
        for split, sums in zip(SPLITS, split_sums):
            if sums:
                mine = {key: values[model] for key, values in sums.items()}
                metrics |= split_metrics(self.eval_metrics(mine), split)
        return metrics

    def on_validation_epoch_end(self) -> None:
        metrics = self._evaluation_metrics(self._split_sums())
        if metrics:
            # Every process holds the same, already global values: Lightning's `sync_dist`
            # averages identical copies (exact), and keeps it from warning about unsynced metrics.
            self.log_dict({"step": float(self.global_step), **metrics}, on_step=False,
                          on_epoch=True, add_dataloader_idx=False, sync_dist=True)
        self._set_optimizer_mode("train")

    # --- checkpoints ---------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Checkpoint callbacks run before this module's `on_train_batch_end`: at a log step the
        # pending window is about to be logged and emptied, so the checkpoint holds it empty.
        pending = self._loss_sum is not None and not self._is_log_step(self.global_step)
        # `tolist`: a number for one model, a list for a run group's seeds
        checkpoint["annealbench"] = {
            "loss_sum": self._loss_sum.tolist() if pending else None,
            "loss_count": self._loss_count if pending else 0,
            "first_bad_step": 0 if self._first_bad is None else self._first_bad.tolist(),
            "diverged_at_step": self.diverged_at_step}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("annealbench", {})
        loss_sum = state.get("loss_sum")
        self._loss_sum = None if loss_sum is None else torch.tensor(loss_sum)
        self._loss_count = state.get("loss_count", 0)
        self.diverged_at_step = state.get("diverged_at_step")
        first_bad = state.get("first_bad_step", 0)
        self._first_bad = torch.tensor(first_bad) if first_bad else None


def classification_sums(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Summed cross-entropy, number correct and count; logits `(..., C)`, labels `(...)`."""
    logits, y = logits.flatten(0, -2).float(), y.flatten()
    loss = nn.functional.cross_entropy(logits, y, reduction="sum")
    correct = (logits.argmax(dim=-1) == y).sum()
    return {"loss": loss, "correct": correct, "count": torch.tensor(y.numel())}


class Classifier(TaskModule):
    """`net(x)` gives class logits `(..., C)` for labels `y` `(...)`: cross-entropy, accuracy.

    `val/loss` is the mean cross-entropy in nats per label, `val/acc` the fraction correct.
    """

    METRICS: ClassVar[tuple[Metric, ...]] = (loss("nats per label"), ACCURACY)

    def training_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self.net(x).flatten(0, -2), y.flatten())

    def eval_sums(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x, y = batch
        return classification_sums(self.net(x), y)

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        return {"val/loss": sums["loss"] / sums["count"],
                "val/acc": sums["correct"] / sums["count"]}


class Regressor(TaskModule):
    """`net(x)` predicts targets `y` of the same shape: mean squared error.

    `val/loss` = Σ (net(x) − y)² / (number of target values).
    """

    METRICS: ClassVar[tuple[Metric, ...]] = (loss("mean squared error (target units squared)"),)

    def training_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.net(x).reshape(y.shape), y)

    def eval_sums(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x, y = batch
        se = ((self.net(x).reshape(y.shape).float() - y) ** 2).sum()
        return {"se": se, "count": torch.tensor(y.numel())}

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        return {"val/loss": sums["se"] / sums["count"]}
