"""scripts/gpu_check.sh: one table of every part; on the CPU only with --cpu-smoke (or --cpu)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from annealbench.perf import gpu_check
from annealbench.runner.suite.suite import load_suite

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}


def test_the_cpu_smoke_run_prints_one_row_per_measurement_and_exits_0() -> None:
    done = subprocess.run(["bash", "scripts/gpu_check.sh", "--cpu-smoke"], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    out = done.stdout
    assert "CPU SMOKE" in out and "TF32 matmul=True, cudnn=True" in out and "- device: CPU" in out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| ")]
    assert rows[0] == ["| part", "measurement", "result", "compared with", "ratio |"]
    parts = [r[0].removeprefix("| ") for r in rows[1:]]
    assert parts == ["step"] * 5 + ["batches"] + ["resnet"] * 2 + ["gpt"] + ["mini-run"] * 2
    assert "FAILED" not in out
    by_part = {}
    for r in rows[1:]:
        by_part.setdefault(r[0].removeprefix("| "), []).append(r)
    assert [r[1].rsplit(": ", 1)[1] for r in by_part["step"]] == [
        "MuPhi compiled, rms_step every 10 steps", "MuPhi compiled, no rms_step",
        "Prodigy (prodigyopt under the window)", "MuPhi parcor-c5b0935 (γ = 0.31), foreach",
        "MuPhi parcor-c5b0935 (γ = 0.31), reference"]
    assert all(r[3].startswith("fused AdamW") and re.match(r"\d+\.\d+× \[", r[4]) for r in by_part["step"])
    assert "equal bit for bit: yes" in by_part["batches"][0][1]
    assert re.fullmatch(r"[\d,]+ images/s", by_part["resnet"][0][2])
    assert re.fullmatch(r"[\d,]+ training tokens/s", by_part["gpt"][0][2])
    arms = sorted(re.search(r"numerator=(\S+),", r[1]).group(1) for r in by_part["mini-run"])
    assert arms == ["one", "parcor-c5b0935"]
    assert all(re.match(r"\d+\.\d+ steps/s", r[2]) for r in by_part["mini-run"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_without_a_cuda_device_it_stops_with_a_message() -> None:
    done = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert "no CUDA device here" in done.stderr and "--cpu-smoke" in done.stderr


def test_a_failing_part_is_a_failed_row_and_the_others_still_run(monkeypatch) -> None:
    def broken(device, sizes):
        raise RuntimeError("no | such device")

    monkeypatch.setattr(gpu_check, "part_gpt", broken)
    rows, ok = gpu_check.run(("gpt", "batches"), torch.device("cpu"), gpu_check.SMOKE, smoke=True)
    assert not ok and [r.part for r in rows] == ["gpt", "batches"]
    assert rows[0].what == "FAILED" and "RuntimeError: no / such device" in rows[0].value
    assert "equal bit for bit: yes" in rows[1].what


def test_the_mini_run_is_paper_figures_gamma_031_pair_at_the_suite_s_settings(tmp_path) -> None:
    doc = gpu_check.mini_suite(gpu_check.GPU, smoke=False)
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(doc))
    suite = load_suite(path)  # a valid suite
    figures = yaml.safe_load((ROOT / "src/annealbench/suites/paper-figures.yaml").read_text())
    char_gpt = next(t for t in figures["tasks"] if t["overrides"].get("corpus") == "shakespeare-char")
    overrides = doc["tasks"][0]["overrides"]
    for key, value in char_gpt["overrides"].items():
        if key not in ("corpus", "download", "max_steps", "val_every", "val_tokens"):
            assert overrides[key] == value, key
    assert overrides["max_steps"] == 300 and "corpus" not in overrides
    assert [o["hparams"]["numerator"] for o in doc["optimizers"]] == ["one", "parcor-c5b0935"]
    assert {o["hparams"]["gamma"] for o in doc["optimizers"]} == {0.31}
    assert len(suite.tasks) == 1 and len(suite.optimizers) == 2
