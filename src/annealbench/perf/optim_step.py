"""Optimizer step time: MuPhi's paths against `torch.optim.AdamW`, side by side in one process.

Every variant owns a copy of the same parameters (float32, split into `n_tensors` tensors) with
fixed random gradients. Variants are timed in interleaved rounds (each round times every variant
for `steps_per_round` steps), so drifts of a shared machine hit all of them alike; ratios are
taken per round against fused AdamW and summarised by their median.

    python -m annealbench.perf.optim_step                 # the full table (Markdown on stdout)
    python -m annealbench.perf.optim_step --quick         # a smaller, faster run
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from annealbench.optimizers import MuPhi
from annealbench.optimizers.registry import state_bytes_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """One optimizer configuration to time: `make(params)` builds it over fresh parameters."""

    name: str
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]


CADENCE = 10
"""rms_every of the `-rms-logged` variants and steps per timing round, so every round holds
exactly one reduction: the cadence of the smoke presets (the quick presets log every 20-50)."""


def _muphi(impl: str, **kwargs) -> Callable[[list[torch.Tensor]], torch.optim.Optimizer]:
    return lambda ps: MuPhi(ps, lr=1e-3, total_steps=10**6, impl=impl, **kwargs)


PATHS = ("fused", "compiled")


def _variants(with_reference: bool, paths: tuple[str, ...] = PATHS) -> list[Variant]:
    out = [
        Variant("adamw-fused", lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True)),
        Variant("adamw-foreach", lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=True)),
    ]
    for impl in paths:
        out += [Variant(f"muphi-{impl}-no-rms", _muphi(impl, track_rms=False)),
                Variant(f"muphi-{impl}-rms-logged", _muphi(impl, rms_every=CADENCE)),
                Variant(f"muphi-{impl}-rms-every-step", _muphi(impl))]
    if with_reference:
        out.append(Variant("muphi-reference", _muphi("reference")))
    return out


def _params(total: int, n_tensors: int, device: str, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    size = total // n_tensors
    params = []
    for _ in range(n_tensors):
        p = torch.randn(size, generator=gen).to(device).requires_grad_()
        p.grad = torch.randn(size, generator=gen).to(device)
        params.append(p)
    return params


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(variants: list[Variant], *, total: int, n_tensors: int = 50, rounds: int = 15,
               steps_per_round: int = CADENCE, warmup_steps: int = 3, device: str = "cpu") -> list[dict]:
    """Median and IQR of the step time of each variant, with its per-round ratio to the first.

    Returns one row per variant: name, params, tensors, n (rounds), median_ms, q1_ms, q3_ms,
    ratio (median over rounds of time / time of variants[0]), ratio_q1, ratio_q3.
    """
    opts = []
    for v in variants:
        params = _params(total, n_tensors, device)
        opt = v.make(params)
        for _ in range(warmup_steps):  # state allocation, compilation
            opt.step()
        _sync(device)
        opts.append(opt)
    per_round = np.zeros((rounds, len(variants)))
    for r in range(rounds):
        for j, opt in enumerate(opts):
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps_per_round):
                opt.step()
            _sync(device)
            per_round[r, j] = (time.perf_counter() - start) / steps_per_round
    rows = []
    for j, v in enumerate(variants):
        t = per_round[:, j] * 1e3
        ratio = per_round[:, j] / per_round[:, 0]
        rows.append({"name": v.name, "params": total, "tensors": n_tensors, "n": rounds,
                     "median_ms": float(np.median(t)), "q1_ms": float(np.percentile(t, 25)),
                     "q3_ms": float(np.percentile(t, 75)), "ratio": float(np.median(ratio)),
                     "ratio_q1": float(np.percentile(ratio, 25)), "ratio_q3": float(np.percentile(ratio, 75))})
    del opts
    return rows


def logging_cost(rows: list[dict]) -> list[dict]:
    """Cost of `rms_step` per path and cadence: t(with) / t(without) - 1 of the medians."""
    by_name = {r["name"]: r for r in rows}
    out = []
    for path in PATHS:
        without = by_name.get(f"muphi-{path}-no-rms")
        for cadence, label in (("rms-logged", f"every {CADENCE} steps (logged steps)"),
                               ("rms-every-step", "every step")):
            with_rms = by_name.get(f"muphi-{path}-{cadence}")
            if with_rms and without:
                out.append({"path": path, "cadence": label, "with_ms": with_rms["median_ms"],
                            "without_ms": without["median_ms"],
                            "overhead": with_rms["median_ms"] / without["median_ms"] - 1})
    return out


def run(*, total: int = 10_000_000, n_tensors: int = 50, rounds: int = 15,
        scaling: tuple[int, ...] = (1_000_000, 10_000_000, 50_000_000), device: str = "cpu",
        with_reference: bool = True, paths: tuple[str, ...] = PATHS) -> dict[str, list[dict]]:
    """The whole benchmark: main comparison, logging cost, scaling and state bytes per parameter."""
    main = time_steps(_variants(with_reference, paths), total=total, n_tensors=n_tensors, rounds=rounds, device=device)
    scale_rows = []
    pair = [v for v in _variants(False) if v.name in ("adamw-fused", "muphi-fused-rms-logged")]
    for size in scaling:
        scale_rows += time_steps(pair, total=size, n_tensors=n_tensors, rounds=max(5, rounds // 2), device=device)
    state = [{"optimizer": k, "bytes_per_param": v} for k, v in state_bytes_table().items()]
    return {"step": main, "logging": logging_cost(main), "scaling": scale_rows, "state_bytes": state}


def to_markdown(result: dict[str, list[dict]], device: str = "cpu") -> str:
    """The figures as Markdown tables with the hardware and library versions."""
    hw = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or platform.machine()
    lines = [f"Measured on {hw} ({torch.get_num_threads()} threads), torch {torch.__version__}, "
             f"Python {platform.python_version()}. Step times: median [IQR] over rounds; ratio to fused AdamW "
             "taken per round.", "",
             "| variant | params | median ms | IQR ms | ratio to fused AdamW [IQR] |", "|---|---|---|---|---|"]
    for r in result["step"]:
        lines.append(f"| {r['name']} | {r['params']:,} in {r['tensors']} | {r['median_ms']:.2f} | "
                     f"{r['q1_ms']:.2f}–{r['q3_ms']:.2f} | {r['ratio']:.3f} [{r['ratio_q1']:.3f}–{r['ratio_q3']:.3f}] |")
    lines += ["", "| path | rms_step computed | with ms | without ms | overhead |", "|---|---|---|---|---|"]
    for r in result["logging"]:
        lines.append(f"| {r['path']} | {r['cadence']} | {r['with_ms']:.2f} | {r['without_ms']:.2f} | "
                     f"{100 * r['overhead']:+.1f}% |")
    lines += ["", "| params | variant | median ms | ratio to fused AdamW | ns per param |", "|---|---|---|---|---|"]
    for r in result["scaling"]:
        lines.append(f"| {r['params']:,} | {r['name']} | {r['median_ms']:.2f} | {r['ratio']:.3f} | "
                     f"{1e6 * r['median_ms'] / r['params']:.3f} |")
    lines += ["", "| optimizer | state bytes per parameter (float32) |", "|---|---|"]
    for r in result["state_bytes"]:
        lines.append(f"| {r['optimizer']} | {r['bytes_per_param']:g} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M parameters, fewer rounds, no 50M scaling")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--rounds", type=int, default=15, help="timing rounds per variant")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS),
                        help="MuPhi paths to time (default: all)")
    parser.add_argument("--main-only", action="store_true",
                        help="only the main table (10M parameters): no scaling, no reference step")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.main_only:
        result = run(rounds=args.rounds, scaling=(), device=args.device, with_reference=False,
                     paths=tuple(args.paths))
    elif args.quick:
        result = run(total=1_000_000, rounds=5, scaling=(1_000_000,), device=args.device, with_reference=False)
    else:
        result = run(rounds=args.rounds, device=args.device)
    print(to_markdown(result, args.device))  # noqa: T201 - the script's output


if __name__ == "__main__":
    main()
