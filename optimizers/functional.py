"""Fast multi-tensor μ[t]·Φ steps: a foreach path and a compiled (fused) path.

Both compute exactly the update of `optimizers.reference` (see its docstring for the math) over
the lists of one param group, and return Σ Δ² over the group (float32) for the RMS step.

- `foreach_step`: `torch._foreach_*` kernels, one pass per operation over all tensors.
- `compiled_step`: one `torch.compile`d function per power-of-two chunk of tensors; every
  element-wise operation and the Σ Δ² reduction are fused into one loop per tensor, reading and
  writing each tensor once. All scalars (μ[t], bias corrections, hyperparameters) enter as one
  tensor, so a changing μ[t] never recompiles, and shapes are dynamic (tensors are flattened),
  so models of any size share at most a handful of compiled graphs per process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from optimizers.reference import StepConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupLists:
    """The tensors of one param group that take part in a step (all lists in the same order)."""

    params: list[torch.Tensor]
    grads: list[torch.Tensor]
    steps: list[int]                   # each tensor's update count t, already incremented
    exp_avg_sq: list[torch.Tensor]
    exp_avg: list[torch.Tensor]        # empty when β = 0
    prev_grad: list[torch.Tensor]      # empty when γ = 0
    numerator_avg: list[torch.Tensor]  # empty when the numerator is `one`


@torch.no_grad()
def foreach_step(lists: GroupLists, sc: StepConfig, track_rms: bool = True) -> torch.Tensor | None:
    """One μ[t]·Φ step over a group with `torch._foreach_*` kernels; returns Σ Δ² (float32).

    With `track_rms=False` the reduction is skipped and None is returned.
    """
    params, grads = lists.params, lists.grads
    if sc.weight_decay and not sc.decoupled:
        grads = torch._foreach_add(grads, params, alpha=sc.weight_decay)

    torch._foreach_mul_(lists.exp_avg_sq, sc.beta2)
    torch._foreach_addcmul_(lists.exp_avg_sq, grads, grads, value=1 - sc.beta2)
    denom = torch._foreach_sqrt(lists.exp_avg_sq)
    torch._foreach_div_(denom, [(1 - sc.beta2**t) ** 0.5 for t in lists.steps])
    torch._foreach_add_(denom, sc.eps)

    filtered_in = grads
    if sc.gamma != 0:
        filtered_in = torch._foreach_add(grads, lists.prev_grad, alpha=-sc.gamma)
        torch._foreach_copy_(lists.prev_grad, grads)
    if sc.beta > 0:
        torch._foreach_mul_(lists.exp_avg, sc.beta)
        torch._foreach_add_(lists.exp_avg, filtered_in, alpha=sc.eta)
        step_dir = torch._foreach_div(lists.exp_avg, [1 - sc.beta**t for t in lists.steps])
    else:
        step_dir = torch._foreach_mul(filtered_in, sc.eta)
    torch._foreach_div_(step_dir, denom)

    if sc.numerator != "one":
        g_bar = torch._foreach_div(grads, denom)
        first = g_bar if sc.numerator == "moment" else params
        torch._foreach_mul_(lists.numerator_avg, sc.numerator_beta)
        torch._foreach_addcmul_(lists.numerator_avg, first, g_bar, value=1 - sc.numerator_beta)
        a = torch._foreach_div(lists.numerator_avg, [1 - sc.numerator_beta**t for t in lists.steps])
        if sc.numerator == "parcor":
            torch._foreach_clamp_min_(a, 0.0)
            torch._foreach_clamp_max_(a, 1.0)
        torch._foreach_mul_(step_dir, a)

    if sc.weight_decay and sc.decoupled:
        torch._foreach_mul_(params, 1 - sc.mu_t * sc.weight_decay)
    torch._foreach_mul_(step_dir, -sc.mu_t)  # step_dir is now Δ
    torch._foreach_add_(params, step_dir)
    if not track_rms:
        return None
    # Accumulate Σ Δ² in float32 at least (float64 stays float64 until the final cast).
    low = params[0].dtype in (torch.float16, torch.bfloat16)
    norms = torch._foreach_norm(step_dir, 2, dtype=torch.float32) if low else torch._foreach_norm(step_dir, 2)
    return torch.stack(norms).square().sum().float()


# Columns of the per-tensor scalar table passed to the compiled function.
_MU, _BETA, _ETA, _GAMMA, _BETA2, _BC1, _BC2_SQRT, _EPS, _BETA_A, _BC_A, _WD = range(11)


def _fused_chunk(params: list[torch.Tensor], grads: list[torch.Tensor], sq: list[torch.Tensor],
                 avg: list[torch.Tensor], prev: list[torch.Tensor], num: list[torch.Tensor],
                 table: torch.Tensor, momentum: bool, use_prev: bool, numerator: str,
                 coupled: bool, decoupled: bool, track: bool) -> torch.Tensor | None:
    """The reference step over flat tensors, written once per tensor for the compiler to fuse."""
    sums = []
    for i in range(len(params)):
        c = table[i]
        w = params[i]
        g = grads[i] + c[_WD] * w if coupled else grads[i]
        second = sq[i] * c[_BETA2] + (1 - c[_BETA2]) * g * g
        denom = second.sqrt() / c[_BC2_SQRT] + c[_EPS]
        filtered_in = g - c[_GAMMA] * prev[i] if use_prev else g
        if momentum:
            v = avg[i] * c[_BETA] + c[_ETA] * filtered_in
            step_dir = v / c[_BC1] / denom
        else:
            step_dir = c[_ETA] * filtered_in / denom
        if numerator != "one":
            g_bar = g / denom
            sample = g_bar * g_bar if numerator == "moment" else w * g_bar
            a_avg = num[i] * c[_BETA_A] + (1 - c[_BETA_A]) * sample
            a = a_avg / c[_BC_A]
            if numerator == "parcor":
                a = a.clamp(0.0, 1.0)
            step_dir = a * step_dir
            num[i].copy_(a_avg)
        delta = -c[_MU] * step_dir
        w_new = w * (1 - c[_MU] * c[_WD]) + delta if decoupled else w + delta
        sq[i].copy_(second)
        if momentum:
            avg[i].copy_(v)
        if use_prev:
            prev[i].copy_(g)
        params[i].copy_(w_new)
        if track:
            sums.append(delta.float().square().sum())
    return torch.stack(sums).sum() if track else None


_compiled_chunk = None


def _get_compiled():
    global _compiled_chunk
    if _compiled_chunk is None:
        _compiled_chunk = torch.compile(_fused_chunk, dynamic=True, fullgraph=True)
    return _compiled_chunk


def _chunks(n: int) -> list[tuple[int, int]]:
    """Split n tensors into power-of-two runs (at most 32 long): few calls, few graphs."""
    out, start = [], 0
    while start < n:
        size = min(32, 1 << ((n - start).bit_length() - 1))
        out.append((start, start + size))
        start += size
    return out


def compiled_supported(params: list[torch.Tensor]) -> bool:
    """The compiled path needs contiguous parameters (they are updated through flat views)."""
    return all(p.is_contiguous() for p in params)


@torch.no_grad()
def compiled_step(lists: GroupLists, sc: StepConfig, track_rms: bool = True) -> torch.Tensor | None:
    """One μ[t]·Φ step over a group with the fused compiled kernel; returns Σ Δ² (float32).

    With `track_rms=False` the fused reduction is left out and None is returned.
    """
    fn = _get_compiled()
    rows = [[sc.mu_t, sc.beta, sc.eta, sc.gamma, sc.beta2,
             (1 - sc.beta**t) if sc.beta > 0 else 1.0, (1 - sc.beta2**t) ** 0.5, sc.eps,
             sc.numerator_beta, 1 - sc.numerator_beta**t, sc.weight_decay]
            for t in lists.steps]
    device = lists.params[0].device
    table = torch.tensor(rows, dtype=torch.float32 if lists.params[0].dtype != torch.float64 else torch.float64)
    table = table.to(device, non_blocking=True)

    def flat(xs: list[torch.Tensor], a: int, b: int) -> list[torch.Tensor]:
        return [x.detach().view(-1) for x in xs[a:b]] if xs else []

    total = torch.zeros((), dtype=torch.float32, device=device)
    for a, b in _chunks(len(lists.params)):
        try:
            part = fn(flat(lists.params, a, b), [g.reshape(-1) for g in lists.grads[a:b]],
                      flat(lists.exp_avg_sq, a, b), flat(lists.exp_avg, a, b),
                      flat(lists.prev_grad, a, b), flat(lists.numerator_avg, a, b),
                      table[a:b], bool(lists.exp_avg), bool(lists.prev_grad), sc.numerator,
                      bool(sc.weight_decay) and not sc.decoupled,
                      bool(sc.weight_decay) and sc.decoupled, track_rms)
            if track_rms:
                total = total + part
        except Exception as err:
            if a == 0:
                raise CompileUnavailable(err) from err
            # Earlier chunks are already updated: finish this step eagerly, then give up compiling.
            rest = GroupLists(*(getattr(lists, f)[a:] for f in GroupLists.__dataclass_fields__))
            rest_sumsq = foreach_step(rest, sc, track_rms)
            raise CompileUnavailable(err, finished=True,
                                     sumsq=total + rest_sumsq if track_rms else None) from err
    return total if track_rms else None


class CompileUnavailable(RuntimeError):
    """The compiled step failed. `finished`: the step was completed eagerly (its Σ Δ² in `sumsq`)."""

    def __init__(self, cause: BaseException, *, finished: bool = False,
                 sumsq: torch.Tensor | None = None) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.finished, self.sumsq = finished, sumsq
