"""The μ[t]·Φ step for one tensor, written plainly in the notation of docs/theory.md.

This is the readable specification the fast paths (`annealbench.optimizers.native`, `annealbench.optimizers.compiled`)
are tested against; it is slow (one small kernel per operation), the default only for the
reference-release numerators, which no fast path implements.

Per coordinate i at iteration t (t counts this tensor's updates from 1; labels of docs/theory.md):

    g     ← g + λ·w                                   (S1) coupled weight decay (optional)
    E[g²] ← β2·E[g²] + (1 - β2)·g²                     (S2) second moment, pole β2
    Φ     = 1 / (sqrt(E[g²] / (1 - β2^t)) + ε)         (S3) bias-corrected normaliser
    v     ← β·v + η·(g - γ·g_prev),  g_prev ← g        (S4) filter H(z) = η(1 - γz⁻¹)/(1 - βz⁻¹)
    v̂     = c[t]·v / (1 - β^t)                         (S5, F3) bias correction (β = 0: v̂ = c[t]·v);
                                                       c[1] = 1 - γ, c[t] = 1 after: unit first-step gain
    u     = Φ·v̂  (+ η_F·λ·w with the in-step decay)    (S6') the normalised step, η_F = (1-β)/(1-γ)
    ḡ     = g·Φ
    a     = 1 | E[ḡ²] | clip(E[w·ḡ], 0, 1)            (N1-N3) numerator; E[·] a long-memory
                                                       EMA, pole β_a, bias-corrected by 1 - β_a^t
    w     ← w·(1 - μ[t]·λ)                             (S6) decoupled weight decay (AdamW's)
    Δ     = -μ[t]·a·u,   w ← w + Δ                     (S7)

The reference-release numerators `moment-c5b0935` and `parcor-c5b0935` (eqs. N4-N10 of
docs/theory.md; somefunAgba/autosgm at commit c5b0935) replace the per-coordinate a by one
number per tensor: a tensor-wise mean of capped, un-bias-corrected averages, smoothed again over
iterations with pole β_s = 0.1.

The filter starts from rest (g_prev = 0 and v = 0 before the first update). The `parcor`
numerator a = E[w·ḡ] minimises the trust-region subproblem whose cross term uses w; the
subproblem's minimiser over α ≥ 0 is 0 when that correlation is negative, and a radius above μ[t]
would leave the trust region, hence the clip to [0, 1]: the step is always a descent step along
-v̂ and never longer than the radius. (Coordinates with w = 0 throughout, e.g. zero-initialised
biases, therefore do not move under `parcor`.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FAST_NUMERATORS: tuple[str, ...] = ("one", "moment", "parcor")
"""The numerators of docs/theory.md eqs. N1-N3, implemented by every path."""
REFERENCE_RELEASE = "c5b0935"
"""The commit of somefunAgba/autosgm (`asgm.py`, 2026-01-26) whose numerators N4-N10 follow."""
REFERENCE_NUMERATORS: tuple[str, ...] = (f"moment-{REFERENCE_RELEASE}", f"parcor-{REFERENCE_RELEASE}")
"""The reference release's numerators (eqs. N4-N10), implemented by the reference step only."""
NUMERATORS: tuple[str, ...] = FAST_NUMERATORS + REFERENCE_NUMERATORS
RETIRED_NUMERATORS: dict[str, str] = {"moment-ref": REFERENCE_NUMERATORS[0], "parcor-ref": REFERENCE_NUMERATORS[1]}
"""Names of the estimators of the reference's release 96eaf0a, no longer implemented -> their successors."""
REF_SMOOTHING = 0.1
"""β_s: the pole of the second, iteration-wise smoothing of the reference numerators (eq. N5)."""
MARKOV_CAP = 4.0
"""c: the Markov-inequality cap of `parcor-c5b0935`'s input, |x| ≤ c·E[|x|] (eq. N9)."""
DEFAULT_EPS = {"own": 1e-8, "reference": 1e-10}
DEFAULT_NUMERATOR_BETA = {"own": 0.999, "reference": 0.9999}


def numerator_defaults(numerator: str) -> tuple[float, float]:
    """(ε, β_a) for `numerator` when not given: the reference release's own values (1e-10,
    0.9999) for its numerators, the project's (1e-8, 0.999, Adam's ε) for the others."""
    family = "reference" if numerator in REFERENCE_NUMERATORS else "own"
    return DEFAULT_EPS[family], DEFAULT_NUMERATOR_BETA[family]


