"""DDP shares the global batch: each process trains on its block of rows, and the run is one
process's run on the global batch (train loss, weights, batch-norm statistics), in float64; and
a multi-device run that times out leaves no process behind.

The two-process runs are this file run as a script on CPU processes (gloo), Lightning's DDP
launcher starting the second process by running the same command again:

    python -m tests.tasks.test_ddp_shards TASK DEVICES OUT [DATA_DIR]

Every process writes what it saw and ended with to `OUT/rank{r}.pt`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from annealbench.runner.run.execute import RunOptions
from annealbench.runner.launch.pool import WorkerPool
from annealbench.runner.run.job import Job
from annealbench.runner.run.provenance import environment
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.store.results_store import ResultsStore
from annealbench.tasks import get_task
from annealbench.tasks import cifar_data
from annealbench.tasks.base import CpuSyncBatchNorm, Regressor
from annealbench.tasks.batches import InMemoryDataModule
from tests.tasks.helpers import RecordingLogger, write_cifar_fixture

ROOT = Path(__file__).parents[2]
TOL = 1e-10


def sgd(groups, total_steps):
    return torch.optim.SGD(groups, lr=0.05, momentum=0.9)


def bn_mlp() -> nn.Module:
    """The teacher's student with batch norm after its hidden layer."""
    return nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.GELU(), nn.Linear(32, 1))


def build(task_name: str, data_dir: str = ""):
    """(task, module, data module): float64, a handful of steps, every step logged."""
    if task_name == "teacher":
        task = get_task("teacher", "smoke", precision="64-true", max_steps=6, log_every=1,
                        val_every=6, batch_size=64)
        _, data = task.build(sgd, seed=3)
        return task, Regressor.create(task.config, bn_mlp, sgd, seed=3), data
    task = get_task("cifar10", "smoke", precision="64-true", max_steps=3, log_every=1,
                    val_every=3, batch_size=16, data_dir=data_dir)
    module, data = task.build(sgd, seed=3)
    return task, module, data


class Rows(pl.Callback):
    """The first tensor of every training batch this process sees, by step."""

    def __init__(self) -> None:
        self.rows: dict[int, torch.Tensor] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rows[trainer.global_step] = batch[0].detach().cpu().double().clone()


def train(task_name: str, devices: int, out: str | None = None, data_dir: str = "") -> dict:
    torch.set_num_threads(1)
    task, module, data = build(task_name, data_dir)
    logger, rows = RecordingLogger(), Rows()
    trainer = pl.Trainer(**task.trainer_kwargs(), accelerator="cpu", devices=devices,
                         strategy="ddp" if devices > 1 else "auto", logger=logger,
                         callbacks=[rows], enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(module, datamodule=data)
    result = {"rows": rows.rows, "loss": logger.series("train/loss"),
              "val": logger.series("val/loss"),
              "state": {k: v.detach().cpu().clone() for k, v in module.net.state_dict().items()},
              "norms": sorted({type(m).__name__ for m in module.net.modules()
                               if isinstance(m, nn.modules.batchnorm._BatchNorm)})}
    if out is not None:
        torch.save(result, Path(out) / f"rank{trainer.global_rank}.pt")
    return result


def two_processes(tmp_path: Path, task_name: str, data_dir: str = "") -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "tests.tasks.test_ddp_shards", task_name, "2",
                    str(tmp_path), data_dir], cwd=ROOT, env=env, check=True, timeout=300)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]


