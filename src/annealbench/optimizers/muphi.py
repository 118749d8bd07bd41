"""`MuPhi`: the μ[t]·Φ trust-region optimizer of docs/theory.md.

    w[t+1] = w[t] + Δ[t+1],   Δ[t+1] = -μ[t]·a[t]·Φ[t]·v̂[t],   μ[t] = μ·Ϝ(k/τ)     (S7, W1)

With betas=(β1, β2), gamma=0, numerator="one" and the cosine window, this is AdamW with a
per-step cosine-annealed learning rate (the exactness claim, eq. X1). The per-tensor math is in
`annealbench.optimizers.reference` (the specification); the fast paths are `annealbench.optimizers.native` (one C++
call per group, the CPU path) and `annealbench.optimizers.compiled` (torch.compile, the GPU path); the
reference release's numerators, which neither implements, take the specification's operations
as multi-tensor ops on an accelerator (`reference.reference_group_step`).
"""

from __future__ import annotations

import logging
import math
from numbers import Real
from typing import Any

import torch

from annealbench.optimizers import compiled as C
from annealbench.optimizers import native
from annealbench.optimizers.reference import (FAST_NUMERATORS, NUMERATORS, RETIRED_NUMERATORS, StepConfig, init_state,
                                  numerator_defaults, reference_group_step, reference_step,
                                  unit_dc_gain)
from annealbench.optimizers.window import Window, cached_window, progress

log = logging.getLogger(__name__)

IMPLS: tuple[str, ...] = ("auto", "fused", "compiled", "foreach", "reference")
AUTO_COMPILE_MIN_NUMEL = 1 << 20
"""`impl="auto"` compiles a CPU group only with at least this many coordinates: below it the step
is too cheap for the one-off compile (seconds) to pay back, and the reference step is used."""


def default_eta(beta: float, gamma: float) -> float:
    """The filter gain η = (1 - β)/(1 - γ) of unit DC gain, H(1) = 1 (eq. F2).

    A slowly varying gradient passes the filter unchanged, so the radius μ[t] means the same for
    every zero γ; γ = 0 gives η = 1 - β, Adam's first moment (the exactness claim X1 needs it);
    γ = β gives η = 1, the pole-zero cancellation (F4).
    """
    return unit_dc_gain(beta, gamma)


def check_number(name: str, value: Any, low: float, high: float, *, low_open: bool = False,
                 high_open: bool = False) -> float:
    """`value` as a float when it is a finite number in the interval; else a `ValueError` naming
    `name`, the value and the interval allowed."""
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    allowed = f"{lo}{low:g}, {high:g}{hi}"
    ok = not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed: expected a number in {allowed}")
    return float(value)


def run_closure(closure) -> Any:
    """The loss of `closure()` evaluated with gradients enabled (inside an optimizer's no-grad
    step), or None without a closure."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def _as_blocks(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each dense parameter as the flat view of its memory block (`compiled.flat`), the others
    as they are: what the fast paths step."""
    return [C.flat(p) if C.dense(p) else p for p in params]


def _check_impl(impl: str, numerator: str) -> None:
    if impl in ("fused", "compiled") and numerator not in FAST_NUMERATORS:
        raise ValueError(f"impl={impl!r} is not allowed with numerator={numerator!r}: the reference "
                         "release's numerators (a tensor-wise mean inside the step) run on "
                         "impl='reference' or 'foreach' (or 'auto') only")


def validate_numerator(numerator: Any) -> str:
    """`numerator` if it is one of `NUMERATORS`, else a `ValueError` (naming the successor of a
    retired name)."""
    if isinstance(numerator, str) and numerator in NUMERATORS:
        return numerator
    hint = ""
    if isinstance(numerator, str) and numerator in RETIRED_NUMERATORS:
        hint = (f" ({numerator!r} followed the reference's release 96eaf0a; its current release's "
                f"estimator is {RETIRED_NUMERATORS[numerator]!r}, docs/theory.md section 4.2)")
    raise ValueError(f"numerator={numerator!r} is unknown: allowed are {', '.join(NUMERATORS)}{hint}")


