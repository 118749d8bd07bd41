"""Every embedded task trains through Lightning on CPU: logging, determinism, divergence."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from annealbench.tasks import get_task
from tests.tasks.helpers import adamw, fit

_EVAL = {
    "quadratic": {"loss", "gap"},
    "diabetes": {"loss"},
    "digits": {"loss", "acc"},
    "teacher": {"loss"},
    "shakespeare": {"loss", "acc", "ppl", "bpc"},
    "breast-cancer": {"loss", "acc"},
    "anes96": {"loss", "acc"},
    "sunspots": {"loss"},
    "co2": {"loss"},
    "pydoc": {"loss", "acc", "ppl", "bpc"},
    "logreg": {"loss", "excess", "risk"},
    "deep-linear": {"loss", "gap"},
    "sparse-parity": {"loss", "excess", "acc", "xent"},
}
# every evaluation reports the same metrics on the validation and on the test set
VAL_METRICS = {name: {f"{split}/{m}" for split in ("val", "test") for m in metrics}
               for name, metrics in _EVAL.items()}
TRAIN_METRICS = {"train/loss", "opt/mu_t", "opt/rms_step", "time/elapsed_s"}
LR = {"quadratic": 0.05, "diabetes": 3e-3, "digits": 3e-3, "teacher": 3e-3, "shakespeare": 1e-2,
      "breast-cancer": 3e-2, "anes96": 3e-3, "sunspots": 1e-2, "co2": 1e-2, "pydoc": 1e-2,
      "logreg": 3e-2, "deep-linear": 1e-2, "sparse-parity": 1e-2}


@pytest.mark.parametrize("name", sorted(VAL_METRICS))
def test_smoke_preset_trains_and_logs_at_its_cadence(name):
    task = get_task(name, "smoke")
    cfg = task.config
    module, logger, trainer = fit(task, adamw(LR[name]), seed=3)
    assert trainer.global_step == cfg.max_steps and module.diverged_at_step is None
    metrics = {k for _, k, _ in logger.rows}
    assert metrics == TRAIN_METRICS | VAL_METRICS[name]
    for metric in TRAIN_METRICS:
        steps = [s for s, _ in logger.series(metric)]
        assert steps == list(range(cfg.log_every, cfg.max_steps + 1, cfg.log_every))
    for metric in VAL_METRICS[name]:
        steps = [s for s, _ in logger.series(metric)]
        assert steps == list(range(cfg.val_every, cfg.max_steps + 1, cfg.val_every))
    assert all(math.isfinite(v) for _, _, v in logger.rows)
    losses = [v for _, v in logger.series("train/loss")]
    assert losses[-1] < losses[0]
    assert [v for _, v in logger.series("opt/mu_t")] == pytest.approx([LR[name]] * len(losses))
    assert all(v > 0 for _, v in logger.series("opt/rms_step"))


def test_validation_metrics_are_consistent():
    task = get_task("shakespeare", "smoke")
    _, logger, _ = fit(task, adamw(1e-2))
    (_, loss), (_, ppl), (_, bpc) = (logger.series(m)[-1] for m in ("val/loss", "val/ppl",
                                                                      "val/bpc"))
    assert ppl == pytest.approx(math.exp(loss), rel=1e-6)
    assert bpc == pytest.approx(loss / math.log(2), rel=1e-6)


def test_same_seed_gives_identical_metrics_and_another_seed_does_not():
    def rows(seed):
        _, logger, _ = fit(get_task("digits", "smoke"), adamw(3e-3), seed=seed)
        return [r for r in logger.rows if r[1] != "time/elapsed_s"]

    first = rows(11)
    assert rows(11) == first
    assert rows(12) != first


def test_seed_fixes_initialisation_and_batches_independently_of_the_optimizer():
    task = get_task("shakespeare", "smoke")
    a, data_a = task.build(adamw(1e-3), seed=5)
    b, data_b = task.build(lambda g, n: torch.optim.SGD(g, lr=0.3, momentum=0.9), seed=5)
    c, data_c = task.build(adamw(1e-3), seed=6)
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.net.tok.weight, c.net.tok.weight)
    for step in (0, 1, 57):
        assert all(torch.equal(x, y) for x, y in zip(data_a.make_batch(step),
                                                     data_b.make_batch(step)))
    assert not torch.equal(data_a.make_batch(0)[0], data_c.make_batch(0)[0])
    assert not torch.equal(data_a.make_batch(0)[0], data_a.make_batch(1)[0])


def test_epoch_order_visits_every_example_once_per_epoch():
    from annealbench.tasks.batches import EpochPermutations

    order = EpochPermutations(n=10, batch_size=4, seed=0)
    stream = torch.cat([order.indices(k) for k in range(5)])  # 20 positions = 2 epochs
    assert sorted(stream[:10].tolist()) == list(range(10))
    assert sorted(stream[10:].tolist()) == list(range(10))
    assert not torch.equal(stream[:10], stream[10:])


def test_param_groups_exclude_biases_and_norms_from_weight_decay():
    task = get_task("shakespeare", "smoke")
    seen = {}

    def factory(groups, total_steps):
        seen["groups"], seen["tau"] = groups, total_steps
        return torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.1)

    module, _ = task.build(factory, seed=0)
    optimizer = module.configure_optimizers()
    decay, no_decay = seen["groups"]
    assert seen["tau"] == task.config.max_steps
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    assert all(p.ndim >= 2 for p in decay["params"])
    assert all(p.ndim < 2 for p in no_decay["params"])
    names = {id(p): n for n, p in module.net.named_parameters()}
    assert any(names[id(p)].endswith("ln.weight") for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)


def test_rms_step_is_measured_when_the_optimizer_does_not_write_it():
    # Adam's first step moves every coordinate by lr (m̂/sqrt(v̂) = ±1), and the quadratic's
    # iterate starts at 0 so weight decay adds nothing: the RMS step of step 1 is lr.
    task = get_task("quadratic", "smoke", log_every=1)
    _, logger, _ = fit(task, lambda g, n: torch.optim.Adam(g, lr=0.01, eps=1e-12))
    assert logger.series("opt/rms_step")[0] == (1, pytest.approx(0.01, rel=1e-4))


def test_muphi_reduces_its_rms_step_on_the_logged_steps_only():
    from annealbench.optimizers import MuPhi

    task = get_task("diabetes", "smoke")
    module, logger, _ = fit(task, lambda g, n: MuPhi(g, lr=3e-3, total_steps=n))
    optimizer = module.trainer.optimizers[0]
    assert optimizer.rms_every == task.config.log_every
    rms = logger.series("opt/rms_step")
    assert [s for s, _ in rms] == list(range(task.config.log_every, task.config.max_steps + 1,
                                             task.config.log_every))
    assert all(math.isfinite(v) and v > 0 for _, v in rms)


class _Radius(torch.optim.SGD):
    """SGD that reports a radius and an RMS step the way the suite's optimizers do."""

    def step(self, closure=None):
        loss = super().step(closure)
        for i, group in enumerate(self.param_groups):
            group["mu_t"] = torch.tensor(0.25)
            group["rms_step"] = 0.5 if i == 0 else 2.0
        return loss


