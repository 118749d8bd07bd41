"""get_task: names, presets, typed overrides, the cadence and the description."""

from __future__ import annotations

import pytest

from annealbench.tasks import PRESETS, TASK_NAMES, get_task

EMBEDDED = ("quadratic", "diabetes", "digits", "teacher", "shakespeare", "breast-cancer", "anes96",
            "sunspots", "co2", "pydoc", "logreg", "deep-linear", "sparse-parity")


def test_names_and_presets():
    assert TASK_NAMES == ("quadratic", "diabetes", "digits", "teacher", "cifar10", "shakespeare",
                          "breast-cancer", "anes96", "sunspots", "co2", "pydoc", "logreg",
                          "deep-linear", "sparse-parity")
    assert PRESETS == ("smoke", "quick", "paper")


@pytest.mark.parametrize("name, preset, overrides, words", [
    ("mnist", "quick", {}, ["'mnist'", "quadratic", "shakespeare"]),
    ("digits", "huge", {}, ["'huge'", "smoke, quick, paper"]),
    ("digits", "quick", {"lr": 0.1}, ["'lr'", "channels", "max_steps"]),
    ("digits", "quick", {"max_steps": 10.5}, ["max_steps", "int", "10.5"]),
    ("digits", "quick", {"max_steps": True}, ["max_steps", "int"]),
    ("digits", "quick", {"max_steps": "100"}, ["max_steps", "'100'"]),
    ("cifar10", "smoke", {"model": "vgg"}, ["model", "'resnet18'", "'vit'", "'vgg'"]),
    ("cifar10", "smoke", {"augment": 1}, ["augment", "bool"]),
    ("digits", "quick", {"max_steps": 250}, ["val_every=15", "max_steps=250"]),
    ("digits", "quick", {"log_every": 30}, ["log_every=30", "val_every=15"]),
    ("digits", "quick", {"batch_size": 0}, ["batch_size", "0"]),
    ("shakespeare", "smoke", {"dropout": 1.5}, ["dropout", "1.5"]),
    ("shakespeare", "smoke", {"heads": 3}, ["width=32", "heads=3"]),
    ("quadratic", "smoke", {"condition": 0.5}, ["condition", "0.5"]),
])
def test_bad_input_raises_naming_it(name, preset, overrides, words):
    with pytest.raises(ValueError) as err:
        get_task(name, preset=preset, **overrides)
    for word in words:
        assert word in str(err.value)


def test_overrides_are_applied_and_ints_widen_to_float():
    task = get_task("quadratic", "smoke", condition=10, dim=7)
    assert task.config.condition == 10.0 and isinstance(task.config.condition, float)
    assert task.config.dim == 7
    assert get_task("quadratic", "smoke").config.dim == 200  # the preset itself is untouched


@pytest.mark.parametrize("name", TASK_NAMES)
def test_trainer_kwargs_are_the_cadence_only(name):
    for preset in PRESETS:
        task = get_task(name, preset)
        kwargs = task.trainer_kwargs()
        assert set(kwargs) == {"max_steps", "val_check_interval", "check_val_every_n_epoch",
                               "log_every_n_steps", "num_sanity_val_steps", "precision"}
        assert kwargs["precision"] == "32-true"
        assert kwargs["check_val_every_n_epoch"] is None
        assert kwargs["num_sanity_val_steps"] == 0
        assert kwargs["max_steps"] % kwargs["val_check_interval"] == 0
        assert kwargs["val_check_interval"] % kwargs["log_every_n_steps"] == 0
    steps = [get_task(name, p).trainer_kwargs()["max_steps"] for p in PRESETS]
    assert steps == sorted(steps) and steps[0] < steps[-1]


@pytest.mark.parametrize("name", TASK_NAMES)
def test_describe(name):
    info = get_task(name, "quick").describe()
    assert info["task"] == name and info["preset"] == "quick"
    assert info["parameters"] > 0
    assert info["steps"] == {p: get_task(name, p).config.max_steps for p in PRESETS}
    assert info["summary"] and info["model"] and info["data"]
    assert set(info["splits"]) == {"train", "val", "test"}


@pytest.mark.parametrize("name", TASK_NAMES)
def test_quick_presets_evaluate_at_twenty_points_or_more(name):
    cfg = get_task(name, "quick").config
    assert cfg.max_steps // cfg.val_every >= 20


def test_describe_counts_the_parameters_the_build_trains():
    import torch

    task = get_task("digits", "smoke")
    module, _ = task.build(lambda g, n: torch.optim.SGD(g, lr=0.1), seed=0)
    assert task.describe()["parameters"] == sum(p.numel() for p in module.net.parameters())


@pytest.mark.parametrize("seed", [-1, 1.5, True, "3"])
def test_bad_seed_raises(seed):
    with pytest.raises(ValueError, match="seed"):
        get_task("quadratic", "smoke").build(lambda g, n: None, seed=seed)


@pytest.mark.parametrize("name", EMBEDDED)
def test_every_task_declares_exactly_the_metrics_it_logs(name):
    """What selection and verdicts read a metric's direction from (annealbench.common.metrics) names every
    metric the task's evaluation forms, and nothing else."""
    import torch

    from annealbench.tasks import declared_metrics

    task = get_task(name, "smoke")
    factory = lambda groups, total: torch.optim.SGD(groups, lr=0.0)  # noqa: E731
    module, data = task.build(factory, seed=1)
    data.setup("validate")
    batch = next(iter(data.val_dataloader()[0]))  # the validation set; the test set follows
    with torch.no_grad():
        sums = {k: float(v) for k, v in module.eval_sums(batch).items()}
    logged = {metric.removeprefix("val/") for metric in module.eval_metrics(sums)}
    assert logged == {m.name for m in declared_metrics(name)}


def test_a_task_without_metric_declarations_is_refused():
    from annealbench.tasks.task_spec import TaskSpec

    spec = get_task("digits", "smoke").spec
    with pytest.raises(ValueError, match="must declare its metrics"):
        TaskSpec(name="x", summary="", presets=spec.presets, build=spec.build, make_net=spec.make_net,
                 model=spec.model, data_source=spec.data_source)
