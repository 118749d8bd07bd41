"""MuPhi against the reference release: somefunAgba/autosgm, `asgm.py` at commit c5b0935.

The release's published figures compare, over the filter zero γ at the pole β = 0.9 with cosine
annealing, the unit numerator (red: its `num_lrc = 0`, "Adam as a fixed learning-rate
numerator") with the par-cor numerator (blue: `num_lrc = 2`, MuPhi's `parcor-c5b0935`); its
moment estimator (`num_lrc = 3`) is MuPhi's `moment-c5b0935`. `GRID` is the figures' γ grid; its
"Base" panel is the unsmoothed method, β = 0 (the release's README starts from that instance:
"lowpass filter's pole, beta = 0 # off", then turns the filter on and moves its zero).

`ReleaseStep` writes the release's formulas out here, step by step in float64 numpy, in the
release's own order and parameterisation (the un-normalised filter state z with the output
divided by u[t]·(1 - β^t), the magnitude with ε inside and outside the square root, the decay
added to the normalised step); MuPhi computes the same quantities in docs/theory.md's notation
(eqs. S1-S7, S6', F3, N4-N10). At ε = 0 the two are the same function, and these tests hold them
to float64 round-off.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from annealbench.optimizers import MuPhi
from annealbench.optimizers.reference import REFERENCE_NUMERATORS

BETA, BETA2 = 0.9, 0.999
GRID = {  # panel -> (β, γ)
    "0": (BETA, 0.0), "0.31": (BETA, 0.31), "nag": (BETA, BETA / (1 + BETA)),
    "0.55": (BETA, 1 - math.sqrt(2 * (1 - BETA))), "0.64": (BETA, 0.64), "0.85": (BETA, 0.85),
    "0.9": (BETA, 0.9), "base": (0.0, 0.0),
}
ARMS = {"one": "one", "moment": REFERENCE_NUMERATORS[0], "parcor": REFERENCE_NUMERATORS[1]}
DECAYS = {"none": (0.0, 0), "coupled": (0.1, 0), "decoupled": (0.1, 1)}  # the release's wd_cfg = (λ, level)
MU = 0.01
MARKOV_C = 4.0      # the release's Markov-inequality constant
SHORT_POLE = 0.1    # the release's pole of the iteration-wise smoothing of the tensor mean


class ReleaseStep:
    """One tensor updated by the c5b0935 formulas (float64 numpy)."""

    def __init__(self, w, *, arm: str, beta: float, gamma: float, beta_n: float, eps: float,
                 wd: float, level: int) -> None:
        self.w = np.array(w, dtype=np.float64)
        self.arm, self.beta, self.gamma, self.beta_n, self.eps = arm, beta, gamma, beta_n, eps
        self.wd, self.level = wd, level
        self.t = 0
        zeros = np.zeros_like(self.w)
        self.z, self.g_prev, self.e = zeros.copy(), zeros.copy(), zeros.copy()   # filter, its input, power
        self.s, self.q, self.m, self.p = zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
        self.a_smooth = 0.0

    def step(self, grad: np.ndarray, mu_t: float) -> np.ndarray:
        self.t = t = self.t + 1
        beta, gamma, w = self.beta, self.gamma, self.w
        g = grad + self.wd * w if self.wd and self.level == 0 else grad       # level 0: coupled

        # Smoothing filter (1 - β)(1 - γz⁻¹)/(1 - βz⁻¹) from rest; the output is divided by
        # u[t]·(1 - β^t), u[1] = 1, u[t] = 1 - γ after.
        self.z = beta * self.z + (1 - beta) * (g - gamma * self.g_prev)
        self.g_prev = g
        y = self.z / ((1.0 if t == 1 else 1 - gamma) * (1 - beta**t))

        # Gradient magnitude d, pole β2, with ε inside the square and after the square root.
        self.e = BETA2 * self.e + (1 - BETA2) * (g + self.eps) ** 2
        d = np.sqrt(self.e / (1 - BETA2**t)) + self.eps
        g_norm = g / d
        u = y / d                                                             # normalised step
        if self.wd and self.level == 1:                                       # level 1: in the step
            u = u + (1 - beta) / (1 - gamma) * self.wd * w

        if self.arm == "one":
            a = 1.0
        else:
            if self.arm == "moment":  # average of the normalised gradient's square, capped at 1
                self.s = self.beta_n * self.s + (1 - self.beta_n) * g_norm**2
                a_tensor = np.minimum(self.s, 1.0).mean()
            else:  # par-cor: w times the normalised step, Markov-capped, gain-1 average
                self.q = self.beta_n * self.q + (1 - self.beta_n) * w**2
                x = w * u
                self.m = BETA2 * self.m + (1 - BETA2) * np.abs(x)
                self.p = self.beta_n * self.p + np.sign(x) * np.minimum(np.abs(x), MARKOV_C * self.m) / (1 + self.q)
                a_tensor = np.minimum(np.abs(self.p), 1 + self.q).mean()
            self.a_smooth = SHORT_POLE * self.a_smooth + (1 - SHORT_POLE) * a_tensor
            a = self.a_smooth
        self.w = w - mu_t * a * u
        return self.w


def _cosine(t: int, tau: int) -> float:
    """The release's raised cosine of order 2 at iteration t (counting from 1) of τ."""
    return math.cos(0.5 * math.pi * (t - 1) / tau) ** 2


