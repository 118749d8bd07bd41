"""In-memory data: step-indexed training batches and fixed evaluation batches.

Training data is an endless iterable whose `k`-th batch is a pure function of `(seed, k)`:
examples are visited in epoch-wise permutations drawn from the seed's data stream, so batch `k`
holds positions `[kB, (k+1)B)` of the concatenated permutations. The iterable starts at the
trainer's current step, so a resumed run continues with exactly the batches it would have seen
(Lightning's prefetching does not matter). There are no worker processes: a batch is a gather
from tensors that are already in memory.

Evaluation uses two fixed sets, validation and test (`tasks.base.SPLITS`), handed to Lightning
as two dataloaders; under DDP each of W processes takes every W-th example of each batch, and
the module adds the sums over the processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytorch_lightning as pl
import torch

from tasks import seeding

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


class StepBatches:
    """An endless iterable: `make(step)` for step = start(), start()+1, ..."""

    def __init__(self, make: Callable[[int], Batch], start: Callable[[], int]) -> None:
        self.make, self.start = make, start

    def __iter__(self) -> Iterator[Batch]:
        step = self.start()
        while True:
            yield self.make(step)
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
    """

    def __init__(self, make_batch: Callable[[int], Batch], val_batches: FixedBatches,
                 test_batches: FixedBatches) -> None:
        super().__init__()
        self.make_batch = make_batch
        self.val_batches = val_batches
        self.test_batches = test_batches

    def _current_step(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_step) if trainer is not None else 0

    def train_dataloader(self) -> StepBatches:
        return StepBatches(self.make_batch, self._current_step)

    def val_dataloader(self) -> list[FixedBatches]:
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
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
                              chunks(val, eval_batch), chunks(test, eval_batch))
