"""The fused CPU step: one call of a small C++/OpenMP kernel over all tensors of a group.

Why not only `torch.compile`: its kernel is as fast as fused AdamW's, but each call of a compiled
function pays dynamo's guards and wrappers, about 3-5 µs per tensor passed. A step over 50
tensors spent 0.3-0.5 ms there, 5-10 % of a 10M-parameter step on a 2-core CPU, which is the
gap to `torch.optim.AdamW(fused=True)` (itself one C++ call). This kernel (`_fused_step.cpp`)
is that one call for MuPhi: the compiled path's arithmetic in the same order (equal to it up to
rounding), for float32 and float64 contiguous CPU tensors, with the tensors' addresses taken from
`Tensor.data_ptr()` and passed through ctypes.

The library is compiled on first use with the machine's C++ compiler (`$CXX`, else g++, c++ or
clang++; a few seconds) for the machine's own CPU (`-march=native`), and kept in
`$ANNEALBENCH_KERNELS`, else `~/.cache/annealbench/kernels` (beside the data cache
`~/.cache/annealbench/cifar10`), under a name that hashes the source, the compiler, its flags and
the CPU's model and feature flags: the name changes whenever the source does, and a cluster
sharing one home directory across node types builds once per node type. Processes that
build at once each write their own file and rename it into place. Where no compiler, OpenMP or
writable directory is available, `load()` raises `NativeUnavailable` and MuPhi takes another
path, saying so once in the log.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from array import array
from pathlib import Path

import torch

from optimizers.functional import GroupLists, table_values
from optimizers.reference import StepConfig

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_fused_step.cpp")
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-fPIC", "-shared", "-std=c++17")
DTYPES = {torch.float32: 0, torch.float64: 1}
_NUMERATORS = {"one": 0, "moment": 1, "parcor": 2}


class NativeUnavailable(RuntimeError):
    """The fused CPU kernel cannot be built or loaded here (the message says why)."""


def cache_dir() -> Path:
    """Where the compiled kernel is kept: `$ANNEALBENCH_KERNELS`, else `~/.cache/annealbench/kernels`."""
    if os.environ.get("ANNEALBENCH_KERNELS"):
        return Path(os.environ["ANNEALBENCH_KERNELS"])
    return Path("~/.cache/annealbench/kernels").expanduser()


def _compiler() -> str:
    chosen = os.environ.get("CXX")
    if chosen:
        if not shutil.which(chosen):
            raise NativeUnavailable(f"$CXX={chosen!r} is not an executable on PATH")
        return chosen
    for name in ("g++", "c++", "clang++"):
        if shutil.which(name):
            return name
    raise NativeUnavailable("no C++ compiler found: set $CXX, or install g++")


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


def _build(directory: Path) -> Path:
    compiler = _compiler()
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise NativeUnavailable(f"the C++ compiler {compiler!r} does not run: {err}") from err
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, version.encode(), " ".join(FLAGS).encode(),
                                     _cpu_fingerprint().encode()])).hexdigest()[:20]
    target = directory / f"muphi_step-{key}.so"
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=target.name + ".", suffix=".partial", dir=directory)
    os.close(fd)
    try:
        done = subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", partial], capture_output=True,
                              text=True, timeout=600)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-3:]
            raise NativeUnavailable(f"{compiler} failed to build {SOURCE.name}: " + " | ".join(tail))
        os.replace(partial, target)
    except subprocess.TimeoutExpired as err:
        raise NativeUnavailable(f"{compiler} took over {err.timeout:.0f} s to build {SOURCE.name}") from err
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    log.info("MuPhi: built the fused CPU step %s", target)
    return target


_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_failure: NativeUnavailable | None = None


def load() -> ctypes.CDLL:
    """The kernel library, built on first use; raises `NativeUnavailable` (every time) if it can't be."""
    global _library, _failure
    with _lock:
        if _library is not None:
            return _library
        if _failure is not None:
            raise _failure
        try:
            try:
                path = _build(cache_dir())
            except OSError:  # an unwritable cache directory: build in a private temporary one
                path = _build(Path(tempfile.mkdtemp(prefix="annealbench-kernel-")))
            lib = ctypes.CDLL(str(path))
            lib.muphi_step.restype = ctypes.c_double
            lib.muphi_step.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                                       ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        except NativeUnavailable as err:
            _failure = err
        except OSError as err:  # the compiler could not write, or the library does not load
            _failure = NativeUnavailable(f"{type(err).__name__}: {err}")
        if _failure is not None:
            log.warning("MuPhi: the fused CPU step is not available here (%s); MuPhi(impl='auto') "
                        "uses the compiled or foreach step", _failure)
            raise _failure
        _library = lib
        return lib