def _muphi(params, panel: str, arm: str, decay: str, *, tau: int, **extra) -> MuPhi:
    beta, gamma = GRID[panel]
    wd, level = DECAYS[decay]
    return MuPhi(params, lr=MU, window="cosine", total_steps=tau, betas=(beta, BETA2), gamma=gamma,
                 numerator=ARMS[arm], weight_decay=wd, decoupled_weight_decay=level == 1,
                 weight_decay_in_step=level == 1, impl="reference", **extra)


def _release(w0, panel: str, arm: str, decay: str, *, beta_n: float, eps: float) -> ReleaseStep:
    beta, gamma = GRID[panel]
    wd, level = DECAYS[decay]
    return ReleaseStep(w0, arm=arm, beta=beta, gamma=gamma, beta_n=beta_n, eps=eps, wd=wd, level=level)


ALL = pytest.mark.parametrize("decay", list(DECAYS))
PANELS = pytest.mark.parametrize("panel", list(GRID))
ARM = pytest.mark.parametrize("arm", list(ARMS))


# --------------------------------------------------------------- steps 1-3
W0 = np.array([0.5, -2.0, 1.5])
GRADS = [np.array([0.2, 0.4, -0.3]), np.array([-0.1, 0.3, -0.2]), np.array([0.25, -0.05, 0.1])]


def _first_step_by_hand(arm: str, panel: str, decay: str) -> np.ndarray:
    """Step 1 at ε = 0: Ê[g²] = g², so d = |g|; the filter's first output is g itself (unit gain
    at t = 1, for every γ), so the normalised step is sign(g), plus (1-β)/(1-γ)·λ·w in the step."""
    beta, gamma = GRID[panel]
    wd, level = DECAYS[decay]
    g = GRADS[0] + wd * W0 if level == 0 else GRADS[0]
    u = np.sign(g) + ((1 - beta) / (1 - gamma) * wd * W0 if level == 1 else 0.0)
    beta_n = 0.9999
    if arm == "one":
        a = 1.0
    elif arm == "moment":  # s = (1 - β_n)·ḡ² = 1 - β_n < 1, a = (1 - β_s)·mean(s)
        a = 0.9 * (1 - beta_n)
    else:  # x = w·u; m = (1-β2)|x|, so the cap 4m = 0.004|x| binds; p = 4(1-β2)·x/(1+q)
        q = (1 - beta_n) * W0**2
        x = W0 * u
        a = 0.9 * np.mean(4 * (1 - BETA2) * np.abs(x) / (1 + q))
    return W0 - MU * a * u  # the window is 1 at its first step


