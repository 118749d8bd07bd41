"""MuPhi: exactness against AdamW/Adam with per-step windows, reference vs fast paths, RMS step."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from annealbench.optimizers import MuPhi, make_window
from annealbench.optimizers.window import progress

STEPS = 200


def _net(dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)).to(dtype)


def _data(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(128, 8, generator=gen, dtype=torch.float64)
    y = torch.sin(x.sum(dim=1, keepdim=True)) + 0.1 * torch.randn(128, 1, generator=gen, dtype=torch.float64)
    return x.to(dtype), y.to(dtype)


def _train_pair(dtype, make_muphi, make_peer, window, steps=STEPS, batch=32):
    """Train two copies of one network on the same mini-batches; return both parameter lists."""
    x, y = _data(dtype)
    a, b = _net(dtype), _net(dtype)
    opt_a = make_muphi(a.parameters())
    opt_b = make_peer(b.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt_b, lambda k: window(progress(k, steps)))
    for k in range(steps):
        idx = slice((k * batch) % 128, (k * batch) % 128 + batch)
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x[idx]), y[idx]).backward()
            opt.step()
        assert opt_a.param_groups[0]["mu_t"] == pytest.approx(opt_b.param_groups[0]["lr"], rel=1e-15)
        sched.step()
    return list(a.parameters()), list(b.parameters())


def _max_diff(xs, ys) -> float:
    return max((p - q).abs().max().item() for p, q in zip(xs, ys))


def _moved(params, dtype) -> float:
    start = list(_net(dtype).parameters())
    return _max_diff(params, start)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("decoupled", [True, False])
@pytest.mark.parametrize("impl", ["reference", "fused"])
def test_cosine_muphi_is_adamw_with_per_step_cosine(dtype, tol, decoupled, impl) -> None:
    window = make_window("cosine")
    wd = 0.1

    def make_peer(params):
        if decoupled:
            return torch.optim.AdamW(params, lr=3e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
        return torch.optim.Adam(params, lr=3e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)

    ours, theirs = _train_pair(
        dtype, lambda ps: MuPhi(ps, lr=3e-2, window="cosine", total_steps=STEPS, betas=(0.9, 0.999),
                                gamma=0.0, eta=0.1, weight_decay=wd, decoupled_weight_decay=decoupled,
                                impl=impl),
        make_peer, window)
    assert _moved(ours, dtype) > 1e-2, "the network must actually train for the comparison to mean anything"
    assert _max_diff(ours, theirs) < tol


@pytest.mark.parametrize("window", [
    make_window("constant"), make_window("linear"), make_window("root", p=2), make_window("cosine1"),
    make_window("cosine", warmup=0.1), make_window("linear", warmup=0.05, plateau=0.6),
    make_window("cosine1", floor=0.1), make_window("constant", warmup=0.2),
], ids=lambda w: w.label)
def test_every_window_matches_its_per_step_schedule(window) -> None:
    ours, theirs = _train_pair(
        torch.float64, lambda ps: MuPhi(ps, lr=3e-2, window=window, total_steps=STEPS, impl="fused"),
        lambda ps: torch.optim.AdamW(ps, lr=3e-2, weight_decay=0.0), window)
    assert _max_diff(ours, theirs) < 1e-10


# --------------------------------------------------------------- reference vs fast paths
def _groups(dtype):
    """Three groups with different hyperparameters, one parameter that never gets a gradient."""
    torch.manual_seed(3)
    shapes = [[(5, 7), (7,)], [(3, 4, 2), (11,)], [(6,), (2, 2)]]
    params = [[torch.randn(s, dtype=dtype) for s in group] for group in shapes]
    frozen = torch.randn(4, dtype=dtype)
    return params, frozen


def _make(params, frozen, impl, hp):
    return MuPhi([
        {"params": params[0] + [frozen], **hp},
        {"params": params[1], "numerator": "moment", "gamma": 0.3, "decoupled_weight_decay": False,
         "weight_decay": 0.05, "window": "linear", "warmup": 0.1},
        {"params": params[2], "numerator": "parcor", "betas": (0.0, 0.99), "gamma": -0.2, "eta": 0.7,
         "window": "root", "p": 2.0, "lr": 0.2},
    ], lr=0.05, total_steps=40, impl=impl)


hyper = st.fixed_dictionaries({
    "betas": st.tuples(st.sampled_from([0.0, 0.5, 0.9]), st.sampled_from([0.9, 0.999])),
    "numerator": st.sampled_from(["one", "moment", "parcor"]),
    "weight_decay": st.sampled_from([0.0, 0.1]),
    "decoupled_weight_decay": st.booleans(),
    "weight_decay_in_step": st.booleans(),
    "window": st.sampled_from(["cosine", "linear", "constant"]),
    "pole_zero_cancels": st.booleans(),
}).map(lambda h: {k: v for k, v in h.items() if k != "pole_zero_cancels"} | {
    "gamma": h["betas"][0] if h["pole_zero_cancels"] else
    (-0.3 if h["betas"][0] == 0.0 else h["betas"][0] / (1 + h["betas"][0])),
    "weight_decay_in_step": h["weight_decay_in_step"] and h["decoupled_weight_decay"]})


def _run_same_gradients(opt_a, opt_b, params_a, params_b, steps, dtype):
    gen = torch.Generator().manual_seed(7)
    for _ in range(steps):
        for pa, pb in zip(params_a, params_b):
            g = torch.randn(pa.shape, generator=gen, dtype=torch.float64).to(dtype)
            pa.grad, pb.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
        for ga, gb in zip(opt_a.param_groups, opt_b.param_groups):
            assert ga["mu_t"] == gb["mu_t"]
            torch.testing.assert_close(ga["rms_step"], gb["rms_step"], rtol=1e-5, atol=0)


def _assert_same_state(opt_a, opt_b, params_a, params_b, rtol, atol):
    for pa, pb in zip(params_a, params_b):
        torch.testing.assert_close(pa, pb, rtol=rtol, atol=atol)
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert sa.keys() == sb.keys()
        for key in sa:
            if isinstance(sa[key], torch.Tensor):
                torch.testing.assert_close(sa[key], sb[key], rtol=rtol, atol=atol, msg=key)
            else:
                assert sa[key] == sb[key], key


@pytest.mark.parametrize("impl", ["fused"])
@given(hp=hyper)
@settings(max_examples=16, deadline=None)
def test_reference_and_fast_path_agree_on_identical_gradients(impl, hp) -> None:
    dtype = torch.float64
    params_a, frozen_a = _groups(dtype)
    params_b, frozen_b = copy.deepcopy((params_a, frozen_a))
    opt_a, opt_b = _make(params_a, frozen_a, "reference", hp), _make(params_b, frozen_b, impl, hp)
    flat_a, flat_b = sum(params_a, []), sum(params_b, [])
    _run_same_gradients(opt_a, opt_b, flat_a, flat_b, steps=60, dtype=dtype)
    _assert_same_state(opt_a, opt_b, flat_a, flat_b, rtol=1e-12, atol=1e-14)
    assert torch.equal(frozen_a, frozen_b) and torch.equal(frozen_a, _groups(dtype)[1])
    assert frozen_a not in opt_a.state or not opt_a.state[frozen_a]
    assert _max_diff(flat_a, sum(_groups(dtype)[0], [])) > 1e-3


@pytest.mark.parametrize("impl", ["fused"])
def test_reference_and_fast_path_agree_in_float32(impl) -> None:
    hp = {"betas": (0.9, 0.999), "numerator": "moment", "weight_decay": 0.1, "gamma": 0.2}
    params_a, frozen_a = _groups(torch.float32)
    params_b, frozen_b = copy.deepcopy((params_a, frozen_a))
    opt_a, opt_b = _make(params_a, frozen_a, "reference", hp), _make(params_b, frozen_b, impl, hp)
    flat_a, flat_b = sum(params_a, []), sum(params_b, [])
    _run_same_gradients(opt_a, opt_b, flat_a, flat_b, steps=50, dtype=torch.float32)
    _assert_same_state(opt_a, opt_b, flat_a, flat_b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("hp", [
    {"betas": (0.9, 0.999), "numerator": "parcor", "weight_decay": 0.1, "gamma": 0.3},
    {"betas": (0.0, 0.99), "numerator": "moment", "weight_decay": 0.05, "gamma": -0.2, "eta": 0.7,
     "decoupled_weight_decay": False},
    {"betas": (0.9, 0.999), "numerator": "one", "weight_decay": 0.1, "gamma": 0.9,
     "weight_decay_in_step": True},
], ids=["momentum-parcor-decoupled", "no-momentum-moment-coupled", "pole-zero-one-in-step"])
def test_compiled_path_matches_reference(hp) -> None:
    """The fused compiled step (one compile per flag combination, cached on disk)."""
    params_a, frozen_a = _groups(torch.float32)
    params_b, frozen_b = copy.deepcopy((params_a, frozen_a))
    params_a, params_b = params_a[:1], params_b[:1]
    opt_a = MuPhi(params_a[0] + [frozen_a], lr=0.05, total_steps=40, impl="reference", **hp)
    opt_b = MuPhi(params_b[0] + [frozen_b], lr=0.05, total_steps=40, impl="compiled", **hp)
    flat_a, flat_b = params_a[0], params_b[0]
    _run_same_gradients(opt_a, opt_b, flat_a, flat_b, steps=20, dtype=torch.float32)
    _assert_same_state(opt_a, opt_b, flat_a, flat_b, rtol=1e-4, atol=1e-5)
    assert torch.equal(frozen_a, frozen_b)


@pytest.mark.parametrize("impl", ["reference", "compiled", "fused"])
def test_rms_every_reduces_on_multiples_only_and_changes_nothing_else(impl) -> None:
    params_a, frozen_a = _groups(torch.float32)
    params_b, frozen_b = copy.deepcopy((params_a, frozen_a))
    flat_a, flat_b = params_a[0], params_b[0]
    opt_a = MuPhi(flat_a, lr=0.05, total_steps=40, impl=impl)
    opt_b = MuPhi(flat_b, lr=0.05, total_steps=40, impl=impl, rms_every=5)
    gen = torch.Generator().manual_seed(7)
    for k in range(1, 13):
        for pa, pb in zip(flat_a, flat_b):
            pa.grad = torch.randn(pa.shape, generator=gen)
            pb.grad = pa.grad.clone()
        opt_a.step()
        opt_b.step()
        rms_a, rms_b = opt_a.param_groups[0]["rms_step"], opt_b.param_groups[0]["rms_step"]
        if k % 5 == 0:
            torch.testing.assert_close(rms_b, rms_a, rtol=0, atol=0)
        else:
            assert rms_b is None and float(rms_a) > 0
        for pa, pb in zip(flat_a, flat_b):
            assert torch.equal(pa, pb)


@pytest.mark.parametrize("impl", ["compiled", "fused"])
def test_fast_path_follows_replaced_storage_and_loaded_state(impl) -> None:
    """No cached view or address may ever write into a parameter's or state's old storage."""
    params_a, _ = _groups(torch.float32)
    params_b = copy.deepcopy(params_a)
    flat_a, flat_b = params_a[0], params_b[0]
    opt_a = MuPhi(flat_a, lr=0.05, total_steps=40, impl="reference")
    opt_b = MuPhi(flat_b, lr=0.05, total_steps=40, impl=impl)
    gen = torch.Generator().manual_seed(3)
    for k in range(6):
        if k == 2:  # new storage for every parameter, same values
            for p in flat_a + flat_b:
                p.data = p.data.clone()
        if k == 4:  # state tensors replaced by a round trip through a state dict
            opt_b.load_state_dict(copy.deepcopy(opt_b.state_dict()))
        for pa, pb in zip(flat_a, flat_b):
            pa.grad = torch.randn(pa.shape, generator=gen)
            pb.grad = pa.grad.clone()
        opt_a.step()
        opt_b.step()
    _assert_same_state(opt_a, opt_b, flat_a, flat_b, rtol=1e-5, atol=1e-6)


def _fused_pair(params, **kwargs):
    twin = [p.detach().clone() for p in params]
    return twin, MuPhi(params, impl="fused", **kwargs), MuPhi(twin, impl="reference", **kwargs)


def test_fused_step_bumps_parameter_versions_like_an_inplace_op() -> None:
    """A backward through a graph that saved a parameter's old value must fail, not mislead."""
    w = torch.randn(5, requires_grad=True)
    opt = MuPhi([w], lr=0.1, total_steps=10, impl="fused")
    (w * w).sum().backward()
    loss = (w * w).sum()  # saves w for its backward
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_fused_step_is_identical_on_one_and_two_threads() -> None:
    """Work is split into fixed blocks and Σ Δ² summed in block order: no thread-count drift."""
    gen = torch.Generator().manual_seed(5)
    base = [torch.randn(70_000, generator=gen), torch.randn(300, 7, generator=gen)]
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            params = [p.clone() for p in base]
            opt = MuPhi(params, lr=0.05, total_steps=20, impl="fused", numerator="parcor", gamma=0.3)
            grads = torch.Generator().manual_seed(9)
            for _ in range(5):
                for p in params:
                    p.grad = torch.randn(p.shape, generator=grads)
                opt.step()
            results.append((params, opt.param_groups[0]["rms_step"]))
    finally:
        torch.set_num_threads(threads)
    (p1, r1), (p2, r2) = results
    assert torch.equal(r1, r2) and all(torch.equal(a, b) for a, b in zip(p1, p2))


