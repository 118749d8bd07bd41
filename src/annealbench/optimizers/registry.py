"""Every optimizer the suite compares, listed once (in the manner of timm's `OptimInfo` table).

    build_optimizer(name, params, *, total_steps, **hparams) -> torch.optim.Optimizer
    check_optimizer(name, *, total_steps, **hparams) -> None
    optimizer_info(name) -> OptimInfo

An entry says everything the runner and the analysis need: its hyperparameters with defaults
and allowed ranges, how to build it, whether seeds may be trained together as a run group
(`elementwise`, `whole_tensor`), which implementations are its fastest (`fastest_impls`) and
how to measure its state (`probe_hparams`). Optimizers from outside the project are entries of
the same kind, found by entry point or `module:Name` (`annealbench.common.plugins`, docs/adding-an-optimizer.md);
the checkers (`real`, `choice`, `integer`, `optional`, `beta_pair`, `BOOLEAN`) and the window
keys (`WINDOW_HPARAMS`, `window_of`) are theirs to use.

Hyperparameters are flat keys; the window keys are `window`, `p`, `warmup`, `plateau`, `floor`
(see `annealbench.optimizers.window`). Scheduled peers (`adamw`, `sgd`, `muon`, `prodigy`; `annealbench.optimizers.peers`)
set their learning rate before each step to lr·Ϝ(k/τ) from the same window library as `muphi`.
Every optimizer built here writes `group["mu_t"]`, the learning rate its last step used, and
`group["impl"]`, the implementation it runs (`fused`, `foreach`, `compiled`, `reference`,
`for-loop`), chosen once per param group and logged once (MuPhi's at the group's first step,
the peers' when built).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from annealbench.common.plugins import OPTIMIZER_GROUP, entry_point_names, lookup
from annealbench.optimizers.muphi import IMPLS, MuPhi, check_number, validate_numerator
from annealbench.optimizers.peers import MuonAdamW, ScheduleFreeAdamW, WindowedAdamW, WindowedProdigy, WindowedSGD
from annealbench.optimizers.reference import REFERENCE_NUMERATORS
from annealbench.optimizers.window import Window, make_window

log = logging.getLogger(__name__)

WINDOW_KEYS: tuple[str, ...] = ("window", "p", "warmup", "plateau", "floor")
Checker = Callable[[str, Any], Any]


# ---------------------------------------------------------------- hyperparameter checkers
def real(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = True) -> Checker:
    """A finite number in the interval from `low` to `high` (MuPhi's own check, `check_number`)."""
    def check(name: str, value: Any) -> float:
        return check_number(name, value, low, high, low_open=low_open, high_open=high_open)

    return check


def choice(*options: Any) -> Checker:
    def check(name: str, value: Any) -> Any:
        if value not in options or isinstance(value, bool) != isinstance(options[0], bool):
            raise ValueError(f"{name}={value!r} is not allowed: allowed are {', '.join(map(repr, options))}")
        return value

    return check


def integer(low: int) -> Checker:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r} is not allowed: expected an integer >= {low}")
        return value

    return check


def optional(inner: Checker) -> Checker:
    return lambda name, value: None if value is None else inner(name, value)


def beta_pair(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name}={value!r} is not allowed: expected a pair [beta1, beta2], each in [0, 1)")
    unit = real(0.0, 1.0)
    return unit(f"{name}[0]", value[0]), unit(f"{name}[1]", value[1])


BOOLEAN = choice(True, False)


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
FASTEST_IMPLS = frozenset({"fused", "compiled"})  # `group["impl"]` paths that are an optimizer's fastest
"""torch's fused kernels and a compiled step; an entry whose library has no such path adds the
paths it has (`OptimInfo.fastest_impls`)."""


