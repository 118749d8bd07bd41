"""The μ[t]·Φ step for one tensor, written plainly in THEORY.md section 3 notation.

This is the readable specification the fast paths in `optimizers.functional` are tested
against; it is slow (one small kernel per operation) and never the default.

Per coordinate i at iteration t (t counts this tensor's updates from 1):

    g     ← g + λ·w                                   coupled weight decay (optional)
    E[g²] ← β2·E[g²] + (1 - β2)·g²                     second moment, pole β2
    Φ     = 1 / (sqrt(E[g²] / (1 - β2^t)) + ε)         bias-corrected normaliser
    v     ← β·v + η·(g - γ·g_prev),  g_prev ← g        smoothing filter H(z) = η(1 - γz⁻¹)/(1 - βz⁻¹)
    v̂     = v / (1 - β^t)                              Adam-style bias correction (β = 0: v̂ = v)
    ḡ     = g·Φ
    a     = 1 | E[ḡ²] | clip(E[w·ḡ], 0, 1)            numerator; E[·] a long-memory EMA with
                                                       pole β_a, bias-corrected by 1 - β_a^t
    w     ← w·(1 - μ[t]·λ)                             decoupled weight decay (optional, AdamW's)
    Δ     = -μ[t]·a·Φ·v̂,   w ← w + Δ

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

NUMERATORS: tuple[str, ...] = ("one", "moment", "parcor")


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
    return state


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
        g_bar = g / denom
        avg = state["numerator_avg"]
        sample = g_bar * g_bar if cfg.numerator == "moment" else w * g_bar
        avg.mul_(cfg.numerator_beta).add_((1 - cfg.numerator_beta) * sample)
        a = avg / (1 - cfg.numerator_beta**t)
        if cfg.numerator == "parcor":
            a = a.clamp(0.0, 1.0)
        step_dir = a * step_dir

    if cfg.weight_decay and cfg.decoupled:
        w.mul_(1 - cfg.mu_t * cfg.weight_decay)
    delta = -cfg.mu_t * step_dir
    w.add_(delta)
    return delta.float().square().sum()
