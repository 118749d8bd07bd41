"""In-memory data: step-indexed training batches and fixed evaluation batches.

Training data is an endless iterable whose `k`-th batch is a pure function of `(seed, k)`:
examples are visited in epoch-wise permutations drawn from the seed's data stream, so batch `k`
holds positions `[kB, (k+1)B)` of the concatenated permutations. The iterable starts at the
trainer's current step, so a resumed run continues with exactly the batches it would have seen
(Lightning's prefetching does not matter). There are no worker processes: a batch is a gather
from tensors that are already in memory.

Under DDP, `batch_size` is the global batch size. Every one of the W processes builds the
global batch of step `k` exactly as one process would (the same examples, the same random crops
and flips, the same text windows) and then trains on its contiguous block of rows: process `r`
takes rows `[rB/W, (r+1)B/W)`. The blocks are disjoint and together they are the global batch;
with each process's loss the mean over its block and DDP averaging the gradients, an update is
the update of one process on the global batch. A `batch_size` that W does not divide is refused
when training is set up. A training stream whose batches are not rows of `batch_size` examples
(the noisy quadratic's one noise vector) is not split: every process uses the whole batch, and
the update is again that of one process.

Evaluation uses two fixed sets, validation and test (`annealbench.tasks.base.SPLITS`), handed to Lightning
as two dataloaders; under DDP each of W processes takes every W-th example of each batch, and
the module adds the sums over the processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

import pytorch_lightning as pl
import torch

from annealbench.tasks import seeding

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, ...]


class EpochPermutations:
    """Positions of the examples used by step `k`, epoch-wise permutations of `n` examples."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if batch_size > n:
            raise ValueError(f"batch_size={batch_size} exceeds the {n} training examples")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self._recent: dict[int, torch.Tensor] = {}  # the permutations of the last two epochs

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._recent:
            g = seeding.generator(self.seed, seeding.DATA, epoch)
            self._recent = {e: p for e, p in self._recent.items() if e == epoch - 1}
            self._recent[epoch] = torch.randperm(self.n, generator=g)
        return self._recent[epoch]

    def indices(self, step: int) -> torch.Tensor:
        start = step * self.batch_size
        stop = start + self.batch_size
        first, last = start // self.n, (stop - 1) // self.n
        if first == last:
            return self._perm(first)[start - first * self.n: stop - first * self.n]
        head = self._perm(first)[start - first * self.n:]
        return torch.cat([head, self._perm(last)[: stop - last * self.n]])


def is_rows(batch: Batch, batch_size: int | None) -> bool:
    """Whether `batch` is rows of examples: every tensor has one row (dim 0) per example, and
    there are `batch_size` of them (when None: as many as the first tensor has)."""
    tensors = [t for t in batch if isinstance(t, torch.Tensor)]
    if not tensors or any(t.dim() == 0 for t in tensors):
        return False
    rows = tensors[0].shape[0] if batch_size is None else batch_size
    return all(t.shape[0] == rows for t in tensors)


def block(batch: Batch, rank: int, world_size: int) -> Batch:
    """Process `rank`'s contiguous block of a global batch's rows, `[rB/W, (r+1)B/W)` (views,
    no copy); B must be a multiple of W."""
    if world_size == 1:
        return batch
    out = []
    for t in batch:
        if isinstance(t, torch.Tensor):
            share = t.shape[0] // world_size
            t = t[rank * share: (rank + 1) * share]
        out.append(t)
    return tuple(out)


class StepBatches:
    """An endless iterable: `make(step)` for step = start(), start()+1, ..., each global batch
    cut to process `rank`'s block of rows (`block`) when `world_size` > 1."""

    def __init__(self, make: Callable[[int], Batch], start: Callable[[], int], rank: int = 0,
                 world_size: int = 1) -> None:
        self.make, self.start = make, start
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[Batch]:
        step = self.start()
        while True:
            yield block(self.make(step), self.rank, self.world_size)
            step += 1