@dataclass(frozen=True)
class OptimInfo:
    """One registry entry: everything the runner and the analysis know about an optimizer.

    Built-ins are listed in `OPTIMIZERS`; a plug-in is an `OptimInfo` too (`optimizer_info`).
    """

    name: str
    description: str
    hparams: Mapping[str, tuple[Any, Checker]]  # key -> (default, checker); `lr` among them
    windowed: bool          # takes the window keys (`WINDOW_HPARAMS`)
    has_eval_mode: bool     # exposes .train()/.eval()
    build: Callable[[Any, int, dict[str, Any]], torch.optim.Optimizer]  # (params, τ, resolved hparams)
    exclusive: tuple[tuple[str, str], ...] = ()  # pairs of keys that set the same thing: give one
    # A coordinate's update reads only that coordinate's gradient and state, and scalars that
    # depend on the step count alone: seeds stacked into one tensor update exactly as each
    # seed's own would, so the runner may train them as one run group (annealbench.runner.launch.jobs).
    elementwise: bool = False
    # hyperparameter -> values whose statistics are means over a whole tensor (MuPhi's
    # reference-release numerators): a configuration with one of them is not elementwise
    whole_tensor: Mapping[str, Collection[Any]] = field(default_factory=dict)
    # `group["impl"]` values that count as this optimizer's fastest implementation, so its wall
    # clock compares optimizers rather than implementations (each run records whether it ran
    # one, `optimizer_fastest`; annealbench.analysis.fairtime reads that)
    fastest_impls: frozenset[str] = FASTEST_IMPLS
    # hyperparameters set when measuring its state (`state_bytes_per_param`), e.g. the path that
    # keeps its state as one tensor per parameter
    probe_hparams: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"OptimInfo {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"OptimInfo name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.hparams, Mapping) or "lr" not in self.hparams:
            raise TypeError(f"{where}: hparams must map each key to (default, checker), `lr` among them")
        for key, pair in self.hparams.items():
            if not (isinstance(pair, tuple) and len(pair) == 2 and callable(pair[1])):
                raise TypeError(f"{where}: hparams[{key!r}] must be (default, checker), got {pair!r}")
        missing = [k for k in WINDOW_KEYS if k not in self.hparams]
        if self.windowed and missing:
            raise TypeError(f"{where} is windowed but lacks the window keys {missing} "
                            "(add **WINDOW_HPARAMS to its hparams)")
        stray = [k for pair in self.exclusive for k in pair if k not in self.hparams] + \
                [k for k in self.whole_tensor if k not in self.hparams] + \
                [k for k in self.probe_hparams if k not in self.hparams]
        if stray:
            raise TypeError(f"{where}: exclusive, whole_tensor and probe_hparams name keys it does not "
                            f"take: {stray}")
        if not callable(self.build):
            raise TypeError(f"{where}: build must be callable (params, total_steps, hparams) -> Optimizer")
        if not self.fastest_impls or not all(isinstance(i, str) for i in self.fastest_impls):
            raise TypeError(f"{where}: fastest_impls must be a non-empty set of implementation names")

    @property
    def defaults(self) -> dict[str, Any]:
        return {key: default for key, (default, _) in self.hparams.items()}

    def group_blocker(self, hparams: Mapping[str, Any]) -> str | None:
        """Why a configuration (its hyperparameters, defaults filled in here) cannot be trained
        as a run group, or None when it can."""
        if not self.elementwise:
            return f"optimizer {self.name} is not elementwise"
        resolved = self.defaults | dict(hparams)
        for key, values in self.whole_tensor.items():
            if resolved.get(key) in values:
                return (f"{key} {resolved[key]} averages over whole tensors, which a group would share "
                        "across seeds")
        return None

    def ran_fastest(self, impls: list[Any]) -> bool:
        """Whether a run whose param groups stepped with `impls` (each group's `impl`, recorded
        after its first step) ran this optimizer's fastest implementation in every group."""
        return bool(impls) and all(impl in self.fastest_impls for impl in impls)


def window_of(h: dict[str, Any]) -> Window:
    return make_window(h["window"], p=h["p"], warmup=h["warmup"], plateau=h["plateau"], floor=h["floor"])


def _build_muphi(params, total_steps: int, h: dict[str, Any]) -> torch.optim.Optimizer:
    h = dict(h)
    beta = h.pop("beta")
    if beta is not None:  # the scalar form of betas[0], as a suite writes it
        h["betas"] = (beta, h["betas"][1])
    return MuPhi(params, total_steps=total_steps, **h)


def _build_adamw(params, total_steps: int, h: dict[str, Any]) -> torch.optim.Optimizer:
    window = window_of(h)
    kwargs = {k: v for k, v in h.items() if k not in WINDOW_KEYS}
    return WindowedAdamW(params, window=window, total_steps=total_steps, **kwargs)