def available() -> bool:
    """True when the kernel library is built and loaded (building it if need be)."""
    try:
        load()
    except NativeUnavailable:
        return False
    return True


class Unsupported(ValueError):
    """The group's tensors are not all contiguous CPU tensors of one float32/float64 dtype."""


def variant(sc: StepConfig, momentum: bool, use_prev: bool, track: bool) -> int:
    """The kernel's variant index (see `_fused_step.cpp`)."""
    decay = 0 if not sc.weight_decay else (2 if sc.decoupled else 1)
    return int(momentum) + 2 * int(use_prev) + 4 * _NUMERATORS[sc.numerator] + 12 * decay + 36 * int(track)


def _addresses(tensors: list[torch.Tensor], sizes: list[int], dtype: torch.dtype, what: str) -> list[int]:
    """Each tensor's address, after checking that the kernel may read and write it as it will."""
    if not tensors:
        return [0] * len(sizes)
    for x, size in zip(tensors, sizes):
        if x.dtype != dtype or not x.is_cpu or not x.is_contiguous():
            raise Unsupported(f"MuPhi's fused step takes contiguous float32 or float64 CPU tensors "
                              f"of one dtype ({dtype} here): a {what} is {x.dtype} on {x.device}, "
                              f"contiguous={x.is_contiguous()}")
        if x.numel() != size:
            raise ValueError(f"MuPhi: a {what} tensor has {x.numel()} elements where its parameter "
                             f"has {size} (a state dict loaded for another model?)")
    return [x.data_ptr() for x in tensors]


def _bump_versions(tensors: list[torch.Tensor]) -> None:
    try:
        torch._C._increment_version(tensors)  # torch >= 2.5 takes a list
    except TypeError:
        for t in tensors:
            torch._C._increment_version(t)


@torch.no_grad()
def fused_step(lists: GroupLists, sc: StepConfig, track_rms: bool = True) -> torch.Tensor | None:
    """One μ[t]·Φ step over a group with the fused CPU kernel; returns Σ Δ² (float32).

    Raises `Unsupported`, before changing anything, unless every parameter and state tensor is
    a contiguous CPU tensor of one dtype, float32 or float64; a gradient that is not contiguous
    (or of another dtype) is copied. With `track_rms=False` the reduction is left out and None
    is returned.
    """
    lib = load()
    params = lists.params
    dtype = params[0].dtype
    if dtype not in DTYPES:
        raise Unsupported(f"MuPhi's fused step takes float32 or float64 parameters, not {dtype}")
    grads = [g if g.is_contiguous() and g.dtype == dtype else g.to(dtype).contiguous() for g in lists.grads]
    momentum = bool(lists.exp_avg)
    numels = [p.numel() for p in params]
    ptrs = array("q", _addresses(params, numels, dtype, "parameter"))
    ptrs.extend(_addresses(grads, numels, dtype, "gradient"))
    for name in ("exp_avg_sq", "exp_avg", "prev_grad", "numerator_avg"):
        ptrs.extend(_addresses(getattr(lists, name), numels, dtype, name))
    sizes = array("q", numels)
    table = array("d", table_values(lists, sc, momentum))
    code = variant(sc, momentum, bool(lists.prev_grad), track_rms)
    sumsq = lib.muphi_step(DTYPES[dtype], len(params), ptrs.buffer_info()[0], sizes.buffer_info()[0],
                           table.buffer_info()[0], code, torch.get_num_threads())
    if sumsq < 0:
        raise RuntimeError(f"MuPhi's fused step rejected its arguments (variant {code}, {len(params)} tensors)")
    # What an in-place torch operation does: autograd sees the parameters' new version, so a
    # backward through a graph that saved their old values fails loudly instead of silently.
    _bump_versions(params)
    return torch.tensor(sumsq, dtype=torch.float32) if track_rms else None