def validate_hparams(group: dict[str, Any]) -> None:
    """Raise `ValueError` naming the first bad hyperparameter of a MuPhi param group."""
    check_number("lr", group["lr"], 0.0, 1.0, low_open=True)
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas={betas!r} is not allowed: expected a pair (beta, beta2)")
    beta = check_number("betas[0]", betas[0], 0.0, 1.0, high_open=True)
    check_number("betas[1]", betas[1], 0.0, 1.0, high_open=True)
    gamma = check_number("gamma", group["gamma"], -math.inf, math.inf)
    if gamma > beta:
        raise ValueError(f"gamma={gamma!r} is not allowed: expected gamma <= betas[0] = {beta} "
                         "(gamma = betas[0] cancels the pole: no smoothing)")
    if group["eta"] is not None:
        check_number("eta", group["eta"], 0.0, math.inf, low_open=True, high_open=True)
    if group["eps"] is not None:
        check_number("eps", group["eps"], 0.0, math.inf, high_open=True)
    validate_numerator(group["numerator"])
    if group["numerator_beta"] is not None:
        check_number("numerator_beta", group["numerator_beta"], 0.0, 1.0, high_open=True)
    check_number("weight_decay", group["weight_decay"], 0.0, math.inf, high_open=True)
    for key in ("decoupled_weight_decay", "weight_decay_in_step"):
        if not isinstance(group[key], bool):
            raise ValueError(f"{key}={group[key]!r} is not allowed: expected True or False")
    if group["weight_decay_in_step"] and not group["decoupled_weight_decay"]:
        raise ValueError("weight_decay_in_step=True is not allowed with decoupled_weight_decay=False: "
                         "coupled decay (g + λ·w) is the same in both conventions")
    window = cached_window(group["window"], group["p"], group["warmup"], group["plateau"], group["floor"])
    total = group["total_steps"]
    if total is None:
        if window.kind != "constant" or window.warmup > 0:
            raise ValueError(f"total_steps=None is not allowed for window {window.label!r}: "
                             "expected an integer >= 1 (only 'constant' without warm-up needs none)")
    elif isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(f"total_steps={total!r} is not allowed: expected an integer >= 1")


