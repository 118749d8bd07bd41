"""A synthetic results store with known answers, written in exactly the documented schema.

Curves are simulated, never trained: for task `k`, configuration `c` and seed `s`,

    loss(t) = floor_k + (init_k - floor_k)·exp(-rate·t/τ) + effect_c·(t/τ)² + seed_{k,s} + run_{k,c,s} + noise

so the true difference in final loss between `c` and the baseline is `effect_c - effect_base`,
the seed term is shared by every configuration (paired runs) and `run` is the per-run spread.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from annealbench.analysis.window_curves import window

BASELINE = "adamw[window=cosine]"


@dataclass(frozen=True)
class Synthetic:
    """What to simulate; effects are shifts of the final val/loss (lower is better)."""

    tasks: tuple[str, ...] = ("digits", "quadratic")
    effects: tuple[tuple[str, float], ...] = (
        (BASELINE, 0.0), ("muphi[window=linear]", 0.0), ("muphi[window=constant]", 0.3),
    )
    n_seeds: int = 6
    max_steps: int = 1000  # the budget τ
    eval_every: int = 50  # steps between logged evaluations
    run_sd: float = 0.05  # per-run spread of the whole curve
    noise_sd: float = 0.01  # per-evaluation noise
    diverged: tuple[tuple[str, str, int, int], ...] = ()  # (task, config, seed, step)
    failed: tuple[tuple[str, str, int], ...] = ()  # (task, config, seed)
    commits: tuple[str, ...] = ("a" * 40,)  # cycled over runs
    log_optimizer: bool = True  # also log opt/mu_t, opt/rms_step, time/elapsed_s
    tune_lrs: tuple[float, ...] = ()  # extra tune-stage runs at these learning rates
    random_seed: int = 0
    extra_configs_lr: dict = field(default_factory=dict)
    implementation: str | None = None  # recorded as every param group's optimizer_impl in provenance when given
    test_shift: float | None = None  # also log test/loss = val/loss + test_shift


def _window_of(config: str) -> str:
    kind = config.split("window=")[1].split(",")[0].rstrip("]") if "window=" in config else "constant"
    return {"cosine": "cosine", "linear": "linear", "constant": "constant",
            "sqrt": "root", "cosine1": "cosine1"}.get(kind, "linear")


def simulate(spec: Synthetic) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The run table and the tidy metrics of `spec`."""
    rng = np.random.default_rng(spec.random_seed)
    steps = np.arange(spec.eval_every, spec.max_steps + 1, spec.eval_every, dtype=np.int64)
    r = steps / spec.max_steps
    diverged = {(t, c, s): k for t, c, s, k in spec.diverged}
    failed = set(spec.failed)
    run_rows, metric_frames = [], []
    index = 0
    stages = [("eval", None)] + [("tune", lr) for lr in spec.tune_lrs]
    for ti, task in enumerate(spec.tasks):
        floor, init = 0.5 + 0.3 * ti, 2.5 + 0.5 * ti
        seed_terms = rng.normal(0.0, 0.1, spec.n_seeds)
        for config, effect in spec.effects:
            optimizer = config.split("[")[0]
            for stage, tune_lr in stages:
                lr = tune_lr if tune_lr is not None else 1e-3
                for seed in range(spec.n_seeds):
                    items = config[len(optimizer) + 1:-1] if "[" in config else ""
                    run_id = f"{task}/{optimizer}[{items + ',' if items else ''}lr={lr:g}]/seed={seed}"
                    key = (task, config, seed) if stage == "eval" else None
                    status = "failed" if key in failed else "diverged" if key in diverged else "done"
                    div_step = float(diverged[key]) if status == "diverged" else float("nan")
                    commit = spec.commits[index % len(spec.commits)]
                    index += 1
                    run_rows.append({
                        "run_id": run_id, "suite": "synthetic", "stage": stage, "task": task,
                        "preset": "smoke", "optimizer": optimizer, "config": config, "lr": lr,
                        "seed": seed, "derived_seed": 1000 * ti + seed,
                        "hparams": json.dumps({"lr": lr}), "status": status,
                        "diverged_step": div_step, "max_steps": spec.max_steps,
                        "wall_time_s": 1.0 + 0.01 * seed, "git_commit": commit, "git_dirty": False,
                        "provenance": json.dumps({"torch": "2.13", "numpy": np.__version__,
                                                  "cpu": "x86_64", "gpu": None, "host": "node"}
                                                 | ({"optimizer_impl": [spec.implementation, spec.implementation],
                                                     # what the runner records from the registry
                                                     "optimizer_fastest": spec.implementation in ("fused", "compiled")}
                                                    if spec.implementation else {})),
                        "error": "Traceback: simulated failure" if status == "failed" else "",
                    })
                    if status == "failed":
                        continue
                    curve = (floor + (init - floor) * np.exp(-4.0 * r) + effect * r ** 2
                             + seed_terms[seed] + rng.normal(0.0, spec.run_sd)
                             + rng.normal(0.0, spec.noise_sd, steps.size))
                    keep = steps < div_step if status == "diverged" else np.ones(steps.size, bool)
                    values = np.where(keep, curve, np.nan)
                    if status == "diverged":
                        keep = steps <= div_step
                    frame = {"val/loss": values}
                    if spec.test_shift is not None:
                        frame["test/loss"] = values + spec.test_shift
                    if spec.log_optimizer:
                        mu = lr * window(_window_of(config), r)
                        frame["opt/mu_t"] = np.where(keep, mu, np.nan)
                        frame["opt/rms_step"] = np.where(keep, mu * (1 + 0.02 * rng.normal(size=r.size)), np.nan)
                        frame["time/elapsed_s"] = np.where(keep, steps * 0.001 * (1 + 0.1 * ti), np.nan)
                    for metric, vals in frame.items():
                        metric_frames.append(pd.DataFrame({
                            "run_id": run_id, "step": steps[keep], "metric": metric, "value": vals[keep]}))
    runs = pd.DataFrame(run_rows)
    runs["seed"] = runs["seed"].astype("int64")
    runs["derived_seed"] = runs["derived_seed"].astype("int64")
    runs["max_steps"] = runs["max_steps"].astype("int64")
    results = pd.concat(metric_frames, ignore_index=True)
    results["run_id"] = results["run_id"].astype(str)
    results["metric"] = results["metric"].astype(str)
    results["step"] = results["step"].astype("int64")
    results["value"] = results["value"].astype("float64")
    return runs, results


