"""A memory cap for tests of input that once made the process allocate without bound."""

from __future__ import annotations

import resource
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def address_space_limit(extra_bytes: int = 2 << 30) -> Iterator[None]:
    """Cap this process's address space at its present size plus `extra_bytes`, so that code
    that would allocate without bound raises MemoryError instead of exhausting the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        vm_bytes = int(statm.read().split()[0]) * resource.getpagesize()
    cap = vm_bytes + extra_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
