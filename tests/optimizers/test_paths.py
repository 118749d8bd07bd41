"""How MuPhi picks its path: once per param group, recorded in `group["impl"]`, logged once; only
a failed build moves a group to another path, every other error propagates."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch._inductor.exc import CppCompileError
from torch.utils._python_dispatch import TorchDispatchMode

from annealbench.optimizers import MuPhi
from annealbench.optimizers import compiled as C


def _step(opt: MuPhi, params: list[torch.Tensor], n: int = 1) -> None:
    for _ in range(n):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()


def test_the_path_is_chosen_once_per_group_logged_once_and_recorded(caplog) -> None:
    big, small = [torch.zeros(4)], [torch.zeros(3, dtype=torch.bfloat16)]
    opt = MuPhi([{"params": big}, {"params": small}], lr=0.1, total_steps=10)
    assert [g["impl"] for g in opt.param_groups] == [None, None]
    with caplog.at_level(logging.INFO, logger="annealbench.optimizers.muphi"):
        _step(opt, big + small, 3)
    assert [g["impl"] for g in opt.param_groups] == ["fused", "reference"]
    chosen = [r.getMessage() for r in caplog.records if "impl=" in r.getMessage()]
    assert len(chosen) == 2 and "group 0: impl=fused" in chosen[0] and "group 1: impl=reference" in chosen[1]
    # A state dict carries the record; a new process (optimizer) chooses again for itself.
    again = MuPhi([{"params": big}, {"params": small}], lr=0.1, total_steps=10, impl="reference")
    again.load_state_dict(opt.state_dict())
    _step(again, big + small)
    assert [g["impl"] for g in again.param_groups] == ["reference", "reference"]


def _failing_compiler(error: BaseException):
    def fn(*args, **kwargs):
        raise error
    return lambda: fn


def test_a_failed_compile_moves_the_group_to_the_reference_step(monkeypatch, caplog) -> None:
    w, twin = torch.arange(6.0).reshape(2, 3), torch.arange(6.0).reshape(2, 3)
    monkeypatch.setattr(C, "_get_compiled", _failing_compiler(CppCompileError(["c++"], "no such header")))
    monkeypatch.setattr("annealbench.optimizers.muphi.AUTO_COMPILE_MIN_NUMEL", 1)
    monkeypatch.setattr("annealbench.optimizers.native.unsupported", lambda params: "declined for this test")
    opt = MuPhi([w], lr=0.1, total_steps=10)
    reference = MuPhi([twin], lr=0.1, total_steps=10, impl="reference")
    with caplog.at_level(logging.WARNING):
        _step(opt, [w], 2)
        _step(reference, [twin], 2)
    assert opt.param_groups[0]["impl"] == "reference"
    assert torch.equal(w, twin)
    assert sum("torch.compile cannot build the step here" in r.getMessage() for r in caplog.records) == 1
    forced = MuPhi([torch.zeros(3)], lr=0.1, total_steps=10, impl="compiled")
    with pytest.raises(C.CompileFailed, match="no such header"):
        _step(forced, forced.param_groups[0]["params"])


@pytest.mark.parametrize("error", [RuntimeError("shape mismatch in the step"), torch.OutOfMemoryError("out of memory")])
def test_any_other_error_of_the_compiled_step_propagates(monkeypatch, error) -> None:
    monkeypatch.setattr(C, "_get_compiled", _failing_compiler(error))
    monkeypatch.setattr("annealbench.optimizers.muphi.AUTO_COMPILE_MIN_NUMEL", 1)
    monkeypatch.setattr("annealbench.optimizers.native.unsupported", lambda params: "declined for this test")
    w = torch.zeros(3)
    opt = MuPhi([w], lr=0.1, total_steps=10)
    with pytest.raises(type(error), match=str(error)):
        _step(opt, [w])
    assert opt.param_groups[0]["impl"] == "compiled"


def test_an_error_of_the_fused_step_propagates_under_auto() -> None:
    w = torch.zeros(5)
    opt = MuPhi([w], lr=0.1, total_steps=10)
    _step(opt, [w])
    opt.state[w]["exp_avg_sq"] = torch.zeros(3)
    with pytest.raises(ValueError, match="exp_avg_sq tensor has 3 elements where its parameter has 5"):
        _step(opt, [w])
    assert opt.param_groups[0]["impl"] == "fused"


# --- dense permuted layouts (channels-last) stay on the fast paths -----------------------------
def _conv_params(channels_last: bool, dtype=torch.float64) -> list[torch.Tensor]:
    """A conv kernel, a transposed matrix (a dense permuted layout too) and a bias."""
    gen = torch.Generator().manual_seed(11)
    kernel = torch.randn(8, 3, 3, 3, generator=gen, dtype=dtype)
    matrix = torch.randn(5, 7, generator=gen, dtype=dtype)
    bias = torch.randn(8, generator=gen, dtype=dtype)
    if channels_last:
        kernel = kernel.to(memory_format=torch.channels_last)
        matrix = matrix.t().contiguous().t()
    return [kernel, matrix, bias]


def _grads(params: list[torch.Tensor], k: int, like_param: bool = True) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + k)
    grads = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    return [torch.empty_like(p).copy_(g) if like_param else g for p, g in zip(params, grads)]


def _trajectory(params: list[torch.Tensor], steps: int = 6, like_param: bool = True,
                **kwargs) -> tuple[MuPhi, list[torch.Tensor]]:
    opt = MuPhi(params, lr=0.05, total_steps=10, **kwargs)
    rms = []
    for k in range(steps):
        for p, g in zip(params, _grads(params, k, like_param)):
            p.grad = g
        opt.step()
        rms.append(opt.param_groups[0]["rms_step"])
    return opt, rms


HPARAMS = [
    {},
    {"numerator": "parcor", "gamma": 0.3, "weight_decay": 0.1},
    {"numerator": "moment", "betas": (0.0, 0.99), "weight_decay": 0.05, "decoupled_weight_decay": False},
    {"gamma": 0.9, "weight_decay": 0.1, "weight_decay_in_step": True},
]


@pytest.mark.parametrize("hp", HPARAMS, ids=["adam", "parcor", "moment-coupled", "in-step"])
def test_a_channels_last_kernel_takes_the_fused_step_and_the_contiguous_trajectory(hp) -> None:
    plain, permuted = _conv_params(False), _conv_params(True)
    assert not permuted[0].is_contiguous() and permuted[0].is_contiguous(memory_format=torch.channels_last)
    opt_a, rms_a = _trajectory(plain, **hp)
    opt_b, rms_b = _trajectory(permuted, **hp)
    assert opt_a.param_groups[0]["impl"] == opt_b.param_groups[0]["impl"] == "fused"
    for p, q in zip(plain, permuted):
        assert torch.equal(p, q)  # every coordinate's arithmetic is the same: bit for bit
        for key, value in opt_a.state[p].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, opt_b.state[q][key]), key
                assert C.same_layout(opt_b.state[q][key], q), key  # state kept in q's layout
    assert permuted[0].is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(rms_a, rms_b):  # Σ Δ² is summed in memory order: round-off only
        torch.testing.assert_close(b, a, rtol=1e-15, atol=0)


def test_a_channels_last_kernel_takes_the_compiled_step_and_the_contiguous_trajectory() -> None:
    hp = {"numerator": "parcor", "gamma": 0.3, "weight_decay": 0.1}
    plain, permuted = _conv_params(False), _conv_params(True)
    opt_a, _ = _trajectory(plain, impl="compiled", **hp)
    opt_b, _ = _trajectory(permuted, impl="compiled", **hp)
    reference, _ = _trajectory(_conv_params(True), impl="reference", **hp)
    assert opt_b.param_groups[0]["impl"] == "compiled"
    for p, q, r in zip(plain, permuted, reference.param_groups[0]["params"]):
        torch.testing.assert_close(q, p, rtol=1e-15, atol=1e-15)
        torch.testing.assert_close(q, r, rtol=1e-12, atol=1e-14)
        assert q.stride() == r.stride()


def test_auto_compiles_a_large_channels_last_group_where_no_fused_step_is_built(monkeypatch) -> None:
    """The accelerator's choice, made on the CPU: a dense permuted group is `compiled`."""
    monkeypatch.setattr("annealbench.optimizers.muphi.AUTO_COMPILE_MIN_NUMEL", 1)
    monkeypatch.setattr("annealbench.optimizers.native.unsupported", lambda params: "declined for this test")
    opt, _ = _trajectory(_conv_params(True), steps=1)
    assert opt.param_groups[0]["impl"] == "compiled"


