"""The μ[t]·Φ step for one tensor, written plainly in the notation of docs/theory.md.

This is the readable specification the fast paths (`optimizers.native`, `optimizers.compiled`)
are tested against; it is slow (one small kernel per operation), the default only for the
reference-compatible numerators, which no fast path implements.

Per coordinate i at iteration t (t counts this tensor's updates from 1; labels of docs/theory.md):

    g     ← g + λ·w                                   (S1) coupled weight decay (optional)
    E[g²] ← β2·E[g²] + (1 - β2)·g²                     (S2) second moment, pole β2
    Φ     = 1 / (sqrt(E[g²] / (1 - β2^t)) + ε)         (S3) bias-corrected normaliser
    v     ← β·v + η·(g - γ·g_prev),  g_prev ← g        (S4) filter H(z) = η(1 - γz⁻¹)/(1 - βz⁻¹)
    v̂     = v / (1 - β^t)                              (S5) bias correction (β = 0: v̂ = v)
    ḡ     = g·Φ
    a     = 1 | E[ḡ²] | clip(E[w·ḡ], 0, 1)            (N1-N3) numerator; E[·] a long-memory
                                                       EMA, pole β_a, bias-corrected by 1 - β_a^t
    w     ← w·(1 - μ[t]·λ)                             (S6) decoupled weight decay (AdamW's)
    Δ     = -μ[t]·a·Φ·v̂,   w ← w + Δ                  (S7)

The reference-compatible numerators `moment-ref` and `parcor-ref` (eqs. N4-N11 of
docs/theory.md) replace the per-coordinate a by one number per tensor: a tensor-wise mean of
capped, un-bias-corrected averages, smoothed again over iterations with pole β_s = 0.1.

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
REF_NUMERATORS: tuple[str, ...] = ("moment-ref", "parcor-ref")
"""The reference implementation's numerators (eqs. N4-N11), implemented by the reference step only."""
NUMERATORS: tuple[str, ...] = FAST_NUMERATORS + REF_NUMERATORS
REF_SMOOTHING = 0.1
"""β_s: the pole of the second, iteration-wise smoothing of the reference numerators (eq. N5)."""
HUBER_CAP = 4.0
"""c: the Markov-inequality cap of `parcor-ref`'s input, |x| ≤ c·E[|x|] (eq. N8)."""


@dataclass(frozen=True)
class StepConfig:
    """Hyperparameters of one μ[t]·Φ step (all dimensionless).

    mu_t: radius μ[t] = μ·Ϝ[t] of this step.  beta, gamma, eta: pole, zero and gain of the
    smoothing filter.  beta2: pole of E[g²].  eps: ε of Φ.  numerator: `one`, `moment` or
    `parcor`.  numerator_beta: pole β_a of the numerator's EMA.  weight_decay: λ.
    decoupled: True applies w ← w(1 - μ[t]λ); False adds λw to the gradient.
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


def init_state(param: torch.Tensor, cfg: StepConfig) -> dict[str, object]:
    """Zero state for `param`: only the tensors the configuration needs are created."""
    state: dict[str, object] = {"step": 0, "exp_avg_sq": torch.zeros_like(param)}
    if cfg.beta > 0:
        state["exp_avg"] = torch.zeros_like(param)
    if cfg.gamma != 0:
        state["prev_grad"] = torch.zeros_like(param)
    if cfg.numerator != "one":
        state["numerator_avg"] = torch.zeros_like(param)
    if cfg.numerator in REF_NUMERATORS:
        state["numerator_smooth"] = torch.zeros((), dtype=param.dtype, device=param.device)
    if cfg.numerator == "parcor-ref":
        state["numerator_w_sq"] = torch.zeros_like(param)
        state["numerator_mag"] = torch.zeros_like(param)
    return state


def _moment_ref(w: torch.Tensor, g_bar: torch.Tensor, state: dict[str, object], cfg: StepConfig) -> torch.Tensor:
    """â of eq. N6: the tensor mean of min(s, 1), s ← β_a·s + (1 - β_a)·(w² + ḡ²)."""
    s = state["numerator_avg"]
    s.mul_(cfg.numerator_beta).add_((1 - cfg.numerator_beta) * (w * w + g_bar * g_bar))
    return s.clamp(max=1.0).mean()


def _parcor_ref(w: torch.Tensor, g_bar: torch.Tensor, denom: torch.Tensor, state: dict[str, object],
                cfg: StepConfig) -> torch.Tensor:
    """â of eqs. N7-N11: the tensor mean of a capped |p|, p a gain-1 average of Huber-capped w·ḡ."""
    b = cfg.numerator_beta
    q = state["numerator_w_sq"]
    q.mul_(b).add_((1 - b) * w * w)                                  # N7
    shrink = 1.0 / (1.0 + b * q)                                     # ρ
    x = w * g_bar
    size = x.abs() + cfg.eps
    mag = state["numerator_mag"]
    mag.mul_(b).add_((1 - b) * size)                                 # N8
    capped = x / size * torch.minimum(size, HUBER_CAP * mag)
    p = state["numerator_avg"]
    p.mul_(b).add_(shrink * capped)                                  # N9
    u = denom.clamp(max=1.0)
    low = shrink * u * (1 - u * u) ** 2                              # ρ·T(d), N10
    return torch.minimum(torch.maximum(p.abs(), low), 1.0 / shrink).mean()  # N11


def _numerator(w: torch.Tensor, g: torch.Tensor, denom: torch.Tensor, state: dict[str, object],
               cfg: StepConfig, t: int) -> torch.Tensor:
    """The numerator a of eqs. N1-N11 (a tensor of w's shape, or 0-d for the -ref variants)."""
    g_bar = g / denom
    if cfg.numerator in REF_NUMERATORS:
        a_hat = _moment_ref(w, g_bar, state, cfg) if cfg.numerator == "moment-ref" \
            else _parcor_ref(w, g_bar, denom, state, cfg)
        smooth = state["numerator_smooth"]
        smooth.mul_(REF_SMOOTHING).add_((1 - REF_SMOOTHING) * a_hat)  # N5
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
        v_hat = v / (1 - cfg.beta**t)
    else:
        v_hat = cfg.eta * filtered_in

    step_dir = v_hat / denom  # Φ·v̂
    if cfg.numerator != "one":
        step_dir = _numerator(w, g, denom, state, cfg, t) * step_dir

    if cfg.weight_decay and cfg.decoupled:
        w.mul_(1 - cfg.mu_t * cfg.weight_decay)
    delta = -cfg.mu_t * step_dir
    w.add_(delta)
    return delta.float().square().sum()
