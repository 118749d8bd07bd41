"""The peers under the window: torch's fastest AdamW/SGD, Muon + AdamW, Prodigy; `group["impl"]`."""

from __future__ import annotations

import copy

import prodigyopt
import pytest
import torch

from optimizers import build_optimizer
from optimizers.peers import fastest_impl
from optimizers.windows import make_window, progress


def test_adamw_and_sgd_run_torch_s_fused_kernel_on_the_cpu_and_record_it() -> None:
    for name in ("adamw", "sgd"):
        w = torch.ones(4)
        opt = build_optimizer(name, [w], total_steps=4)
        assert opt.defaults["fused"] is True
        assert [g["impl"] for g in opt.param_groups] == ["fused"]
    assert fastest_impl([torch.ones(2, device="meta")]) == "foreach"  # no fused kernel there
    assert fastest_impl([torch.ones(2, dtype=torch.int64)]) == "foreach"
    explicit = build_optimizer("adamw", [torch.ones(2)], total_steps=4, fused=False, foreach=False)
    assert explicit.param_groups[0]["impl"] == "for-loop"


def _model_params() -> list[dict]:
    torch.manual_seed(0)
    hidden, embed, bias = torch.randn(6, 4), torch.randn(10, 4), torch.zeros(6)
    return [{"params": [hidden]}, {"params": [embed], "muon": False}, {"params": [bias], "weight_decay": 0.0}]


def test_muon_takes_hidden_matrices_and_adamw_the_rest_under_one_window() -> None:
    groups = _model_params()
    hidden, embed, bias = (g["params"][0] for g in groups)
    opt = build_optimizer("muon", groups, total_steps=4, lr=0.02, window="linear")
    assert [g["impl"] for g in opt.param_groups] == ["for-loop", "fused", "fused"]
    assert [g["params"][0] is p for g, p in zip(opt.param_groups, (hidden, embed, bias))] == [True] * 3
    assert isinstance(opt._muon, torch.optim.Muon) and opt._muon.param_groups[0]["params"] == [hidden]
    twin = hidden.detach().clone()
    reference = torch.optim.Muon([twin], lr=0.02, weight_decay=0.0, adjust_lr_fn="match_rms_adamw")
    gen = torch.Generator().manual_seed(1)
    for k in range(4):
        for p in (hidden, embed, bias):
            p.grad = torch.randn(p.shape, generator=gen)
        twin.grad = hidden.grad.clone()
        reference.param_groups[0]["lr"] = 0.02 * (1 - k / 4)
        opt.step()
        reference.step()
        assert [g["mu_t"] for g in opt.param_groups] == pytest.approx([0.02 * (1 - k / 4)] * 3)
        assert torch.equal(hidden, twin)
    assert set(opt.state[embed]) >= {"exp_avg", "exp_avg_sq"} and "momentum_buffer" in opt.state[hidden]


def test_muon_state_dict_round_trip_resumes_exactly() -> None:
    def run(resume_at):
        groups = _model_params()
        params = [g["params"][0] for g in groups]
        opt = build_optimizer("muon", groups, total_steps=8, lr=0.02)
        gen = torch.Generator().manual_seed(2)
        for k in range(8):
            if k == resume_at:
                saved = copy.deepcopy({"p": [p.clone() for p in params], "opt": opt.state_dict()})
                groups = _model_params()
                params = [g["params"][0] for g in groups]
                for p, q in zip(params, saved["p"]):
                    p.copy_(q)
                opt = build_optimizer("muon", groups, total_steps=8, lr=0.02)
                opt.load_state_dict(saved["opt"])
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen)
            opt.step()
        return params

    for a, b in zip(run(None), run(5)):
        assert torch.equal(a, b)


def test_prodigy_is_prodigyopt_with_the_window_as_its_schedule() -> None:
    w, twin = torch.ones(5), torch.ones(5)
    opt = build_optimizer("prodigy", [w], total_steps=6, window="cosine")
    reference = prodigyopt.Prodigy([twin], lr=1.0)
    window = make_window("cosine")
    gen = torch.Generator().manual_seed(3)
    for k in range(6):
        w.grad = torch.randn(5, generator=gen) + w
        twin.grad = w.grad.clone()
        reference.param_groups[0]["lr"] = window(progress(k, 6))
        d = reference.param_groups[0]["d"]
        opt.step()
        reference.step()
        assert torch.equal(w, twin)
        assert opt.param_groups[0]["mu_t"] == pytest.approx(d * window(progress(k, 6)))
    assert opt.param_groups[0]["impl"] == "for-loop"
