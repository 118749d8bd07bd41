"""The fused CPU kernel's build: a cache shared by processes, and a clear fallback without it.

Each case runs in its own Python process, since a process loads (or fails to build) the kernel
once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TRAIN = textwrap.dedent("""
    import logging, sys, torch
    logging.basicConfig(level=logging.INFO, format="LOG %(message)s")
    from optimizers import MuPhi, native
    w = torch.ones(3)
    opt = MuPhi([w], lr=0.1, window="constant")
    for _ in range(3):
        w.grad = torch.ones(3)
        opt.step()
    print("PATH", opt._path([w]), "W", w.tolist())
    try:
        MuPhi([w], lr=0.1, total_steps=10, impl="fused").step()
    except native.NativeUnavailable as err:
        print("FUSED-REFUSED", err)
""")


def _python(code: str, env: dict[str, str]) -> subprocess.Popen:
    """`code` in a fresh interpreter, with the default compiler unless `env` names one as $CXX."""
    base = {k: v for k, v in os.environ.items() if k != "CXX"}
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**base, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


def test_without_a_compiler_auto_falls_back_once_and_fused_says_why(tmp_path) -> None:
    out = _finish(_python(TRAIN, {"CXX": "no-such-compiler-xyz", "ANNEALBENCH_KERNELS": str(tmp_path)}))
    assert out.count("the fused CPU step is not available here") == 1, out
    assert "$CXX='no-such-compiler-xyz' is not an executable on PATH" in out
    assert "PATH foreach" in out
    assert "FUSED-REFUSED $CXX='no-such-compiler-xyz'" in out
    w = [float(x) for x in out.split("W [")[1].split("]")[0].split(",")]
    assert all(abs(x - (1 - 3 * 0.1)) < 1e-5 for x in w), out  # three sign-like steps of μ = 0.1
    assert list(tmp_path.iterdir()) == []


def test_processes_building_at_once_share_one_library(tmp_path) -> None:
    """Two fresh processes build into one empty cache: both load, one file stays, no partials."""
    env = {"ANNEALBENCH_KERNELS": str(tmp_path)}
    procs = [_python(TRAIN, env) for _ in range(2)]
    outs = [_finish(p) for p in procs]
    for out in outs:
        assert "PATH fused" in out and "FUSED-REFUSED" not in out, out
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("muphi_step-") and files[0].endswith(".so"), files
    # A third process finds it and builds nothing.
    out = _finish(_python(TRAIN, env))
    assert "PATH fused" in out and "built the fused CPU step" not in out, out


def test_a_failing_compile_is_reported_with_the_compiler_s_words(tmp_path) -> None:
    broken = tmp_path / "broken.cpp"
    broken.write_text("this is not C++\n")
    code = TRAIN.replace("from optimizers import MuPhi, native",
                         f"from optimizers import MuPhi, native\nnative.SOURCE = __import__('pathlib').Path({str(broken)!r})")
    out = _finish(_python(code, {"ANNEALBENCH_KERNELS": str(tmp_path / "cache")}))
    assert "failed to build broken.cpp" in out and "PATH foreach" in out, out
    assert not any((tmp_path / "cache").glob("*")), "a failed build must leave no file behind"