def test_a_gradient_of_another_layout_is_read_in_the_parameter_s_order() -> None:
    for impl in ("fused", "compiled"):
        plain, permuted = _conv_params(False), _conv_params(True)
        opt_a, _ = _trajectory(plain, impl=impl)
        opt_b, _ = _trajectory(permuted, impl=impl, like_param=False)  # contiguous gradients
        assert not _grads(permuted, 0, like_param=False)[0].stride() == permuted[0].stride()
        for p, q in zip(plain, permuted):
            torch.testing.assert_close(q, p, rtol=1e-15, atol=1e-15)


def test_state_saved_in_another_layout_is_loaded_in_the_parameter_s() -> None:
    plain, permuted = _conv_params(False), _conv_params(True)
    opt_a, _ = _trajectory(plain, steps=3)
    opt_b = MuPhi(permuted, lr=0.05, total_steps=10)
    for p, q in zip(plain, permuted):
        q.copy_(p)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # contiguous state, channels-last kernel
    assert C.same_layout(opt_b.state[permuted[0]]["exp_avg"], permuted[0])
    for k in range(3, 6):
        for params, opt in ((plain, opt_a), (permuted, opt_b)):
            for p, g in zip(params, _grads(params, k)):
                p.grad = g
            opt.step()
    assert opt_b.param_groups[0]["impl"] == "fused"
    assert all(torch.equal(p, q) for p, q in zip(plain, permuted))


