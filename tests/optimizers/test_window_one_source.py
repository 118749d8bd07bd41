"""The analysis draws the very window the optimizer steps with: analysis `window` ≡ MuPhi's μ[t]/μ.

For every kind, with and without warm-up, plateau and floor, the radius MuPhi records after each
step (`group["mu_t"]`, eq. W1) divided by μ equals the analysis window at that step's progress
r = k/τ (docs/theory.md eqs. W2-W4). A drift between the two (say a warm-up drawn flat in the
figures but ramping in the optimizer) fails here.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from annealbench.analysis.window_curves import window as analysis_window
from annealbench.optimizers import WINDOW_KINDS, MuPhi

TAU = 40
SHAPES = [dict(warmup=m, plateau=e, floor=f)
          for m, e, f in itertools.product((0.0, 0.15), (0.0, 0.3), (0.0, 0.1))]


def _mu_over_mu(kind: str, p: float, shape: dict[str, float]) -> np.ndarray:
    lr = 0.5
    w = torch.zeros(1, requires_grad=True)
    opt = MuPhi([w], lr=lr, window=kind, p=p, total_steps=TAU, impl="reference", **shape)
    out = []
    for _ in range(TAU):
        w.grad = torch.ones(1)
        opt.step()
        out.append(opt.param_groups[0]["mu_t"] / lr)
    return np.array(out)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: ",".join(f"{k}={v:g}" for k, v in s.items()))
@pytest.mark.parametrize("kind", WINDOW_KINDS)
def test_analysis_window_is_the_optimizers_mu_t(kind: str, shape: dict[str, float]) -> None:
    p = 2.0 if kind == "root" else 1.0
    r = np.arange(TAU) / TAU
    drawn = analysis_window(kind, r, p=p, **shape)
    np.testing.assert_allclose(_mu_over_mu(kind, p, shape), drawn, rtol=1e-12, atol=1e-15)
    if shape["warmup"]:
        # The grid reaches into the warm-up, where the two sources once disagreed.
        assert drawn[0] == pytest.approx(shape["floor"]) and drawn[1] > drawn[0]


@pytest.mark.parametrize("kind", ["constant", "linear", "root", "cosine", "cosine1"])
@pytest.mark.parametrize("warmup,plateau,floor", [(0.0, 0.0, 0.0), (0.1, 0.0, 0.0), (0.1, 0.3, 0.2)])
def test_the_scalar_path_equals_the_array_path(kind, warmup, plateau, floor):
    """The optimizer's per-step float path and the analysis' array path give one window."""
    from annealbench.common import window_formulas as W

    p = 2.0 if kind == "root" else 1.0
    r = np.linspace(0.0, 1.0, 201)
    array = W.window(kind, r, p=p, warmup=warmup, plateau=plateau, floor=floor)
    scalar = [W.window(kind, float(x), p=p, warmup=warmup, plateau=plateau, floor=floor) for x in r]
    assert all(isinstance(v, float) for v in scalar)
    np.testing.assert_allclose(scalar, array, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="out of range"):
        W.window(kind, 1.5, p=p, warmup=warmup, plateau=plateau, floor=floor)