@ARM
@PANELS
@ALL
def test_steps_1_to_3_follow_the_release(arm, panel, decay) -> None:
    w = torch.tensor(W0)
    opt = _muphi([w], panel, arm, decay, tau=10, eps=0.0)
    release = _release(W0, panel, arm, decay, beta_n=0.9999, eps=0.0)
    for t, g in enumerate(GRADS, start=1):
        w.grad = torch.tensor(g)
        opt.step()
        expected = release.step(g, MU * _cosine(t, 10))
        if t == 1:
            np.testing.assert_allclose(expected, _first_step_by_hand(arm, panel, decay), rtol=1e-15, atol=0)
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-14, atol=1e-16, err_msg=f"step {t}")


# --------------------------------------------------------------- 300 steps on a quadratic
STEPS = 300
SHAPES = [(4, 3), (5,)]


def _quadratic():
    """A noisy separable quadratic: g = h·(w - w*) + noise, fixed for every run."""
    rng = np.random.default_rng(0)
    w0 = [rng.normal(size=s) for s in SHAPES]
    curvature = [rng.uniform(0.5, 3.0, size=s) for s in SHAPES]
    optimum = [rng.normal(size=s) for s in SHAPES]
    noise = [[0.3 * rng.normal(size=s) for s in SHAPES] for _ in range(STEPS)]
    return w0, curvature, optimum, noise


def _trajectories(panel, arm, decay, *, beta_n, eps, muphi: dict):
    """Each step's Δ for MuPhi (built with `muphi`) and for the written-out release (β_n, ε),
    and both final weights."""
    w0, curvature, optimum, noise = _quadratic()
    params = [torch.tensor(w) for w in w0]
    opt = _muphi(params, panel, arm, decay, tau=STEPS, **muphi)
    release = [_release(w, panel, arm, decay, beta_n=beta_n, eps=eps) for w in w0]
    ours, theirs = [], []
    for t in range(1, STEPS + 1):
        before = [p.clone() for p in params]
        for i, p in enumerate(params):
            p.grad = torch.tensor(curvature[i]) * (p - torch.tensor(optimum[i])) + torch.tensor(noise[t - 1][i])
        opt.step()
        ours.append([(p - b).numpy() for p, b in zip(params, before)])
        theirs.append([-r.w + r.step(p.grad.numpy(), MU * _cosine(t, STEPS)) for r, p in zip(release, params)])
    return ours, theirs, [p.numpy() for p in params], [r.w for r in release]


def _step_error(ours, theirs, w_scale: float = 0.0) -> float:
    """max over steps and tensors of max|Δ_ours - Δ_release| / (max|Δ_release| + w_scale):
    w_scale/max|Δ| is the share of a step that w's own rounding hides (Δ is a difference of w's)."""
    return max(np.abs(a - b).max() / (np.abs(b).max() + w_scale)
               for sa, sb in zip(ours, theirs) for a, b in zip(sa, sb))


@ARM
@PANELS
@ALL
def test_300_steps_on_a_quadratic_follow_the_release(arm, panel, decay) -> None:
    """β_n = 0.99, so that the estimators move within 300 steps. Every step agrees to 1e-12 of
    its length plus 1e-14 (float64 round-off of w, |w| < 4 here): the window's last
    steps are ~3e-7 long, a difference of w's, and their Ϝ ≈ 3e-5 is 1 + cos(πx) in MuPhi's window
    but cos²(πx/2) in the release's."""
    ours, theirs, w_ours, w_theirs = _trajectories(panel, arm, decay, beta_n=0.99, eps=0.0,
                                                   muphi={"numerator_beta": 0.99, "eps": 0.0})
    assert min(np.abs(d).max() for d in ours[0]) > 1e-5, "the steps must be real for the comparison to mean anything"
    assert _step_error(ours, theirs, w_scale=1e-2) < 1e-12
    for a, b in zip(w_ours, w_theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)


