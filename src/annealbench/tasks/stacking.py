"""Run groups: S seeds of one task and optimizer configuration trained as one model.

Each seed's module and data module are built by the task itself (`task.build(factory, seed)`),
so every seed starts from the weights and sees the batches of its one-seed run. The seeds'
networks are stacked along a leading seed dimension (`torch.func.stack_module_state`), and the
task module's own `training_loss` and `eval_sums` run once for all seeds under
`torch.func.vmap(functional_call(...))`.

The group's loss is the sum of the per-seed losses, L = Σ_s L_s, so ∂L/∂w_s = ∂L_s/∂w_s: each
seed's gradient is its own. An elementwise optimizer — one whose update of coordinate i reads
only coordinate i's gradient and state, and scalars that depend on the step count alone (μ[t],
bias corrections): `muphi` with every window and numerator, `adamw`, `sgd`, `sf-adamw` — then
updates each seed's slice exactly as it would update that seed alone. What is not elementwise is
computed here per seed:

- `opt/rms_step` = sqrt(mean_i Δ²[t+1,i]) over the seed's own coordinates, from a snapshot of
  the weights on the logged steps (the optimizer's own reduction, which would run over all
  seeds, is switched off). For an optimizer that reports Δ without the decoupled weight-decay
  shrink (`muphi`: w ← w·(1 - μ[t]λ) + Δ), the shrink is taken out the same way.
- `train/loss` and divergence: every step folds "is seed s's training loss finite?" into a
  device-side first-bad-step tensor of shape `(S,)` (the one-seed module's, elementwise); the
  logged steps read it. A seed whose first non-finite loss was step d has `diverged_at` = d
  exactly, as its one-seed run, and its rows stop where that run's stop: at the first logged
  step ≥ d, which logs its (non-finite) `train/loss` and its last evaluation. Its slice keeps
  computing, apart from the others (nothing in the step mixes seeds), and the fit stops when
  every seed has stopped.
- Evaluation: the sums of every evaluation set carry a leading seed dimension; each seed's
  metrics are formed and named (`val/...`, `test/...`) by the one-seed module's code.

Randomness inside the loss (dropout) would be drawn once for all seeds, and batch norm's running
statistics would be updated through the stacked buffers in place: `group_blocker` names such
tasks, and they stay on the one-seed path.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import pytorch_lightning as pl
import torch
from torch import nn

from annealbench.tasks.base import OptimizerFactory, TaskModule, param_groups
from annealbench.tasks.task_spec import Task

log = logging.getLogger(__name__)


class MetricSink(Protocol):
    """Where one seed's metric rows go (a Lightning logger will do)."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...


def group_blocker(task: Task, net: nn.Module | None = None) -> str | None:
    """Why `task` cannot be trained as a run group, or None when it can (`net`: the task's
    network when the caller has already built it)."""
    net = task.spec.make_net(task.config) if net is None else net
    for name, module in net.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return f"{task.name}: batch norm ({name}) keeps running statistics per seed"
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0:
            return f"{task.name}: dropout ({name}) draws random masks per seed"
    return None


class _Method(nn.Module):
    """`task_module.<method>(batch)` as a module's forward, for `functional_call`."""

    def __init__(self, task_module: TaskModule, method: str) -> None:
        super().__init__()
        self.task = task_module
        self.method = method

    def forward(self, batch: tuple[torch.Tensor, ...]) -> Any:
        return getattr(self.task, self.method)(batch)


def stack_nets(nets: Sequence[nn.Module]) -> nn.Module:
    """A copy of `nets[0]` whose parameters and buffers are the nets' stacked along dim 0."""
    params, buffers = torch.func.stack_module_state(list(nets))
    stacked = copy.deepcopy(nets[0])
    for name, value in params.items():
        owner, _, leaf = name.rpartition(".")
        setattr(stacked.get_submodule(owner), leaf, nn.Parameter(value.detach().clone()))
    for name, value in buffers.items():
        owner, _, leaf = name.rpartition(".")
        setattr(stacked.get_submodule(owner), leaf, value.clone())
    return stacked


