"""Run groups (src/annealbench/tasks/stacking.py): each seed of a group trains exactly as its one-seed run.

Equivalence is checked in float64 (Lightning's `64-true`), where the group's batched arithmetic
and the one-seed run's differ only in round-off: the final weights agree to 1e-12 relative.
Metric rows agree to float32 round-off, because the one-seed path itself computes some of them
in float32 (`train/loss` is accumulated in float32, `val/...` values pass through a float32
tensor in `log_dict`, `muphi`'s `rms_step` is a float32 reduction, cross-entropy is evaluated
in float32); the others (`opt/mu_t`, a measured `rms_step`) agree to 1e-12.
"""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from annealbench.optimizers import build_optimizer
from annealbench.tasks import get_task
from annealbench.tasks.stacking import SeedGroupData, SeedGroupModule, build_group, group_blocker
from tests.tasks.helpers import RecordingLogger, fit

SEEDS = (3, 7, 11)
SHORT = {"max_steps": 20, "val_every": 10, "log_every": 5}
TASKS = {
    "quadratic": {"dim": 64},
    "diabetes": {"hidden": 16},
    "digits": {"channels": 4, "hidden": 16},
    "shakespeare": {"layers": 1, "heads": 2, "width": 16, "block_size": 16, "val_tokens": 1024},
}
OPTIMIZERS = {
    "muphi-linear": ("muphi", {"window": "linear"}),
    "muphi-cosine-parcor": ("muphi", {"window": "cosine", "numerator": "parcor",
                                      "weight_decay": 0.1}),
    "muphi-wsd-moment-nesterov": ("muphi", {"window": "linear", "warmup": 0.1, "plateau": 0.5,
                                            "numerator": "moment", "gamma": 0.45}),
    "muphi-root-coupled": ("muphi", {"window": "root", "p": 2, "weight_decay": 0.01,
                                     "decoupled_weight_decay": False}),
    "adamw": ("adamw", {"window": "cosine", "weight_decay": 0.1}),
    "sgd": ("sgd", {"window": "cosine", "momentum": 0.9}),
    "sf-adamw": ("sf-adamw", {"warmup": 0.1}),
}
FLOAT64_EXACT = ("opt/mu_t",)
# The attention's key bias has an exactly zero gradient (softmax is shift-invariant), so its
# Adam-normalised steps are round-off normalised to the step size: 1e-10 there.
WEIGHTS_RTOL = {"shakespeare": 1e-10}
SLOW = {("shakespeare", opt) for opt in OPTIMIZERS if opt != "muphi-linear"}  # ~10 s each


def factory_for(name: str, hparams: dict, lr: float = 1e-2):
    return lambda groups, total: build_optimizer(name, groups, total_steps=total, lr=lr, **hparams)


def fit_group(task, factory, seeds=SEEDS, **trainer_kwargs):
    sinks = [RecordingLogger() for _ in seeds]
    module, data = build_group(task, factory, list(seeds), sinks)
    return _train(task, module, data, **trainer_kwargs), sinks


def _train(task, module, data, logger=False, ckpt_path=None, **trainer_kwargs):
    trainer = pl.Trainer(**{**task.trainer_kwargs(), "logger": logger, "accelerator": "cpu",
                            "devices": 1, "enable_progress_bar": False,
                            "enable_model_summary": False, "enable_checkpointing": False,
                            **trainer_kwargs})
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return module


def rows(logger) -> dict[tuple[int, str], float]:
    return {(s, k): v for s, k, v in logger.rows if k != "time/elapsed_s"}


def assert_rows_close(one: dict, group: dict, rtol: float, exact: tuple[str, ...] = (),
                      exact_rtol: float = 1e-12) -> None:
    assert one.keys() == group.keys(), sorted(set(one) ^ set(group))
    for key, expected in one.items():
        tol = exact_rtol if key[1] in exact else rtol
        same = math.isclose(group[key], expected, rel_tol=tol, abs_tol=1e-300) or \
            (math.isnan(expected) and math.isnan(group[key]))
        assert same, (key, expected, group[key])


