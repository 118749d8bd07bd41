"""The peers MuPhi is compared with, each under the same window library as MuPhi where it has one.

Scheduled peers set their learning rate before each step to lr·Ϝ(k/τ) (docs/theory.md eq. W1),
keeping the step counter k in their param groups, so it travels in `state_dict()` and a resumed
run continues exactly. Every peer writes `group["mu_t"]`, the learning rate its last step used,
and `group["impl"]`, the implementation it runs (chosen once, when it is built, and logged):

- `fused` / `foreach`: torch's fused kernel where torch supports it for every parameter's device
  and dtype, else its multi-tensor (foreach) kernel;
- `for-loop`: a per-tensor loop (torch's Muon, Prodigy).

No step here reads a tensor's value on the host (on a GPU each such read waits for every queued
kernel): the windows, `mu_t` and the routing are Python numbers. The one exception is inside
`prodigyopt` itself, which `WindowedProdigy` runs unchanged: two `.item()` per tensor per step
(its estimate of d is a Python float), counted in docs/performance.md.
"""

from __future__ import annotations

import logging
from typing import Any

import prodigyopt
import schedulefree
import torch
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

from annealbench.optimizers.muphi import run_closure
from annealbench.optimizers.window import Window, cached_window, progress

log = logging.getLogger(__name__)


def _tensors(params: Any) -> list[torch.Tensor]:
    params = list(params)
    if params and isinstance(params[0], dict):
        return [p for group in params for p in group["params"]]
    return params


def fastest_impl(params: Any) -> str:
    """`fused` when torch's fused AdamW/SGD kernels take every tensor (device and dtype), else `foreach`."""
    devices = set(_get_fused_kernels_supported_devices())
    ok = all(p.device.type in devices and p.is_floating_point() and not p.is_sparse
             for p in _tensors(params))
    return "fused" if ok else "foreach"


def _record_impl(opt: torch.optim.Optimizer, impl: str | list[str]) -> None:
    impls = [impl] * len(opt.param_groups) if isinstance(impl, str) else impl
    for index, (group, chosen) in enumerate(zip(opt.param_groups, impls)):
        group["impl"] = chosen
        log.info("%s param group %d: impl=%s", type(opt).__name__, index, chosen)


class _Windowed:
    """Mixin: lr of each group = peak_lr·Ϝ(progress(window_step, τ)), set before each step."""

    def _init_window(self, window: Window, total_steps: int) -> None:
        for group in self.param_groups:
            group.update(peak_lr=group["lr"], window=window.kind, p=window.p, warmup=window.warmup,
                         plateau=window.plateau, floor=window.floor, total_steps=total_steps,
                         window_step=0, mu_t=group["lr"] * window(0.0))
            group["lr"] = group["mu_t"]
        self._warned_past_end = False

    def _mu_t(self, group: dict[str, Any]) -> float:
        """The learning rate this step uses in `group` (after `lr` was set from the window)."""
        return group["lr"]

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            window = cached_window(group["window"], group["p"], group["warmup"], group["plateau"],
                                   group["floor"])
            k, total = group["window_step"], group["total_steps"]
            if k >= total and not self._warned_past_end:
                self._warned_past_end = True
                log.warning("%s step %d is past total_steps=%d: the window keeps its end value",
                            type(self).__name__, k, total)
            group["lr"] = group["peak_lr"] * window(progress(k, total))
        used = [self._mu_t(group) for group in self.param_groups]
        loss = super().step(closure)
        for group, mu_t in zip(self.param_groups, used):
            group["mu_t"] = mu_t
            group["window_step"] += 1
        return loss


class _TorchWindowed(_Windowed):
    """A torch optimizer (`_base`) under the window, on torch's fastest kernel for its params."""

    _base: type[torch.optim.Optimizer]

    def __init__(self, params, *, window: Window, total_steps: int, **kwargs: Any) -> None:
        params = list(params)
        impl = _torch_impl(params, kwargs)
        self._base.__init__(self, params, **kwargs)
        self._init_window(window, total_steps)
        _record_impl(self, impl)


class WindowedAdamW(_TorchWindowed, torch.optim.AdamW):
    """`torch.optim.AdamW` with learning rate lr·Ϝ(k/τ) applied per step, fused where torch can."""

    _base = torch.optim.AdamW


class WindowedSGD(_TorchWindowed, torch.optim.SGD):
    """`torch.optim.SGD` (momentum) with learning rate lr·Ϝ(k/τ) applied per step, fused where torch can."""

    _base = torch.optim.SGD