class SeedGroupModule(TaskModule):
    """S task modules as one: `self.net` holds their networks stacked along dim 0."""

    def __init__(self, members: Sequence[TaskModule], optimizer_factory: OptimizerFactory,
                 sinks: Sequence[MetricSink]) -> None:
        if len(members) != len(sinks) or not members:
            raise ValueError(f"a run group needs one metric sink per member, got "
                             f"{len(members)} members and {len(sinks)} sinks")
        first = members[0]
        super().__init__(stack_nets([m.net for m in members]), optimizer_factory,
                         total_steps=first.total_steps, log_every=first.log_every, seed=first.seed)
        self.members = list(members)  # a list, not a ModuleList: their own weights are unused
        self.sinks = list(sinks)
        self.seeds = [m.seed for m in members]
        self.diverged_at: list[int | None] = [None] * len(members)
        self._calls = {m: _Method(first, m) for m in ("training_loss", "eval_sums")}
        self._names = {id(p): n for n, p in first.net.named_parameters()}

    # --- the members' own functions, once for all seeds ----------------------------------
    def training_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The seeds' training losses, shape `(S,)`."""
        return self._per_seed("training_loss", batch)

    def eval_sums(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """The seeds' evaluation sums, each of shape `(S,)`."""
        return self._per_seed("eval_sums", batch)

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """One seed's metrics from its sums (the members share one task configuration)."""
        return self.members[0].eval_metrics(sums)

    def _per_seed(self, method: str, batch: tuple[torch.Tensor, ...]) -> Any:
        state = {f"task.net.{k}": v for k, v in (*self.net.named_parameters(),
                                                 *self.net.named_buffers())}
        call = self._calls[method]

        def one(seed_state: dict[str, torch.Tensor], seed_batch: tuple[torch.Tensor, ...]) -> Any:
            return torch.func.functional_call(call, seed_state, (seed_batch,))

        return torch.func.vmap(one, randomness="error")(state, batch)

    def _active(self) -> list[int]:
        """The seeds still logging: not yet found diverged."""
        return [s for s, step in enumerate(self.diverged_at) if step is None]

    def _stopped_now(self) -> list[int]:
        """The seeds whose rows end at this step: those found diverged on it, the first logged
        step at or after their first non-finite loss."""
        every = self.log_every
        return [s for s, at in enumerate(self.diverged_at)
                if at is not None and -(-at // every) * every == self.global_step]

    # --- optimizer -----------------------------------------------------------------------
    def configure_optimizers(self) -> torch.optim.Optimizer:
        """The task's param groups, by name, with the stacked tensors in place of seed 0's."""
        stacked = dict(self.net.named_parameters())
        groups = [{**g, "params": [stacked[self._names[id(p)]] for p in g["params"]]}
                  for g in param_groups(self.members[0].net)]
        optimizer = self.optimizer_factory(groups, self.total_steps)
        if hasattr(optimizer, "track_rms"):  # its one reduction would run over all seeds
            optimizer.track_rms = False
        return optimizer

    def _rms_steps(self, optimizer: torch.optim.Optimizer) -> list[float]:
        """sqrt(mean_i Δ²[t+1,i]) per seed, from the snapshot taken before this step.

        For an optimizer that reports its own `rms_step` on one seed (float32, per group, Δ
        without the decoupled shrink), the same quantity is formed per seed and per group and
        combined as the one-seed module combines the groups' values.
        """
        if self._snapshot is None:
            return [math.nan] * len(self.members)
        own = hasattr(optimizer, "track_rms")
        old = iter(self._snapshot)
        per_group, sizes = [], []
        with torch.no_grad():
            for group in optimizer.param_groups:
                keep = 1.0
                if own and group.get("decoupled_weight_decay") and group["weight_decay"] \
                        and not group.get("weight_decay_in_step"):  # in-step decay is part of Δ
                    keep = 1.0 - group["mu_t"] * group["weight_decay"]
                sq = sum(((p.detach() - next(old) * keep) ** 2).flatten(1).sum(1)
                         for p in group["params"])
                sizes.append(sum(p[0].numel() for p in group["params"]))
                per_group.append(sq)
        self._snapshot = None
        if own:  # as the optimizer reports it: (Σ Δ² in float32 / n).sqrt(), then squared back
            per_group = [(sq.float() / n).sqrt().double() ** 2 * n
                         for sq, n in zip(per_group, sizes)]
        total = sum(per_group)
        return [math.sqrt(v / sum(sizes)) for v in total.tolist()]

    # --- training ------------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        """L = Σ_s L_s, after the one-seed bookkeeping (window sums, first bad step) per seed."""
        return super().training_step(batch, batch_idx).sum()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = self.global_step
        if not self._is_log_step(step) or self._loss_sum is None:
            return
        losses = [v / self._loss_count for v in self._loss_sum.tolist()]
        self._loss_sum, self._loss_count = None, 0
        optimizer = self._optimizer()
        group = optimizer.param_groups[0]
        mu_t = float(group.get("mu_t", group["lr"]))
        rms = self._rms_steps(optimizer)
        first_bad = [0] * len(self.members) if self._first_bad is None else \
            self._first_bad.tolist()
        for s in self._active():
            metrics = {"train/loss": losses[s], "opt/mu_t": mu_t, "opt/rms_step": rms[s],
                       "time/elapsed_s": time.perf_counter() - self._started}
            self.sinks[s].log_metrics(metrics, step=step)
            if first_bad[s]:
                log.warning("seed %d: non-finite training loss at step %d: its run stops "
                            "(diverged)", self.seeds[s], first_bad[s])
                self.diverged_at[s] = first_bad[s]
        if not self._active():
            self.trainer.should_stop = True  # Lightning evaluates once more as it stops
        elif step % self.trainer.val_check_batch and self._stopped_now():
            self._evaluate_stopped()

    def _evaluate_stopped(self) -> None:
        """The evaluation a one-seed run makes as it stops, for the seeds stopping now."""
        trainer = self.trainer
        loaders = trainer.datamodule.val_dataloader()
        self.on_validation_epoch_start()
        with torch.no_grad():
            for idx, loader in enumerate(loaders if isinstance(loaders, list) else [loaders]):
                for i, batch in enumerate(loader):
                    batch = trainer.precision_plugin.convert_input(
                        trainer.strategy.batch_to_device(batch))
                    self.validation_step(batch, i, idx)
        self._log_evaluation(self._stopped_now())
        self._set_optimizer_mode("train")

    # --- evaluation ----------------------------------------------------------------------
    def on_validation_epoch_end(self) -> None:
        self._log_evaluation(sorted(self._active() + self._stopped_now()))
        self._set_optimizer_mode("train")

    def _log_evaluation(self, seeds: list[int]) -> None:
        """Each of `seeds`' metrics from the evaluation sums, to its own sink."""
        split_sums = self._split_sums()
        for s in seeds:
            metrics = self._evaluation_metrics(split_sums, s)
            if metrics:  # values as `LightningModule.log_dict` stores them for a one-seed run
                dtype = torch.get_default_dtype()
                metrics = {k: torch.tensor(v, dtype=dtype).item() for k, v in metrics.items()}
                self.sinks[s].log_metrics(metrics, step=self.global_step)

    # --- checkpoints ---------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The one-seed state with one entry per seed (pending loss sums, first bad steps),
        and the group's seeds and the steps at which seeds were found diverged."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["annealbench_group"] = {"seeds": self.seeds,
                                           "diverged_at": list(self.diverged_at)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["annealbench_group"]
        if state["seeds"] != self.seeds:
            raise ValueError(f"the checkpoint holds the seeds {state['seeds']}, this group "
                             f"trains {self.seeds}")
        super().on_load_checkpoint(checkpoint)
        self.diverged_at = list(state["diverged_at"])


class Lockstep:
    """The members' loaders side by side: batch k is every seed's batch k, stacked on dim 0."""

    def __init__(self, loaders: Sequence[Any]) -> None:
        self.loaders = list(loaders)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for batches in zip(*self.loaders):
            yield tuple(torch.stack(parts) for parts in zip(*batches))

    def __len__(self) -> int:
        return min(len(loader) for loader in self.loaders)


class SeedGroupData(pl.LightningDataModule):
    """The members' data modules, their batches stacked: training and every evaluation loader."""

    def __init__(self, members: Sequence[pl.LightningDataModule]) -> None:
        super().__init__()
        self.members = list(members)

    def _attach(self) -> None:
        for member in self.members:  # their training streams start at the trainer's step
            member.trainer = self.trainer

    def prepare_data(self) -> None:
        for member in self.members:
            member.prepare_data()

    def setup(self, stage: str) -> None:
        self._attach()
        for member in self.members:
            member.setup(stage)

    def train_dataloader(self) -> Lockstep:
        self._attach()
        return Lockstep([m.train_dataloader() for m in self.members])

    def val_dataloader(self) -> Lockstep | list[Lockstep]:
        self._attach()
        loaders = [m.val_dataloader() for m in self.members]
        if isinstance(loaders[0], (list, tuple)):
            return [Lockstep([each[i] for each in loaders]) for i in range(len(loaders[0]))]
        return Lockstep(loaders)


def build_group(task: Task, optimizer_factory: OptimizerFactory, seeds: Sequence[int],
                sinks: Sequence[MetricSink]) -> tuple[SeedGroupModule, SeedGroupData]:
    """The group module and data module of `seeds` (each built by `task.build`)."""
    blocker = group_blocker(task)
    if blocker is not None:
        raise ValueError(f"{blocker}: it cannot run as a run group; use the one-seed path")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a run group's seeds must differ, got {list(seeds)}")
    built = [task.build(optimizer_factory, seed=s) for s in seeds]
    module = SeedGroupModule([m for m, _ in built], optimizer_factory, sinks)
    return module, SeedGroupData([d for _, d in built])
