"""The project's GPU figures in one table, from one prepared run (≤ 8 minutes on one H100).

    scripts/gpu_check.sh                      # on a CUDA machine: the table
    scripts/gpu_check.sh --cpu-smoke          # every part at tiny sizes on the CPU (seconds)
    python -m annealbench.perf.gpu_check --cpu --parts batches   # batch building, full size, CPU

Parts (each a row or a few of the table; one that fails is reported as failed, the others run):

- `step`: the optimizer step on 100M float32 parameters in 100 tensors: MuPhi's compiled step
  (`impl="compiled"`, with `rms_step` on every 10th step as the tasks log it, and without it),
  the project's Prodigy, and MuPhi with the release's `parcor-c5b0935` numerator as
  paper-figures runs it, on the group step (`impl="foreach"`, what `auto` takes on a GPU) and
  on the per-tensor reference step, against `torch.optim.AdamW(fused=True)`, timed in interleaved
  rounds (`annealbench.perf.optim_step.time_steps`): median ms, and the median of the per-round
  ratios with its IQR.
- `batches`: building one CIFAR-10 training batch of 128 (gather, crop, flip, normalise) on the
  training device (`annealbench.tasks.cifar10.TrainingBatches`) against the host-built reference written out
  below (how batches were built before they moved to the device), and whether the two are equal
  bit for bit.
- `resnet`: ResNet-18 / CIFAR-10 training images per second at batch 128 in bf16 autocast with
  channels-last weights and the training images on the device: the task's module and data
  module through Lightning (configured as the runner configures a run), against a plain torch
  loop of the same network, batch, precision and optimizer (fused AdamW) on the same device, on
  the same device-built batches and on one fixed batch. The images are random uint8 images of
  CIFAR-10's shape (50,000 of them): throughput does not depend on their content.
- `gpt`: the character GPT's training tokens per second (6 blocks × 10 heads × width 640,
  context 128, batch 64, dropout 0.2, bf16 autocast) through its task module and Lightning, on
  the plays corpus shipped with the package (the paper-figures suite's Shakespeare-char has 65
  characters against its 81: the same network up to the embedding's rows).
- `mini-run`: a 2-minute cut of the paper-figures suite through `annealbench run`: its
  γ = 0.31 pair (Eq. 5 `one` on MuPhi's compiled step, Eq. 8 `parcor-c5b0935` on the group
  step, `impl="foreach"`) on the char GPT at the suite's settings (its compiled network included), 300 steps
  each on the shipped plays corpus (the suite's data sets need a download); steps per second
  after the first logged interval (which holds the compilations), and the command's wall time.

TF32 is enabled for matrix products and convolutions (`torch.backends.cuda.matmul.allow_tf32`,
`torch.backends.cudnn.allow_tf32`) in this process; the table's header says so, with the
device, driver and CUDA versions. Without a CUDA device the script stops with a message unless
given `--cpu-smoke` (tiny sizes, for the test) or `--cpu` (full sizes on the CPU).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parents[1]  # src/annealbench, or site-packages/annealbench
ROOT = Path.cwd()  # where the mini-run writes and runs
PARTS = ("step", "batches", "resnet", "gpt", "mini-run")
NO_CUDA = ("scripts/gpu_check.sh: no CUDA device here (torch.cuda.is_available() is False): the "
           "GPU figures need one. Run it on a GPU machine, or pass --cpu-smoke to run every part "
           "at tiny sizes on the CPU (a check of the script, not a measurement).")


@dataclass(frozen=True)
class Sizes:
    """How big each part is: `GPU` for the measurement, `SMOKE` for a seconds-long CPU check."""

    step_params: int = 100_000_000
    step_tensors: int = 100
    step_rounds: int = 15
    batch: int = 128
    batch_rounds: int = 15
    batch_per_round: int = 50
    images: int = 50_000
    resnet_width: int = 64
    resnet_warmup: int = 30
    resnet_steps: int = 200
    gpt_layers: int = 6
    gpt_heads: int = 10
    gpt_width: int = 640
    gpt_context: int = 128
    gpt_batch: int = 64
    gpt_warmup: int = 20
    gpt_steps: int = 150
    mini_steps: int = 300
    mini_log_every: int = 50
    mini_val_tokens: int = 8192
    mini_timeout_s: int = 300


GPU = Sizes()
SMOKE = Sizes(step_params=40_000, step_tensors=4, step_rounds=3, batch=16, batch_rounds=3,
              batch_per_round=3, images=600, resnet_width=8, resnet_warmup=2, resnet_steps=3,
              gpt_layers=1, gpt_heads=2, gpt_width=32, gpt_context=16, gpt_batch=4, gpt_warmup=2,
              gpt_steps=3, mini_steps=12, mini_log_every=4, mini_val_tokens=256,
              mini_timeout_s=240)


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    part: str
    what: str
    value: str
    reference: str = ""
    ratio: str = ""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _quiet() -> None:
    import pytorch_lightning  # noqa: F401 - sets its loggers' levels on import: first, then ours

    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "torch._inductor",
                 "torch._dynamo", "optimizers"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*LeafSpec.*", ".*treespec.*",
                    ".*smaller than the logging interval.*", ".*Tensor Cores.*"):
        warnings.filterwarnings("ignore", pattern)


def _iqr(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else ordered * 3
    return statistics.median(ordered), q[0], q[2]


# --- step -------------------------------------------------------------------------------------
def part_step(device: torch.device, sizes: Sizes) -> list[Row]:
    from annealbench.perf.optim_step import CADENCE, Variant, time_steps
    from annealbench.optimizers import MuPhi, build_optimizer

    def muphi(**kwargs) -> Callable[[list[torch.Tensor]], torch.optim.Optimizer]:
        return lambda ps: MuPhi(ps, lr=1e-3, total_steps=10**6, impl="compiled", **kwargs)

    variants = [
        Variant("fused AdamW", lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True)),
        Variant(f"MuPhi compiled, rms_step every {CADENCE} steps", muphi(rms_every=CADENCE)),
        Variant("MuPhi compiled, no rms_step", muphi(track_rms=False)),
        Variant("Prodigy (prodigyopt under the window)",
                lambda ps: build_optimizer("prodigy", ps, total_steps=10**6)),
    ]
    for impl in ("foreach", "reference"):  # the release's numerator as paper-figures runs it
        variants.append(Variant(f"MuPhi parcor-c5b0935 (γ = 0.31), {impl}", lambda ps, impl=impl: MuPhi(
            ps, lr=1e-3, total_steps=10**6, impl=impl, numerator="parcor-c5b0935", gamma=0.31,
            eps=1e-10, weight_decay=0.01, weight_decay_in_step=True, rms_every=CADENCE)))
    # warm-up: a whole cadence, so the compiled graphs with and without the reduction are built
    rows = time_steps(variants, total=sizes.step_params, n_tensors=sizes.step_tensors,
                      rounds=sizes.step_rounds, warmup_steps=CADENCE, device=str(device))
    base = rows[0]
    what = f"optimizer step, {sizes.step_params:,} float32 params in {sizes.step_tensors} tensors"
    out = []
    for r in rows[1:]:
        out.append(Row("step", f"{what}: {r['name']}",
                       f"{r['median_ms']:.3f} ms [{r['q1_ms']:.3f}–{r['q3_ms']:.3f}]",
                       f"{base['name']} {base['median_ms']:.3f} ms [{base['q1_ms']:.3f}–{base['q3_ms']:.3f}]",
                       f"{r['ratio']:.3f}× [{r['ratio_q1']:.3f}–{r['ratio_q3']:.3f}]"))
    return out


# --- batches ----------------------------------------------------------------------------------
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def host_reference_batch(train_x: torch.Tensor, train_y: torch.Tensor, order: Any, seed: int,
                         step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch as it was built before batches moved to the device, written out: on
    the host, gather, pad, crop and flip by advanced indexing, normalise."""
    from torch.nn import functional as F

    from annealbench.tasks import seeding

    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    idx = order.indices(step)
    images = train_x[idx]
    generator = seeding.generator(seed, seeding.AUGMENT, step)
    n, _, h, w = images.shape
    padded = F.pad(images, (4, 4, 4, 4))
    dy, dx = torch.randint(0, 9, (2, n), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    cols = dx[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    rows = dy[:, None] + torch.arange(h)
    batch = torch.arange(n)[:, None, None]
    images = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return (images.float() / 255.0 - mean) / std, train_y[idx]


def synthetic_cifar(n_train: int, n_test: int = 500, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random uint8 images of CIFAR-10's shape and random labels (`cifar_data.load`'s keys)."""
    g = torch.Generator().manual_seed(seed)
    return {"train_x": torch.randint(0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=g),
            "train_y": torch.randint(0, 10, (n_train,), generator=g),
            "test_x": torch.randint(0, 256, (n_test, 3, 32, 32), dtype=torch.uint8, generator=g),
            "test_y": torch.randint(0, 10, (n_test,), generator=g)}


def batch_build_times(device: torch.device, sizes: Sizes) -> dict[str, Any]:
    """ms per training batch of `sizes.batch`: the host-built reference and the device-built
    batch (`TrainingBatches` on `device`), timed in interleaved rounds of `batch_per_round`
    batches; and whether the two agree bit for bit over the first steps."""
    from annealbench.tasks.batches import EpochPermutations
    from annealbench.tasks.cifar10 import TrainingBatches

    data = synthetic_cifar(sizes.images)
    seed = 0
    order = EpochPermutations(sizes.images, sizes.batch, seed)
    built = TrainingBatches(data["train_x"], data["train_y"], order, seed, augment=True).to(device)
    equal = all(
        all(torch.equal(a, b.cpu()) and a.stride() == b.stride()
            for a, b in zip(host_reference_batch(data["train_x"], data["train_y"], order, seed, k),
                            built(k)))
        for k in range(4))
    makers = {"reference": lambda k: host_reference_batch(data["train_x"], data["train_y"], order,
                                                          seed, k),
              "device": built}
    times: dict[str, list[float]] = {name: [] for name in makers}
    step = 0
    for _ in range(2):  # warm-up
        for make in makers.values():
            make(step)
        _sync(device)
    for _ in range(sizes.batch_rounds):
        for name, make in makers.items():
            _sync(device)
            start = time.perf_counter()
            for k in range(sizes.batch_per_round):
                make(step + k)
            _sync(device)
            times[name].append(1e3 * (time.perf_counter() - start) / sizes.batch_per_round)
        step += sizes.batch_per_round
    ratios = [d / r for d, r in zip(times["device"], times["reference"])]
    return {"reference": _iqr(times["reference"]), "device": _iqr(times["device"]),
            "ratio": _iqr(ratios), "equal": equal, "rounds": sizes.batch_rounds}


def part_batches(device: torch.device, sizes: Sizes) -> list[Row]:
    result = batch_build_times(device, sizes)
    ref, dev, ratio = result["reference"], result["device"], result["ratio"]
    return [Row("batches", f"CIFAR-10 training batch of {sizes.batch} (gather, crop, flip, "
                           f"normalise), built on {device.type}; equal bit for bit: "
                           f"{'yes' if result['equal'] else 'NO'}",
                f"{dev[0]:.3f} ms [{dev[1]:.3f}–{dev[2]:.3f}]",
                f"host-built reference {ref[0]:.3f} ms [{ref[1]:.3f}–{ref[2]:.3f}] "
                f"(torch threads: {torch.get_num_threads()})",
                f"{ratio[0]:.3f}× [{ratio[1]:.3f}–{ratio[2]:.3f}]")]


# --- resnet -----------------------------------------------------------------------------------
class _Clock:
    """A Lightning callback: the time (after a device sync) at the end of two steps."""

    def __init__(self, first: int, last: int, device: torch.device) -> None:
        import pytorch_lightning as pl

        clock = self

        class Callback(pl.Callback):
            def on_train_batch_end(self, trainer, *args) -> None:
                if trainer.global_step in (first, last):
                    _sync(device)
                    clock.times[trainer.global_step] = time.perf_counter()

        self.callback = Callback()
        self.times: dict[int, float] = {}
        self.first, self.last = first, last

    def seconds(self) -> float:
        return self.times[self.last] - self.times[self.first]


def _accelerator(device: torch.device) -> str:
    return "gpu" if device.type == "cuda" else "cpu"


def _lightning_fit(task: Any, module: Any, data: Any, device: torch.device, warmup: int,
                   steps: int) -> float:
    """Seconds of `steps` training steps after `warmup`, through `pl.Trainer` configured as the
    runner configures a run (annealbench.runner.run.execute), without validation."""
    import pytorch_lightning as pl

    from annealbench.runner.run.metrics_logger import TidyLogger

    clock = _Clock(warmup, warmup + steps, device)
    trainer = pl.Trainer(**task.trainer_kwargs(), logger=[TidyLogger()], callbacks=[clock.callback],
                         accelerator=_accelerator(device), devices=1, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0)
    trainer.fit(module, datamodule=data)
    return clock.seconds()


def _fused_adamw(groups: list[dict], total_steps: int) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=1e-3, fused=True)


def _plain_loop(net: torch.nn.Module, batch: Callable[[int], tuple[torch.Tensor, ...]],
                device: torch.device, warmup: int, steps: int) -> float:
    """Seconds of `steps` steps of a plain torch loop (bf16 autocast, fused AdamW)."""
    from torch.nn import functional as F

    from annealbench.tasks.base import param_groups

    opt = _fused_adamw(param_groups(net), warmup + steps)
    net.train()
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            _sync(device)
            start = time.perf_counter()
        x, y = batch(step)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - start


def part_resnet(device: torch.device, sizes: Sizes) -> list[Row]:
    from annealbench.tasks import get_task
    from annealbench.tasks.base import init_net
    from annealbench.tasks.cifar10 import build_from, make_net

    total = sizes.resnet_warmup + sizes.resnet_steps
    task = get_task("cifar10", "paper", model="resnet18", width=sizes.resnet_width,
                    batch_size=sizes.batch, channels_last=True, precision="bf16-mixed",
                    compile_model=False, max_steps=total, val_every=total,
                    log_every=min(46, total), val_images=500)
    cfg = task.config
    data = synthetic_cifar(sizes.images)
    module, datamodule = build_from(cfg, data, _fused_adamw, seed=0)
    lightning_s = _lightning_fit(task, module, datamodule, device, sizes.resnet_warmup,
                                 sizes.resnet_steps)

    def net() -> torch.nn.Module:
        return init_net(lambda: make_net(cfg), 0).to(device, memory_format=torch.channels_last)

    _, fresh = build_from(cfg, data, _fused_adamw, seed=0)
    batches = fresh.training.to(device)
    plain_s = _plain_loop(net(), batches, device, sizes.resnet_warmup, sizes.resnet_steps)
    fixed = batches(0)
    fixed_s = _plain_loop(net(), lambda step: fixed, device, sizes.resnet_warmup,
                          sizes.resnet_steps)
    per_s = {name: sizes.resnet_steps * sizes.batch / s
             for name, s in (("lightning", lightning_s), ("plain", plain_s), ("fixed", fixed_s))}
    what = (f"ResNet-18 (width {sizes.resnet_width}) / CIFAR-10 training, batch {sizes.batch}, "
            f"bf16 autocast, channels-last, images on the device (random uint8), fused AdamW, "
            f"{sizes.resnet_steps} steps after {sizes.resnet_warmup}")
    return [
        Row("resnet", f"{what}: task module + Lightning", f"{per_s['lightning']:,.0f} images/s",
            f"plain torch loop, same batches {per_s['plain']:,.0f} images/s",
            f"{per_s['lightning'] / per_s['plain']:.3f}×"),
        Row("resnet", f"{what}: plain torch loop on one fixed batch (no batch building)",
            f"{per_s['fixed']:,.0f} images/s",
            f"plain torch loop, same batches {per_s['plain']:,.0f} images/s",
            f"{per_s['fixed'] / per_s['plain']:.3f}×"),
    ]


# --- gpt --------------------------------------------------------------------------------------
def part_gpt(device: torch.device, sizes: Sizes) -> list[Row]:
    from annealbench.tasks import get_task

    total = sizes.gpt_warmup + sizes.gpt_steps
    task = get_task("shakespeare", "paper", layers=sizes.gpt_layers, heads=sizes.gpt_heads,
                    width=sizes.gpt_width, block_size=sizes.gpt_context,
                    batch_size=sizes.gpt_batch, dropout=0.2, precision="bf16-mixed",
                    compile_model=False, max_steps=total, val_every=total, log_every=min(50, total),
                    val_tokens=4 * sizes.gpt_context)
    module, data = task.build(_fused_adamw, seed=0)
    seconds = _lightning_fit(task, module, data, device, sizes.gpt_warmup, sizes.gpt_steps)
    tokens = sizes.gpt_steps * sizes.gpt_batch * sizes.gpt_context
    params = sum(p.numel() for p in module.net.parameters())
    return [Row("gpt", f"char GPT {sizes.gpt_layers} blocks × {sizes.gpt_heads} heads × width "
                       f"{sizes.gpt_width} ({params / 1e6:.1f}M params), context "
                       f"{sizes.gpt_context}, batch {sizes.gpt_batch}, bf16 autocast, fused AdamW, "
                       f"task module + Lightning, {sizes.gpt_steps} steps after {sizes.gpt_warmup}",
                f"{tokens / seconds:,.0f} training tokens/s",
                f"{sizes.gpt_steps / seconds:.2f} steps/s")]


# --- mini-run ---------------------------------------------------------------------------------
SMOKE_TEXT = ("Now is the winter of our discontent made glorious summer by this sun of York; "
              "and all the clouds that lour'd upon our house in the deep bosom of the ocean "
              "buried.\n") * 400
"""The smoke run's corpus (a line of Richard III, ~64k characters): the plays take seconds to
load in every run's process, longer than the smoke run's training."""


def mini_suite(sizes: Sizes, smoke: bool, text_path: str = "") -> dict[str, Any]:
    """The paper-figures suite cut to its γ = 0.31 pair on the char GPT, `mini_steps` steps
    (with `smoke`: the network at the smoke sizes, not compiled, on the corpus `text_path`)."""
    import yaml

    suite = yaml.safe_load((PACKAGE / "suites" / "paper-figures.yaml").read_text())
    task = next(t for t in suite["tasks"] if t["overrides"].get("corpus") == "shakespeare-char")
    overrides = {k: v for k, v in task["overrides"].items() if k not in ("corpus", "download")}
    overrides.update(max_steps=sizes.mini_steps, val_every=sizes.mini_steps,
                     log_every=sizes.mini_log_every, val_tokens=sizes.mini_val_tokens)
    if smoke:
        overrides.update(layers=sizes.gpt_layers, heads=sizes.gpt_heads, width=sizes.gpt_width,
                         block_size=sizes.gpt_context, batch_size=sizes.gpt_batch,
                         text_path=text_path, compile_model=False)
    pair = [o for o in suite["optimizers"] if o["hparams"].get("gamma") == 0.31]
    if [o["hparams"]["numerator"] for o in pair] != ["one", "parcor-c5b0935"]:
        raise ValueError(f"paper-figures.yaml no longer holds the γ = 0.31 pair: {pair}")
    return {"name": "gpu-check-mini", "preset": suite["preset"],
            "description": "paper-figures' gamma = 0.31 pair on the char GPT, a few hundred steps",
            "tasks": [{"name": "shakespeare", "overrides": overrides}],
            "optimizers": pair, "seeds": {"eval": [suite["seeds"]["eval"]["first"]]}}


def _steps_per_second(metrics: Any) -> tuple[float, int]:
    """Steps per second between the second and the last logged step (the first interval holds
    the compilation), and the last step."""
    clock = metrics[metrics["metric"] == "time/elapsed_s"].sort_values("step")
    steps, seconds = clock["step"].to_numpy(), clock["value"].to_numpy()
    if len(steps) < 2:
        raise ValueError("fewer than two logged steps: no rate")
    return float((steps[-1] - steps[0]) / (seconds[-1] - seconds[0])), int(steps[-1])


def _run_group(command: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """Run `command` in a process group of its own; past `timeout_s` the whole group (the
    runner and its workers) is stopped and a `TimeoutError` raised."""
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.communicate(timeout=15)
                break
            except subprocess.TimeoutExpired:
                continue
        raise TimeoutError(f"`{' '.join(command[2:5])} …` ran past {timeout_s} s: stopped") from None
    return proc.returncode, output


def part_mini_run(device: torch.device, sizes: Sizes, smoke: bool) -> list[Row]:
    import pandas as pd
    import yaml

    work = Path(tempfile.mkdtemp(prefix="gpu-check-mini-"))
    try:
        suite_file = work / "gpu-check-mini.yaml"
        text_path = ""
        if smoke:
            text_path = str(work / "smoke.txt")
            Path(text_path).write_text(SMOKE_TEXT)
        suite_file.write_text(yaml.safe_dump(mini_suite(sizes, smoke, text_path), sort_keys=False))
        out = work / "results"
        command = [sys.executable, "-m", "annealbench", "run", str(suite_file), "--out", str(out),
                   "--workers", "1", "--wandb", "disabled", "--seed-batch", "1",
                   "--accelerator", _accelerator(device)]
        paths = [str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
        start = time.perf_counter()
        returncode, output = _run_group(command, env, sizes.mini_timeout_s)
        wall = time.perf_counter() - start
        if returncode != 0:
            tail = output.strip().splitlines()[-8:]
            raise RuntimeError(f"`annealbench run` exited {returncode}: " + " | ".join(tail))
        rows = []
        for run in sorted((out / "runs").iterdir()):
            spec = yaml.safe_load((run / "spec.json").read_text())  # JSON is YAML
            rate, last = _steps_per_second(pd.read_parquet(run / "metrics.parquet"))
            hp = dict(spec.get("hparams", {}))
            rows.append(Row("mini-run", f"paper-figures cut: char GPT, muphi numerator="
                                        f"{hp.get('numerator')}, gamma={hp.get('gamma')}, "
                                        f"{last} steps through `annealbench run`",
                            f"{rate:.2f} steps/s (after the first {sizes.mini_log_every})",
                            f"whole command {wall:.0f} s for both runs"))
        if len(rows) != 2:
            raise RuntimeError(f"expected 2 finished runs under {out / 'runs'}, found {len(rows)}")
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the table --------------------------------------------------------------------------------
def _driver() -> str:
    if shutil.which("nvidia-smi") is None:
        return "unknown (no nvidia-smi)"
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20,
                              check=True).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def header(device: torch.device, smoke: bool) -> list[str]:
    import pytorch_lightning

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        where = (f"{name}, driver {_driver()}, CUDA {torch.version.cuda}, "
                 f"cuDNN {torch.backends.cudnn.version()}")
    else:
        where = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs)"
    tf32 = (f"TF32 matmul={torch.backends.cuda.matmul.allow_tf32}, "
            f"cudnn={torch.backends.cudnn.allow_tf32}")
    lines = [f"# GPU check{' (CPU SMOKE: tiny sizes, not a measurement)' if smoke else ''}", "",
             f"- device: {where}",
             f"- {tf32}; torch {torch.__version__}, pytorch-lightning "
             f"{pytorch_lightning.__version__}, Python {platform.python_version()}",
             f"- measured {time.strftime('%Y-%m-%d %H:%M %Z')}; medians [IQR] over rounds, "
             "ratios taken per round", ""]
    return lines


def table(rows: list[Row]) -> list[str]:
    lines = ["| part | measurement | result | compared with | ratio |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.part} | {r.what} | {r.value} | {r.reference} | {r.ratio} |")
    return lines


def run(parts: tuple[str, ...], device: torch.device, sizes: Sizes, smoke: bool) -> tuple[list[Row], bool]:
    """Every part in `parts`; a part that raises becomes one FAILED row. Returns (rows, ok)."""
    runners: dict[str, Callable[[], list[Row]]] = {
        "step": lambda: part_step(device, sizes),
        "batches": lambda: part_batches(device, sizes),
        "resnet": lambda: part_resnet(device, sizes),
        "gpt": lambda: part_gpt(device, sizes),
        "mini-run": lambda: part_mini_run(device, sizes, smoke),
    }
    rows, ok = [], True
    for name in parts:
        start = time.perf_counter()
        log.info("gpu_check: %s …", name)
        try:
            rows += runners[name]()
        except Exception as err:  # noqa: BLE001 - reported in the table, the other parts run
            ok = False
            log.error("gpu_check: %s failed:\n%s", name, traceback.format_exc())
            message = " ".join(f"{type(err).__name__}: {err}".split())[:300].replace("|", "/")
            rows.append(Row(name, "FAILED", message))
        log.info("gpu_check: %s took %.1f s", name, time.perf_counter() - start)
    return rows, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--cpu-smoke", action="store_true",
                      help="every part at tiny sizes on the CPU: checks the script, measures nothing")
    mode.add_argument("--cpu", action="store_true",
                      help="the full sizes on the CPU (for `--parts batches`; the others take hours)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="parts to run (default: all)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1, as the runner's runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    _quiet()
    if args.cpu_smoke or args.cpu:
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)  # noqa: T201 - the script's message
        return 2
    else:
        device = torch.device("cuda", torch.cuda.current_device())
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_num_threads(args.threads)
    sizes = SMOKE if args.cpu_smoke else GPU
    started = time.perf_counter()
    rows, ok = run(tuple(args.parts), device, sizes, args.cpu_smoke)
    lines = header(device, args.cpu_smoke) + table(rows)
    lines += ["", f"Total {time.perf_counter() - started:.0f} s."]
    print("\n".join(lines))  # noqa: T201 - the script's output
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
