"""The fused CPU step: the operator `torch.ops.annealbench.muphi_step` (`_fused_step.cpp`).

Why a native kernel: a `torch.compile`d step is as fast per coordinate as fused AdamW, but each
call of a compiled function pays dynamo's guards and wrappers, a few µs per tensor; over 50
tensors that is 5-10 % of a 10M-parameter step on a small CPU, the gap to
`torch.optim.AdamW(fused=True)` (itself one C++ call). This operator is that one call for MuPhi.

It is built the way torch extensions are built: `torch.utils.cpp_extension.load`, torch's build
cache (`$TORCH_EXTENSIONS_DIR`, else `~/.cache/torch_extensions`), torch's tensors and
`at::parallel_for` (torch's intra-op threads; the kernel links torch's OpenMP runtime, not a
second one), versions bumped as an in-place op bumps them. The build targets the machine's CPU
(`-march=native`); the extension's name carries a hash of the CPU model and flags and of the
paths in its build command (`build_name`), so a cluster sharing a home directory builds once per
node type and environment. Only a failed build (`BuildFailed`: no compiler, no ninja, a compile
error, an unwritable cache) makes MuPhi take another path; every other error propagates.

Processes that build at once take turns under a kernel file lock (`flock` on a sibling
`NAME.flock`), which the kernel releases however its holder dies. Torch's own lock is a plain
`lock` file in the build directory: a process killed while holding it (a SIGKILLed sweep, a
preempted job) leaves it behind, and every later build waits on it forever. Under the kernel
lock no other process of ours is building, so a `lock` file found there is stale and is removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from annealbench.optimizers.compiled import GroupLists
from annealbench.optimizers.reference import StepConfig

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_fused_step.cpp")
DTYPES = (torch.float32, torch.float64)
CFLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fopenmp")


class BuildFailed(RuntimeError):
    """The fused CPU kernel could not be built or loaded here (the message says why)."""


def _cpu_fingerprint() -> str:
    """The CPU model and feature flags: a `-march=native` build is only valid on such a CPU."""
    parts = [platform.machine()]
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags", "Features", "CPU part")):
                parts.append(line)
                if len(parts) >= 3:
                    break
    except OSError:
        parts.append(platform.processor())
    return "\n".join(parts)


def _is_build_failure(err: BaseException) -> bool:
    """cpp_extension's own build errors: ninja missing, or the compiler/linker failing."""
    if isinstance(err, OSError):  # no compiler executable, an unwritable build cache
        return True
    return isinstance(err, RuntimeError) and (
        isinstance(err.__cause__, subprocess.CalledProcessError)
        or str(err).startswith(("Ninja is required", "Error building extension")))


def build_name() -> str:
    """The extension's name: the kernel's, with a hash of what its build command holds: the CPU
    it is built for, the source's path, the flags and torch's directory (its headers and
    libraries), each as this process spells it. Two checkouts, or two environments, then build
    once each, instead of rebuilding in turn whenever the other one built last."""
    parts = [_cpu_fingerprint(), str(SOURCE), *CFLAGS, str(Path(torch.__file__).parent)]
    return f"annealbench_muphi_step_{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:12]}"


def _build_directory(name: str) -> Path:
    """`name`'s folder in torch's build cache: `$TORCH_EXTENSIONS_DIR`, else torch's default root
    (`build_name` already tells environments apart)."""
    from torch.utils import cpp_extension

    path = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _one_builder(build_dir: Path) -> Iterator[None]:
    """Hold the kernel lock on `build_dir`'s builds; under it, remove torch's stale `lock` file."""
    with open(build_dir.parent / f"{build_dir.name}.flock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        stale = build_dir / "lock"
        if stale.exists():
            log.warning("MuPhi: removing %s, left by a build that was killed", stale)
            stale.unlink(missing_ok=True)
        yield  # closing the handle releases the lock


_lock = threading.Lock()
_state: dict[str, object] = {}


def load() -> None:
    """Build (first use, cached by torch) and load the operator; raise `BuildFailed` if it can't be."""
    from torch.utils import cpp_extension

    with _lock:
        if "loaded" in _state:
            return
        if "failure" in _state:
            raise _state["failure"]  # type: ignore[misc]
        torch_lib = Path(torch.__file__).parent / "lib"
        name = build_name()
        try:
            build_dir = _build_directory(name)
            with _one_builder(build_dir):
                cpp_extension.load(
                    name=name, sources=[str(SOURCE)], extra_cflags=list(CFLAGS),
                    # Link the libgomp torch itself loads (same soname): one OpenMP runtime.
                    extra_ldflags=[f"-L{torch_lib}", "-l:libgomp.so.1"],
                    build_directory=str(build_dir), is_python_module=False, verbose=False)
        except (OSError, RuntimeError) as err:
            if not _is_build_failure(err):
                raise
            detail = " | ".join(str(err).strip().splitlines()[-3:])
            failure = BuildFailed(f"building {SOURCE.name} failed: {type(err).__name__}: {detail}")
            _state["failure"] = failure
            raise failure from err
        _state["loaded"] = True
        log.info("MuPhi: loaded the fused CPU step (%s)", SOURCE.name)


def unsupported(params: list[torch.Tensor]) -> str | None:
    """Why the kernel cannot take this group, or None: it takes contiguous CPU tensors of one
    float32/float64 dtype."""
    dtype = params[0].dtype
    if dtype not in DTYPES:
        return f"MuPhi's fused step takes float32 or float64 parameters, not {dtype}"
    for p in params:
        if not (p.is_cpu and p.dtype == dtype and p.is_contiguous()):
            return (f"MuPhi's fused step takes contiguous CPU tensors of one dtype ({dtype} here): "
                    f"a parameter is {p.dtype} on {p.device}, contiguous={p.is_contiguous()}")
    return None


@torch.no_grad()
def fused_step(lists: GroupLists, sc: StepConfig, track_rms: bool = True) -> torch.Tensor | None:
    """One μ[t]·Φ step over a group with the fused CPU kernel; returns Σ Δ² (float32).

    A gradient that is not contiguous or not of the parameters' dtype is copied; any other
    mismatch (a state tensor of another size, a parameter on another device) raises
    `ValueError` naming it, before anything is written. With `track_rms=False` the reduction is
    left out and None is returned.
    """
    load()
    dtype = lists.params[0].dtype
    grads = [g if g.is_contiguous() and g.dtype == dtype else g.to(dtype).contiguous() for g in lists.grads]
    decay = "none" if not sc.weight_decay else \
        ("coupled" if not sc.decoupled else ("in-step" if sc.decay_in_step else "decoupled"))
    sumsq = torch.ops.annealbench.muphi_step(
        lists.params, grads, lists.exp_avg_sq, lists.exp_avg, lists.prev_grad, lists.numerator_avg,
        lists.steps, sc.mu_t, sc.beta, sc.eta, sc.gamma, sc.beta2, sc.eps, sc.numerator_beta,
        sc.weight_decay, sc.numerator, decay, track_rms)
    return torch.tensor(sumsq, dtype=torch.float32) if track_rms else None