def _torch_impl(params: list, kwargs: dict[str, Any]) -> str:
    """Fill torch's `fused`/`foreach` flags in `kwargs` (unless given) and name the result."""
    if kwargs.get("fused") is None and kwargs.get("foreach") is None:
        impl = fastest_impl(params)
        kwargs["fused" if impl == "fused" else "foreach"] = True
        return impl
    if kwargs.get("fused"):
        return "fused"
    return "foreach" if kwargs.get("foreach") is not False else "for-loop"


class ScheduleFreeAdamW(schedulefree.AdamWScheduleFree):
    """Schedule-Free AdamW that starts in training mode and records `mu_t` after each step.

    Callers switch to the averaged weights with `.eval()` before evaluating and back with
    `.train()` before the next step (the package raises if a step is taken in eval mode).
    """

    def __init__(self, params, **kwargs: Any) -> None:
        super().__init__(params, foreach=True, **kwargs)
        for group in self.param_groups:
            group["mu_t"] = 0.0
        _record_impl(self, "foreach")
        self.train()

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            group["mu_t"] = float(group["scheduled_lr"])
        return loss


class WindowedProdigy(_Windowed, prodigyopt.Prodigy):
    """Prodigy (learning-rate free) with its multiplier lr·Ϝ(k/τ) as the schedule.

    Prodigy estimates the distance to the solution d and steps with d·lr on Adam's direction;
    `lr` is a multiplier of that estimate (default 1), and the window schedules it as the
    authors schedule it with cosine annealing. `mu_t` is the step size d·lr·Ϝ the step used.
    """

    def __init__(self, params, *, window: Window, total_steps: int, **kwargs: Any) -> None:
        prodigyopt.Prodigy.__init__(self, params, **kwargs)
        self._init_window(window, total_steps)
        _record_impl(self, "for-loop")

    def _mu_t(self, group: dict[str, Any]) -> float:
        # Prodigy steps every group with the largest group lr times its shared estimate d.
        return float(group["d"]) * max(g["lr"] for g in self.param_groups)


def muon_flags(group: dict[str, Any]) -> list[bool]:
    """For each tensor of `group`: does Muon take it (else AdamW)?

    A group's `muon` decides: a tuple with one flag per tensor (what `annealbench.tasks.base.param_groups`
    writes: True for the hidden weight matrices — hidden `Linear` weights and convolution kernels
    — False for embeddings, the output head, biases and norms), or one bool for the whole group
    (False: all to AdamW). A group without it, or with `True`, sends its 2-D tensors to Muon.
    Muon takes only tensors of two or more dimensions.
    """
    params, mark = group["params"], group.get("muon", True)
    if isinstance(mark, bool):
        return [mark and p.ndim == 2 for p in params]
    flags = [bool(flag) for flag in mark]
    if len(flags) != len(params):
        raise ValueError(f"a param group's 'muon' has {len(flags)} flags for {len(params)} tensors: "
                         "give one per tensor, or one bool for the group")
    for p, flag in zip(params, flags):
        if flag and p.ndim < 2:
            raise ValueError(f"a param group's 'muon' marks a tensor of shape {tuple(p.shape)} for "
                             "Muon, which takes only matrices and convolution kernels")
    return flags


class FlatMuon(torch.optim.Muon):
    """torch's Muon on every tensor of two or more dimensions, each as a matrix: a tensor of shape
    (out, d1, …, dk) — a convolution kernel (out_channels, in_channels, kh, kw) — is stepped as the
    2-D matrix (out, d1·…·dk) it reshapes to, as Muon is run on convolutions (Jordan, 2024).

    The step is torch's own (`torch.optim.Muon.step`, its Newton–Schulz orthogonalisation and its
    `adjust_lr_fn`): only the tensors it is handed are 2-D views — of the parameter, its gradient
    and its momentum buffer — so the lr adjustment reads the matrix's shape (out, d1·…·dk), and a
    kernel's update equals torch's Muon update of the reshaped matrix. On a 2-D tensor it is
    torch's Muon exactly. The momentum buffer keeps the parameter's shape (contiguous); a
    parameter that has no 2-D view (channels-last) is stepped on a contiguous copy, written back.
    """

    def __init__(self, params, **kwargs: Any) -> None:
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        # torch's constructor checks its arguments and refuses tensors that are not 2-D: it is
        # handed one 2-D stand-in per group to check the arguments, then the real groups.
        super().__init__([{**g, "params": [torch.zeros(1, 1)]} for g in groups], **kwargs)
        torch.optim.Optimizer.__init__(self, groups, self.defaults)
        for p in _tensors(groups):
            if p.ndim < 2:
                raise ValueError(f"Muon takes tensors of two or more dimensions, got shape {tuple(p.shape)}")
        self._write_back: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _init_group(self, group, params_with_grad, grads, muon_momentum_bufs) -> bool:
        for p in group["params"]:
            if p.grad is None:
                continue
            if torch.is_complex(p):
                raise RuntimeError("Muon does not support complex parameters")
            if p.grad.is_sparse:
                raise RuntimeError("Muon does not support sparse gradients")
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.contiguous_format)
            buf = state["momentum_buffer"]
            if p.ndim == 2:  # torch's Muon exactly
                params_with_grad.append(p)
                grads.append(p.grad)
                muon_momentum_bufs.append(buf)
                continue
            if not buf.is_contiguous():
                buf = state["momentum_buffer"] = buf.contiguous()
            rows = p.shape[0]
            if p.is_contiguous():
                matrix = p.view(rows, -1)
            else:  # e.g. a channels-last kernel: step a contiguous copy, written back after
                matrix = p.contiguous().view(rows, -1)
                self._write_back.append((p, matrix))
            params_with_grad.append(matrix)
            grads.append(p.grad.reshape(rows, -1))
            muon_momentum_bufs.append(buf.view(rows, -1))
        return False  # has_complex

    @torch.no_grad()
    def step(self, closure=None):
        self._write_back = []
        try:
            return super().step(closure)
        finally:
            for p, matrix in self._write_back:
                p.copy_(matrix.view(p.shape))  # into p's own memory format
            self._write_back = []