class FixedBatches:
    """An evaluation set: the same batches, in the same order, every time."""

    def __init__(self, batches: Sequence[Batch]) -> None:
        self.batches = list(batches)

    def examples(self) -> int:
        return sum(b[0].shape[0] for b in self.batches)

    def shard(self, rank: int, world_size: int) -> FixedBatches:
        """Process `rank`'s share: rows `rank`, `rank + W`, ... of every batch.

        Every process sees as many batches as the others (some possibly empty), and together
        they see each example exactly once.
        """
        if world_size == 1:
            return self
        return FixedBatches([tuple(t[rank::world_size] for t in batch) for batch in self.batches])

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def chunks(tensors: Sequence[torch.Tensor], batch_size: int) -> FixedBatches:
    """The evaluation set as consecutive batches (the last one may be smaller)."""
    n = tensors[0].shape[0]
    return FixedBatches([tuple(t[i: i + batch_size] for t in tensors)
                         for i in range(0, n, batch_size)])


class InMemoryDataModule(pl.LightningDataModule):
    """A data module over in-memory tensors; `make_batch(step)` defines the training stream.

    `val_batches` select the learning rate, `test_batches` give the verdicts' metrics.

    `make_batch(step)` is the global batch of `step`. Under DDP each process trains on its
    block of its rows (module docstring). `batch_size`, the global batch size, is the task
    module's `global_batch_size` unless given here. `rows` says whether the training batches
    are rows of examples to split between the processes; None: decided from the first batch
    (`is_rows`), so a stream of something else (a noise vector) is used whole by every process.
    """

    def __init__(self, make_batch: Callable[[int], Batch], val_batches: FixedBatches,
                 test_batches: FixedBatches, *, batch_size: int | None = None,
                 rows: bool | None = None) -> None:
        super().__init__()
        self.make_batch = make_batch
        self.val_batches = val_batches
        self.test_batches = test_batches
        self.batch_size = batch_size
        self.rows = rows
        self._split: dict[int, bool] = {}  # world size → whether the training rows are split

    def _current_step(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_step) if trainer is not None else 0

    def _placement(self) -> tuple[int, int]:
        """(this process's rank, the number of processes): (0, 1) without a trainer."""
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _global_batch_size(self) -> int | None:
        if self.batch_size is not None:
            return self.batch_size
        trainer = getattr(self, "trainer", None)
        module = getattr(trainer, "lightning_module", None) if trainer is not None else None
        return getattr(module, "global_batch_size", None)

    def training_split(self, world_size: int) -> bool:
        """Whether each of `world_size` processes trains on a block of the global batch's rows
        (False: every process uses the whole batch). Raises ValueError when the rows are to be
        split and `world_size` does not divide the global batch size."""
        if world_size == 1:
            return False
        if world_size not in self._split:
            size = self._global_batch_size()
            rows = self.rows
            if rows is None:
                rows = is_rows(self.make_batch(0), size)
                if not rows:
                    log.info("the training batches are not rows of batch_size=%s examples: each "
                             "of the %d processes uses the whole batch", size, world_size)
            if rows:
                if size is None:
                    size = next(t.shape[0] for t in self.make_batch(0)
                                if isinstance(t, torch.Tensor))
                if size % world_size:
                    raise ValueError(
                        f"batch_size={size} (the global batch) cannot be split evenly between "
                        f"the {world_size} processes (world size {world_size}): use a "
                        f"batch_size that is a multiple of {world_size}")
            self._split[world_size] = rows
        return self._split[world_size]

    def setup(self, stage: str) -> None:
        """Refuses, before training starts, a global batch the processes cannot share evenly."""
        if stage == "fit":
            self.training_split(self._placement()[1])

    def train_dataloader(self) -> StepBatches:
        rank, world = self._placement()
        if not self.training_split(world):
            rank, world = 0, 1
        return StepBatches(self.make_batch, self._current_step, rank, world)

    def val_dataloader(self) -> list[FixedBatches]:
        rank, world = self._placement()
        return [self.val_batches.shard(rank, world), self.test_batches.shard(rank, world)]


def sample_batch(tensors: Sequence[torch.Tensor], order: EpochPermutations, step: int) -> Batch:
    """The training batch of `step`: a gather of `order.indices(step)` from every tensor."""
    idx = order.indices(step)
    return tuple(t[idx] for t in tensors)


def supervised(train: Sequence[torch.Tensor], val: Sequence[torch.Tensor],
               test: Sequence[torch.Tensor], batch_size: int, seed: int,
               eval_batch: int = 1024) -> InMemoryDataModule:
    """Training batches in the seed's epoch order; validation and test in fixed chunks."""
    order = EpochPermutations(train[0].shape[0], batch_size, seed)
    return InMemoryDataModule(lambda step: sample_batch(train, order, step),
                              chunks(val, eval_batch), chunks(test, eval_batch),
                              batch_size=batch_size, rows=True)