class MuPhi(torch.optim.Optimizer):
    """The μ[t]·Φ optimizer (docs/theory.md).

    Args:
        lr: the trust-region constant μ, 0 < μ ≤ 1.
        window: a kind of `annealbench.optimizers.window.WINDOW_KINDS` or a `Window`; with a kind, `p`,
            `warmup`, `plateau` and `floor` shape it (see `make_window`).
        total_steps: τ, the window's length in steps (required unless the window is constant).
        betas: (β, β2): the smoothing filter's pole (0 = no smoothing) and E[g²]'s pole.
        gamma: the filter's zero γ ≤ β; γ = β/(1+β) is Nesterov's point, γ = β cancels the
            pole (no smoothing, eq. F4). The first step takes the unit gain (eq. F3).
        eta: the filter's gain η (default (1 - β)/(1 - γ), unit DC gain, eq. F2: 1 - β for γ = 0).
        eps: ε in Φ = 1/(sqrt(E[g²]) + ε); default 1e-8, or 1e-10 (the reference release's) for
            its numerators.
        numerator: `one`, `moment` (a = E[ḡ²]) or `parcor` (a = clip(E[w·ḡ], 0, 1)), eqs.
            N1-N3; or the reference release's (somefunAgba/autosgm c5b0935) tensor-wise
            `moment-c5b0935` and `parcor-c5b0935` (eqs. N4-N10, reference path only).
        numerator_beta: pole β_a of the numerator's long-memory EMA; default 0.999, or 0.9999
            (the reference release's) for its numerators.
        weight_decay: λ; decoupled (w ← w(1 - μ[t]λ), AdamW) or coupled (g ← g + λw, Adam's L2).
        weight_decay_in_step: with decoupled decay, apply it as the reference release does:
            Δ = -μ[t]·a·(Φ·v̂ + η_F·λ·w), η_F = (1 - β)/(1 - γ) (eq. S6'); λ is then in the
            reference's units (its `wd_cfg = (λ, 1)`), the decay is part of Δ and `rms_step`,
            and `parcor-c5b0935` correlates w with it. For `one` it equals the shrink with
            λ·η_F (eq. S6-S6' mapping).
        impl: `auto`, `fused` (one C++ call over the group, `annealbench.optimizers.native`; dense
            float32/float64 CPU tensors), `compiled` (torch.compile, `annealbench.optimizers.compiled`; the
            GPU path), `foreach` (the per-tensor specification's operations, each one
            multi-tensor op over the group, `reference.reference_group_step`: every numerator,
            the reference release's included; bit for bit `reference` on a CPU) or `reference`
            (the per-tensor specification). The fused and compiled paths take any
            dense parameter — contiguous, channels-last or another permuted layout — as the
            flat block of its memory, its state tensors in its layout (`compiled.FlatViews`).
            `auto` takes, for the reference release's numerators, `foreach` on an accelerator
            and `reference` on a CPU (where the two are the same loop), else `fused` where
            the group allows it and the kernel builds, else `compiled` for dense groups on an
            accelerator or of at least AUTO_COMPILE_MIN_NUMEL coordinates, else `reference`.
            The choice is made once per param group at its first step in this process, logged
            once and written to `group["impl"]`; only a failed build (of the kernel, or by
            torch.compile) moves a group to the next path, with a warning. A forced path that
            cannot run raises.
        track_rms: compute `rms_step` (one fused reduction); False leaves it None.
        rms_every: compute `rms_step` only on steps whose count (steps taken, this one
            included) is a multiple of this; it is None after the others. A training loop that
            logs every n steps sets it to n (the tasks do): the reduction is the one part of the
            step that is not free on a CPU, and only the logged steps need it.

    Step k (counting from 0, per param group) uses progress r = k/τ. Past τ the window keeps its
    end value and a warning is logged once. After every step each group holds `mu_t` (float,
    μ[t] = μ·Ϝ[t]) and `rms_step` (0-d float32 tensor on the parameters' device, the RMS of Δ
    over the coordinates updated in this step; decoupled weight decay's shrink is not part of Δ;
    None on steps `track_rms`/`rms_every` leave out).
    """

    def __init__(self, params, lr: float = 1e-3, *, window: str | Window = "cosine",
                 total_steps: int | None = None, betas: tuple[float, float] = (0.9, 0.999),
                 gamma: float = 0.0, eta: float | None = None, eps: float | None = None,
                 numerator: str = "one", numerator_beta: float | None = None, weight_decay: float = 0.0,
                 decoupled_weight_decay: bool = True, weight_decay_in_step: bool = False,
                 p: float = 1.0, warmup: float = 0.0,
                 plateau: float = 0.0, floor: float = 0.0, impl: str = "auto",
                 track_rms: bool = True, rms_every: int = 1) -> None:
        if isinstance(window, Window):
            if (p, warmup, plateau, floor) != (1.0, 0.0, 0.0, 0.0):
                raise ValueError("p, warmup, plateau and floor are not allowed with a Window object: "
                                 "set them on the Window")
            window, p, warmup, plateau, floor = window.kind, window.p, window.warmup, window.plateau, window.floor
        if impl not in IMPLS:
            raise ValueError(f"impl={impl!r} is unknown: allowed are {', '.join(IMPLS)}")
        self.impl = impl
        self.track_rms = bool(track_rms)
        self.rms_every = rms_every
        self._warned_past_end = False
        self._chosen: set[int] = set()  # param groups whose path this process has chosen
        self._flat_views: dict[int, C.FlatViews] = {}  # per param group, for the compiled path
        defaults = dict(lr=lr, window=window, p=p, warmup=warmup, plateau=plateau, floor=floor,
                        total_steps=total_steps, betas=tuple(betas) if isinstance(betas, list) else betas,
                        gamma=gamma, eta=eta, eps=eps, numerator=numerator,
                        numerator_beta=numerator_beta, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay,
                        weight_decay_in_step=weight_decay_in_step)
        validate_hparams(defaults)
        _check_impl(impl, numerator)
        super().__init__(params, defaults)

    @property
    def rms_every(self) -> int:
        return self._rms_every

    @rms_every.setter
    def rms_every(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"rms_every={value!r} is not allowed: expected an integer >= 1")
        self._rms_every = value

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's `load_state_dict`, then every state tensor laid out as its parameter (the
        fast paths step parameters and state as flat memory blocks of one layout): a state
        saved from a parameter of another memory format is copied into this one's."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not state or not C.dense(p):
                    continue
                for key, value in state.items():
                    if isinstance(value, torch.Tensor) and value.shape == p.shape \
                            and not C.same_layout(value, p):
                        state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        validate_hparams(group)
        group.setdefault("step", 0)
        group.setdefault("mu_t", float(group["lr"]))
        group.setdefault("rms_step", None)
        group.setdefault("impl", None)  # the path, chosen at the group's first step

    # ------------------------------------------------------------------ the step
    def _mu_t(self, group: dict[str, Any]) -> float:
        window = cached_window(group["window"], group["p"], group["warmup"], group["plateau"], group["floor"])
        k, total = group["step"], group["total_steps"]
        if total is None:
            return float(group["lr"])
        if k >= total and not self._warned_past_end:
            self._warned_past_end = True
            log.warning("MuPhi step %d is past total_steps=%d: the window keeps its end value "
                        "Ϝ(1) = %g", k, total, window(1.0))
        return float(group["lr"]) * window(progress(k, total))

    def _config(self, group: dict[str, Any], mu_t: float) -> StepConfig:
        beta, beta2 = group["betas"]
        eta = group["eta"] if group["eta"] is not None else default_eta(beta, group["gamma"])
        eps, numerator_beta = numerator_defaults(group["numerator"])
        return StepConfig(mu_t=mu_t, beta=beta, gamma=group["gamma"], eta=eta, beta2=beta2,
                          eps=eps if group["eps"] is None else group["eps"], numerator=group["numerator"],
                          numerator_beta=numerator_beta if group["numerator_beta"] is None else group["numerator_beta"],
                          weight_decay=group["weight_decay"], decoupled=group["decoupled_weight_decay"],
                          decay_in_step=group.get("weight_decay_in_step", False))

    def _choose(self, params: list[torch.Tensor], cfg: StepConfig) -> str:
        """The path for a group whose tensors are `params` (see `impl` in the class docstring)."""
        if self.impl != "auto":
            _check_impl(self.impl, cfg.numerator)
            if self.impl == "fused":
                why = native.unsupported(_as_blocks(params))
                if why is not None:
                    raise ValueError(f"impl='fused' cannot take this param group: {why}")
                native.load()  # a failed build raises BuildFailed: the path was forced
            return self.impl
        if cfg.numerator not in FAST_NUMERATORS:  # on an accelerator, one launch per op, not per tensor
            return "reference" if params[0].is_cpu else "foreach"
        if native.unsupported(_as_blocks(params)) is None:
            try:
                native.load()
                return "fused"
            except native.BuildFailed as err:
                log.warning("MuPhi: the fused CPU step is not available here (%s); trying the "
                            "compiled step", err)
        big = sum(p.numel() for p in params) >= AUTO_COMPILE_MIN_NUMEL
        if C.compiled_supported(params) and (not params[0].is_cpu or big):
            return "compiled"
        return "reference"

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for index, group in enumerate(self.param_groups):
            mu_t = self._mu_t(group)
            cfg = self._config(group, mu_t)
            params, states = [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise ValueError("MuPhi does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state.update(init_state(p, cfg))
                params.append(p)
                states.append(state)
            track = self.track_rms and (group["step"] + 1) % self._rms_every == 0
            if params and index not in self._chosen:
                group["impl"] = self._choose(params, cfg)
                self._chosen.add(index)
                log.info("MuPhi param group %d: impl=%s (%d tensors, %d coordinates, %s)", index,
                         group["impl"], len(params), sum(p.numel() for p in params), params[0].dtype)
            sumsq = self._update(group, params, states, cfg, track, slot=index) if params else None
            numel = sum(p.numel() for p in params)
            group["mu_t"] = mu_t
            group["rms_step"] = (sumsq / numel).sqrt() if sumsq is not None else None
            group["step"] += 1
        return loss

    def _update(self, group: dict[str, Any], params: list[torch.Tensor], states: list[dict[str, Any]],
                cfg: StepConfig, track: bool, slot: int) -> torch.Tensor | None:
        if group["impl"] == "reference":
            sumsq = sum(reference_step(p, p.grad, state, cfg) for p, state in zip(params, states))
            return sumsq if track else None
        if group["impl"] == "foreach":
            return reference_group_step(params, [p.grad for p in params], states, cfg, track)
        lists = C.GroupLists(
            params=params, grads=[p.grad for p in params], steps=[s["step"] + 1 for s in states],
            exp_avg_sq=[s["exp_avg_sq"] for s in states],
            exp_avg=[s["exp_avg"] for s in states] if cfg.beta > 0 else [],
            prev_grad=[s["prev_grad"] for s in states] if cfg.gamma != 0 else [],
            numerator_avg=[s["numerator_avg"] for s in states] if cfg.numerator != "one" else [])
        if group["impl"] == "fused":
            if not all(map(torch.Tensor.is_contiguous, params)):  # e.g. channels-last kernels
                lists = C.FlatViews.get(lists, self._flat_views, slot).lists(lists)
            sumsq = native.fused_step(lists, cfg, track)
        else:
            try:
                sumsq = C.compiled_step(lists, cfg, track, self._flat_views, slot)
            except C.CompileFailed as err:
                if self.impl == "compiled":
                    raise
                log.warning("MuPhi param group %d: torch.compile cannot build the step here (%s); "
                            "using the reference step", slot, err)
                group["impl"] = "reference"
                return self._update(group, params, states, cfg, track, slot)
        for state in states:
            state["step"] += 1
        return sumsq