def test_auto_takes_another_path_for_tensors_the_fused_step_declines() -> None:
    """bfloat16 and non-dense parameters (every other column of a matrix): `auto` falls back,
    `fused` says what is wrong. A dense permuted layout stays on the fast path (test_paths)."""
    gen = torch.Generator().manual_seed(2)
    half = [torch.randn(6, 4, generator=gen).to(torch.bfloat16)]
    strided = [torch.randn(6, 8, generator=gen)[:, ::2]]
    for params in (half, strided):
        twin, auto, reference = _fused_pair(params, lr=0.05, total_steps=10)
        auto.impl = "auto"
        for _ in range(3):
            for p, q in zip(params, twin):
                p.grad = torch.randn(p.shape, generator=gen).to(p.dtype)
                q.grad = p.grad.clone()
            auto.step()
            reference.step()
        assert all(torch.equal(p, q) for p, q in zip(params, twin))
        assert auto.param_groups[0]["impl"] == "reference"
    with pytest.raises(ValueError, match=r"float32 or float64 parameters, not torch.bfloat16"):
        opt = MuPhi(half, lr=0.05, total_steps=10, impl="fused")
        half[0].grad = torch.ones_like(half[0])
        opt.step()
    with pytest.raises(ValueError, match=r"a parameter is torch.float32 on cpu, contiguous=False"):
        opt = MuPhi(strided, lr=0.05, total_steps=10, impl="fused")
        strided[0].grad = torch.ones_like(strided[0])
        opt.step()


