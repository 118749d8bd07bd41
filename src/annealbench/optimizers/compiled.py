"""The compiled μ[t]·Φ step (the GPU path): `torch.compile` over the lists of one param group.

It computes exactly the update of `annealbench.optimizers.reference` (docs/theory.md eqs. S1-S7, S6',
F3, N1-N3) for the numerators `one`, `moment` and `parcor`, and returns Σ Δ² over the group (float32) for
the RMS step. One `torch.compile`d function runs per power-of-two chunk of tensors; every
element-wise operation and the Σ Δ² reduction are fused into one loop per tensor, reading and
writing each tensor once. All scalars (μ[t], bias corrections, hyperparameters) enter as one
tensor, so a changing μ[t] never recompiles, and shapes are dynamic (tensors are flattened), so
models of any size share at most a handful of compiled graphs per process.

The step is elementwise, so it runs on flat views of memory (`flat`): any parameter that is
dense — its elements fill one block of memory, contiguous or in a permuted layout such as
channels-last (`dense`) — is stepped as that block, with state tensors of its own layout
(`init_state`'s `zeros_like` keeps it) and its gradient read in the same order (`flat_grad`).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch._dynamo.exc import BackendCompilerFailed
from torch._inductor.exc import CppCompileError

from annealbench.optimizers.reference import StepConfig, first_step_gain

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


# Columns of the per-tensor scalar table passed to the compiled function. Every quotient by a
# per-step scalar (the bias corrections, the first-step gain) is folded into one precomputed
# factor, so the kernel does one vector division (by the denominator) and one square root per
# coordinate, as fused AdamW does.
(_SCALE, _BETA, _ETA, _GAMMA, _BETA2, _ONE_M_BETA2, _INV_BC2_SQRT, _EPS, _BETA_A, _ONE_M_BETA_A,
 _INV_BC_A, _DECAY, _WD, _DECAY_STEP) = range(14)
TABLE_COLUMNS = 14


def _table_row(sc: StepConfig, t: int, momentum: bool) -> list[float]:
    """The scalars of one tensor's step t (see the column names above)."""
    gain = first_step_gain(sc.gamma, t)  # F3
    scale = -sc.mu_t * gain / (1 - sc.beta**t) if momentum else -sc.mu_t * sc.eta * gain
    return [scale, sc.beta, sc.eta, sc.gamma, sc.beta2, 1 - sc.beta2, 1 / (1 - sc.beta2**t) ** 0.5,
            sc.eps, sc.numerator_beta, 1 - sc.numerator_beta, 1 / (1 - sc.numerator_beta**t),
            1 - sc.mu_t * sc.weight_decay, sc.weight_decay, -sc.mu_t * sc.decay_gain * sc.weight_decay]


def table_values(lists: GroupLists, sc: StepConfig, momentum: bool) -> list[float]:
    """The per-tensor scalar table, row after row (one row per tensor, `TABLE_COLUMNS` each).

    One row is computed per distinct step count: usually one for the whole group.
    """
    first = lists.steps[0]
    if all(t == first for t in lists.steps):
        return _table_row(sc, first, momentum) * len(lists.steps)
    rows = {t: _table_row(sc, t, momentum) for t in set(lists.steps)}
    return [x for t in lists.steps for x in rows[t]]


def _fused_chunk(params: list[torch.Tensor], grads: list[torch.Tensor], sq: list[torch.Tensor],
                 avg: list[torch.Tensor], prev: list[torch.Tensor], num: list[torch.Tensor],
                 table: torch.Tensor, momentum: bool, use_prev: bool, numerator: str,
                 coupled: bool, decoupled: bool, in_step: bool, track: bool) -> torch.Tensor | None:
    """The reference step over flat tensors, written once per tensor for the compiler to fuse."""
    sums = []
    for i in range(len(params)):
        c = table[i]
        w = params[i]
        g = grads[i] + c[_WD] * w if coupled else grads[i]
        second = sq[i] * c[_BETA2] + c[_ONE_M_BETA2] * (g * g)
        denom = second.sqrt() * c[_INV_BC2_SQRT] + c[_EPS]
        filtered_in = g - c[_GAMMA] * prev[i] if use_prev else g
        if momentum:
            v = avg[i] * c[_BETA] + c[_ETA] * filtered_in
            delta = c[_SCALE] * v / denom
        else:
            delta = c[_SCALE] * filtered_in / denom
        if in_step:  # S6': -μ[t]·η_F·λ·w joins the step before the numerator scales it
            delta = delta + c[_DECAY_STEP] * w
        if numerator != "one":
            g_bar = g / denom
            sample = g_bar * g_bar if numerator == "moment" else w * g_bar
            a_avg = num[i] * c[_BETA_A] + c[_ONE_M_BETA_A] * sample
            a = a_avg * c[_INV_BC_A]
            if numerator == "parcor":
                a = a.clamp(0.0, 1.0)
            delta = a * delta
            num[i].copy_(a_avg)
        w_new = w * c[_DECAY] + delta if decoupled else w + delta
        sq[i].copy_(second)
        if momentum:
            avg[i].copy_(v)
        if use_prev:
            prev[i].copy_(g)
        params[i].copy_(w_new)
        if track:
            sums.append(delta.float().square().sum())
    return torch.stack(sums).sum() if track else None


