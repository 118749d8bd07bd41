"""Windows: shape, range, endpoints, closed-form mean and smoothness, progress, bad input."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annealbench.optimizers import WINDOW_KINDS, Window, make_window, window_mean, window_smoothness
from annealbench.optimizers.window import progress

# ∫₀¹ φ and ∫₀¹ φ'² of each plain decay shape (p only for root).
CLOSED_MEAN = {
    "constant": lambda p: 1.0, "linear": lambda p: 0.5, "root": lambda p: p / (p + 1),
    "cosine": lambda p: 0.5, "cosine1": lambda p: 2 / math.pi,
}
CLOSED_SMOOTH = {
    "constant": lambda p: 0.0, "linear": lambda p: 1.0, "root": lambda p: 1 / (p * (2 - p)),
    "cosine": lambda p: math.pi**2 / 8, "cosine1": lambda p: math.pi**2 / 8,
}

windows = st.builds(
    lambda kind, p, m, e, floor: make_window(kind, p=p if kind == "root" else 1.0, warmup=m,
                                             plateau=e * (1 - m) * 0.9, floor=floor),
    st.sampled_from(WINDOW_KINDS), st.floats(0.2, 5.0), st.sampled_from([0.0, 0.05, 0.3]),
    st.sampled_from([0.0, 0.2, 0.5]), st.sampled_from([0.0, 0.1]))


@given(windows)
@settings(max_examples=60, deadline=None)
def test_range_endpoints_and_monotone_decay(window: Window) -> None:
    r = np.linspace(0.0, 1.0, 2001)
    values = window(r)
    assert values.min() >= window.floor - 1e-12 and values.max() <= 1.0 + 1e-12
    if window.kind == "constant":
        assert window(1.0) == pytest.approx(1.0)
    else:
        assert window(1.0) == pytest.approx(window.floor, abs=1e-12)
    expected_start = window.floor if window.warmup > 0 else 1.0
    assert window(0.0) == pytest.approx(expected_start, abs=1e-12)
    top = window.warmup + window.plateau
    assert window(top) == pytest.approx(1.0)
    decay = values[r >= top]
    assert np.all(np.diff(decay) <= 1e-12), "the window must not rise after warm-up and plateau"
    rise = values[r <= window.warmup]
    assert np.all(np.diff(rise) >= -1e-12), "the warm-up must not fall"


@pytest.mark.parametrize(("kind", "p"), [(k, 1.0) for k in WINDOW_KINDS] + [("root", 0.5), ("root", 1.5)])
def test_mean_and_smoothness_match_closed_forms(kind: str, p: float) -> None:
    window = make_window(kind, p=p)
    steps = 200_000
    assert window_mean(window, steps) == pytest.approx(CLOSED_MEAN[kind](p), rel=1e-4, abs=1e-5)
    # root with p > 1 has an integrable singularity of Ϝ'² at r = 1: slower convergence.
    rel = 2e-2 if (kind == "root" and p > 1) else 1e-4
    assert window_smoothness(window, steps) == pytest.approx(CLOSED_SMOOTH[kind](p), rel=rel, abs=1e-6)


@given(st.sampled_from(["linear", "cosine", "cosine1"]), st.sampled_from([0.0, 0.1, 0.25]),
       st.sampled_from([0.0, 0.2, 0.4]), st.sampled_from([0.0, 0.1, 0.3]))
@settings(max_examples=30, deadline=None)
def test_warmup_plateau_floor_closed_forms(kind: str, m: float, e: float, floor: float) -> None:
    """Mean f + (1-f)(m·I + e + d·I), smoothness (1-f)²·J·(1/m + 1/d) with d = 1 - m - e."""
    window = make_window(kind, warmup=m, plateau=e, floor=floor)
    d = 1 - m - e
    mean_shape, smooth_shape = CLOSED_MEAN[kind](1.0), CLOSED_SMOOTH[kind](1.0)
    expected_mean = floor + (1 - floor) * (m * mean_shape + e + d * mean_shape)
    expected_smooth = (1 - floor) ** 2 * smooth_shape * ((1 / m if m else 0.0) + 1 / d)
    steps = 100_000
    assert window_mean(window, steps) == pytest.approx(expected_mean, rel=1e-3)
    assert window_smoothness(window, steps) == pytest.approx(expected_smooth, rel=1e-3)


def test_linear_has_the_smallest_smoothness_among_decays() -> None:
    smooth = {k: window_smoothness(make_window(k, p=1.5 if k == "root" else 1.0), 10_000)
              for k in WINDOW_KINDS if k != "constant"}
    assert min(smooth, key=smooth.get) == "linear"


def test_root_square_root_smoothness_grows_with_steps() -> None:
    window = make_window("root", p=2)  # ∫Ϝ'² diverges logarithmically
    assert window_smoothness(window, 100_000) > window_smoothness(window, 1_000) + 1.0


def test_float_and_array_agree_and_types() -> None:
    window = make_window("cosine", warmup=0.1, plateau=0.2, floor=0.05)
    r = np.array([0.0, 0.05, 0.2, 0.31, 0.77, 1.0])
    values = window(r)
    assert isinstance(window(0.5), float) and values.shape == r.shape
    assert values == pytest.approx([window(float(x)) for x in r], abs=0)
    assert window(0.5) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (0.2 / 0.7))))


def test_window_is_frozen_hashable_picklable_and_labelled() -> None:
    window = make_window("root", p=2, warmup=0.05)
    assert pickle.loads(pickle.dumps(window)) == window
    assert hash(window) == hash(make_window("root", p=2.0, warmup=0.05))
    with pytest.raises(AttributeError):
        window.p = 3.0  # type: ignore[misc]
    assert window.label == "root(p=2)+warmup=0.05"
    assert make_window("linear").label == "linear"
    assert make_window("cosine", warmup=0.05).label == "cosine+warmup=0.05"
    assert make_window("linear", warmup=0.1, plateau=0.7, floor=0.1).label == "linear+warmup=0.1+plateau=0.7+floor=0.1"


def test_progress_is_k_over_tau_and_clamps_past_the_end() -> None:
    assert progress(0, 100) == 0.0
    assert progress(25, 100) == 0.25
    assert progress(100, 100) == 1.0
    assert progress(250, 100) == 1.0
    for step, total in [(-1, 10), (1.5, 10), (0, 0), (0, -3), (True, 10)]:
        with pytest.raises(ValueError, match="step"):
            progress(step, total)


@pytest.mark.parametrize("bad_r", [-0.01, 1.01, float("nan"), np.array([0.2, 1.5])])
def test_out_of_range_progress_raises(bad_r) -> None:
    with pytest.raises(ValueError, match=r"progress r=.*0 <= r <= 1"):
        make_window("linear")(bad_r)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"kind": "cosine2"}, r"kind='cosine2'.*constant, linear, root, cosine, cosine1"),
        ({"kind": "root", "p": 0.0}, r"p=0.0.*p > 0"),
        ({"kind": "root", "p": -1.0}, r"p=-1.0.*p > 0"),
        ({"kind": "root", "p": float("inf")}, r"p=inf"),
        ({"kind": "linear", "p": 2.0}, r"p=2.0.*only 'root'"),
        ({"kind": "linear", "warmup": 1.0}, r"warmup=1.0.*0 <= warmup < 1"),
        ({"kind": "linear", "warmup": -0.1}, r"warmup=-0.1"),
        ({"kind": "linear", "plateau": 1.2}, r"plateau=1.2"),
        ({"kind": "linear", "warmup": 0.5, "plateau": 0.5}, r"warmup \+ plateau.*< 1"),
        ({"kind": "linear", "floor": 1.0}, r"floor=1.0.*0 <= floor < 1"),
        ({"kind": "linear", "floor": -0.5}, r"floor=-0.5"),
        ({"kind": "linear", "floor": "0.1"}, r"floor='0.1'"),
    ],
)
def test_bad_window_parameters_raise_naming_them(kwargs: dict, named: str) -> None:
    kind = kwargs.pop("kind")
    with pytest.raises(ValueError, match=named):
        make_window(kind, **kwargs)


@pytest.mark.parametrize("steps", [1, 0, -5, 2.5])
def test_window_statistics_need_two_steps(steps) -> None:
    with pytest.raises(ValueError, match=r"steps=.*>= 2"):
        window_mean(make_window("linear"), steps)
    with pytest.raises(ValueError, match=r"steps=.*>= 2"):
        window_smoothness(make_window("linear"), steps)


@pytest.mark.parametrize("window", [
    make_window("constant"), make_window("linear"), make_window("cosine"), make_window("cosine1"),
    make_window("root", p=2), make_window("root", p=0.5), make_window("cosine", warmup=0.1, plateau=0.2, floor=0.05),
    make_window("constant", warmup=0.2), make_window("linear", warmup=0.05, plateau=0.6),
], ids=lambda w: w.label)
def test_scalar_and_array_evaluation_agree(window) -> None:
    """The optimizer's per-step scalar path and the array path are one function."""
    r = np.linspace(0.0, 1.0, 2001)
    scalars = np.array([window(float(x)) for x in r])
    np.testing.assert_allclose(scalars, window(r), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="out of range"):
        window(1.5)