def _build_sgd(params, total_steps: int, h: dict[str, Any]) -> torch.optim.Optimizer:
    window = window_of(h)
    kwargs = {k: v for k, v in h.items() if k not in WINDOW_KEYS}
    if kwargs["nesterov"] and (kwargs["momentum"] <= 0 or kwargs["dampening"] != 0):
        raise ValueError(f"nesterov=True is not allowed with momentum={kwargs['momentum']!r}, "
                         f"dampening={kwargs['dampening']!r}: expected momentum > 0 and dampening = 0")
    return WindowedSGD(params, window=window, total_steps=total_steps, **kwargs)


def _build_muon(params, total_steps: int, h: dict[str, Any]) -> torch.optim.Optimizer:
    kwargs = {k: v for k, v in h.items() if k not in WINDOW_KEYS}
    return MuonAdamW(params, window=window_of(h), total_steps=total_steps, **kwargs)


def _build_prodigy(params, total_steps: int, h: dict[str, Any]) -> torch.optim.Optimizer:
    kwargs = {k: v for k, v in h.items() if k not in WINDOW_KEYS}
    kwargs["growth_rate"] = math.inf if kwargs["growth_rate"] is None else kwargs["growth_rate"]
    return WindowedProdigy(params, window=window_of(h), total_steps=total_steps, **kwargs)


def _build_sf_adamw(params, total_steps: int, h: dict[str, Any]) -> torch.optim.Optimizer:
    kwargs = dict(h)
    kwargs["warmup_steps"] = round(kwargs.pop("warmup") * total_steps)
    return ScheduleFreeAdamW(params, **kwargs)


WINDOW_HPARAMS = {key: (default, _WINDOW_CHECKS[key]) for key, default in _WINDOW_DEFAULTS.items()}
_ADAM_COMMON = {"betas": ((0.9, 0.999), beta_pair), "eps": (1e-8, real(0.0)),
                "weight_decay": (0.0, real(0.0))}

_TABLE = (
    OptimInfo("muphi", "μ[t]·Φ trust-region optimizer with a window (docs/theory.md)",
              {"lr": (1e-3, real(0.0, 1.0, low_open=True, high_open=False)), **WINDOW_HPARAMS, **_ADAM_COMMON,
               # eps, numerator_beta None: the numerator's own defaults (annealbench.optimizers.reference.numerator_defaults)
               "eps": (None, optional(real(0.0))),
               # beta: betas[0] as one number (a suite's hyperparameters are scalars); 0 = no smoothing
               "beta": (None, optional(real(0.0, 1.0))),
               "gamma": (0.0, real(-math.inf)), "eta": (None, optional(real(0.0, low_open=True))),
               "numerator": ("one", _numerator), "numerator_beta": (None, optional(real(0.0, 1.0))),
               "decoupled_weight_decay": (True, BOOLEAN), "weight_decay_in_step": (False, BOOLEAN),
               "impl": ("auto", choice(*IMPLS))},
              windowed=True, has_eval_mode=False, build=_build_muphi, exclusive=(("beta", "betas"),),
              elementwise=True, whole_tensor={"numerator": REFERENCE_NUMERATORS},
              probe_hparams={"impl": "reference"}),
    OptimInfo("adamw", "torch.optim.AdamW with the learning rate lr·Ϝ(k/τ) per step",
              {"lr": (1e-3, real(0.0, low_open=True)), **WINDOW_HPARAMS, **_ADAM_COMMON,
               "amsgrad": (False, BOOLEAN), "fused": (None, optional(BOOLEAN)),
               "foreach": (None, optional(BOOLEAN))},
              windowed=True, has_eval_mode=False, build=_build_adamw, elementwise=True),
    OptimInfo("sgd", "torch.optim.SGD with momentum and the learning rate lr·Ϝ(k/τ) per step",
              {"lr": (1e-2, real(0.0, low_open=True)), **WINDOW_HPARAMS, "momentum": (0.9, real(0.0, 1.0)),
               "dampening": (0.0, real(0.0, 1.0)), "nesterov": (False, BOOLEAN),
               "weight_decay": (0.0, real(0.0))},
              windowed=True, has_eval_mode=False, build=_build_sgd, elementwise=True),
    OptimInfo("muon", "torch.optim.Muon on the hidden Linear weights and conv kernels (as out × in·kh·kw "
                      "matrices) + AdamW on embeddings, output head, biases and norms; lr·Ϝ(k/τ) for both",
              {"lr": (1e-3, real(0.0, low_open=True)), **WINDOW_HPARAMS,
               "adamw_lr": (None, optional(real(0.0, low_open=True))),
               "weight_decay": (0.0, real(0.0)), "momentum": (0.95, real(0.0, 1.0)),
               "nesterov": (True, BOOLEAN), "ns_steps": (5, integer(1)),
               "adjust_lr_fn": ("match_rms_adamw", choice("match_rms_adamw", "original")),
               "betas": ((0.9, 0.999), beta_pair), "eps": (1e-8, real(0.0))},
              # per-matrix orthogonalisation: not elementwise; torch's Muon loops over its matrices
              windowed=True, has_eval_mode=False, build=_build_muon,
              fastest_impls=FASTEST_IMPLS | {"for-loop", "foreach"}),
    OptimInfo("prodigy", "Prodigy (prodigyopt), learning-rate free: lr is its d multiplier, scheduled by Ϝ(k/τ)",
              {"lr": (1.0, real(0.0, low_open=True)), **WINDOW_HPARAMS, **_ADAM_COMMON,
               "beta3": (None, optional(real(0.0, 1.0))), "d0": (1e-6, real(0.0, low_open=True)),
               "d_coef": (1.0, real(0.0, low_open=True)), "growth_rate": (None, optional(real(1.0))),  # None: unbounded
               "decouple": (True, BOOLEAN), "use_bias_correction": (False, BOOLEAN),
               "safeguard_warmup": (False, BOOLEAN)},
              # its step size d is a global estimate: not elementwise; prodigyopt is a per-tensor loop
              windowed=True, has_eval_mode=False, build=_build_prodigy,
              fastest_impls=FASTEST_IMPLS | {"for-loop"}),
    OptimInfo("sf-adamw", "Schedule-Free AdamW (schedulefree.AdamWScheduleFree); no window",
              {"lr": (2.5e-3, real(0.0, low_open=True)), **_ADAM_COMMON,
               "warmup": (0.0, real(0.0, 1.0)), "r": (0.0, real(0.0)),
               "weight_lr_power": (2.0, real(0.0))},
              windowed=False, has_eval_mode=True, build=_build_sf_adamw, elementwise=True,
              fastest_impls=FASTEST_IMPLS | {"foreach"}),  # schedulefree has no fused kernel
)