def test_flat_views_refuse_state_laid_out_unlike_its_parameter() -> None:
    kernel = torch.zeros(4, 3, 3, 3).to(memory_format=torch.channels_last)
    lists = C.GroupLists(params=[kernel], grads=[torch.zeros_like(kernel)], steps=[1],
                         exp_avg_sq=[torch.zeros(4, 3, 3, 3)], exp_avg=[], prev_grad=[],
                         numerator_avg=[])
    with pytest.raises(ValueError, match=r"exp_avg_sq tensor .* is not laid out as its parameter"):
        C.FlatViews(lists)
    assert C.dense(kernel) and C.dense(kernel.t() if kernel.ndim == 2 else kernel.permute(3, 2, 1, 0))
    assert not C.dense(torch.zeros(6, 8)[:, ::2]) and not C.dense(torch.zeros(3, 1).expand(3, 4))


def test_a_channels_last_cnn_trains_through_the_task_module_on_the_fused_step() -> None:
    from annealbench.tasks import get_task
    from tests.tasks.helpers import fit

    task = get_task("digits", "smoke", channels_last=True, max_steps=4, val_every=4, log_every=2)
    factory = lambda groups, total: MuPhi(groups, lr=0.01, total_steps=total)  # noqa: E731
    module, _, trainer = fit(task, factory)
    kernels = [p for p in module.net.parameters() if p.ndim == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
    assert any(not p.is_contiguous() for p in kernels)  # (one input channel: both layouts)
    assert [g["impl"] for g in trainer.optimizers[0].param_groups] == ["fused", "fused"]


# --- the group step (impl="foreach"): the specification's operations over the whole group --------
NUMERATOR_CASES = [
    ("parcor-c5b0935", {"gamma": 0.31, "weight_decay": 0.01, "weight_decay_in_step": True, "eps": 1e-10}),
    ("moment-c5b0935", {"gamma": 0.85, "weight_decay": 0.1, "decoupled_weight_decay": False}),
    ("parcor-c5b0935", {"betas": (0.0, 0.999), "weight_decay": 0.1}),
    ("moment-c5b0935", {"gamma": 0.9}),
    ("one", {"gamma": 0.473684, "weight_decay": 0.01, "weight_decay_in_step": True}),
    ("moment", {"betas": (0.0, 0.99), "weight_decay": 0.05, "decoupled_weight_decay": False}),
    ("parcor", {"gamma": 0.3, "weight_decay": 0.1}),
]


def _mixed_params(dtype: torch.dtype) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(21)
    shapes = [(8, 3, 3, 3), (5, 7), (7,), (), (40,)]
    params = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    params[0] = params[0].to(memory_format=torch.channels_last)
    return params


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("numerator, hp", NUMERATOR_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(NUMERATOR_CASES)])
def test_the_group_step_is_the_per_tensor_reference_bit_for_bit_on_the_cpu(numerator, hp, dtype) -> None:
    a, b = _mixed_params(dtype), _mixed_params(dtype)
    kwargs = dict(lr=0.05, window="cosine", total_steps=30, numerator=numerator, **hp)
    reference = MuPhi(a, impl="reference", **kwargs)
    grouped = MuPhi(b, impl="foreach", **kwargs)
    gen = torch.Generator().manual_seed(5)
    for k in range(30):
        for p, q in zip(a, b):
            p.grad = torch.randn(p.shape, generator=gen, dtype=dtype)
            q.grad = p.grad.clone()
        if k == 7:  # a tensor without a gradient sits a step out: its step count lags the others
            a[2].grad = b[2].grad = None
        reference.step()
        grouped.step()
        assert torch.equal(grouped.param_groups[0]["rms_step"], reference.param_groups[0]["rms_step"])
    assert grouped.param_groups[0]["impl"] == "foreach"
    for p, q in zip(a, b):
        assert torch.equal(p, q) and p.stride() == q.stride()
        assert reference.state[p].keys() == grouped.state[q].keys()
        for key, value in reference.state[p].items():
            other = grouped.state[q][key]
            assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other, key