def write_store(root: str | Path, spec: Synthetic = Synthetic()) -> Path:
    """Write `spec` as a results store in `root` (runs.parquet, results.parquet, selection.json)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    runs, results = simulate(spec)
    runs.to_parquet(root / "runs.parquet", index=False)
    results.to_parquet(root / "results.parquet", index=False)
    selection = {"rule": "lowest median final val/loss over tune seeds",
                 "choice": {f"{t}|{c}": 1e-3 for t in spec.tasks for c, _ in spec.effects}}
    (root / "selection.json").write_text(json.dumps(selection))
    return root


# --- arms with curves of any shape --------------------------------------------------------------
#
# The general form of the store above, for designs whose curves are not one shape shifted: each
# arm gives its mean test loss as a function of r = t/τ (U-shaped curves, crossings), and is
# recorded with its hyperparameters. Per run, test/loss = curve(r)·(1 + seed term + run term) +
# noise; val/loss = test/loss − 0.01 and train/loss = test/loss − 0.1 are logged with it.


@dataclass(frozen=True)
class Arm:
    """One configuration of a designed store: its optimizer and hyperparameters (the label is
    built from them, as the runner does) and its mean test-loss curve."""

    optimizer: str
    hparams: tuple[tuple[str, object], ...]  # recorded and in the label (lr apart)
    curve: object  # callable: r = t/τ in (0, 1] → mean test loss
    diverged: tuple[tuple[int, int], ...] = ()  # (seed, step) of runs that diverge

    @property
    def config(self) -> str:
        from annealbench.common.store_schema import config_label
        return config_label(self.optimizer, dict(self.hparams))


def write_arms_store(root: str | Path, tasks: tuple, arms: tuple[Arm, ...], *, n_seeds: int = 5,
                     max_steps: int = 1000, eval_every: int = 50, seed_sd: float = 0.03,
                     run_sd: float = 0.003, noise_sd: float = 0.002, random_seed: int = 0,
                     compare: dict | None = None) -> Path:
    """Write a store of `arms` on `tasks` (eval stage, lr 1e-3 each); with `compare`, also its
    `compare.json` (as the runner writes the suite's `compare:` section). A task is a name, or
    (name, overrides, curve factor): a task with overrides (a budget, say) whose arms' curves are
    `factor(config)` times their own (an infinite factor: the arm diverges on every seed there)."""
    from annealbench.common.store_schema import RunKey

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(random_seed)
    steps = np.arange(eval_every, max_steps + 1, eval_every, dtype=np.int64)
    r = steps / max_steps
    run_rows, frames = [], []
    for ti, entry in enumerate(tasks):
        task, overrides, factor = (entry, {}, None) if isinstance(entry, str) else entry
        seed_terms = rng.normal(0.0, seed_sd, n_seeds)
        for arm in arms:
            diverged = dict(arm.diverged)
            scale = 1.0 if factor is None else factor(arm.config)
            if math.isinf(scale):  # this arm diverges on every seed of this task, half-way
                diverged, scale = {seed: max_steps // 2 for seed in range(n_seeds)}, 1.0
            for seed in range(n_seeds):
                key = RunKey.of(task, overrides, arm.optimizer, dict(arm.hparams), 1e-3, seed)
                status = "diverged" if seed in diverged else "done"
                run_rows.append({
                    "run_id": key.run_id, "suite": "synthetic", "stage": "eval", "task": task, "preset": "smoke",
                    "task_overrides": json.dumps(overrides),
                    "optimizer": arm.optimizer, "config": arm.config, "lr": 1e-3, "seed": seed,
                    "derived_seed": 1000 * ti + seed, "hparams": json.dumps({"lr": 1e-3} | dict(arm.hparams)),
                    "status": status, "diverged_step": float(diverged.get(seed, np.nan)), "max_steps": max_steps,
                    "wall_time_s": 1.0, "git_commit": "a" * 40, "git_dirty": False,
                    "provenance": json.dumps({"torch": "2.13", "cpu": "x86_64", "gpu": None, "host": "node"}),
                    "error": ""})
                test = (scale * np.asarray(arm.curve(r), float) * (1 + 0.1 * ti + seed_terms[seed] + rng.normal(0, run_sd))
                        + rng.normal(0.0, noise_sd, steps.size))
                keep = steps < diverged[seed] if status == "diverged" else np.ones(steps.size, bool)
                for metric, values in (("test/loss", test), ("val/loss", test - 0.01), ("train/loss", test - 0.1)):
                    frames.append(pd.DataFrame({"run_id": key.run_id, "step": steps[keep], "metric": metric,
                                                "value": values[keep]}))
    runs = pd.DataFrame(run_rows).astype({"seed": "int64", "derived_seed": "int64", "max_steps": "int64"})
    runs.to_parquet(root / "runs.parquet", index=False)
    results = pd.concat(frames, ignore_index=True).astype({"step": "int64", "value": "float64"})
    results.to_parquet(root / "results.parquet", index=False)
    (root / "selection.json").write_text(json.dumps({"rule": "designed", "choice": {}}))
    if compare is not None:
        (root / "compare.json").write_text(json.dumps(compare))
    return root