@pytest.mark.parametrize("arm", ["moment", "parcor"])
def test_release_numerators_default_to_the_release_constants(arm) -> None:
    """Without eps and numerator_beta, the release's numerators take its ε = 1e-10 and
    β_n = 0.9999 (the project's own keep 1e-8 and 0.999). Against the release at its ε the steps
    then differ only by where ε enters the magnitude: (g + ε)² inside the release's average,
    a relative O(ε/|g|) per step (below 1e-7 for this problem's gradients)."""
    defaults = _trajectories("nag", arm, "decoupled", beta_n=0.9999, eps=1e-10, muphi={})
    explicit = _trajectories("nag", arm, "decoupled", beta_n=0.9999, eps=1e-10,
                             muphi={"eps": 1e-10, "numerator_beta": 0.9999})
    assert all(np.array_equal(a, b) for a, b in zip(defaults[2], explicit[2]))
    assert _step_error(defaults[0], defaults[1]) < 1e-6
    for numerator, expected in ((ARMS[arm], (1e-10, 0.9999)), ("parcor", (1e-8, 0.999))):
        opt = MuPhi([torch.zeros(1)], numerator=numerator, window="constant")
        cfg = opt._config(opt.param_groups[0], MU)
        assert (cfg.eps, cfg.numerator_beta) == expected, numerator


# --------------------------------------------------------------- the filter: F3, F4
@pytest.mark.parametrize("impl", ["reference", "fused"])
@PANELS
def test_first_step_takes_the_unit_gain(panel, impl) -> None:
    """Δ[1] = -μ·sign(g) for every zero γ (eq. F3), not -μ·sign(g)/(1 - γ) (6.7× at γ = 0.85);
    with γ < β a constant gradient then settles to the same |Δ| = μ (unit DC gain, F2)."""
    beta, gamma = GRID[panel]
    w = torch.zeros(2, dtype=torch.float64)
    opt = MuPhi([w], lr=MU, window="constant", betas=(beta, BETA2), gamma=gamma, eps=0.0, impl=impl)
    g = torch.tensor([0.3, -2.0], dtype=torch.float64)
    steps = []
    for _ in range(300):
        before = w.clone()
        w.grad = g.clone()
        opt.step()
        steps.append((w - before).tolist())
    assert steps[0] == pytest.approx([-MU, MU], rel=1e-14)
    if gamma < beta:
        assert steps[-1] == pytest.approx([-MU, MU], rel=1e-9)


def test_pole_zero_cancellation_passes_the_gradient_with_the_pole_bias_correction() -> None:
    """γ = β (eq. F4): v = g exactly, and the bias correction made for the pole leaves
    v̂[t] = g/(1 - β^t) for t ≥ 2, as in the release: a transient of 1/(1 - β²) ≈ 5.3 radii at
    t = 2 for β = 0.9, gone after about 1/(1 - β) steps."""
    w = torch.zeros(2, dtype=torch.float64)
    opt = MuPhi([w], lr=MU, window="constant", betas=(BETA, BETA2), gamma=BETA, eps=0.0)
    g = torch.tensor([0.3, -2.0], dtype=torch.float64)
    for t in range(1, 60):
        before = w.clone()
        w.grad = g.clone()
        opt.step()
        gain = 1.0 if t == 1 else 1 / (1 - BETA**t)
        assert (w - before).tolist() == pytest.approx([-MU * gain, MU * gain], rel=1e-12), t
        assert opt.state[w]["exp_avg"].tolist() == pytest.approx(g.tolist(), rel=1e-14)