def test_mu_t_and_rms_step_come_from_the_param_groups_when_written():
    task = get_task("diabetes", "smoke")
    module, logger, _ = fit(task, lambda g, n: _Radius(g, lr=1e-3))
    sizes = [sum(p.numel() for p in g["params"])
             for g in module.trainer.optimizers[0].param_groups]
    expected = math.sqrt((0.25 * sizes[0] + 4.0 * sizes[1]) / sum(sizes))
    assert {v for _, v in logger.series("opt/mu_t")} == {0.25}
    rms = [v for _, v in logger.series("opt/rms_step")]
    assert rms == pytest.approx([expected] * len(rms))


def test_divergence_stops_the_fit_and_records_the_step():
    task = get_task("quadratic", "smoke", log_every=5, val_every=30)
    module, logger, trainer = fit(task, lambda g, n: torch.optim.SGD(g, lr=1e3))
    assert module.diverged_at_step is not None
    assert trainer.global_step % 5 == 0  # noticed at the first logged step after it
    assert trainer.global_step - 5 < module.diverged_at_step <= trainer.global_step
    assert trainer.global_step < task.config.max_steps
    assert not math.isfinite(logger.series("train/loss")[-1][1])


class _ModeProbe(pl.Callback):
    def __init__(self):
        self.train, self.val = set(), set()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.train.add(trainer.optimizers[0].param_groups[0]["train_mode"])

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        self.val.add(trainer.optimizers[0].param_groups[0]["train_mode"])


def test_schedule_free_optimizer_is_switched_around_evaluation():
    import schedulefree

    probe = _ModeProbe()
    task = get_task("digits", "smoke")
    module, logger, trainer = fit(
        task, lambda g, n: schedulefree.AdamWScheduleFree(g, lr=3e-3, warmup_steps=5),
        callbacks=[probe])
    assert probe.train == {True} and probe.val == {False}
    assert trainer.optimizers[0].param_groups[0]["train_mode"] is False  # ends on eval weights
    losses = [v for _, v in logger.series("val/loss")]
    assert losses[-1] < math.log(10)


@pytest.mark.filterwarnings("ignore:.*callbacks used to create the checkpoint.*")
def test_resumed_run_logs_what_an_uninterrupted_run_logs(tmp_path):
    task = get_task("quadratic", "smoke")
    factory = adamw(0.05)
    _, whole, _ = fit(task, factory, seed=2)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0,
                           every_n_train_steps=30)
    fit(task, factory, seed=2, max_steps=30, callbacks=[ckpt], enable_checkpointing=True)
    _, resumed, _ = fit(task, factory, seed=2, ckpt_path=str(tmp_path / "last.ckpt"))

    def after(logger, step):
        return [r for r in logger.rows if r[0] > step and r[1] != "time/elapsed_s"]

    assert after(resumed, 30) and after(resumed, 30) == after(whole, 30)