def assert_weights_close(one_net: torch.nn.Module, stacked: torch.nn.Module, s: int,
                         rtol: float) -> None:
    stacked_params = dict(stacked.named_parameters())
    for name, p in one_net.named_parameters():
        q = stacked_params[name][s]
        scale = p.detach().abs().max().item()
        assert (q - p).abs().max().item() <= rtol * scale, name


@pytest.mark.parametrize("task_name, opt", [
    pytest.param(t, o, marks=[pytest.mark.slow] if (t, o) in SLOW else [])
    for t in TASKS for o in OPTIMIZERS])
def test_group_equals_one_seed_runs_in_float64(task_name, opt):
    task = get_task(task_name, "smoke", **SHORT, **TASKS[task_name])
    name, hparams = OPTIMIZERS[opt]
    factory = factory_for(name, hparams)
    group, sinks = fit_group(task, factory, precision="64-true")
    # metrics the optimizer does not report itself are measured in float64 on both paths
    exact = FLOAT64_EXACT + (() if name == "muphi" else ("opt/rms_step",))
    for s, seed in enumerate(SEEDS):
        module, logger, _ = fit(task, factory, seed=seed, precision="64-true")
        assert_weights_close(module.net, group.net, s, rtol=WEIGHTS_RTOL.get(task_name, 1e-12))
        assert_rows_close(rows(logger), rows(sinks[s]), rtol=1e-6, exact=exact)
    assert group.diverged_at == [None] * len(SEEDS)


@pytest.mark.parametrize("task_name", [t for t in TASKS if t != "shakespeare"])
def test_group_equals_one_seed_runs_in_float32(task_name):
    task = get_task(task_name, "smoke", **SHORT, **TASKS[task_name])
    factory = factory_for("muphi", {"window": "cosine"})
    group, sinks = fit_group(task, factory)
    for s, seed in enumerate(SEEDS):
        module, logger, _ = fit(task, factory, seed=seed)
        assert_weights_close(module.net, group.net, s, rtol=1e-4)
        one, mine = rows(logger), rows(sinks[s])
        # Δ measured as a difference of float32 weights loses digits to cancellation
        rms = {k for k in one if k[1] == "opt/rms_step"}
        assert_rows_close({k: v for k, v in one.items() if k not in rms},
                          {k: v for k, v in mine.items() if k not in rms}, rtol=1e-4)
        assert all(math.isclose(mine[k], one[k], rel_tol=5e-2) for k in rms)


def _poison(data, from_step: int) -> None:
    """NaN inputs from `from_step` on: the model diverges there."""
    clean = data.make_batch
    data.make_batch = lambda k: tuple(t * math.nan for t in clean(k)) if k >= from_step \
        else clean(k)


def _poisoned_group(task, factory, poisoned: int | None, from_step: int, **trainer_kwargs):
    """A group whose member `poisoned` sees NaN inputs from `from_step` on."""
    built = [task.build(factory, seed=s) for s in SEEDS]
    if poisoned is not None:
        _poison(built[poisoned][1], from_step)
    sinks = [RecordingLogger() for _ in SEEDS]
    module = SeedGroupModule([m for m, _ in built], factory, sinks)
    return _train(task, module, SeedGroupData([d for _, d in built]), **trainer_kwargs), sinks


def _poisoned_one_seed(task, factory, seed: int, from_step: int):
    module, data = task.build(factory, seed=seed)
    _poison(data, from_step)
    logger = RecordingLogger()
    _train(task, module, data, logger=logger)
    return module, logger