# The inputs are flat views built here, so inductor's per-call size and alignment checks (one
# Python call per tensor and call) only cost time.
_COMPILE_OPTIONS = {"size_asserts": False, "alignment_asserts": False}
# Graphs per process: chunk lengths 1..32 (6) × with/without the reduction × the flag
# combinations in use; dynamo's default limit (8) would send the rest to eager, silently slow.
_RECOMPILE_LIMIT = 64
_compiled: dict[int, Any] = {}


def _get_compiled():
    """The compiled chunk step for the current number of intra-op threads.

    Inductor bakes the thread count into CPU kernels and its on-disk cache does not key on it:
    a kernel compiled in a one-thread process (a test, a worker of a pool) would run on one
    thread everywhere. Passing the count as `cpp.threads` makes it part of the cache key.
    """
    threads = torch.get_num_threads()
    fn = _compiled.get(threads)
    if fn is None:
        kwargs: dict[str, Any] = {}
        if "recompile_limit" in inspect.signature(torch.compile).parameters:
            kwargs["recompile_limit"] = _RECOMPILE_LIMIT
        fn = _compiled[threads] = torch.compile(
            _fused_chunk, dynamic=True, fullgraph=True,
            options={**_COMPILE_OPTIONS, "cpp.threads": threads}, **kwargs)
    return fn


def _chunks(n: int) -> list[tuple[int, int]]:
    """Split n tensors into power-of-two runs (at most 32 long): few calls, few graphs."""
    out, start = [], 0
    while start < n:
        size = min(32, 1 << ((n - start).bit_length() - 1))
        out.append((start, start + size))
        start += size
    return out


def dense(t: torch.Tensor) -> bool:
    """Whether `t`'s elements fill one block of memory with no gaps and no overlaps: contiguous,
    or any permutation of a contiguous layout (channels-last, a transpose)."""
    if t.is_contiguous():
        return True
    expected = 1
    for size, stride in sorted(((n, s) for n, s in zip(t.shape, t.stride()) if n != 1),
                               key=lambda dim: dim[1]):
        if stride != expected:
            return False
        expected *= size
    return True


