"""The contract every registry entry keeps: descends, round-trips, skips, keeps dtype, validates."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from annealbench.optimizers import OPTIMIZERS, build_optimizer, check_optimizer
from annealbench.optimizers.registry import resolve_hparams, state_bytes_per_param, state_bytes_table

NAMES = list(OPTIMIZERS)
# Learning rates at which each entry is stable on the test problems (curvatures up to 10).
LR = {"muphi": 0.05, "adamw": 0.05, "sgd": 0.02, "sf-adamw": 0.05, "muon": 0.05, "prodigy": 1.0}
# Rosenbrock's valley needs a shorter second-moment memory for Prodigy's distance estimate.
ROSENBROCK = {"sgd": {"lr": 1e-3}, "prodigy": {"betas": (0.9, 0.99)}}


def _build(name, params, total_steps, **hparams):
    return build_optimizer(name, params, total_steps=total_steps, **{"lr": LR[name]} | hparams)


def _evaluate_mode(opt) -> None:
    if hasattr(opt, "eval"):
        opt.eval()


def _train_mode(opt) -> None:
    if hasattr(opt, "train"):
        opt.train()


def test_table_lists_the_competitors() -> None:
    assert set(OPTIMIZERS) == {"muphi", "adamw", "sgd", "muon", "prodigy", "sf-adamw"}
    assert [n for n, info in OPTIMIZERS.items() if info.has_eval_mode] == ["sf-adamw"]


@pytest.mark.parametrize("name", NAMES)
def test_quadratic_descends(name) -> None:
    curv = torch.logspace(-1, 1, 20, dtype=torch.float64)
    w = torch.ones(20, dtype=torch.float64)
    opt = _build(name, [w], 300)

    def loss():
        return 0.5 * float((curv * w.detach() ** 2).sum())

    start = loss()
    for _ in range(300):
        _train_mode(opt)
        w.grad = curv * w.detach()
        opt.step()
        assert math.isfinite(opt.param_groups[0]["mu_t"])
    _evaluate_mode(opt)
    assert loss() < 0.05 * start


@pytest.mark.parametrize("name", NAMES)
def test_rosenbrock_descends(name) -> None:
    xy = torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)
    opt = _build(name, [xy], 1000, **ROSENBROCK.get(name, {}))

    def rosen(v):
        return (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2

    start = float(rosen(xy.detach()))
    for _ in range(1000):
        _train_mode(opt)
        opt.zero_grad()
        rosen(xy).backward()
        opt.step()
    _evaluate_mode(opt)
    assert float(rosen(xy.detach())) < 0.1 * start


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_resumes_exactly(name) -> None:
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(2, 6, generator=gen, dtype=torch.float64) for _ in range(20)]
    hp = {"weight_decay": 0.01} | ({"warmup": 0.2} if name != "sgd" else {"window": "linear"})

    def run(resume_at):
        w = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(2, 6)
        opt = _build(name, [w], 20, **hp)
        trace = []
        for k, g in enumerate(grads):
            if k == resume_at:
                _evaluate_mode(opt)  # a checkpoint is taken as evaluation would see it
                saved = copy.deepcopy({"w": w.clone(), "opt": opt.state_dict()})
                _train_mode(opt)
                w = saved["w"].clone()
                opt = _build(name, [w], 20, **hp)
                opt.load_state_dict(saved["opt"])
            _train_mode(opt)
            w.grad = g + w.detach()
            opt.step()
            trace.append(opt.param_groups[0]["mu_t"])
        return w, trace

    w_full, trace_full = run(resume_at=None)
    w_resumed, trace_resumed = run(resume_at=9)
    assert trace_resumed == trace_full
    assert torch.equal(w_resumed, w_full)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_without_gradient_is_untouched(name) -> None:
    w, idle = torch.ones(5), torch.full((3,), 2.0)
    opt = _build(name, [w, idle], 10, weight_decay=0.1)
    for _ in range(5):
        _train_mode(opt)
        w.grad = torch.ones(5)
        opt.step()
    _evaluate_mode(opt)
    assert torch.equal(idle, torch.full((3,), 2.0))
    assert not torch.equal(w, torch.ones(5))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtype_is_kept(name, dtype) -> None:
    w = torch.ones(8, dtype=dtype)
    opt = _build(name, [w], 10)
    for _ in range(3):
        _train_mode(opt)
        w.grad = torch.full((8,), 0.5, dtype=dtype)
        opt.step()
    assert w.dtype == dtype and torch.isfinite(w.float()).all()
    assert all(t.dtype == dtype for s in opt.state.values() for t in s.values()
               if isinstance(t, torch.Tensor) and t.dim() > 0)


@pytest.mark.parametrize("name", NAMES)
def test_mu_t_is_the_learning_rate_actually_used(name) -> None:
    """Reproduce the first step of every entry from its reported mu_t (plain gradient, no state)."""
    w = torch.zeros(4, dtype=torch.float64)
    hp = {"warmup": 0.5} if name == "sf-adamw" else {"window": "linear"}
    opt = _build(name, [w], 4, **hp)
    mus, scale = [], []
    for _ in range(4):
        _train_mode(opt)
        w.grad = torch.ones(4, dtype=torch.float64)
        scale.append(opt.param_groups[0].get("d", 1.0))  # Prodigy steps with d·lr
        opt.step()
        mus.append(opt.param_groups[0]["mu_t"])
    if name == "prodigy":
        assert scale[-1] > scale[0]  # the distance estimate grew, so d is not a constant factor
        assert mus == pytest.approx([LR[name] * d * f for d, f in zip(scale, (1.0, 0.75, 0.5, 0.25))])
    elif name == "sf-adamw":  # warm-up over 2 steps: (k+1)/2 of lr, then lr
        assert mus == pytest.approx([LR[name] * f for f in (0.5, 1.0, 1.0, 1.0)])
    else:
        assert mus == pytest.approx([LR[name] * f for f in (1.0, 0.75, 0.5, 0.25)])


@pytest.mark.parametrize("name", NAMES)
def test_bad_hyperparameters_raise_naming_the_key(name) -> None:
    for key in OPTIMIZERS[name].hparams:
        with pytest.raises(ValueError, match=rf"\b{key}\b.*'not-a-value'"):
            check_optimizer(name, total_steps=10, **{key: "not-a-value"})
    for bad in (-1.0, float("nan"), float("inf"), 0.0):
        with pytest.raises(ValueError, match=rf"lr={bad!r}.*expected"):
            check_optimizer(name, total_steps=10, lr=bad)
    with pytest.raises(ValueError, match=r"bogus.*allowed are lr"):
        check_optimizer(name, total_steps=10, bogus=1)
    with pytest.raises(ValueError, match=r"total_steps=0"):
        check_optimizer(name, total_steps=0)
    check_optimizer(name, total_steps=10)  # the defaults are valid


@pytest.mark.parametrize(("name", "hparams", "named"), [
    ("muphi", {"betas": (0.9, 1.0)}, r"betas\[1\]=1.0.*\[0, 1\)"),
    ("muphi", {"gamma": 0.95}, r"gamma=0.95.*gamma <= betas\[0\]"),
    ("muphi", {"weight_decay_in_step": True, "decoupled_weight_decay": False}, r"weight_decay_in_step=True"),
    ("muphi", {"lr": 1.5}, r"lr=1.5.*\(0, 1\]"),
    ("muphi", {"beta": 0.0, "betas": (0.9, 0.999)}, r"beta=0.0 and betas=.*give one of them"),
    ("muphi", {"beta": 1.0}, r"beta=1.0.*\[0, 1\)"),
    ("muphi", {"beta": 0.5, "gamma": 0.6}, r"gamma=0.6.*gamma <= betas\[0\] = 0.5"),
    ("adamw", {"window": "cosine", "warmup": 0.6, "plateau": 0.4}, r"warmup \+ plateau"),
    ("adamw", {"p": 2.0}, r"p=2.0.*only 'root'"),
    ("sgd", {"momentum": 1.0}, r"momentum=1.0"),
    ("sgd", {"nesterov": True, "dampening": 0.5}, r"nesterov=True.*dampening"),
    ("sf-adamw", {"window": "linear"}, r"window.*allowed are"),
    ("sf-adamw", {"warmup": 1.0}, r"warmup=1.0.*\[0, 1\)"),
])
def test_cross_key_and_range_errors(name, hparams, named) -> None:
    with pytest.raises(ValueError, match=named):
        check_optimizer(name, total_steps=10, **hparams)


def test_unknown_optimizer_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'adam'.*muphi, adamw, sgd, muon, prodigy, sf-adamw"):
        build_optimizer("adam", [torch.zeros(1)], total_steps=10)


def test_yaml_style_lists_are_accepted_and_resolved() -> None:
    resolved = resolve_hparams("muphi", total_steps=10, betas=[0.8, 0.99])
    assert resolved["betas"] == (0.8, 0.99) and resolved["window"] == "cosine"


def test_scalar_beta_is_betas_first_entry() -> None:
    """A suite writes the smoothing pole as one number (`beta: 0` is the unsmoothed "Base"): the
    optimizer built from it equals the one built from `betas`, step for step."""
    torch.manual_seed(0)
    grads = [torch.randn(5, dtype=torch.float64) for _ in range(4)]
    weights = []
    for hparams in ({"beta": 0.0}, {"betas": (0.0, 0.999)}):
        w = torch.ones(5, dtype=torch.float64, requires_grad=True)
        opt = build_optimizer("muphi", [w], total_steps=4, **hparams)
        assert opt.param_groups[0]["betas"] == (0.0, 0.999)
        for g in grads:
            w.grad = g.clone()
            opt.step()
        weights.append(w.detach().clone())
    assert torch.equal(*weights)


def test_param_groups_keep_their_own_learning_rates() -> None:
    a, b = torch.zeros(2), torch.zeros(2)
    opt = build_optimizer("adamw", [{"params": [a], "lr": 0.1}, {"params": [b]}], total_steps=4,
                          lr=0.01, window="linear")
    a.grad, b.grad = torch.ones(2), torch.ones(2)
    opt.step()
    opt.step()
    assert [g["mu_t"] for g in opt.param_groups] == pytest.approx([0.1 * 0.75, 0.01 * 0.75])


def test_state_bytes_per_parameter() -> None:
    table = state_bytes_table()
    # muon: a 1-d tensor goes to AdamW; prodigy keeps the initial point p0 as well.
    assert table == {"muphi": 8.0, "adamw": 8.0, "sgd": 4.0, "muon": 8.0, "prodigy": 12.0, "sf-adamw": 8.0}
    assert state_bytes_per_param("muphi", gamma=0.3, numerator="moment") == 16.0
    assert state_bytes_per_param("muphi", betas=(0.0, 0.999)) == 4.0
    assert state_bytes_per_param("adamw", dtype=torch.bfloat16) == 4.0
