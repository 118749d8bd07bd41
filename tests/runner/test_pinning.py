"""One device per worker: each local worker process sees exactly its own GPU id (no GPU needed)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from annealbench.runner.launch.devices import visible_gpus, worker_devices
from annealbench.runner.suite.suite import parse_suite
from annealbench.runner.sweep import SweepOptions, run_sweep

TWO = """
name: pinned
preset: smoke
tasks: [quadratic]
optimizers:
  - {name: adamw, hparams: {window: cosine}, lr: [1.0e-2]}
seeds: {eval: [10, 11]}
seed_batch: 1
"""


def test_each_worker_of_the_pool_sees_exactly_one_device(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    suite = parse_suite(TWO, source="pinned.yaml")
    summary = run_sweep(suite, SweepOptions(out=tmp_path / "out", workers=2, wandb="disabled"))
    assert summary.counts.get("done") == 2  # the pool hands worker 0 and worker 1 one run each
    runs = pd.read_parquet(tmp_path / "out" / "runs.parquet")
    seen = [json.loads(p)["cuda_visible_devices"] for p in runs["provenance"]]
    assert all(s in ("0", "1") for s in seen), seen  # one id each, never "0,1"
    assert set(seen) == {"0", "1"}  # both workers ran: each on its own device


def test_devices_are_dealt_per_worker():
    assert worker_devices(["0", "1"], 2, 1) == ["0", "1"]
    assert worker_devices(["0", "1", "2", "3"], 2, 2) == ["0,1", "2,3"]
    assert worker_devices(["0", "1"], 4, 1) == ["0", "1", "0", "1"]  # more workers than GPUs
    assert worker_devices([], 3, 1) == [None, None, None]
    with pytest.raises(ValueError, match="needs 2 devices but only 1 GPU"):
        worker_devices(["7"], 1, 2)


def test_visible_gpus_reads_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    assert visible_gpus() == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


def test_a_run_group_records_the_one_device_its_worker_sees(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    suite = parse_suite(TWO.replace("seed_batch: 1", "seed_batch: 2"), source="pinned.yaml")
    summary = run_sweep(suite, SweepOptions(out=tmp_path / "out", workers=2, wandb="disabled"))
    assert summary.counts.get("done") == 2
    runs = pd.read_parquet(tmp_path / "out" / "runs.parquet")
    docs = [json.loads(p) for p in runs["provenance"]]
    assert all(d["run_group"] for d in docs)  # both seeds trained as one group...
    assert len({d["cuda_visible_devices"] for d in docs}) == 1  # ...on one worker's one device
    assert docs[0]["cuda_visible_devices"] in ("0", "1")
