"""The fused CPU kernel's build: torch's extension cache, one OpenMP runtime, a clear fallback.

Each case runs in its own Python process, since a process loads (or fails to build) the kernel
once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TRAIN = textwrap.dedent("""
    import logging, sys, torch
    logging.basicConfig(level=logging.INFO, format="LOG %(message)s")
    from annealbench.optimizers import MuPhi
    from annealbench.optimizers import native
    w = torch.ones(3)
    opt = MuPhi([w], lr=0.1, window="constant")
    for _ in range(3):
        w.grad = torch.ones(3)
        opt.step()
    print("PATH", opt.param_groups[0]["impl"], "W", w.tolist())
    maps = open("/proc/self/maps").read().splitlines()
    print("OPENMP", len({line.split()[-1] for line in maps if "libgomp" in line}))
    try:
        v = torch.ones(3)
        v.grad = torch.ones(3)
        MuPhi([v], lr=0.1, total_steps=10, impl="fused").step()
    except native.BuildFailed as err:
        print("FUSED-REFUSED", err)
""")


def _python(code: str, env: dict[str, str]) -> subprocess.Popen:
    """`code` in a fresh interpreter, with the default compiler unless `env` names one as $CXX."""
    base = {k: v for k, v in os.environ.items() if k != "CXX"}
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**base, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def _weights(out: str) -> list[float]:
    return [float(x) for x in out.split("W [")[1].split("]")[0].split(",")]


def test_without_a_compiler_auto_falls_back_once_and_fused_says_why(tmp_path) -> None:
    out = _finish(_python(TRAIN, {"CXX": "no-such-compiler-xyz", "TORCH_EXTENSIONS_DIR": str(tmp_path)}))
    assert out.count("the fused CPU step is not available here") == 1, out
    assert "PATH reference" in out, out
    assert "FUSED-REFUSED building _fused_step.cpp failed" in out, out
    assert all(abs(x - (1 - 3 * 0.1)) < 1e-5 for x in _weights(out)), out  # three sign-like steps


def test_the_kernel_uses_torch_s_openmp_runtime_and_steps_like_the_reference() -> None:
    out = _finish(_python(TRAIN, {}))
    assert "PATH fused" in out and "FUSED-REFUSED" not in out, out
    assert "OPENMP 1" in out, out
    assert all(abs(x - (1 - 3 * 0.1)) < 1e-5 for x in _weights(out)), out


@pytest.mark.slow
def test_processes_building_at_once_share_one_build(tmp_path) -> None:
    """Two fresh processes build into one empty cache under torch's lock; a third builds nothing."""
    env = {"TORCH_EXTENSIONS_DIR": str(tmp_path)}
    procs = [_python(TRAIN, env) for _ in range(2)]
    for out in (_finish(p) for p in procs):
        assert "PATH fused" in out and "FUSED-REFUSED" not in out, out
    built = list(tmp_path.rglob("*.so"))
    assert len(built) == 1, built
    stamp = built[0].stat().st_mtime_ns
    out = _finish(_python(TRAIN, env))
    assert "PATH fused" in out and built[0].stat().st_mtime_ns == stamp, out


def test_a_failing_compile_falls_back_with_the_compiler_s_words(tmp_path) -> None:
    broken = tmp_path / "broken.cpp"
    broken.write_text("this is not C++\n")
    code = TRAIN.replace("from annealbench.optimizers import native\n",
                         f"from annealbench.optimizers import native\nnative.SOURCE = __import__('pathlib').Path({str(broken)!r})\n")
    assert code != TRAIN
    out = _finish(_python(code, {"TORCH_EXTENSIONS_DIR": str(tmp_path / "cache")}))
    assert "building broken.cpp failed" in out and "PATH reference" in out, out
    assert "error" in out.lower()


def test_a_lock_left_by_a_killed_build_is_removed_not_waited_on(tmp_path) -> None:
    """Torch's build lock is a plain file: a build killed while holding it used to make every later
    build wait forever. Here it is stale (no process of ours holds the kernel lock), so it goes; the
    build then runs (and, with no compiler, falls back) instead of hanging."""
    env = {"TORCH_EXTENSIONS_DIR": str(tmp_path)}
    where = _finish(_python("from annealbench.optimizers import native\n"
                            "print('DIR', native._build_directory(native.build_name()))\n", env))
    stale = Path(where.split("DIR ")[1].split()[0]) / "lock"
    assert tmp_path in stale.parents
    stale.write_text("")
    proc = _python(TRAIN, {"CXX": "no-such-compiler-xyz", **env})
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the build waited on the stale lock")
    assert proc.returncode == 0, out
    assert f"removing {stale}" in out and not stale.exists(), out
    assert "PATH reference" in out, out


def test_the_build_name_follows_the_paths_in_the_build_command(monkeypatch, tmp_path) -> None:
    """A second checkout (another source path) or environment (another torch directory) gets
    its own build folder, so the two never rebuild in turn."""
    from annealbench.optimizers import native

    here = native.build_name()
    assert here == native.build_name() and here.startswith("annealbench_muphi_step_")
    monkeypatch.setattr(native, "SOURCE", tmp_path / "_fused_step.cpp")
    elsewhere = native.build_name()
    monkeypatch.undo()
    monkeypatch.setattr(native.torch, "__file__", str(tmp_path / "torch" / "__init__.py"))
    assert len({here, elsewhere, native.build_name()}) == 3