# Batch k (0-based) is step k + 1's, so NaN inputs from batch k make step k + 1 the first
# non-finite one; it is read at the next logged step (every 5), where the seed's rows stop:
# at an evaluation step (10), and between evaluations (5), where it is evaluated once more.
@pytest.mark.parametrize("from_step, stop", [(7, 10), (2, 5), (4, 5)])
def test_a_diverged_seed_stops_as_alone_and_leaves_the_others_identical(from_step, stop):
    task = get_task("diabetes", "smoke", **SHORT, **TASKS["diabetes"])
    factory = factory_for("muphi", {"window": "linear"})
    _, clean_sinks = _poisoned_group(task, factory, None, 0)
    group, sinks = _poisoned_group(task, factory, poisoned=1, from_step=from_step)
    assert group.diverged_at == [None, from_step + 1, None]
    alone, logger = _poisoned_one_seed(task, factory, SEEDS[1], from_step)
    assert alone.diverged_at_step == from_step + 1
    assert_rows_close(rows(logger), rows(sinks[1]), rtol=1e-4)  # NaN rows included
    assert max(step for step, _ in rows(sinks[1])) == stop
    assert math.isnan(rows(sinks[1])[(stop, "train/loss")])
    assert math.isnan(rows(sinks[1])[(stop, "test/loss")])
    for s in (0, 2):
        assert rows(sinks[s]) == rows(clean_sinks[s])


def test_every_seed_diverged_stops_the_fit():
    task = get_task("quadratic", "smoke", **SHORT, **TASKS["quadratic"])
    factory = factory_for("sgd", {"window": "constant"}, lr=1e3)
    group, sinks = fit_group(task, factory)
    alone = [fit(task, factory, seed=seed) for seed in SEEDS]
    assert group.diverged_at == [module.diverged_at_step for module, _, _ in alone]
    assert all(step is not None for step in group.diverged_at)
    # the fit stops at the first logged step at or after the last seed's first bad step
    assert group.global_step == max(trainer.global_step for _, _, trainer in alone)
    assert max(group.diverged_at) <= group.global_step < SHORT["max_steps"]
    for s, (_, logger, _) in enumerate(alone):
        assert_rows_close(rows(logger), rows(sinks[s]), rtol=1e-4)


def test_dropout_and_batch_norm_keep_a_task_on_the_one_seed_path():
    vit = get_task("cifar10", "smoke", model="vit", dropout=0.1)
    assert "dropout" in group_blocker(vit)
    with pytest.raises(ValueError, match="one-seed path"):
        build_group(vit, factory_for("adamw", {}), [1, 2], [RecordingLogger()] * 2)
    assert "batch norm" in group_blocker(get_task("cifar10", "smoke", model="resnet18"))
    assert group_blocker(get_task("digits", "smoke")) is None


def test_group_needs_distinct_seeds_and_one_sink_each():
    task = get_task("quadratic", "smoke", **TASKS["quadratic"])
    factory = factory_for("adamw", {})
    with pytest.raises(ValueError, match="seeds must differ"):
        build_group(task, factory, [1, 1], [RecordingLogger()] * 2)
    with pytest.raises(ValueError, match="one metric sink per member"):
        build_group(task, factory, [1, 2], [RecordingLogger()])


@pytest.mark.filterwarnings("ignore:.*callbacks used to create the checkpoint.*")
def test_a_resumed_group_keeps_each_seeds_first_bad_step(tmp_path):
    # Seed 1's first non-finite loss is step 8; the checkpoint of step 9 is written before any
    # logged step has read it, so only the checkpoint's per-seed first bad steps carry it over.
    task = get_task("diabetes", "smoke", **SHORT, **TASKS["diabetes"])
    factory = factory_for("muphi", {"window": "linear"})
    whole, whole_sinks = _poisoned_group(task, factory, poisoned=1, from_step=7)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0, every_n_train_steps=9)
    _poisoned_group(task, factory, poisoned=1, from_step=7, max_steps=9, callbacks=[ckpt],
                    enable_checkpointing=True)
    resumed, sinks = _poisoned_group(task, factory, poisoned=1, from_step=7,
                                     ckpt_path=str(tmp_path / "last.ckpt"))
    assert resumed.diverged_at == whole.diverged_at == [None, 8, None]
    for s in range(len(SEEDS)):
        after = {k: v for k, v in rows(whole_sinks[s]).items() if k[0] > 9}
        assert after and rows(sinks[s]).keys() == after.keys()
        assert_rows_close(after, rows(sinks[s]), rtol=0.0)