def same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether `a` and `b` have one shape and one memory order (strides of dims of size 1 do not
    matter): element i of `flat(a)` is then the element of `a` at the index of element i of
    `flat(b)`."""
    return a.shape == b.shape and all(sa == sb for n, sa, sb in zip(a.shape, a.stride(), b.stride())
                                      if n != 1)


def flat(t: torch.Tensor) -> torch.Tensor:
    """A 1-D view of a dense tensor's memory block, in memory order (`t.view(-1)` for a
    contiguous one). Writes through it are writes to `t`."""
    return t.detach().as_strided((t.numel(),), (1,), t.storage_offset())


def flat_grad(grad: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """`grad` flat in the memory order of its (dense) parameter: a view when it shares the
    parameter's layout (autograd's gradients do), else a copy laid out like the parameter."""
    if not same_layout(grad, param):
        grad = torch.empty_like(param, dtype=grad.dtype).copy_(grad)
    return flat(grad)


def compiled_supported(params: list[torch.Tensor]) -> bool:
    """The compiled path needs dense parameters (`dense`: they are updated through flat views)."""
    return all(dense(p) for p in params)


_STATE_FIELDS = ("exp_avg_sq", "exp_avg", "prev_grad", "numerator_avg")


class FlatViews:
    """Flat views (`flat`) of a group's parameters and state tensors, kept from one step to the
    next.

    Making a view costs about a microsecond, as much as the whole update of a small tensor. The
    views are rebuilt whenever the group's tensors change: another set of parameters with
    gradients, a parameter whose storage was replaced (`p.data = ...`), or new state tensors
    (`load_state_dict`). The views keep their tensors alive, so an id seen here is never reused
    by another tensor while it is cached. Every parameter must be dense and every state tensor
    laid out as its parameter (checked here, once per rebuild: a `ValueError` names the first
    that is not), so element i of every view is one coordinate.
    """

    def __init__(self, lists: GroupLists) -> None:
        self.key = self.key_of(lists)
        for p in lists.params:
            if not dense(p):
                raise ValueError(f"MuPhi's flat step takes dense parameters (contiguous or a "
                                 f"permuted layout such as channels-last): a parameter of shape "
                                 f"{tuple(p.shape)} has strides {p.stride()}")
        for field in _STATE_FIELDS:
            for x, p in zip(getattr(lists, field), lists.params):
                if not same_layout(x, p):
                    raise ValueError(f"MuPhi: a {field} tensor of shape {tuple(x.shape)}, strides "
                                     f"{x.stride()} is not laid out as its parameter (shape "
                                     f"{tuple(p.shape)}, strides {p.stride()})")
        self.params = [flat(p) for p in lists.params]
        self.strides = [p.stride() for p in lists.params]
        self.state = {f: [flat(x) for x in getattr(lists, f)] for f in _STATE_FIELDS}

    def grads(self, lists: GroupLists) -> list[torch.Tensor]:
        """This step's gradients, flat in their parameters' memory order (views where they
        share the parameter's strides, as autograd's do)."""
        return [flat(g) if g.stride() == stride else flat_grad(g, p)
                for g, p, stride in zip(lists.grads, lists.params, self.strides)]

    def lists(self, lists: GroupLists) -> GroupLists:
        """`lists` with every tensor replaced by its flat view (gradients by `grads`)."""
        return GroupLists(params=self.params, grads=self.grads(lists), steps=lists.steps,
                          **{f: self.state[f] for f in _STATE_FIELDS})

    @staticmethod
    def key_of(lists: GroupLists) -> tuple:
        return (tuple(map(id, lists.params)), tuple(p.data_ptr() for p in lists.params),
                *(tuple(map(id, getattr(lists, f))) for f in _STATE_FIELDS))

    @classmethod
    def get(cls, lists: GroupLists, cache: dict[int, FlatViews] | None, slot: int) -> FlatViews:
        """The cached views for `slot` when still valid, else new ones (stored in `cache`)."""
        if cache is None:
            return cls(lists)
        views = cache.get(slot)
        if views is None or views.key != cls.key_of(lists):
            views = cache[slot] = cls(lists)
        return views


def _table(lists: GroupLists, sc: StepConfig, momentum: bool) -> torch.Tensor:
    """`table_values` as a (tensors × columns) tensor on the parameters' device."""
    param = lists.params[0]
    dtype = torch.float64 if param.dtype == torch.float64 else torch.float32
    table = torch.tensor(table_values(lists, sc, momentum), dtype=dtype).view(-1, TABLE_COLUMNS)
    return table.to(param.device, non_blocking=True)


@torch.no_grad()
def compiled_step(lists: GroupLists, sc: StepConfig, track_rms: bool = True,
                  cache: dict[int, FlatViews] | None = None, slot: int = 0) -> torch.Tensor | None:
    """One μ[t]·Φ step over a group with the fused compiled kernel; returns Σ Δ² (float32).

    With `track_rms=False` the fused reduction is left out and None is returned. `cache` (a
    dict the caller keeps, e.g. per optimizer) holds the group's flat views under `slot`.
    Raises `CompileFailed` when the first chunk cannot be compiled (nothing written yet); an
    out-of-memory error, a shape bug or a failure after the first chunk propagates as it is.
    """
    fn = _get_compiled()
    momentum = bool(lists.exp_avg)
    table = _table(lists, sc, momentum)
    views = FlatViews.get(lists, cache, slot)
    grads = views.grads(lists)
    st = views.state
    device = lists.params[0].device
    total = torch.zeros((), dtype=torch.float32, device=device) if track_rms else None
    for a, b in _chunks(len(lists.params)):
        args = (views.params[a:b], grads[a:b], st["exp_avg_sq"][a:b], st["exp_avg"][a:b],
                st["prev_grad"][a:b], st["numerator_avg"][a:b], table[a:b], momentum,
                bool(lists.prev_grad), sc.numerator, bool(sc.weight_decay) and not sc.decoupled,
                bool(sc.weight_decay) and sc.decoupled and not sc.decay_in_step,
                bool(sc.weight_decay) and sc.decoupled and sc.decay_in_step, track_rms)
        if a > 0:  # earlier chunks are written: any error here propagates
            part = fn(*args)
        else:
            try:
                part = fn(*args)
            except (BackendCompilerFailed, CppCompileError) as err:
                if isinstance(getattr(err, "inner_exception", None), (MemoryError, torch.OutOfMemoryError)):
                    raise
                raise CompileFailed(f"{type(err).__name__}: {err}") from err
        if track_rms:
            total = total + part
    return total


class CompileFailed(RuntimeError):
    """`torch.compile` could not build the step here (before any tensor was written)."""
