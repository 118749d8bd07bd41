"""The reference-compatible numerators and the filter's default gain, against values by hand.

Set-up for the hand computations: one tensor w = (0.5, -2), no smoothing (β = 0, so η = 1 and
v̂ = g), β2 = β_a = 0.5, ε = 0, μ = 0.1, a constant window. At t = 1 the bias-corrected second
moment is g² itself, so Φ = 1/|g| and ḡ = sign(g) (docs/theory.md eqs. S2-S3).
"""

from __future__ import annotations

import math

import pytest
import torch

from optimizers import MuPhi, check_optimizer

W0 = (0.5, -2.0)
G1, G2 = (0.2, 0.4), (-0.1, 0.3)
MU = 0.1


def _run(numerator: str, grads, **extra) -> tuple[list[list[float]], MuPhi]:
    w = torch.tensor(W0, dtype=torch.float64)
    opt = MuPhi([w], lr=MU, window="constant", betas=(0.0, 0.5), eps=0.0, numerator=numerator,
                numerator_beta=0.5, **extra)
    trace = []
    for g in grads:
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        trace.append(w.tolist())
    return trace, opt


def _second_step_denominator() -> list[float]:
    """d = sqrt(E[g²]/(1 - β2²)) at t = 2, E[g²] = 0.25·g1² + 0.5·g2²."""
    return [math.sqrt((0.25 * a * a + 0.5 * b * b) / 0.75) for a, b in zip(G1, G2)]


def test_moment_ref_first_steps_by_hand() -> None:
    trace, opt = _run("moment-ref", [G1, G2])
    assert opt.param_groups[0]["impl"] == "reference"
    # t = 1: s = 0.5·(w² + ḡ²) = (0.625, 2.5); â = mean(min(s, 1)) = 0.8125; a = 0.9·â = 0.73125.
    step1 = 0.1 * 0.73125
    assert trace[0] == pytest.approx([0.5 - step1, -2.0 - step1], rel=1e-12)
    # t = 2, with the first step's w and the second step's ḡ = g2/d.
    w1, d = trace[0], _second_step_denominator()
    s1 = [0.625, 2.5]
    s2 = [0.5 * s + 0.5 * (w * w + (g / dd) ** 2) for s, w, g, dd in zip(s1, w1, G2, d)]
    a2 = 0.1 * 0.73125 + 0.9 * sum(min(s, 1.0) for s in s2) / 2
    expected = [w - MU * a2 * g / dd for w, g, dd in zip(w1, G2, d)]
    assert trace[1] == pytest.approx(expected, rel=1e-12)


def test_parcor_ref_first_steps_by_hand() -> None:
    trace, _ = _run("parcor-ref", [G1, G2])
    # t = 1: q = 0.5·w² = (0.125, 2); ρ = 1/(1 + 0.5·q) = (1/1.0625, 0.5); x = w·ḡ = (0.5, -2);
    # m = 0.5·|x| = (0.25, 1), so the cap 4m does not bind; p = ρ·x = (0.470588…, -1).
    # Bounds: ρ·T(|g|) with T(u) = u(1-u²)² = (0.18432, 0.28224) → (0.17348, 0.14112) below,
    # 1/ρ = (1.0625, 2) above: |p| lies between. â = (8/17 + 1)/2, a = 0.9·â.
    a1 = 0.9 * (8 / 17 + 1.0) / 2
    assert trace[0] == pytest.approx([0.5 - MU * a1, -2.0 - MU * a1], rel=1e-12)
    # t = 2 by the same formulas (eqs. N7-N11), from the first step's w and state.
    w1, d = trace[0], _second_step_denominator()
    q = [0.5 * 0.125 + 0.5 * w1[0] ** 2, 0.5 * 2.0 + 0.5 * w1[1] ** 2]
    rho = [1 / (1 + 0.5 * x) for x in q]
    x = [w * g / dd for w, g, dd in zip(w1, G2, d)]
    m = [0.5 * m0 + 0.5 * abs(xi) for m0, xi in zip((0.25, 1.0), x)]
    capped = [math.copysign(min(abs(xi), 4 * mi), xi) for xi, mi in zip(x, m)]
    p = [0.5 * p0 + r * c for p0, r, c in zip((8 / 17, -1.0), rho, capped)]
    low = [r * min(dd, 1) * (1 - min(dd, 1) ** 2) ** 2 for r, dd in zip(rho, d)]
    a_i = [min(max(abs(pi), lo), 1 / r) for pi, lo, r in zip(p, low, rho)]
    a2 = 0.1 * a1 + 0.9 * sum(a_i) / 2
    expected = [w - MU * a2 * g / dd for w, g, dd in zip(w1, G2, d)]
    assert trace[1] == pytest.approx(expected, rel=1e-12)