def unit_dc_gain(beta: float, gamma: float) -> float:
    """η_F = (1 - β)/(1 - γ), the filter gain of unit DC gain H(1) = 1 (eq. F2); γ ≤ β < 1."""
    return (1.0 - beta) / (1.0 - gamma)


@dataclass(frozen=True)
class StepConfig:
    """Hyperparameters of one μ[t]·Φ step (all dimensionless).

    mu_t: radius μ[t] = μ·Ϝ[t] of this step.  beta, gamma, eta: pole, zero and gain of the
    smoothing filter.  beta2: pole of E[g²].  eps: ε of Φ.  numerator: one of `NUMERATORS`.
    numerator_beta: pole β_a of the numerator's EMA.  weight_decay: λ.  decoupled: True applies
    decoupled decay, False adds λw to the gradient (S1).  decay_in_step: with `decoupled`, the
    decay is the reference's, η_F·λ·w added to the normalised step (S6'), not the shrink w(1 - μ[t]λ)
    (S6).
    """

    mu_t: float
    beta: float = 0.9
    gamma: float = 0.0
    eta: float = 0.1
    beta2: float = 0.999
    eps: float = 1e-8
    numerator: str = "one"
    numerator_beta: float = 0.999
    weight_decay: float = 0.0
    decoupled: bool = True
    decay_in_step: bool = False

    @property
    def decay_gain(self) -> float:
        """η_F of the in-step decay (S6'): the unit-DC gain, whatever the filter's η."""
        return unit_dc_gain(self.beta, self.gamma)


def first_step_gain(gamma: float, t: int) -> float:
    """c[t] of eq. F3: 1 - γ at t = 1, else 1.

    At t = 1 the filter (from rest) has no previous gradient for its zero to subtract, so the
    zero's compensation 1/(1 - γ) in η (F2) would lengthen the first step to 1/(1 - γ) of the
    radius; the reference release (its `u_gam`) takes the unit gain there instead.
    """
    return 1.0 - gamma if t == 1 else 1.0


def init_state(param: torch.Tensor, cfg: StepConfig) -> dict[str, object]:
    """Zero state for `param`: only the tensors the configuration needs are created."""
    state: dict[str, object] = {"step": 0, "exp_avg_sq": torch.zeros_like(param)}
    if cfg.beta > 0:
        state["exp_avg"] = torch.zeros_like(param)
    if cfg.gamma != 0:
        state["prev_grad"] = torch.zeros_like(param)
    if cfg.numerator != "one":
        state["numerator_avg"] = torch.zeros_like(param)
    if cfg.numerator in REFERENCE_NUMERATORS:
        state["numerator_smooth"] = torch.zeros((), dtype=param.dtype, device=param.device)
    if cfg.numerator == REFERENCE_NUMERATORS[1]:
        state["numerator_w_sq"] = torch.zeros_like(param)
        state["numerator_mag"] = torch.zeros_like(param)
    return state


def _moment_release(g_bar: torch.Tensor, state: dict[str, object], cfg: StepConfig) -> torch.Tensor:
    """â of eq. N6: the tensor mean of min(s, 1), s ← β_a·s + (1 - β_a)·ḡ²."""
    s = state["numerator_avg"]
    s.mul_(cfg.numerator_beta).add_((1 - cfg.numerator_beta) * (g_bar * g_bar))
    return s.clamp(max=1.0).mean()


def _parcor_release(w: torch.Tensor, step_dir: torch.Tensor, state: dict[str, object],
                    cfg: StepConfig) -> torch.Tensor:
    """â of eqs. N7-N10: the tensor mean of min(|p|, 1/ρ), p a gain-1 average of ρ times the
    Markov-capped correlation of w with the normalised step u."""
    b = cfg.numerator_beta
    q = state["numerator_w_sq"]
    q.mul_(b).add_((1 - b) * (w * w))                                 # N7, 1/ρ = 1 + q
    x = w * step_dir
    size = x.abs()
    mag = state["numerator_mag"]
    mag.mul_(cfg.beta2).add_((1 - cfg.beta2) * size)                  # N8
    capped = x.sign() * torch.minimum(size, MARKOV_CAP * mag)
    p = state["numerator_avg"]
    p.mul_(b).add_(capped / (1 + q))                                  # N9
    return torch.minimum(p.abs(), 1 + q).mean()                       # N10


