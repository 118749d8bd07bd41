"""Character-level language modelling of the Python standard library's own English: the help
topics of `pydoc_data.topics` (the reference manual's sections behind `help("if")`, ~465,000
characters), with the character GPT of the `shakespeare` task.

The 79 topics are joined in the order of their sorted names, separated by newlines; the
vocabulary is the sorted set of the text's characters (about 100), and the split is contiguous,
90 / 5 / 5 % (`annealbench.tasks.text.split_sizes`), as the Shakespeare corpus's. The text ships with
Python itself, so it is the running interpreter's (Python 3.11.7: 465,048 characters, 103
distinct); `describe` reports the sizes found. Training windows start at offsets from the seed's
data stream. Evaluation reads `val_tokens` characters of each held-out part in windows of
`block_size` spread evenly over the whole part (`spread`): the held-out topics change from
prose to code examples to tables within a few thousand characters, so the first characters
alone would judge one kind of text. No dropout, so the seeds of a sweep train together as run
groups.
Endpoint: test cross-entropy in nats per character (also `ppl`, `bpc`, `acc`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import torch

from annealbench.tasks import text
from annealbench.tasks.base import OptimizerFactory
from annealbench.tasks.config import TrainConfig, positive
from annealbench.tasks.shakespeare import CharGPT, LanguageModel, language_model, windows
from annealbench.tasks.task_spec import TaskSpec


@lru_cache(maxsize=1)
def corpus() -> text.Corpus:
    """The help topics as characters, split contiguously 90 / 5 / 5 %."""
    from pydoc_data.topics import topics

    doc = "\n".join(topics[name] for name in sorted(topics))
    tokenizer = text.CharTokenizer.from_text(doc)
    ids = tokenizer.encode(doc)
    train, val, _ = text.split_sizes(len(ids))
    return text.Corpus(tokenizer, ids[:train], ids[train:train + val], ids[train + val:])


@dataclass(frozen=True)
class PydocConfig(TrainConfig):
    layers: int = 1                  # transformer blocks
    heads: int = 2                   # attention heads per block
    width: int = 32                  # embedding width
    block_size: int = 32             # context length in characters
    val_tokens: int = 2048           # characters of each held-out part evaluated; 0: all
    dropout: ClassVar[float] = 0.0   # none: the task trains as run groups
    max_steps: int = 200
    val_every: int = 10
    log_every: int = 10
    batch_size: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "layers", "heads", "width", "block_size")
        if self.val_tokens < 0:
            raise ValueError(f"val_tokens must be >= 0 (0: the whole part), got "
                             f"{self.val_tokens!r}")
        if self.width % self.heads:
            raise ValueError(f"width={self.width} must be divisible by heads={self.heads}")


def spread(ids: torch.Tensor, cfg: PydocConfig) -> tuple[torch.Tensor, ...]:
    """`val_tokens // block_size` windows (at least one) at evenly spaced offsets over all of
    `ids`; `val_tokens` 0: the whole part in consecutive windows."""
    block, last = cfg.block_size, len(ids) - cfg.block_size - 1
    fits = last // block + 1
    if cfg.val_tokens == 0:
        return windows(ids, torch.arange(fits) * block, block)
    count = min(fits, max(1, cfg.val_tokens // block))
    return windows(ids, torch.linspace(0, last, count).round().long(), block)


def make_net(cfg: PydocConfig) -> CharGPT:
    return CharGPT(corpus().tokenizer.vocab_size, cfg)


def build(cfg: PydocConfig, factory: OptimizerFactory, seed: int):
    return language_model(cfg, corpus(), "the pydoc topics", lambda: make_net(cfg), factory, seed,
                          held_out=spread)


def _splits(cfg: PydocConfig) -> dict[str, int]:
    c = corpus()
    evaluated = (spread(part, cfg)[1].numel() for part in (c.val, c.test))
    return dict(zip(("train", "val", "test"), (len(c.train), *evaluated)))


SPEC = TaskSpec(
    name="pydoc",
    summary="character-level GPT on Python's own help topics (`pydoc_data`, 90/5/5 split)",
    presets={
        "smoke": PydocConfig(max_steps=40, val_every=20, log_every=10, val_tokens=1024),
        "quick": PydocConfig(),
        "paper": PydocConfig(layers=4, heads=4, width=256, block_size=128, batch_size=64,
                             max_steps=5000, val_every=250, log_every=50, val_tokens=0),
    },
    build=build,
    make_net=make_net,
    model=lambda c: (f"GPT {c.layers} layers × {c.heads} heads, width {c.width}, "
                     f"context {c.block_size}"),
    data_source=lambda c: (f"Python's `pydoc_data.topics` (embedded in the interpreter, "
                           f"{sum(len(p) for p in (corpus().train, corpus().val, corpus().test)):,}"
                           " characters)"),
    splits=_splits,
    metrics=LanguageModel.METRICS,
)