def test_fused_step_refuses_state_of_the_wrong_size() -> None:
    """It writes through raw addresses: a mismatched state tensor must never reach the kernel."""
    w = torch.zeros(5)
    opt = MuPhi([w], lr=0.1, total_steps=10, impl="fused")
    w.grad = torch.ones(5)
    opt.step()
    opt.state[w]["exp_avg_sq"] = torch.zeros(3)
    with pytest.raises(ValueError, match="exp_avg_sq tensor has 3 elements where its parameter has 5"):
        opt.step()


def test_fused_step_copies_a_non_contiguous_gradient() -> None:
    gen = torch.Generator().manual_seed(4)
    params = [torch.randn(6, 4, generator=gen)]
    twin, fused, reference = _fused_pair(params, lr=0.05, total_steps=10)
    for _ in range(3):
        grad = torch.randn(4, 6, generator=gen)
        params[0].grad, twin[0].grad = grad.t(), grad.t().contiguous()
        fused.step()
        reference.step()
    torch.testing.assert_close(params[0], twin[0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "5"])
def test_bad_rms_every_raises_naming_it(value) -> None:
    with pytest.raises(ValueError, match=r"rms_every=.* expected an integer >= 1"):
        MuPhi([torch.zeros(2)], total_steps=10, rms_every=value)
    opt = MuPhi([torch.zeros(2)], total_steps=10)
    with pytest.raises(ValueError, match=r"rms_every="):
        opt.rms_every = value