def _numerator(w: torch.Tensor, g: torch.Tensor, denom: torch.Tensor, step_dir: torch.Tensor,
               state: dict[str, object], cfg: StepConfig, t: int) -> torch.Tensor:
    """The numerator a of eqs. N1-N10 (a tensor of w's shape, or 0-d for the release's)."""
    g_bar = g / denom
    if cfg.numerator in REFERENCE_NUMERATORS:
        a_hat = _moment_release(g_bar, state, cfg) if cfg.numerator == REFERENCE_NUMERATORS[0] \
            else _parcor_release(w, step_dir, state, cfg)
        smooth = state["numerator_smooth"]
        smooth.mul_(REF_SMOOTHING).add_((1 - REF_SMOOTHING) * a_hat)  # N4-N5
        return smooth.clone()
    avg = state["numerator_avg"]
    sample = g_bar * g_bar if cfg.numerator == "moment" else w * g_bar
    avg.mul_(cfg.numerator_beta).add_((1 - cfg.numerator_beta) * sample)
    a = avg / (1 - cfg.numerator_beta**t)
    return a.clamp(0.0, 1.0) if cfg.numerator == "parcor" else a


@torch.no_grad()
def reference_step(param: torch.Tensor, grad: torch.Tensor, state: dict[str, object],
                   cfg: StepConfig) -> torch.Tensor:
    """Apply one μ[t]·Φ step to `param` in place; return Σ_i Δ_i² (float32, for the RMS step)."""
    state["step"] = t = int(state["step"]) + 1
    w = param
    g = grad + cfg.weight_decay * w if (cfg.weight_decay and not cfg.decoupled) else grad

    second = state["exp_avg_sq"]
    second.mul_(cfg.beta2).add_((1 - cfg.beta2) * g * g)
    denom = second.sqrt() / (1 - cfg.beta2**t) ** 0.5 + cfg.eps  # Φ = 1/denom

    filtered_in = g
    if cfg.gamma != 0:
        filtered_in = g - cfg.gamma * state["prev_grad"]
        state["prev_grad"].copy_(g)
    if cfg.beta > 0:
        v = state["exp_avg"]
        v.mul_(cfg.beta).add_(cfg.eta * filtered_in)
        v_hat = v * (first_step_gain(cfg.gamma, t) / (1 - cfg.beta**t))
    else:
        v_hat = (cfg.eta * first_step_gain(cfg.gamma, t)) * filtered_in

    step_dir = v_hat / denom  # u = Φ·v̂
    in_step = cfg.weight_decay and cfg.decoupled and cfg.decay_in_step
    if in_step:
        step_dir = step_dir + (cfg.decay_gain * cfg.weight_decay) * w  # S6'
    if cfg.numerator != "one":
        step_dir = _numerator(w, g, denom, step_dir, state, cfg, t) * step_dir

    if cfg.weight_decay and cfg.decoupled and not in_step:
        w.mul_(1 - cfg.mu_t * cfg.weight_decay)
    delta = -cfg.mu_t * step_dir
    w.add_(delta)
    return delta.float().square().sum()


# --------------------------------------------------------------------------- one group at once
def _group_numerators(w: list[torch.Tensor], g: list[torch.Tensor], denom: list[torch.Tensor],
                        step_dir: list[torch.Tensor], states: list[dict[str, object]],
                        cfg: StepConfig, ts: list[int]) -> list[torch.Tensor]:
    """`_numerator` for every tensor of a group: the same operations, each one multi-tensor op
    (but the release's tensor-wise means, one per tensor)."""
    g_bar = torch._foreach_div(g, denom)
    if cfg.numerator in REFERENCE_NUMERATORS:
        b = cfg.numerator_beta
        if cfg.numerator == REFERENCE_NUMERATORS[0]:                  # N6
            s = [st["numerator_avg"] for st in states]
            sample = torch._foreach_mul(g_bar, g_bar)
            torch._foreach_mul_(sample, 1 - b)
            torch._foreach_mul_(s, b)
            torch._foreach_add_(s, sample)
            kept = torch._foreach_clamp_max(s, 1.0)
        else:                                                         # N7-N10
            q = [st["numerator_w_sq"] for st in states]
            mag = [st["numerator_mag"] for st in states]
            p = [st["numerator_avg"] for st in states]
            w_sq = torch._foreach_mul(w, w)
            torch._foreach_mul_(w_sq, 1 - b)
            torch._foreach_mul_(q, b)
            torch._foreach_add_(q, w_sq)
            x = torch._foreach_mul(w, step_dir)
            size = torch._foreach_abs(x)
            torch._foreach_mul_(mag, cfg.beta2)
            torch._foreach_add_(mag, torch._foreach_mul(size, 1 - cfg.beta2))
            capped = torch._foreach_mul(torch._foreach_sign(x),
                                     torch._foreach_minimum(size, torch._foreach_mul(mag, MARKOV_CAP)))
            one_q = torch._foreach_add(q, 1)
            torch._foreach_mul_(p, b)
            torch._foreach_add_(p, torch._foreach_div(capped, one_q))
            kept = torch._foreach_minimum(torch._foreach_abs(p), one_q)
        a_hat = [k.mean() for k in kept]
        smooth = [st["numerator_smooth"] for st in states]
        torch._foreach_mul_(smooth, REF_SMOOTHING)                       # N4-N5
        torch._foreach_add_(smooth, torch._foreach_mul(a_hat, 1 - REF_SMOOTHING))
        return [s.clone() for s in smooth]
    avg = [st["numerator_avg"] for st in states]
    sample = torch._foreach_mul(g_bar, g_bar) if cfg.numerator == "moment" else torch._foreach_mul(w, g_bar)
    torch._foreach_mul_(avg, cfg.numerator_beta)
    torch._foreach_add_(avg, torch._foreach_mul(sample, 1 - cfg.numerator_beta))
    a = torch._foreach_div(avg, [1 - cfg.numerator_beta**t for t in ts])
    if cfg.numerator == "parcor":
        torch._foreach_clamp_min_(a, 0.0)
        torch._foreach_clamp_max_(a, 1.0)
    return a


