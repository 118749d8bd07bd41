"""The tasks of the broad suite: each builds and trains, is a function of its seed, trains as a
run group exactly as its one-seed runs, and reads the real data it claims (or computes the exact
quantity it claims)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from annealbench.tasks import declared_metrics, get_task
from annealbench.tasks.stacking import group_blocker
from tests.tasks.helpers import adamw, fit
from tests.tasks.test_group import assert_rows_close, assert_weights_close, factory_for, rows
from tests.tasks.test_group import fit_group as fit_seed_group

BROAD = ("breast-cancer", "anes96", "sunspots", "co2", "pydoc", "logreg", "deep-linear",
         "sparse-parity")
SHORT = {"max_steps": 20, "val_every": 10, "log_every": 5}
LR = {"breast-cancer": 3e-2, "anes96": 3e-3, "sunspots": 1e-2, "co2": 1e-2, "pydoc": 1e-2,
      "logreg": 3e-2, "deep-linear": 1e-2, "sparse-parity": 1e-2}


def short(name: str, **overrides):
    return get_task(name, "smoke", **SHORT, **overrides)


def metric_rows(name: str, seed: int) -> list[tuple[int, str, float]]:
    _, logger, _ = fit(short(name), adamw(LR[name]), seed=seed)
    return [r for r in logger.rows if r[1] != "time/elapsed_s"]


@pytest.mark.parametrize("name", BROAD)
def test_same_seed_same_metrics_another_seed_others(name):
    first = metric_rows(name, 5)
    assert first and all(math.isfinite(v) for _, _, v in first)
    assert metric_rows(name, 5) == first
    assert metric_rows(name, 6) != first


@pytest.mark.parametrize("name", BROAD)
def test_quick_preset_is_groupable_and_declares_what_it_logs(name):
    task = get_task(name, "quick")
    assert group_blocker(task) is None   # no dropout, no batch norm: seeds train together
    _, logger, _ = fit(short(name), adamw(LR[name]), seed=1)
    logged = {k.split("/", 1)[1] for _, k, _ in logger.rows if k.startswith(("val/", "test/"))}
    assert logged == {m.name for m in declared_metrics(name)}
    info = task.describe()
    assert info["parameters"] > 0 and info["model"] and info["data"]


@pytest.mark.parametrize("name", BROAD)
def test_a_run_group_trains_each_seed_as_its_one_seed_run(name):
    task = short(name)
    seeds = (3, 7)
    factory = factory_for("muphi", {"window": "cosine"}, lr=LR[name])
    group, sinks = fit_seed_group(task, factory, seeds=seeds, precision="64-true")
    for s, seed in enumerate(seeds):
        module, logger, _ = fit(task, factory, seed=seed, precision="64-true")
        assert_weights_close(module.net, group.net, s, rtol=1e-9)
        assert_rows_close(rows(logger), rows(sinks[s]), rtol=1e-6, exact=("opt/mu_t",))


# --- the data are what they claim -----------------------------------------------------------

def test_breast_cancer_is_scikit_learns_bundled_data_and_the_model_linear():
    from annealbench.tasks import sklearn_data

    x, y = sklearn_data.load("breast_cancer")
    assert x.shape == (569, 30) and torch.bincount(y).tolist() == [212, 357]
    assert sum(get_task("breast-cancer", "quick").describe()["splits"].values()) == 569
    module, _ = get_task("breast-cancer", "quick").build(adamw(0.1), seed=0)
    assert [p.shape for p in module.net.parameters()] == [(2, 30), (2,)]


def test_anes96_is_statsmodels_bundled_survey_split_by_seed():
    from statsmodels.datasets import anes96 as bundled

    from annealbench.tasks import anes96

    x, y = anes96.voters()
    frame = bundled.load_pandas().data
    assert x.shape == (944, 9) and np.bincount(y).tolist() == [551, 393]
    assert np.array_equal(x[:, 0], frame["PID"].to_numpy(np.float32))
    sizes = get_task("anes96", "quick").describe()["splits"]
    assert sum(sizes.values()) == 944
    (_, a), (_, b) = (get_task("anes96", "smoke").build(adamw(0.01), seed=s) for s in (1, 2))
    test_a, test_b = a.test_batches.batches[0], b.test_batches.batches[0]
    assert len(test_a[1]) == sizes["test"] and not torch.equal(test_a[0], test_b[0])


def test_sunspots_are_the_309_yearly_values_split_in_time_order():
    from statsmodels.datasets import sunspots as bundled

    from annealbench.tasks import series, sunspots

    frame = bundled.load_pandas().data
    assert len(frame) == 309 and frame["YEAR"].iloc[0] == 1700 and frame["YEAR"].iloc[-1] == 2008
    values = sunspots.years()
    assert values[0] == pytest.approx(math.sqrt(5.0))     # 1700
    assert values[-1] == pytest.approx(math.sqrt(2.9))    # 2008
    cfg = get_task("sunspots", "quick").config
    x, y = series.windows(values, cfg.lags)
    assert x.shape == (309 - cfg.lags, cfg.lags)
    assert np.array_equal(x[1:, -1], y[:-1])   # each target is the next window's last input
    train, val, test = series.chronological(len(y), cfg)
    assert train.stop == val.start and val.stop == test.start and test.stop == len(y)
    sizes = get_task("sunspots", "quick").describe()["splits"]
    assert sizes == {"train": train.stop, "val": val.stop - val.start,
                     "test": test.stop - test.start}
    # the same parts for every seed: a seed fixes the initialisation and the batches only
    (_, a), (_, b) = (get_task("sunspots", "smoke").build(adamw(0.01), seed=s) for s in (1, 2))
    assert all(torch.equal(u, v) for u, v in zip(a.test_batches.batches[0],
                                                b.test_batches.batches[0]))


def test_co2_interpolates_the_missing_weeks_between_their_neighbours():
    from statsmodels.datasets import co2 as bundled

    from annealbench.tasks import co2

    raw = bundled.load_pandas().data["co2"].to_numpy()
    missing = np.isnan(raw)
    assert len(raw) == 2284 and missing.sum() == 59 and not missing[0] and not missing[-1]
    filled = co2.weeks()
    assert not np.isnan(filled).any() and np.array_equal(filled[~missing], raw[~missing])
    i = int(np.flatnonzero(missing)[0])  # a lone missing week: the mean of its neighbours
    if not missing[i - 1] and not missing[i + 1]:
        assert filled[i] == pytest.approx((raw[i - 1] + raw[i + 1]) / 2)
    cfg = get_task("co2", "quick").config
    x, y = co2.examples(cfg.lags, cfg.horizon)
    assert x.shape == (2284 - cfg.lags - cfg.horizon, cfg.lags)
    # target: the change from the last week read to `horizon` weeks later
    assert y[0] == pytest.approx(filled[cfg.lags + cfg.horizon] - filled[cfg.lags])
    assert x[0, -1] == pytest.approx(filled[cfg.lags - 1] - filled[cfg.lags])


def test_pydoc_is_the_interpreters_help_text_split_90_5_5():
    from pydoc_data.topics import topics

    from annealbench.tasks import pydoc
    from annealbench.tasks import text

    corpus = pydoc.corpus()
    doc = "\n".join(topics[k] for k in sorted(topics))
    assert len(doc) > 300_000
    ids = torch.cat([corpus.train, corpus.val, corpus.test])
    assert corpus.tokenizer.decode(ids[:200]) == doc[:200] and len(ids) == len(doc)
    assert (len(corpus.train), len(corpus.val), len(corpus.test)) == text.split_sizes(len(doc))
    cfg = get_task("pydoc", "quick").config
    x, y = pydoc.spread(corpus.val, cfg)
    assert x.shape == (cfg.val_tokens // cfg.block_size, cfg.block_size)
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(x[0], corpus.val[:cfg.block_size].long())   # first and last windows:
    assert torch.equal(y[-1], corpus.val[-cfg.block_size:].long())  # the whole part is read
    whole, _ = pydoc.spread(corpus.val, get_task("pydoc", "quick", val_tokens=0).config)
    assert torch.equal(whole.flatten(), corpus.val[:whole.numel()].long())


def test_logreg_exact_risk_matches_sampling_and_is_smallest_at_the_generating_weights():
    from annealbench.tasks import logreg

    cfg = get_task("logreg", "quick").config
    h, w_star = logreg.problem(cfg)
    module, _ = get_task("logreg", "quick").build(adamw(0.01), seed=0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400_000, cfg.inputs, generator=g, dtype=torch.float64) * h.sqrt()
    assert float((x @ w_star).std()) == pytest.approx(cfg.margin, rel=1e-2)
    w = 0.5 * w_star + 0.2 * torch.randn(cfg.inputs, generator=g, dtype=torch.float64)
    b = torch.tensor(0.3, dtype=torch.float64)
    z, p = x @ w + b, torch.sigmoid(x @ w_star)
    sampled = float((torch.nn.functional.softplus(z) - p * z).mean())
    assert float(module.risk(w, b)) == pytest.approx(sampled, rel=5e-3)
    assert module.risk(w, b) > module.optimum
    zero = torch.zeros((), dtype=torch.float64)
    assert float(module.risk(w_star, zero)) == pytest.approx(module.optimum, abs=1e-12)
    assert module.risk(1.1 * w_star, zero) > module.optimum < module.risk(0.9 * w_star, zero)


def test_deep_linear_gap_is_the_exact_excess_and_zero_at_the_target():
    from annealbench.tasks import deep_linear

    cfg = get_task("deep-linear", "quick").config
    w_star = deep_linear.target(cfg).double()
    s = torch.linalg.svdvals(w_star)
    assert float((s ** 2).sum()) / cfg.dim == pytest.approx(1.0, rel=1e-5)
    assert float(s[0] / s[-1]) == pytest.approx(cfg.condition, rel=1e-4)
    net = deep_linear.make_net(cfg).requires_grad_(False)
    product = net[0].weight.double()
    for layer in list(net)[1:]:
        product = layer.weight.double() @ product
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200_000, cfg.dim, generator=g, dtype=torch.float64)
    sampled = float((((product - w_star) @ x.T) ** 2).mean())
    assert float(net.gap()) == pytest.approx(sampled, rel=1e-2)
    with torch.no_grad():   # W* factored through the layers: the gap is 0
        net[0].weight.zero_()
        net[0].weight[: cfg.dim] = w_star.float()
        for layer in list(net)[1:]:
            layer.weight.zero_()
            layer.weight[: cfg.dim, : cfg.dim] = torch.eye(cfg.dim)
    assert float(net.gap()) == pytest.approx(0.0, abs=1e-10)


class Fixed(torch.nn.Module):
    """A network that answers the same logits whatever it is asked."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits


def test_sparse_parity_evaluates_every_input_against_the_noise_floor():
    from annealbench.tasks import sparse_parity

    cfg = get_task("sparse-parity", "quick").config
    x = sparse_parity.every_input(cfg.bits)
    assert x.shape == (2 ** cfg.bits, cfg.bits) and len(torch.unique(x, dim=0)) == 2 ** cfg.bits
    y = sparse_parity.parity(x, cfg.relevant)
    assert y.float().mean() == 0.5
    module, data = get_task("sparse-parity", "quick").build(adamw(0.01), seed=0)
    assert data.val_batches.examples() == 2 ** cfg.bits
    xb, yb = data.make_batch(0)
    flipped = (yb != sparse_parity.parity(xb, cfg.relevant)).float().mean()
    assert 0.0 <= flipped <= 0.3
    # the Bayes predictor (parity with probability 1 − ε) sits exactly on the floor
    logits = torch.zeros(len(y), 2)
    logits[torch.arange(len(y)), y] = math.log((1 - cfg.flip) / cfg.flip)
    module.net = Fixed(logits)
    metrics = module.eval_metrics({k: float(v) for k, v in module.eval_sums((x, y)).items()})
    assert metrics["val/loss"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["val/acc"] == 1.0
