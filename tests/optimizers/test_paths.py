"""How MuPhi picks its path: once per param group, recorded in `group["impl"]`, logged once; only
a failed build moves a group to another path, every other error propagates."""

from __future__ import annotations

import logging

import pytest
import torch
from torch._inductor.exc import CppCompileError

from optimizers import MuPhi
from optimizers import compiled as C


def _step(opt: MuPhi, params: list[torch.Tensor], n: int = 1) -> None:
    for _ in range(n):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()


def test_the_path_is_chosen_once_per_group_logged_once_and_recorded(caplog) -> None:
    big, small = [torch.zeros(4)], [torch.zeros(3, dtype=torch.bfloat16)]
    opt = MuPhi([{"params": big}, {"params": small}], lr=0.1, total_steps=10)
    assert [g["impl"] for g in opt.param_groups] == [None, None]
    with caplog.at_level(logging.INFO, logger="optimizers.muphi"):
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
    monkeypatch.setattr("optimizers.muphi.AUTO_COMPILE_MIN_NUMEL", 1)
    monkeypatch.setattr("optimizers.native.unsupported", lambda params: "declined for this test")
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
    monkeypatch.setattr("optimizers.muphi.AUTO_COMPILE_MIN_NUMEL", 1)
    monkeypatch.setattr("optimizers.native.unsupported", lambda params: "declined for this test")
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