OPTIMIZERS: Mapping[str, OptimInfo] = MappingProxyType({info.name: info for info in _TABLE})
"""name -> OptimInfo of every built-in optimizer; `optimizer_info` also finds the plug-ins."""


def optimizer_info(name: str) -> OptimInfo:
    """The entry `name` names: a built-in, a plug-in of entry-point group `annealbench.optimizers`,
    or a reference `module:Name` to an `OptimInfo` (`annealbench.common.plugins`); `ValueError` otherwise."""
    return lookup(name, builtins=OPTIMIZERS, group=OPTIMIZER_GROUP, kind=OptimInfo, what="optimizer")


def optimizer_names() -> tuple[str, ...]:
    """The built-ins' names, then the names installed plug-ins declare (none is imported)."""
    return tuple(dict.fromkeys([*OPTIMIZERS, *entry_point_names(OPTIMIZER_GROUP)]))


def _resolve(name: str, total_steps: Any, hparams: dict[str, Any]) -> tuple[OptimInfo, dict[str, Any]]:
    info = optimizer_info(name)
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
        window_of(resolved)
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

    Builds the entry (with its `probe_hparams`) over one parameter of `numel` coordinates, takes
    a step with a random gradient and counts the bytes of every state tensor shaped like the
    parameter (0-d per-tensor counters such as AdamW's `step` are bookkeeping, not
    per-coordinate state).
    """
    param = torch.zeros(numel, dtype=dtype, requires_grad=True)
    opt = build_optimizer(name, [param], total_steps=10, **dict(optimizer_info(name).probe_hparams) | hparams)
    param.grad = torch.randn(numel, generator=torch.Generator().manual_seed(0)).to(dtype)
    opt.step()
    total = sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()
                if isinstance(v, torch.Tensor) and v.shape == param.shape)
    return total / numel


def state_bytes_table(dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """`state_bytes_per_param` of every registry entry with its default hyperparameters."""
    return {name: state_bytes_per_param(name, dtype=dtype) for name in OPTIMIZERS}