def test_default_filter_gain_has_unit_dc_gain() -> None:
    """η = (1-β)/(1-γ) (eq. F2) unless given: 1 - β at γ = 0 (Adam's, for the exactness claim),
    1 at γ = β; an explicit η is used as given. (The first step's gain: test_reference_release.)"""
    def eta(**kwargs) -> float:
        opt = MuPhi([torch.zeros(1)], window="constant", **kwargs)
        return opt._config(opt.param_groups[0], 0.1).eta

    assert eta(betas=(0.9, 0.999)) == pytest.approx(0.1)
    assert eta(betas=(0.9, 0.999), gamma=0.5) == pytest.approx(0.2)
    assert eta(betas=(0.9, 0.999), gamma=0.9) == 1.0
    assert eta(betas=(0.9, 0.999), gamma=0.5, eta=0.3) == 0.3


# --------------------------------------------------------------- the trust region holds
def test_rms_step_tracks_the_radius_on_stationary_gradients() -> None:
    """β = 0: E[Δ²] = μ[t]²·E[g²/Ê[g²]] ≈ μ[t]², whatever each coordinate's gradient scale."""
    gen = torch.Generator().manual_seed(0)
    n, steps = 20_000, 400
    scale = torch.exp(torch.empty(n, dtype=torch.float64).uniform_(-4, 4, generator=gen))
    w = torch.zeros(n, dtype=torch.float64)
    opt = MuPhi([w], lr=0.01, window="cosine", total_steps=steps, betas=(0.0, 0.999), impl="fused")
    window = make_window("cosine")
    for k in range(steps):
        w.grad = scale * (1.0 + torch.randn(n, generator=gen, dtype=torch.float64))
        opt.step()
        group = opt.param_groups[0]
        assert group["mu_t"] == pytest.approx(0.01 * window(k / steps), rel=1e-12)
        if k >= 20 and window(k / steps) > 0.01:
            assert float(group["rms_step"]) == pytest.approx(group["mu_t"], rel=0.03), k


