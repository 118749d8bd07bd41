"""Every optimizer the suite compares, listed once (in the manner of timm's `OptimInfo` table).

    build_optimizer(name, params, *, total_steps, **hparams) -> torch.optim.Optimizer
    check_optimizer(name, *, total_steps, **hparams) -> None

Hyperparameters are flat keys; the window keys are `window`, `p`, `warmup`, `plateau`, `floor`
(see `optimizers.windows`). Scheduled peers (`adamw`, `sgd`, `muon`, `prodigy`; `optimizers.peers`)
set their learning rate before each step to lr·Ϝ(k/τ) from the same window library as `muphi`.
Every optimizer built here writes `group["mu_t"]`, the learning rate its last step used, and
`group["impl"]`, the implementation it runs (`fused`, `foreach`, `compiled`, `reference`,
`for-loop`), chosen once per param group and logged once (MuPhi's at the group's first step,
the peers' when built).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Real
from types import MappingProxyType
from typing import Any

import torch

from optimizers.muphi import IMPLS, MuPhi, validate_numerator
from optimizers.peers import MuonAdamW, ScheduleFreeAdamW, WindowedAdamW, WindowedProdigy, WindowedSGD
from optimizers.windows import Window, make_window

log = logging.getLogger(__name__)

WINDOW_KEYS: tuple[str, ...] = ("window", "p", "warmup", "plateau", "floor")
Checker = Callable[[str, Any], Any]


# ---------------------------------------------------------------- hyperparameter checkers
def _real(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = True) -> Checker:
    allowed = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def check(name: str, value: Any) -> float:
        ok = not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)
        if ok:
            v = float(value)
            ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
        if not ok:
            raise ValueError(f"{name}={value!r} is not allowed: expected a number in {allowed}")
        return float(value)

    return check


def _choice(*options: Any) -> Checker:
    def check(name: str, value: Any) -> Any:
        if value not in options or isinstance(value, bool) != isinstance(options[0], bool):
            raise ValueError(f"{name}={value!r} is not allowed: allowed are {', '.join(map(repr, options))}")
        return value

    return check


def _int(low: int) -> Checker:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r} is not allowed: expected an integer >= {low}")
        return value

    return check


def _optional(inner: Checker) -> Checker:
    return lambda name, value: None if value is None else inner(name, value)


def _betas(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name}={value!r} is not allowed: expected a pair [beta1, beta2], each in [0, 1)")
    unit = _real(0.0, 1.0)
    return unit(f"{name}[0]", value[0]), unit(f"{name}[1]", value[1])


_BOOL = _choice(True, False)


def _numerator(name: str, value: Any) -> str:
    """MuPhi's numerator; its own check names the estimator that replaced a retired one."""
    return validate_numerator(value)
_WINDOW_CHECKS: dict[str, Checker] = {
    "window": lambda name, value: value,  # make_window names the known kinds
    "p": lambda name, value: value, "warmup": lambda name, value: value,
    "plateau": lambda name, value: value, "floor": lambda name, value: value,
}
_WINDOW_DEFAULTS = {"window": "cosine", "p": 1.0, "warmup": 0.0, "plateau": 0.0, "floor": 0.0}


# ---------------------------------------------------------------- the table
@dataclass(frozen=True)
class OptimInfo:
    """One registry entry: how to build an optimizer and which flat hyperparameters it takes."""

    name: str
    description: str
    hparams: Mapping[str, tuple[Any, Checker]]  # key -> (default, checker)
    windowed: bool          # takes the window keys
    has_eval_mode: bool     # exposes .train()/.eval()
    build: Callable[[Any, int, dict[str, Any]], torch.optim.Optimizer]
    exclusive: tuple[tuple[str, str], ...] = ()  # pairs of keys that set the same thing: give one

    @property
    def defaults(self) -> dict[str, Any]:
        return {key: default for key, (default, _) in self.hparams.items()}


def _window_of(h: dict[str, Any]) -> Window:
    return make_window(h["window"], p=h["p"], warmup=h["warmup"], plateau=h["plateau"], floor=h["floor"])


def _build_muphi(params, total_steps: int, h: dict[str, Any]) -> torch.optim.Optimizer:
    h = dict(h)
    beta = h.pop("beta")
    if beta is not None:  # the scalar form of betas[0], as a suite writes it
        h["betas"] = (beta, h["betas"][1])
    return MuPhi(params, total_steps=total_steps, **h)


def _build_adamw(params, total_steps: int, h: dict[str, Any]) -> torch.optim.Optimizer:
    window = _window_of(h)
    kwargs = {k: v for k, v in h.items() if k not in WINDOW_KEYS}
    return WindowedAdamW(params, window=window, total_steps=total_steps, **kwargs)