def test_parcor_ref_lower_bound_binds_where_the_correlation_is_small() -> None:
    """A weight near zero has |p| below ρ·T(d): the bound, not the estimate, sets its share of â."""
    w = torch.tensor([1e-6, 1.0], dtype=torch.float64)
    opt = MuPhi([w], lr=MU, window="constant", betas=(0.0, 0.5), eps=0.0, numerator="parcor-ref",
                numerator_beta=0.5)
    w.grad = torch.tensor([0.5, 0.5], dtype=torch.float64)
    opt.step()
    rho = [1 / (1 + 0.25 * 1e-12), 1 / (1 + 0.25)]
    t_of_d = 0.5 * (1 - 0.25) ** 2
    a_i = [rho[0] * t_of_d, rho[1] * 1.0]  # p = ρ·w·ḡ: 1e-6·ρ0 (below the bound), ρ1 (inside)
    a = 0.9 * sum(a_i) / 2
    assert w.tolist() == pytest.approx([1e-6 - MU * a, 1.0 - MU * a], rel=1e-12)


@pytest.mark.parametrize("impl", ["fused", "compiled"])
def test_fast_paths_refuse_the_reference_numerators(impl) -> None:
    w = torch.ones(3)
    w.grad = torch.ones(3)
    with pytest.raises(ValueError, match=rf"impl='{impl}' is not allowed with numerator='parcor-ref'"):
        check_optimizer("muphi", total_steps=4, numerator="parcor-ref", impl=impl)
    opt = MuPhi([w], lr=0.1, total_steps=4, impl=impl)
    opt.param_groups[0]["numerator"] = "moment-ref"  # a group of its own may choose another
    with pytest.raises(ValueError, match=rf"impl='{impl}' is not allowed with numerator='moment-ref'"):
        opt.step()


def test_default_filter_gain_has_unit_dc_gain() -> None:
    """η = (1-β)/(1-γ) (eq. F2): the first step is 1/(1-γ) of the radius, the settled one the radius."""
    beta, gamma = 0.9, 0.5
    w = torch.zeros(2, dtype=torch.float64)
    opt = MuPhi([w], lr=MU, window="constant", betas=(beta, 0.999), gamma=gamma, eps=0.0)
    g = torch.tensor([0.3, -2.0], dtype=torch.float64)
    steps = []
    for _ in range(300):
        before = w.clone()
        w.grad = g.clone()
        opt.step()
        steps.append((w - before).tolist())
    # t = 1: v = η·g (the filter starts from rest), v̂ = v/(1-β) = g/(1-γ); Φ = 1/|g|.
    assert steps[0] == pytest.approx([-MU / (1 - gamma), MU / (1 - gamma)], rel=1e-12)
    # Settled: a constant gradient passes a unit-DC-gain filter unchanged, so |Δ| → μ.
    assert steps[-1] == pytest.approx([-MU, MU], rel=1e-9)
    # γ = 0 keeps Adam's η = 1 - β (the exactness claim); an explicit η is used as given.
    assert opt._config(opt.param_groups[0], MU).eta == pytest.approx((1 - beta) / (1 - gamma))
    assert MuPhi([torch.zeros(1)], window="constant")._config(
        {"betas": (0.9, 0.999), "gamma": 0.0, "eta": None, "eps": 1e-8, "numerator": "one",
         "numerator_beta": 0.999, "weight_decay": 0.0, "decoupled_weight_decay": True}, MU).eta == pytest.approx(0.1)
