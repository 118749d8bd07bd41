"""The shared task machinery: exact divergence step, GPU options, held-out splits, DDP evaluation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from annealbench.tasks import get_task
from annealbench.tasks import sklearn_data
from annealbench.tasks.base import split_metrics
from tests.tasks.helpers import adamw, fit

ROOT = Path(__file__).parents[2]


class _PoisonAfter(torch.optim.SGD):
    """SGD that overwrites every weight with NaN at its `at`-th step."""

    def __init__(self, params, at: int) -> None:
        super().__init__(params, lr=1e-3)
        self.at, self.steps = at, 0

    def step(self, closure=None):
        loss = super().step(closure)
        self.steps += 1
        if self.steps == self.at:
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.fill_(math.nan)
        return loss


@pytest.mark.parametrize("poisoned, stops", [(17, 20), (9, 10), (1, 10)])
def test_divergence_reports_the_exact_step_and_stops_at_the_next_log(poisoned, stops):
    # Weights are NaN after `poisoned` steps, so the loss of step `poisoned + 1` is the first
    # non-finite one; it is read at the next logged step (every 10), where the fit stops.
    task = get_task("quadratic", "smoke", log_every=10, val_every=30)
    module, logger, trainer = fit(task, lambda g, n: _PoisonAfter(g, poisoned))
    assert module.diverged_at_step == poisoned + 1
    assert trainer.global_step == stops
    assert not math.isfinite(logger.series("train/loss")[-1][1])


def test_a_finite_run_reports_no_divergence():
    module, _, trainer = fit(get_task("quadratic", "smoke"), lambda g, n: _PoisonAfter(g, 10**6))
    assert module.diverged_at_step is None and trainer.global_step == 60


def test_bf16_mixed_precision_reaches_the_trainer_and_trains_on_cpu():
    task = get_task("digits", "smoke", precision="bf16-mixed")
    assert task.trainer_kwargs()["precision"] == "bf16-mixed"
    module, logger, trainer = fit(task, adamw(3e-3), seed=1)
    assert type(trainer.precision_plugin).__name__ == "MixedPrecision"
    assert module.diverged_at_step is None
    losses = [v for _, v in logger.series("train/loss")]
    assert losses[-1] < losses[0] and math.isfinite(logger.series("test/loss")[-1][1])


def test_gpu_options_default_to_changing_nothing():
    task = get_task("digits", "quick")
    assert (task.config.precision, task.config.channels_last, task.config.compile_model) == \
        ("32-true", False, False)
    module, _ = task.build(adamw(1e-3), seed=0)
    conv = module.net[3].weight  # the second convolution (16 input channels)
    assert conv.is_contiguous() and not conv.is_contiguous(memory_format=torch.channels_last)
    assert getattr(module.net, "_compiled_call_impl", None) is None


def test_channels_last_and_compile_are_applied_to_the_network():
    module, _ = get_task("digits", "smoke", channels_last=True,
                         compile_model=True).build(adamw(1e-3), seed=0)
    assert module.net[3].weight.is_contiguous(memory_format=torch.channels_last)
    assert module.net._compiled_call_impl is not None  # compiled in place: same state_dict keys
    plain, _ = get_task("digits", "smoke").build(adamw(1e-3), seed=0)
    assert module.net.state_dict().keys() == plain.net.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(module.net.parameters(), plain.net.parameters()))


@pytest.mark.parametrize("name, overrides, words", [
    ("digits", {"precision": "fp8"}, ["precision", "'bf16-mixed'", "'fp8'"]),
    ("digits", {"compile_model": 1}, ["compile_model", "bool"]),
    ("digits", {"channels_last": "yes"}, ["channels_last", "bool"]),
    ("quadratic", {"channels_last": True}, ["'channels_last'", "compile_model", "precision"]),
    ("diabetes", {"test_fraction": 0.0}, ["test_fraction", "0.0"]),
    ("diabetes", {"val_fraction": 0.5, "test_fraction": 0.5}, ["val_fraction + test_fraction"]),
    ("teacher", {"noise": -0.1}, ["noise", "-0.1"]),
])
def test_bad_options_raise_naming_them(name, overrides, words):
    with pytest.raises(ValueError) as err:
        get_task(name, "smoke", **overrides)
    for word in words:
        assert word in str(err.value)


def test_split_is_disjoint_complete_and_a_function_of_the_seed():
    train, val, test = sklearn_data.split(442, 0.2, 0.2, seed=7)
    assert sorted(torch.cat([train, val, test]).tolist()) == list(range(442))
    assert (len(train), len(val), len(test)) == (266, 88, 88)
    again = sklearn_data.split(442, 0.2, 0.2, seed=7)
    assert all(torch.equal(a, b) for a, b in zip((train, val, test), again))
    assert not torch.equal(val, sklearn_data.split(442, 0.2, 0.2, seed=8)[1])


@pytest.mark.parametrize("name", ["diabetes", "digits", "shakespeare", "teacher"])
def test_describe_states_the_sizes_the_build_evaluates(name):
    task = get_task(name, "smoke")
    _, data = task.build(adamw(1e-3), seed=3)
    splits = task.describe()["splits"]
    tokens = task.config.block_size if name == "shakespeare" else 1
    assert splits["val"] == data.val_batches.examples() * tokens
    assert splits["test"] == data.test_batches.examples() * tokens
    val, test = (torch.cat([b[0] for b in s.batches]) for s in (data.val_batches,
                                                                data.test_batches))
    assert not torch.equal(val[: len(test)], test[: len(val)])


def test_teacher_training_batches_never_repeat_the_evaluation_sets():
    task = get_task("teacher", "smoke", teacher_seed=5)
    _, data = task.build(adamw(1e-3), seed=5)  # the run seed equals the teacher seed
    evaluated = torch.cat([b[0] for s in (data.val_batches, data.test_batches)
                           for b in s.batches])
    for step in range(3):
        x, _ = data.make_batch(step)
        assert not (x[:, None, :] == evaluated[None]).all(-1).any()


def test_split_metrics_renames_and_refuses_other_prefixes():
    assert split_metrics({"val/loss": 1.0, "val/acc": 0.5}, "test") == \
        {"test/loss": 1.0, "test/acc": 0.5}
    with pytest.raises(ValueError, match="'loss'"):
        split_metrics({"loss": 1.0}, "test")


def _ddp_metrics(tmp_path, task: str, devices: int) -> dict[str, float]:
    out = tmp_path / f"{task}-{devices}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "tests.tasks.validate_on_cpus", task, str(devices),
                    str(out)], cwd=ROOT, env=env, check=True, timeout=300)
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("task", ["digits", "quadratic"])
def test_ddp_reports_the_metrics_of_the_whole_evaluation_sets(tmp_path, task):
    one, two = _ddp_metrics(tmp_path, task, 1), _ddp_metrics(tmp_path, task, 2)
    assert set(one) == set(two) and {"val/loss", "test/loss"} <= set(one)
    for name in one:  # float32 forward passes on other batch shapes: round-off only
        assert two[name] == pytest.approx(one[name], rel=1e-6), name