def _build_sgd(params, total_steps: int, h: dict[str, Any]) -> torch.optim.Optimizer:
    window = _window_of(h)
    kwargs = {k: v for k, v in h.items() if k not in WINDOW_KEYS}
    if kwargs["nesterov"] and (kwargs["momentum"] <= 0 or kwargs["dampening"] != 0):
        raise ValueError(f"nesterov=True is not allowed with momentum={kwargs['momentum']!r}, "
                         f"dampening={kwargs['dampening']!r}: expected momentum > 0 and dampening = 0")
    return WindowedSGD(params, window=window, total_steps=total_steps, **kwargs)


def _build_muon(params, total_steps: int, h: dict[str, Any]) -> torch.optim.Optimizer:
    kwargs = {k: v for k, v in h.items() if k not in WINDOW_KEYS}
    return MuonAdamW(params, window=_window_of(h), total_steps=total_steps, **kwargs)


def _build_prodigy(params, total_steps: int, h: dict[str, Any]) -> torch.optim.Optimizer:
    kwargs = {k: v for k, v in h.items() if k not in WINDOW_KEYS}
    kwargs["growth_rate"] = math.inf if kwargs["growth_rate"] is None else kwargs["growth_rate"]
    return WindowedProdigy(params, window=_window_of(h), total_steps=total_steps, **kwargs)


def _build_sf_adamw(params, total_steps: int, h: dict[str, Any]) -> torch.optim.Optimizer:
    kwargs = dict(h)
    kwargs["warmup_steps"] = round(kwargs.pop("warmup") * total_steps)
    return ScheduleFreeAdamW(params, **kwargs)


_W = {key: (default, _WINDOW_CHECKS[key]) for key, default in _WINDOW_DEFAULTS.items()}
_ADAM_COMMON = {"betas": ((0.9, 0.999), _betas), "eps": (1e-8, _real(0.0)),
                "weight_decay": (0.0, _real(0.0))}

_TABLE = (
    OptimInfo("muphi", "μ[t]·Φ trust-region optimizer with a window (docs/theory.md)",
              {"lr": (1e-3, _real(0.0, 1.0, low_open=True, high_open=False)), **_W, **_ADAM_COMMON,
               # eps, numerator_beta None: the numerator's own defaults (optimizers.reference.numerator_defaults)
               "eps": (None, _optional(_real(0.0))),
               # beta: betas[0] as one number (a suite's hyperparameters are scalars); 0 = no smoothing
               "beta": (None, _optional(_real(0.0, 1.0))),
               "gamma": (0.0, _real(-math.inf)), "eta": (None, _optional(_real(0.0, low_open=True))),
               "numerator": ("one", _numerator), "numerator_beta": (None, _optional(_real(0.0, 1.0))),
               "decoupled_weight_decay": (True, _BOOL), "weight_decay_in_step": (False, _BOOL),
               "impl": ("auto", _choice(*IMPLS))},
              windowed=True, has_eval_mode=False, build=_build_muphi, exclusive=(("beta", "betas"),)),
    OptimInfo("adamw", "torch.optim.AdamW with the learning rate lr·Ϝ(k/τ) per step",
              {"lr": (1e-3, _real(0.0, low_open=True)), **_W, **_ADAM_COMMON,
               "amsgrad": (False, _BOOL), "fused": (None, _optional(_BOOL)),
               "foreach": (None, _optional(_BOOL))},
              windowed=True, has_eval_mode=False, build=_build_adamw),
    OptimInfo("sgd", "torch.optim.SGD with momentum and the learning rate lr·Ϝ(k/τ) per step",
              {"lr": (1e-2, _real(0.0, low_open=True)), **_W, "momentum": (0.9, _real(0.0, 1.0)),
               "dampening": (0.0, _real(0.0, 1.0)), "nesterov": (False, _BOOL),
               "weight_decay": (0.0, _real(0.0))},
              windowed=True, has_eval_mode=False, build=_build_sgd),
    OptimInfo("muon", "torch.optim.Muon on the hidden Linear weights and conv kernels (as out × in·kh·kw "
                      "matrices) + AdamW on embeddings, output head, biases and norms; lr·Ϝ(k/τ) for both",
              {"lr": (1e-3, _real(0.0, low_open=True)), **_W,
               "adamw_lr": (None, _optional(_real(0.0, low_open=True))),
               "weight_decay": (0.0, _real(0.0)), "momentum": (0.95, _real(0.0, 1.0)),
               "nesterov": (True, _BOOL), "ns_steps": (5, _int(1)),
               "adjust_lr_fn": ("match_rms_adamw", _choice("match_rms_adamw", "original")),
               "betas": ((0.9, 0.999), _betas), "eps": (1e-8, _real(0.0))},
              windowed=True, has_eval_mode=False, build=_build_muon),
    OptimInfo("prodigy", "Prodigy (prodigyopt), learning-rate free: lr is its d multiplier, scheduled by Ϝ(k/τ)",
              {"lr": (1.0, _real(0.0, low_open=True)), **_W, **_ADAM_COMMON,
               "beta3": (None, _optional(_real(0.0, 1.0))), "d0": (1e-6, _real(0.0, low_open=True)),
               "d_coef": (1.0, _real(0.0, low_open=True)), "growth_rate": (None, _optional(_real(1.0))),  # None: unbounded
               "decouple": (True, _BOOL), "use_bias_correction": (False, _BOOL),
               "safeguard_warmup": (False, _BOOL)},
              windowed=True, has_eval_mode=False, build=_build_prodigy),
    OptimInfo("sf-adamw", "Schedule-Free AdamW (schedulefree.AdamWScheduleFree); no window",
              {"lr": (2.5e-3, _real(0.0, low_open=True)), **_ADAM_COMMON,
               "warmup": (0.0, _real(0.0, 1.0)), "r": (0.0, _real(0.0)),
               "weight_lr_power": (2.0, _real(0.0))},
              windowed=False, has_eval_mode=True, build=_build_sf_adamw),
)