@pytest.mark.parametrize("gamma", [0.9000001, 1.0])
def test_a_zero_past_the_pole_is_refused(gamma) -> None:
    with pytest.raises(ValueError, match=rf"gamma={gamma!r} is not allowed: expected gamma <= betas\[0\] = 0.9"):
        MuPhi([torch.zeros(2)], window="constant", gamma=gamma)


# --------------------------------------------------------------- weight decay in the release's units
@pytest.mark.parametrize("impl", ["reference", "fused"])
@pytest.mark.parametrize("panel", ["0", "nag", "0.9", "base"])
def test_in_step_decay_of_the_unit_numerator_is_the_shrink_with_the_mapped_lambda(panel, impl) -> None:
    """For a = 1, Δ = -μ[t]·(Φ·v̂ + η_F·λ·w) moves w as the AdamW shrink with λ·η_F does,
    η_F = (1 - β)/(1 - γ) (docs/theory.md, the S6-S6' mapping); only the step it reports differs."""
    beta, gamma = GRID[panel]
    lam = 0.3
    gen = torch.Generator().manual_seed(1)
    w_ref = torch.randn(20, generator=gen, dtype=torch.float64)
    w_map = w_ref.clone()
    common = dict(lr=0.05, window="linear", total_steps=100, betas=(beta, BETA2), gamma=gamma, impl=impl)
    in_step = MuPhi([w_ref], weight_decay=lam, weight_decay_in_step=True, **common)
    mapped = MuPhi([w_map], weight_decay=lam * (1 - beta) / (1 - gamma), **common)
    for _ in range(100):
        g = torch.randn(20, generator=gen, dtype=torch.float64)
        w_ref.grad, w_map.grad = g.clone(), g.clone()
        in_step.step()
        mapped.step()
    torch.testing.assert_close(w_ref, w_map, rtol=1e-12, atol=1e-14)
    assert float(in_step.param_groups[0]["rms_step"]) != float(mapped.param_groups[0]["rms_step"])


def test_in_step_decay_needs_decoupled_decay() -> None:
    with pytest.raises(ValueError, match="weight_decay_in_step=True is not allowed with decoupled_weight_decay=False"):
        MuPhi([torch.zeros(2)], window="constant", weight_decay=0.1, decoupled_weight_decay=False,
              weight_decay_in_step=True)


# --------------------------------------------------------------- names and paths
@pytest.mark.parametrize(("retired", "successor"), [("moment-ref", "moment-c5b0935"), ("parcor-ref", "parcor-c5b0935")])
def test_retired_numerator_names_point_to_the_release_estimators(retired, successor) -> None:
    from annealbench.optimizers import check_optimizer

    with pytest.raises(ValueError, match=rf"numerator='{retired}' is unknown.*96eaf0a.*'{successor}'"):
        MuPhi([torch.zeros(2)], window="constant", numerator=retired)
    with pytest.raises(ValueError, match=rf"numerator='{retired}' is unknown.*'{successor}'"):
        check_optimizer("muphi", total_steps=4, numerator=retired)


@pytest.mark.parametrize("numerator", REFERENCE_NUMERATORS)
@pytest.mark.parametrize("impl", ["fused", "compiled"])
def test_fast_paths_refuse_the_release_numerators(impl, numerator) -> None:
    from annealbench.optimizers import check_optimizer

    message = rf"impl='{impl}' is not allowed with numerator='{numerator}'.*impl='reference'"
    with pytest.raises(ValueError, match=message):
        check_optimizer("muphi", total_steps=4, numerator=numerator, impl=impl)
    w = torch.ones(3)
    w.grad = torch.ones(3)
    opt = MuPhi([w], lr=0.1, total_steps=4, impl=impl)
    opt.param_groups[0]["numerator"] = numerator  # a group of its own may choose another
    with pytest.raises(ValueError, match=message):
        opt.step()
    auto = MuPhi([w], lr=0.1, total_steps=4, numerator=numerator)
    auto.step()
    assert auto.param_groups[0]["impl"] == "reference"