def assert_same_run(one: dict, ranks: list[dict]) -> float:
    """Each rank saw its block of the one-process global batch; the train losses, validation
    losses and final weights (batch-norm statistics included) agree to TOL. Returns the largest
    difference seen."""
    worst = 0.0
    steps = sorted(one["rows"])
    assert steps and all(sorted(r["rows"]) == steps for r in ranks)
    for step in steps:
        whole = one["rows"][step]
        blocks = [r["rows"][step] for r in ranks]
        assert [len(b) for b in blocks] == [len(whole) // 2] * 2
        assert torch.equal(torch.cat(blocks), whole)  # rank r: rows [rB/2, (r+1)B/2)
        first = {tuple(x.flatten().tolist()) for x in blocks[0]}
        assert not any(tuple(x.flatten().tolist()) in first for x in blocks[1])  # disjoint
    for r in ranks:
        for name in ("loss", "val"):
            assert [s for s, _ in r[name]] == [s for s, _ in one[name]] and one[name]
            for (_, a), (_, b) in zip(r[name], one[name]):
                assert a == pytest.approx(b, rel=TOL, abs=TOL), name
                worst = max(worst, abs(a - b))
        assert r["state"].keys() == one["state"].keys()
        for key, value in one["state"].items():
            assert r["state"][key].dtype == value.dtype, key
            diff = (r["state"][key].double() - value.double()).abs().max().item()
            assert diff <= TOL * max(1.0, value.double().abs().max().item()), key
            worst = max(worst, diff)
    return worst


# --- in one process --------------------------------------------------------------------------

def _attach(data: InMemoryDataModule, module, rank: int, world: int) -> None:
    data.trainer = SimpleNamespace(global_rank=rank, world_size=world, global_step=0,
                                   lightning_module=module)


@pytest.mark.parametrize("name", ["digits", "teacher", "shakespeare", "diabetes"])
def test_each_process_takes_its_block_of_the_global_batch(name):
    task = get_task(name, "smoke")
    module, data = task.build(sgd, seed=1)
    blocks = []
    for rank in range(2):
        _attach(data, module, rank, 2)
        data.setup("fit")
        stream = iter(data.train_dataloader())
        blocks.append([next(stream) for _ in range(3)])
    for step in range(3):
        whole = data.make_batch(step)
        assert whole[0].shape[0] == task.config.batch_size
        for i, tensor in enumerate(whole):
            assert torch.equal(torch.cat([blocks[0][step][i], blocks[1][step][i]]), tensor)


def test_one_process_and_run_groups_take_the_whole_batch():
    task = get_task("teacher", "smoke")
    module, data = task.build(sgd, seed=1)
    _attach(data, module, 0, 1)
    assert torch.equal(next(iter(data.train_dataloader()))[0], data.make_batch(0)[0])
    data.trainer = None  # a run group's member before it is attached
    assert torch.equal(next(iter(data.train_dataloader()))[0], data.make_batch(0)[0])


def test_a_batch_that_is_not_rows_of_examples_is_used_whole():
    task = get_task("quadratic", "smoke")  # one noise vector of `dim` values per step
    module, data = task.build(sgd, seed=1)
    assert module.global_batch_size == task.config.batch_size != task.config.dim
    for rank in range(2):
        _attach(data, module, rank, 2)
        data.setup("fit")
        assert torch.equal(next(iter(data.train_dataloader()))[0], data.make_batch(0)[0])


def test_a_global_batch_the_processes_cannot_share_is_refused_at_setup():
    task = get_task("teacher", "smoke", batch_size=10)
    module, data = task.build(sgd, seed=1)
    _attach(data, module, 0, 3)
    with pytest.raises(ValueError, match=r"batch_size=10 .*3 processes \(world size 3\)"):
        data.setup("fit")
    _attach(data, module, 0, 2)
    data.setup("fit")  # 10 rows: 5 each


def _trainer(world: int, device: str) -> SimpleNamespace:
    return SimpleNamespace(world_size=world,
                           strategy=SimpleNamespace(root_device=torch.device(device)))


def _norms(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("device, kind", [("cpu", CpuSyncBatchNorm), ("cuda", nn.SyncBatchNorm)])
def test_batch_norm_is_synchronised_under_ddp_only(device, kind):
    from annealbench.tasks.cifar10 import make_net
    net = make_net(get_task("cifar10", "smoke", model="resnet18").config)
    module = Regressor(net, sgd, total_steps=1, log_every=1, seed=0)
    params, norms = [id(p) for p in net.parameters()], _norms(net)
    module._trainer = _trainer(1, device)
    module.setup("fit")
    assert {type(m) for m in _norms(module.net)} == {nn.BatchNorm2d}  # one process: plain
    module._trainer = _trainer(2, device)
    module.setup("fit")
    synced = _norms(module.net)
    assert len(synced) == len(norms) and {type(m) for m in synced} == {kind}
    assert [id(p) for p in module.net.parameters()] == params  # the same parameters
    assert all(a.running_mean is b.running_mean for a, b in zip(synced, norms))
    module.setup("fit")  # already synchronised: unchanged
    assert _norms(module.net) == synced
    module._trainer = None


# --- on two CPU processes --------------------------------------------------------------------

def test_two_processes_train_as_one_on_the_global_batch_with_synchronised_batch_norm(tmp_path):
    one = train("teacher", 1)
    ranks = two_processes(tmp_path, "teacher")
    assert one["norms"] == ["BatchNorm1d"]
    assert all(r["norms"] == ["CpuSyncBatchNorm"] for r in ranks)
    worst = assert_same_run(one, ranks)
    print(f"teacher + batch norm, 2 processes vs 1: largest difference {worst:.3g}")
    assert one["state"]["1.num_batches_tracked"].item() == 6


@pytest.fixture()
def cifar_root(tmp_path):
    write_cifar_fixture(tmp_path / "data", per_batch=40)
    cifar_data.load.cache_clear()
    yield tmp_path / "data"
    cifar_data.load.cache_clear()


def test_cifar10_resnet_on_two_processes_is_one_process_on_the_global_batch(tmp_path, cifar_root):
    # augmentation is drawn for the global batch, then split; batch norm over both processes
    one = train("cifar10", 1, data_dir=str(cifar_root))
    ranks = two_processes(tmp_path, "cifar10", str(cifar_root))
    assert one["norms"] == ["BatchNorm2d"] and ranks[0]["norms"] == ["CpuSyncBatchNorm"]
    worst = assert_same_run(one, ranks)
    print(f"cifar10 ResNet-18, 2 processes vs 1: largest difference {worst:.3g}")


# --- a multi-device run's process tree ---------------------------------------------------------

def _state(pid: int) -> str | None:
    """The process's state letter (Z: a zombie, dead), None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    return _state(pid) not in (None, "Z")


def _running(marker: str) -> set[int]:
    """The live processes whose command line holds `marker`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in command and _alive(int(entry.name)):
                found.add(int(entry.name))
    return found


def test_a_timed_out_multi_device_run_leaves_no_process_alive(tmp_path):
    store = ResultsStore(tmp_path / "out")
    store.ensure_writable()
    spec = RunSpec(suite="t", stage="eval", task="quadratic", preset="smoke",
                   task_overrides=(("max_steps", 10**8), ("val_every", 10**7)),
                   optimizer="adamw", hparams=(("window", "cosine"),), lr=1e-2, seed=10)
    job = Job.of(spec, store.folder(spec).path, timeout_s=300.0)
    options = RunOptions(wandb="disabled", devices=2, strategy="ddp", accelerator="cpu")
    ranks: set[int] = set()  # `annealbench run-one RUN_DIR ...`: rank 0 and the rank it starts

    with WorkerPool(1, 1, environment()) as pool:
        def expire_once_both_ranks_train() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(ranks) < 2:
                ranks.update(_running(str(job.run_dir)))
                time.sleep(0.2)
            time.sleep(2.0)  # both in the training loop
            ranks.update(_running(str(job.run_dir)))
            pool._workers[0].started -= 10**6  # its limit has passed: timed out on the next look

        watcher = threading.Thread(target=expire_once_both_ranks_train, daemon=True)
        outcomes = pool.run([job], options, lambda kind, *_: kind == "started" and
                            watcher.start())
        watcher.join()
    outcome = outcomes[spec.run_id]
    assert (outcome.status, outcome.reason) == ("failed", "timeout")
    assert len(ranks) == 2, ranks
    deadline = time.monotonic() + 10  # SIGKILL is delivered at once; let the kernel reap
    while time.monotonic() < deadline and (any(_alive(p) for p in ranks)
                                           or _running(str(job.run_dir))):
        time.sleep(0.1)
    assert not [p for p in ranks if _alive(p)] and not _running(str(job.run_dir))


if __name__ == "__main__":
    train(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "")