OPTIMIZERS: Mapping[str, OptimInfo] = MappingProxyType({info.name: info for info in _TABLE})
"""name -> OptimInfo for every optimizer the suite compares (`name in OPTIMIZERS`)."""


def _resolve(name: str, total_steps: Any, hparams: dict[str, Any]) -> tuple[OptimInfo, dict[str, Any]]:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer {name!r} is unknown: allowed are {', '.join(OPTIMIZERS)}")
    info = OPTIMIZERS[name]
    unknown = sorted(set(hparams) - set(info.hparams))
    if unknown:
        raise ValueError(f"hyperparameter(s) {', '.join(unknown)} not allowed for optimizer {name!r}: "
                         f"allowed are {', '.join(info.hparams)}")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps={total_steps!r} is not allowed: expected an integer >= 1")
    for one, other in info.exclusive:
        if one in hparams and other in hparams:
            raise ValueError(f"{one}={hparams[one]!r} and {other}={hparams[other]!r} both set the same thing "
                             f"for optimizer {name!r}: give one of them")
    resolved = info.defaults | hparams
    for key, (_, checker) in info.hparams.items():
        resolved[key] = checker(key, resolved[key])
    if info.windowed:
        _window_of(resolved)
    return info, resolved


def resolve_hparams(name: str, *, total_steps: int, **hparams: Any) -> dict[str, Any]:
    """The full, validated hyperparameters `build_optimizer` would use (defaults filled in)."""
    return _resolve(name, total_steps, hparams)[1]


def build_optimizer(name: str, params, *, total_steps: int, **hparams: Any) -> torch.optim.Optimizer:
    """Build registry entry `name` over `params` for a run of τ = `total_steps` steps."""
    info, resolved = _resolve(name, total_steps, hparams)
    return info.build(params, total_steps, resolved)


def check_optimizer(name: str, *, total_steps: int, **hparams: Any) -> None:
    """Validate a configuration without the run's parameters; raise `ValueError` if it is bad.

    Besides the per-key checks it builds the optimizer over one throw-away scalar, so the
    cross-key rules of each optimizer (e.g. MuPhi's γ < β) are checked too.
    """
    build_optimizer(name, [torch.zeros(1, requires_grad=True)], total_steps=total_steps, **hparams)


def state_bytes_per_param(name: str, *, dtype: torch.dtype = torch.float32, numel: int = 4096,
                          **hparams: Any) -> float:
    """Bytes of optimizer state per parameter coordinate, measured after one step.

    Builds the entry over one parameter of `numel` coordinates, takes a step with a random
    gradient and counts the bytes of every state tensor shaped like the parameter (0-d
    per-tensor counters such as AdamW's `step` are bookkeeping, not per-coordinate state).
    """
    param = torch.zeros(numel, dtype=dtype, requires_grad=True)
    opt = build_optimizer(name, [param], total_steps=10, **({"impl": "reference"} if name == "muphi" else {}) | hparams)
    param.grad = torch.randn(numel, generator=torch.Generator().manual_seed(0)).to(dtype)
    opt.step()
    total = sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()
                if isinstance(v, torch.Tensor) and v.shape == param.shape)
    return total / numel


def state_bytes_table(dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """`state_bytes_per_param` of every registry entry with its default hyperparameters."""
    return {name: state_bytes_per_param(name, dtype=dtype) for name in OPTIMIZERS}