class _Pair(torch.optim.Optimizer):
    """Two inner optimizers stepped as one (the windowless part of `MuonAdamW`)."""

    _muon: torch.optim.Optimizer | None
    _adamw: torch.optim.Optimizer | None

    def _inner(self) -> list[torch.optim.Optimizer]:
        return [opt for opt in (self._muon, self._adamw) if opt is not None]

    def _link(self) -> None:
        """Make `param_groups` and `state` the inner optimizers' own (after building or loading)."""
        inner = self._inner()
        current = {id(g) for opt in inner for g in opt.param_groups}
        if any(id(g) not in current for g in self.param_groups):
            # Groups loaded from a state dict replace the inner optimizers' groups, in order.
            it = iter(self.param_groups)
            for opt in inner:
                opt.param_groups = [next(it) for _ in opt.param_groups]
        self.param_groups = [g for opt in inner for g in opt.param_groups]
        for opt in inner:
            opt.state = self.state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._link()

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for opt in self._inner():
            opt.step()
        return loss


class MuonAdamW(_Windowed, _Pair):
    """torch's Muon for the hidden weight matrices and AdamW for every other tensor, as Muon's
    users run it; both follow the same window, lr·Ϝ(k/τ) (AdamW's groups from `adamw_lr`).

    Which tensor goes where is the groups' `muon` marks (`muon_flags`; the tasks mark the hidden
    `Linear` weights and convolution kernels, `annealbench.tasks.base.hidden_matrices`): Muon (`FlatMuon`,
    a kernel as its out × in·kh·kw matrix) takes those; AdamW takes embeddings, the output
    head (tied or not), biases, norms' gains and every tensor below two dimensions.

    One optimizer over both: `param_groups` lists Muon's groups, then AdamW's (the same dicts the
    inner optimizers step), and both share `state`, so `state_dict()` round-trips as usual.
    """

    def __init__(self, params, *, window: Window, total_steps: int, lr: float, adamw_lr: float | None,
                 weight_decay: float, momentum: float, nesterov: bool, ns_steps: int,
                 adjust_lr_fn: str, betas: tuple[float, float], eps: float) -> None:
        groups = list(params)
        if not groups or not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        muon_groups, adamw_groups = [], []
        for group in groups:
            extra = {k: v for k, v in group.items() if k not in ("params", "muon")}
            flags = muon_flags(group)
            mats = [p for p, flag in zip(group["params"], flags) if flag]
            rest = [p for p, flag in zip(group["params"], flags) if not flag]
            if mats:
                muon_groups.append({"params": mats, **extra})
            if rest:
                adamw_groups.append({"params": rest, **extra, "lr": extra.get("lr", adamw_lr or lr)})
        self._muon = FlatMuon(muon_groups, lr=lr, weight_decay=weight_decay, momentum=momentum,
                              nesterov=nesterov, ns_steps=ns_steps,
                              adjust_lr_fn=adjust_lr_fn) if muon_groups else None
        adamw_kwargs: dict[str, Any] = {"betas": betas, "eps": eps}
        adamw_impl = _torch_impl(adamw_groups, adamw_kwargs) if adamw_groups else None
        self._adamw = torch.optim.AdamW(adamw_groups, lr=adamw_lr or lr, weight_decay=weight_decay,
                                        **adamw_kwargs) if adamw_groups else None
        torch.optim.Optimizer.__init__(self, [p for g in groups for p in g["params"]], {"lr": lr})
        self.param_groups = []
        self._link()
        self._init_window(window, total_steps)
        _record_impl(self, ["for-loop"] * len(muon_groups) + [adamw_impl] * len(adamw_groups))
