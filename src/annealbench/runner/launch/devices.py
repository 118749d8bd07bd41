"""Which GPUs the local pool's workers use: one device (or one run's `devices`) per worker.

Each worker process gets its own `CUDA_VISIBLE_DEVICES`, set before it imports torch, so a run
sees exactly its device(s) as `cuda:0…` and two workers never share one by accident.
"""

from __future__ import annotations

import os

from annealbench.runner.errors import MissingSystemError


def visible_gpus() -> list[str]:
    """The GPU ids this process may hand out: `CUDA_VISIBLE_DEVICES`'s entries when it is set
    (ids or UUIDs, as CUDA reads them), else one per device torch sees, else none."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def worker_devices(gpus: list[str], workers: int, per_worker: int) -> list[str | None]:
    """`CUDA_VISIBLE_DEVICES` of each worker: `per_worker` ids each, in turn (round robin when
    there are more workers than devices); None for every worker when there are no GPUs."""
    if not gpus:
        return [None] * workers
    if per_worker > len(gpus):
        raise ValueError(f"a run needs {per_worker} devices but only {len(gpus)} GPU(s) are "
                         f"visible ({','.join(gpus)}); lower --devices")
    return [",".join(gpus[(w * per_worker + k) % len(gpus)] for k in range(per_worker))
            for w in range(workers)]


def check_gpus(devices: int) -> None:
    """Refuse `--accelerator gpu` here unless `devices` GPUs are visible (nothing is started)."""
    gpus = visible_gpus() if cuda_available() else []
    if not gpus:
        listed = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise MissingSystemError("--accelerator gpu: no GPU is visible on this machine "
                                 f"(CUDA_VISIBLE_DEVICES={listed!r}); run on a GPU machine, or "
                                 "use --accelerator cpu or auto")
    if devices > len(gpus):
        raise MissingSystemError(f"--devices {devices}: only {len(gpus)} GPU(s) are visible "
                                 f"({','.join(gpus)}); lower --devices")
