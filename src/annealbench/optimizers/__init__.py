"""annealbench optimizers: trust-region windows, the μ[t]·Φ optimizer and its peers' registry."""

from annealbench.optimizers.muphi import MuPhi
from annealbench.optimizers.registry import (OPTIMIZERS, OptimInfo, build_optimizer, check_optimizer, optimizer_info,
                                 optimizer_names, state_bytes_table)
from annealbench.optimizers.window import WINDOW_KINDS, Window, make_window, window_mean, window_smoothness

__all__ = [
    "MuPhi", "OPTIMIZERS", "OptimInfo", "build_optimizer", "check_optimizer", "optimizer_info",
    "optimizer_names", "state_bytes_table",
    "WINDOW_KINDS", "Window", "make_window", "window_mean", "window_smoothness",
]