# --------------------------------------------------------------- optimizer behaviour
def _quadratic_run(opt_factory, w0, steps, dtype=torch.float32):
    w = w0.clone().to(dtype)
    opt = opt_factory([w])
    gen = torch.Generator().manual_seed(5)
    trace = []
    for _ in range(steps):
        w.grad = (w * 2.0 + 0.1 * torch.randn(w.shape, generator=gen, dtype=torch.float64).to(dtype))
        opt.step()
        trace.append(opt.param_groups[0]["mu_t"])
    return w, opt, trace


def test_state_dict_round_trip_resumes_bit_for_bit() -> None:
    w0 = torch.randn(50, generator=torch.Generator().manual_seed(2))
    hp = dict(lr=0.05, window="linear", warmup=0.1, total_steps=30, numerator="moment", gamma=0.3, impl="fused")
    full_w, _, full_trace = _quadratic_run(lambda ps: MuPhi(ps, **hp), w0, 30)

    w = w0.clone()
    opt = MuPhi([w], **hp)
    gen = torch.Generator().manual_seed(5)
    for k in range(30):
        if k == 12:  # save, rebuild everything from the checkpoint, continue
            saved = copy.deepcopy({"w": w.detach().clone(), "opt": opt.state_dict()})
            w = saved["w"].clone()
            opt = MuPhi([w], **hp)
            opt.load_state_dict(saved["opt"])
        w.grad = w * 2.0 + 0.1 * torch.randn(w.shape, generator=gen, dtype=torch.float64).float()
        opt.step()
        assert opt.param_groups[0]["mu_t"] == full_trace[k]
    assert torch.equal(w, full_w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_dtype_is_kept_and_quadratic_descends(dtype) -> None:
    w0 = torch.ones(64)
    w, opt, _ = _quadratic_run(lambda ps: MuPhi(ps, lr=0.05, total_steps=200, impl="auto"), w0, 200, dtype)
    assert w.dtype == dtype
    assert all(t.dtype == dtype for t in opt.state[w].values() if isinstance(t, torch.Tensor))
    assert w.float().abs().mean() < 0.1


def test_past_the_end_keeps_the_end_value_and_warns_once(caplog) -> None:
    w = torch.ones(3)
    opt = MuPhi([w], lr=0.1, window="linear", floor=0.2, total_steps=5, impl="fused")
    with caplog.at_level(logging.WARNING, logger="annealbench.optimizers.muphi"):
        for _ in range(9):
            w.grad = torch.ones(3)
            opt.step()
    assert opt.param_groups[0]["mu_t"] == pytest.approx(0.1 * 0.2)
    assert sum("past total_steps" in r.getMessage() for r in caplog.records) == 1


def test_first_step_uses_window_at_zero() -> None:
    w = torch.ones(3)
    opt = MuPhi([w], lr=0.1, window="cosine", warmup=0.5, total_steps=10, impl="fused")
    w.grad = torch.ones(3)
    opt.step()
    assert opt.param_groups[0]["mu_t"] == 0.0 and torch.equal(w, torch.ones(3))


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"lr": 0.0}, r"lr=0.0.*\(0, 1\]"), ({"lr": 2.0}, r"lr=2.0"), ({"lr": float("nan")}, r"lr=nan"),
    ({"betas": (1.0, 0.999)}, r"betas\[0\]=1.0.*\[0, 1\)"), ({"betas": (0.9, -0.1)}, r"betas\[1\]=-0.1"),
    ({"betas": 0.9}, r"betas=0.9"), ({"gamma": 0.95}, r"gamma=0.95.*gamma <= betas\[0\]"),
    ({"eta": 0.0}, r"eta=0.0"), ({"eps": -1e-8}, r"eps=-1e-08"), ({"numerator": "two"}, r"numerator='two'.*one, moment, parcor"),
    ({"numerator_beta": 1.0}, r"numerator_beta=1.0"), ({"weight_decay": -0.1}, r"weight_decay=-0.1"),
    ({"decoupled_weight_decay": "yes"}, r"decoupled_weight_decay='yes'"),
    ({"weight_decay_in_step": 1}, r"weight_decay_in_step=1"), ({"eps": None, "numerator_beta": 2.0}, r"numerator_beta=2.0"),
    ({"window": "cosine", "total_steps": None}, r"total_steps=None"), ({"total_steps": 0}, r"total_steps=0"),
    ({"window": "nope"}, r"kind='nope'"), ({"warmup": 1.5}, r"warmup=1.5"), ({"impl": "cuda"}, r"impl='cuda'"),
    ({"window": make_window("linear"), "warmup": 0.1}, r"Window object"),
])
def test_bad_hyperparameters_raise_naming_them(kwargs, named) -> None:
    kwargs = {"total_steps": 10} | kwargs
    with pytest.raises(ValueError, match=named):
        MuPhi([torch.zeros(2)], **kwargs)
    if "impl" in kwargs or not isinstance(kwargs.get("window", ""), str):
        return  # constructor-only arguments
    with pytest.raises(ValueError, match=named):  # the same checks apply to added groups
        MuPhi([torch.zeros(2)], total_steps=10).add_param_group({"params": [torch.zeros(1)], **kwargs})