class _Ops(TorchDispatchMode):
    """Counts the operations dispatched (each a kernel launch on a GPU, or a group of them)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("numerator", ["parcor-c5b0935", "moment-c5b0935"])
def test_the_group_step_takes_a_few_ops_per_tensor_where_the_reference_takes_dozens(numerator) -> None:
    counts = {}
    for impl in ("reference", "foreach"):
        params = [torch.randn(4, 4) for _ in range(40)]
        opt = MuPhi(params, lr=0.01, total_steps=10, numerator=numerator, gamma=0.31,
                    weight_decay=0.01, weight_decay_in_step=True, impl=impl, rms_every=2)
        for p in params:
            p.grad = torch.randn(4, 4)
        opt.step()
        with _Ops() as ops:
            opt.step()  # a step with the Σ Δ² reduction
        counts[impl] = ops.count
    assert counts["reference"] >= 25 * 40
    assert counts["foreach"] <= 7 * 40 + 40  # per tensor: the mean, its scaling, Σ Δ²'s three, ...


def test_auto_takes_the_group_step_for_the_release_numerators_off_the_cpu() -> None:
    """On an accelerator (`meta` stands for one: the choice reads no values)."""
    for device, want in (("cpu", "reference"), ("meta", "foreach")):
        params = [torch.zeros(3, device=device)]
        opt = MuPhi(params, lr=0.1, total_steps=4, numerator="parcor-c5b0935")
        group = opt.param_groups[0]
        assert opt._choose(params, opt._config(group, 0.1)) == want
    for impl in ("fused", "compiled"):
        with pytest.raises(ValueError, match=r"impl='reference' or 'foreach'"):
            MuPhi([torch.zeros(3)], total_steps=4, numerator="moment-c5b0935", impl=impl)


@pytest.mark.gpu
@pytest.mark.parametrize("numerator", ["parcor-c5b0935", "moment-c5b0935"])
def test_the_group_step_on_a_gpu_is_the_cpu_reference_to_round_off(numerator) -> None:
    a = _mixed_params(torch.float64)
    b = [p.cuda() for p in a]
    kwargs = dict(lr=0.05, total_steps=30, numerator=numerator, gamma=0.31, weight_decay=0.01,
                  weight_decay_in_step=True)
    reference, grouped = MuPhi(a, impl="reference", **kwargs), MuPhi(b, **kwargs)
    gen = torch.Generator().manual_seed(5)
    for _ in range(30):
        for p, q in zip(a, b):
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            q.grad = p.grad.cuda()
        reference.step()
        grouped.step()
    assert grouped.param_groups[0]["impl"] == "foreach"
    for p, q in zip(a, b):
        torch.testing.assert_close(q.cpu(), p, rtol=1e-12, atol=1e-14)


def _on_the_group_step(monkeypatch):
    """The release tests' MuPhi, built with impl='foreach' where they ask for 'reference'."""
    from tests.optimizers import test_reference_release as release

    def muphi(*args, **kwargs):
        if kwargs.get("impl") == "reference":
            kwargs["impl"] = "foreach"
        return MuPhi(*args, **kwargs)

    monkeypatch.setattr(release, "MuPhi", muphi)
    return release


@pytest.mark.parametrize("arm", ["moment", "parcor"])
def test_the_release_tests_hold_on_the_group_step(monkeypatch, arm) -> None:
    """tests/optimizers/test_reference_release.py's trajectories against the release written
    out (steps 1-3 and 300 steps on a quadratic, every γ panel and decay) on `impl="foreach"`."""
    release = _on_the_group_step(monkeypatch)
    for panel in release.GRID:
        for decay in release.DECAYS:
            release.test_steps_1_to_3_follow_the_release(arm, panel, decay)
            release.test_300_steps_on_a_quadratic_follow_the_release(arm, panel, decay)
    opt = release._muphi([torch.zeros(2)], "0.31", arm, "decoupled", tau=4)
    assert isinstance(opt, MuPhi) and opt.impl == "foreach"