@torch.no_grad()
def reference_group_step(params: list[torch.Tensor], grads: list[torch.Tensor],
                         states: list[dict[str, object]], cfg: StepConfig,
                         track: bool = True) -> torch.Tensor | None:
    """`reference_step` applied to every tensor of a group at once; returns Σ Δ² over the group
    (float32), or None without `track`.

    Each operation of the per-tensor step, in the same order, is one multi-tensor op
    (`torch._foreach_*`) over the group: a few dozen kernel launches per step instead of a few
    dozen per tensor, for the reference release's numerators, which no fused path implements
    (their tensor-wise means cut each tensor's step in two). On a CPU the multi-tensor ops run
    tensor by tensor through the same kernels: the result is `reference_step`'s bit for bit. On
    a GPU a fused multi-tensor kernel may round a division by a number differently (a true
    division where the single-tensor kernel multiplies by the reciprocal): equal to round-off.
    """
    ts = []
    for state in states:
        state["step"] = t = int(state["step"]) + 1
        ts.append(t)
    w = params
    g = grads
    if cfg.weight_decay and not cfg.decoupled:                        # S1
        g = torch._foreach_add(grads, torch._foreach_mul(w, cfg.weight_decay))

    second = [st["exp_avg_sq"] for st in states]                      # S2-S3
    torch._foreach_mul_(second, cfg.beta2)
    g_sq = torch._foreach_mul(g, 1 - cfg.beta2)
    torch._foreach_mul_(g_sq, g)
    torch._foreach_add_(second, g_sq)
    denom = torch._foreach_sqrt(second)
    torch._foreach_div_(denom, [(1 - cfg.beta2**t) ** 0.5 for t in ts])
    torch._foreach_add_(denom, cfg.eps)

    filtered_in = g                                                   # S4-S5, F3
    if cfg.gamma != 0:
        prev = [st["prev_grad"] for st in states]
        filtered_in = torch._foreach_sub(g, torch._foreach_mul(prev, cfg.gamma))
        torch._foreach_copy_(prev, g)
    if cfg.beta > 0:
        v = [st["exp_avg"] for st in states]
        torch._foreach_mul_(v, cfg.beta)
        torch._foreach_add_(v, torch._foreach_mul(filtered_in, cfg.eta))
        v_hat = torch._foreach_mul(v, [first_step_gain(cfg.gamma, t) / (1 - cfg.beta**t) for t in ts])
    else:
        v_hat = torch._foreach_mul(filtered_in, [cfg.eta * first_step_gain(cfg.gamma, t) for t in ts])

    step_dir = torch._foreach_div(v_hat, denom)                          # S6'
    in_step = cfg.weight_decay and cfg.decoupled and cfg.decay_in_step
    if in_step:
        step_dir = torch._foreach_add(step_dir, torch._foreach_mul(w, cfg.decay_gain * cfg.weight_decay))
    if cfg.numerator != "one":                                        # N1-N10
        a = _group_numerators(w, g, denom, step_dir, states, cfg, ts)
        step_dir = [a_i * s_i for a_i, s_i in zip(a, step_dir)]

    if cfg.weight_decay and cfg.decoupled and not in_step:            # S6
        torch._foreach_mul_(w, 1 - cfg.mu_t * cfg.weight_decay)
    delta = torch._foreach_mul(step_dir, -cfg.mu_t)                      # S7
    torch._foreach_add_(w, delta)
    if not track:
        return None
    return sum(d.float().square().sum() for d in delta)