def test_constant_window_needs_no_total_steps() -> None:
    w = torch.ones(4)
    opt = MuPhi([w], lr=0.1, window="constant", impl="fused")
    w.grad = torch.ones(4)
    opt.step()
    assert opt.param_groups[0]["mu_t"] == 0.1
    assert float(opt.param_groups[0]["rms_step"]) == pytest.approx(0.1, rel=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("impl", ["reference", "compiled"])
def test_cuda_matches_cpu_reference(impl) -> None:
    hp = {"betas": (0.9, 0.999), "numerator": "moment", "weight_decay": 0.1, "gamma": 0.2}
    params_a, frozen_a = _groups(torch.float32)
    params_b = [[p.cuda() for p in g] for g in params_a]
    frozen_b = frozen_a.cuda()
    opt_a, opt_b = _make(params_a, frozen_a, "reference", hp), _make(params_b, frozen_b, impl, hp)
    flat_a, flat_b = sum(params_a, []), sum(params_b, [])
    gen = torch.Generator().manual_seed(7)
    for _ in range(50):
        for pa, pb in zip(flat_a, flat_b):
            g = torch.randn(pa.shape, generator=gen)
            pa.grad, pb.grad = g.clone(), g.cuda()
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(flat_a, flat_b):
        torch.testing.assert_close(pb.cpu(), pa, rtol=1e-4, atol=1e-5)
        for key, value in opt_a.state[pa].items():
            if isinstance(value, torch.Tensor):
                torch.testing.assert_close(opt_b.state[pb][key].cpu(), value, rtol=1e-4, atol=1e-5)
    assert opt_b.param_groups[0]["rms_step"].device.type == "cuda"
