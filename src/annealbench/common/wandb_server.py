"""Whether the W&B server can be used from here: an API key, and the server reachable.

The runner asks before logging online (else it logs offline); the analysis asks before saving
a W&B Report (which needs the server).
"""

from __future__ import annotations

import netrc
import os
import socket
from urllib.parse import urlparse

DEFAULT_BASE_URL = "https://api.wandb.ai"


def _base_url() -> str:
    return os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)


def has_api_key() -> bool:
    """WANDB_API_KEY is set, or `wandb login` left the server's key in the netrc file."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(urlparse(_base_url()).hostname) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def reachable(timeout_s: float = 3.0) -> bool:
    """A TCP connection to the server opens within `timeout_s`."""
    url = urlparse(_base_url())
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def server_unavailable() -> str | None:
    """Why the W&B server cannot be used (no key, not reachable), or None when it can."""
    if not has_api_key():
        return "no API key (set WANDB_API_KEY or run `wandb login`)"
    return None if reachable() else f"the W&B server ({_base_url()}) cannot be reached"
